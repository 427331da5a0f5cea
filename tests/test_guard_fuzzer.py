"""Guard fuzzer: call a jitted program, change one thing it reads, call again; every result must match eager.

Each case is generated from its seed as Python source (a program, the calls, and the changes between them),
so that a failure prints a script that reproduces it alone. Every kind of value a trace may specialize on
besides its arguments is covered (globals, attribute chains, closure cells, defaults, module attributes,
submodules, hooks, parameters and buffers, argument objects' attributes), and so are the cache key's floats
(-0.0, NaN) and aliasing between inputs. A change may be undone later, which must find the earlier entry.
"""

from __future__ import annotations

import random
import textwrap

import pytest
import torch

import thunder

FLOATS = (2.0, 3.0, -1.5, 0.0, -0.0, float("nan"), float("inf"), 0.5)
N_CASES = 160

# ---------------------------------------------------------------------------------------------------------------
# scenarios: seed's rng -> (setup source, [change sources]); the setup defines `fn` (what is jitted) and
# `run(f)`, which calls f on fresh inputs and returns what is compared (outputs, and inputs after the call)
# ---------------------------------------------------------------------------------------------------------------


def _v(rng) -> str:
    return repr(rng.choice(FLOATS)).replace("nan", 'float("nan")').replace("inf", 'float("inf")')


def _global_values(rng):
    setup = f"""
        S = {_v(rng)}
        N = 2
        FLAG = True
        W = torch.linspace(-1, 1, 4)
        def fn(x):
            y = x.reshape(N, -1).sum(0) * S
            return (y.relu() if FLAG else y.neg()) + W[: y.shape[0]].sum()
        def run(f):
            return f(torch.linspace(-2, 2, 8))
    """
    changes = [f"S = {_v(rng)}", f"N = {rng.choice([1, 2, 4, 8])}", "FLAG = not FLAG",
               f"W = torch.full((4,), {_v(rng)})", "W.mul_(2)"]  # fmt: skip
    return setup, changes


def _attribute_chains(rng):
    setup = f"""
        import types
        cfg = types.SimpleNamespace(scale={_v(rng)}, inner=types.SimpleNamespace(shift=1.0))
        settings = types.ModuleType("settings")
        settings.SCALE = 2.0
        class Consts:
            OFFSET = 1.0
        def fn(x):
            return x * cfg.scale + cfg.inner.shift + settings.SCALE * Consts.OFFSET
        def run(f):
            return f(torch.linspace(-2, 2, 5))
    """
    changes = [f"cfg.scale = {_v(rng)}", f"cfg.inner.shift = {_v(rng)}", "cfg.inner = types.SimpleNamespace(shift=7.0)",
               f"settings.SCALE = {_v(rng)}", f"Consts.OFFSET = {_v(rng)}"]  # fmt: skip
    return setup, changes


def _closures(rng):
    setup = f"""
        def make():
            s = {_v(rng)}
            w = torch.ones(3)
            items = [1.0, 2.0]
            def fn(x):
                return x * s * w + len(items) + sum(items)
            def set_s(v):
                nonlocal s
                s = v
            def set_w(v):
                nonlocal w
                w = v
            return fn, set_s, set_w, items
        fn, set_s, set_w, items = make()
        def run(f):
            return f(torch.linspace(-2, 2, 3))
    """
    changes = [f"set_s({_v(rng)})", f"set_w(torch.full((3,), {_v(rng)}))", f"items.append({_v(rng)})",
               f"items[:1] = [{_v(rng)}]", "items.clear()"]  # fmt: skip
    return setup, changes


def _defaults(rng):
    setup = f"""
        def fn(x, k={_v(rng)}, *, j=1.0):
            return x * k + j
        def run(f):
            return f(torch.linspace(-2, 2, 3))
    """
    changes = [f"fn.__defaults__ = ({_v(rng)},)", f"fn.__kwdefaults__ = {{'j': {_v(rng)}}}"]
    return setup, changes


