import copy, torch, thunder
torch.manual_seed(0)
def make():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
def run(opt_fn, jit, n=4, zero=True):
    torch.manual_seed(0)
    model = make()
    opt = opt_fn(model.parameters())
    def step(x, y):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if zero: opt.zero_grad(set_to_none=True)
        return loss
    f = thunder.jit(step) if jit else step
    g = torch.Generator().manual_seed(1)
    losses = []
    for i in range(n):
        x = torch.randn(3, 4, generator=g); y = torch.randn(3, 1, generator=g)
        losses.append(f(x, y).detach())
    return model, opt, losses, f
for name, fn in [("sgd", lambda p: torch.optim.SGD(p, lr=0.1)),
                 ("sgdm", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
                 ("adam", lambda p: torch.optim.Adam(p, lr=0.01)),
                 ("adamw", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1))]:
    for zero in (True, False):
        me, oe, le, _ = run(fn, False, zero=zero)
        mj, oj, lj, f = run(fn, True, zero=zero)
        torch.testing.assert_close(le, lj)
        for a, b in zip(me.parameters(), mj.parameters()):
            torch.testing.assert_close(a, b)
            assert (a.grad is None) == (b.grad is None), (a.grad, b.grad)
            if a.grad is not None: torch.testing.assert_close(a.grad, b.grad)
        for a, b in zip(me.parameters(), mj.parameters()):
            sa, sb = oe.state.get(a, {}), oj.state.get(b, {})
            assert sa.keys() == sb.keys(), (sa.keys(), sb.keys())
            for k in sa: torch.testing.assert_close(sa[k], sb[k]); 
        print(name, zero, "ok", thunder.cache_misses(f), thunder.cache_hits(f))
print(thunder.last_traces(f)[-1])
