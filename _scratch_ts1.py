import torch, thunder
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
def step(x, y):
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss
j = thunder.jit(step)
x = torch.randn(3, 4); y = torch.randn(3, 1)
try:
    print(j(x, y))
except Exception as e:
    import traceback; traceback.print_exc()