def _argument_objects(rng):
    setup = f"""
        class Options:
            def __init__(self):
                self.scale = {_v(rng)}
                self.mode = "relu"
        opts = Options()
        def fn(x, o):
            y = x * o.scale
            return y.relu() if o.mode == "relu" else y.tanh()
        def run(f):
            return f(torch.linspace(-2, 2, 3), opts)
    """
    changes = [f"opts.scale = {_v(rng)}", "opts.mode = 'tanh'", "opts.mode = 'relu'", "opts.extra = 1"]
    return setup, changes


_MODULE_SETUP = """
    import types
    import torch.nn as nn
    torch.manual_seed(0)
    class Block(nn.Module):
        K = 1.0
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.act = nn.ReLU()
            self.scale = {scale}
            self.n = 2
            self.t = torch.linspace(-1, 1, 4)
            self.flag = True
            self.config = types.SimpleNamespace(mult=1.0)
            self.register_buffer("extra", torch.ones(4))
        def forward(self, x):
            y = self.act(self.lin(x)) * self.scale * self.K * self.config.mult + self.t
            if hasattr(self, "extra"):
                y = y + self.extra
            if getattr(self, "p2", None) is not None:
                y = y * self.p2
            y = y.reshape(self.n, -1).sum(0)
            return y.relu() if self.flag else y
    fn = Block()
    hooks = []
    def run(f):
        return f(torch.linspace(-2, 2, 8).reshape(2, 4))
"""


def _module_attributes(rng):
    setup = _MODULE_SETUP.format(scale=_v(rng))
    changes = [f"fn.scale = {_v(rng)}", f"fn.n = {rng.choice([1, 2, 4, 8])}", f"fn.t = torch.full((4,), {_v(rng)})",
               f"Block.K = {_v(rng)}", "fn.flag = not fn.flag", "fn.t.add_(1)", f"fn.config.mult = {_v(rng)}"]  # fmt: skip
    return setup, changes


def _module_structure(rng):
    setup = _MODULE_SETUP.format(scale=_v(rng))
    changes = [
        f"fn.act = nn.{rng.choice(['Tanh', 'Identity', 'ReLU', 'Sigmoid'])}()",
        "fn.lin.bias = None",
        "fn.lin.bias = nn.Parameter(torch.full((4,), 0.5))",
        "if hasattr(fn, 'extra'):\n    del fn.extra\nelse:\n    fn.register_buffer('extra', torch.full((4,), 3.0))",
        "fn.p2 = nn.Parameter(torch.full((4,), 2.0))",
        "fn.p2 = None",
        "fn.lin = nn.Linear(4, 4)",
    ]
    return setup, changes


def _module_hooks(rng):
    setup = _MODULE_SETUP.format(scale=_v(rng))
    changes = [
        f"hooks.append(fn.register_forward_hook(lambda mod, i, o: o * {_v(rng)}))",
        "hooks.append(fn.lin.register_forward_pre_hook(lambda mod, i: (i[0] + 1,)))",
        "hooks.append(fn.act.register_forward_hook(lambda mod, i, o: o - 1))",
        "hooks.append(nn.modules.module.register_module_forward_hook("
        "lambda mod, i, o: o + 1 if isinstance(o, torch.Tensor) else o))",
        "if hooks:\n    hooks.pop().remove()",
    ]
    return setup, changes


def _scalar_bits(rng):
    setup = """
        def fn(x, s, d):
            return x / s + x * d["t"][0]
        S, T = 0.0, 1.0
        def run(f):
            return f(torch.linspace(-2, 2, 3), S, {"t": (T,)})
    """
    changes = [f"S = {_v(rng)}", f"T = {_v(rng)}", "S = -S", "T = -T"]
    return setup, changes


def _aliasing(rng):
    setup = """
        def fn(a, b):
            a.add_(1)
            return b * 10
        MODE = 0
        def run(f):
            if MODE == 0:
                x, y = torch.zeros(3), torch.zeros(3)
                return f(x, y), x, y
            if MODE == 1:
                t = torch.zeros(3)
                return f(t, t), t
            base = torch.zeros(4)
            return f(base, base[:3]), base
    """
    return setup, ["MODE = 0", "MODE = 1", "MODE = 2"]


