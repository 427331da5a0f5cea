import copy, torch, thunder
def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
def run(opt_fn, jit, n=5, clip=None, sched=False, zero_kw=dict(set_to_none=True)):
    model = make()
    opt = opt_fn(model.parameters())
    sch = torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5) if sched else None
    def step(x, y):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        if clip: torch.nn.utils.clip_grad_norm_(model.parameters(), clip, **({} if clip > 0.1 else {"foreach": True}))
        opt.step()
        opt.zero_grad(**zero_kw)
        return loss
    f = thunder.jit(step) if jit else step
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        x = torch.randn(3, 4, generator=g); y = torch.randn(3, 1, generator=g)
        f(x, y)
        if sch: sch.step()
    return model, opt, f
def cmp(**kw):
    me, oe, _ = run(jit=False, **kw)
    mj, oj, f = run(jit=True, **kw)
    for a, b in zip(me.parameters(), mj.parameters()):
        torch.testing.assert_close(a, b)
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None: torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(oe.state_dict(), oj.state_dict())
    print(kw, "ok", thunder.cache_misses(f))
cmp(opt_fn=lambda p: torch.optim.Adam(p, lr=0.01), clip=0.5)
cmp(opt_fn=lambda p: torch.optim.Adam(p, lr=0.01), sched=True)
cmp(opt_fn=lambda p: torch.optim.Adam(p, lr=0.01, foreach=True), zero_kw=dict(set_to_none=False))
cmp(opt_fn=lambda p: torch.optim.AdamW(p, lr=0.01, fused=True))
cmp(opt_fn=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, dampening=0.1, maximize=True))
cmp(opt_fn=lambda p: torch.optim.Adam(p, lr=0.01, maximize=True, weight_decay=0.1))
cmp(opt_fn=lambda p: torch.optim.Adam(p, lr=0.01), clip=0.05)
