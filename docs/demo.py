"""The README's demo: compile a small model, print the program that ran, and compare with eager."""

import torch

import thunder


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(16, 32)
        self.fc2 = torch.nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


def main() -> None:
    torch.manual_seed(0)
    model = MLP()
    jmodel = thunder.jit(model)
    x = torch.randn(8, 16)
    with torch.no_grad():
        out, expected = jmodel(x), model(x)
    print("Final trace (inference):")
    print(thunder.last_traces(jmodel)[-1])
    loss = jmodel(x).square().mean()
    loss.backward()
    print("Backward trace:")
    print(thunder.last_backward_traces(jmodel)[-1])
    torch.testing.assert_close(out, expected)
    print(f"max |thunder - eager| = {(out - expected).abs().max().item():.2e}: matches eager")


if __name__ == "__main__":
    main()
