"""
Hello world
===========

Compile a function and a module with `thunder.jit`, check them against PyTorch, and look at the program that
ran.
"""

# %%
# A function
# ----------
# `thunder.jit` returns a callable that takes and returns ordinary tensors. The first call traces and compiles;
# later calls with inputs of the same metadata reuse the compiled program.
import torch

import thunder


def foo(a, b):
    return torch.nn.functional.gelu(a) * b + 1


jfoo = thunder.jit(foo)
a, b = torch.randn(2, 3), torch.randn(2, 3)
result = jfoo(a, b)
torch.testing.assert_close(result, foo(a, b))  # the same result as eager PyTorch
print(result)

# %%
# The program that ran is a trace: a straight-line Python function, one operation per line, with each
# tensor's device, dtype and shape in a comment.
print(thunder.last_traces(jfoo)[-1])

# %%
# A module
# --------
# A module compiles the same way. The compiled module shares its parameters with the original, and
# gradients land in the original's ``.grad`` as with eager PyTorch.
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
jmodel = thunder.jit(model)
x = torch.randn(5, 4)
loss = jmodel(x).square().mean()
loss.backward()

reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
reference.load_state_dict(model.state_dict())
reference(x).square().mean().backward()
for p, q in zip(model.parameters(), reference.parameters()):
    torch.testing.assert_close(p.grad, q.grad)
print("loss", loss.item(), "- gradients match eager PyTorch for", [n for n, _ in model.named_parameters()])

# %%
# Training used a backward program too:
print(thunder.last_backward_traces(jmodel)[-1])