def _aliasing_reads(rng):
    setup = """
        def fn(a, b):
            return a.sum() + b * 2, (a * b).sum()
        MODE = 0
        def run(f):
            base = torch.linspace(-1, 1, 6)
            if MODE == 0:
                return f(base[:3], torch.ones(3))
            if MODE == 1:
                return f(base[:3], base[3:])
            if MODE == 2:
                return f(base[:3], base[:3])
            return f(base, base)
    """
    return setup, ["MODE = 0", "MODE = 1", "MODE = 2", "MODE = 3"]


SCENARIOS = {
    "global_values": _global_values,
    "attribute_chains": _attribute_chains,
    "closures": _closures,
    "defaults": _defaults,
    "argument_objects": _argument_objects,
    "module_attributes": _module_attributes,
    "module_structure": _module_structure,
    "module_hooks": _module_hooks,
    "scalar_bits": _scalar_bits,
    "aliasing": _aliasing,
    "aliasing_reads": _aliasing_reads,
}


# ---------------------------------------------------------------------------------------------------------------
# running a case
# ---------------------------------------------------------------------------------------------------------------


def make_case(seed: int) -> tuple[str, str, list[str], str]:
    rng = random.Random(seed)
    name = list(SCENARIOS)[seed % len(SCENARIOS)]
    setup, changes = SCENARIOS[name](rng)
    steps = [rng.choice(changes) for _ in range(rng.randint(1, 4))]
    cache = rng.choice(["constant values", "constant values", "symbolic values"])
    return name, textwrap.dedent(setup), steps, cache


def _compare(expected, actual) -> None:
    torch.testing.assert_close(actual, expected, equal_nan=True, rtol=1e-5, atol=1e-5)


def _call(run, f):
    try:
        return run(f), None
    except Exception as e:  # noqa: BLE001 (an error is an outcome too: compared below)
        return None, e


def _check_call(ns: dict, jfn) -> None:
    expected, eager_error = _call(ns["run"], ns["fn"])
    actual, error = _call(ns["run"], jfn)
    if error is not None and isinstance(error, NotImplementedError) and "share memory" in str(error):
        return  # a clear refusal of an aliasing pattern Thunder cannot compile (see thunder.frontend.jit)
    if eager_error is not None or error is not None:
        assert type(error) is type(eager_error), f"eager raised {eager_error!r}, thunder raised {error!r}"
        return
    _compare(expected, actual)


def reproducer(name: str, setup: str, steps: list[str], cache: str, done: int) -> str:
    lines = ["import torch, thunder", setup, f"jfn = thunder.jit(fn, cache={cache!r})",
             "torch.testing.assert_close(run(jfn), run(fn), equal_nan=True)"]  # fmt: skip
    for step in steps[:done]:
        lines += [step, "torch.testing.assert_close(run(jfn), run(fn), equal_nan=True)"]
    return f"# guard fuzzer case {name!r}\n" + "\n".join(lines)


def run_case(seed: int) -> None:
    name, setup, steps, cache = make_case(seed)
    ns: dict = {"torch": torch, "__name__": f"guard_fuzz_{seed}"}
    done = 0
    try:
        exec(compile(setup, f"<guard fuzzer case {seed}>", "exec"), ns)
        jfn = thunder.jit(ns["fn"], cache=cache)
        _check_call(ns, jfn)
        for done, step in enumerate(steps, 1):
            exec(compile(step, f"<guard fuzzer case {seed}, step {done}>", "exec"), ns)
            _check_call(ns, jfn)
    except Exception as e:
        raise AssertionError(
            f"guard fuzzer seed {seed} failed: {e}\n--- minimal reproducer ---\n"
            f"{reproducer(name, setup, steps, cache, done)}"
        ) from e
    finally:
        for hook in ns.get("hooks", ()):
            hook.remove()


@pytest.mark.parametrize("chunk", range(4))
def test_guard_fuzzer(chunk):
    for seed in range(chunk, N_CASES, 4):
        run_case(seed)


def test_every_scenario_is_generated():
    assert {make_case(seed)[0] for seed in range(N_CASES)} == set(SCENARIOS)
