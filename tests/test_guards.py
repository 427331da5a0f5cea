"""Per-call guards and the cache key (issue #11 items 1-3): one test per example, each against eager."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn as nn

import thunder
from thunder.frontend.guards import MISS

x = torch.linspace(-2, 2, 4)


def _same(jfn, fn, *args):
    torch.testing.assert_close(jfn(*args), fn(*args), equal_nan=True)


# -- item 1: values read while tracing ------------------------------------------------------------------
S = 2.0


def _times_s(x):
    return x * S


def test_changed_global_recompiles_and_changing_back_hits():
    global S
    jf = thunder.jit(_times_s)
    try:
        _same(jf, _times_s, x)
        S = 3.0
        _same(jf, _times_s, x)
        S = 2.0
        _same(jf, _times_s, x)
    finally:
        S = 2.0
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (2, 1)


def test_global_with_equal_value_hits():
    global S
    jf = thunder.jit(_times_s)
    try:
        _same(jf, _times_s, x)
        S = float("2.0")  # another float object, the same value
        _same(jf, _times_s, x)
    finally:
        S = 2.0
    assert thunder.cache_misses(jf) == 1


cfg = types.SimpleNamespace(SCALE=2.0)
settings = types.ModuleType("settings")
settings.SCALE = 2.0


def _scaled(x):
    return x * cfg.SCALE + settings.SCALE


def test_attribute_chain_of_a_global_object_and_module():
    jf = thunder.jit(_scaled)
    _same(jf, _scaled, x)
    cfg.SCALE, settings.SCALE = 5.0, -1.0
    try:
        _same(jf, _scaled, x)
    finally:
        cfg.SCALE = settings.SCALE = 2.0


def _closure_over(value):
    def fn(x):
        return x * value

    def set_value(v):
        nonlocal value
        value = v

    return fn, set_value


@pytest.mark.parametrize("first, second", [(2.0, 3.0), (torch.ones(4), torch.full((4,), 3.0))])
def test_nonlocal_float_or_tensor(first, second):
    fn, set_value = _closure_over(first)
    jf = thunder.jit(fn)
    _same(jf, fn, x)
    set_value(second)
    _same(jf, fn, x)


def test_closed_over_list_that_grew():
    items = [1.0]

    def fn(x):
        return x * len(items) + sum(items)

    jf = thunder.jit(fn)
    _same(jf, fn, x)
    items.append(2.0)
    _same(jf, fn, x)


def test_defaults_and_keyword_defaults():
    def fn(x, k=2.0, *, j=1.0):
        return x * k + j

    jf = thunder.jit(fn)
    _same(jf, fn, x)
    fn.__defaults__ = (4.0,)
    _same(jf, fn, x)
    fn.__kwdefaults__ = {"j": -3.0}
    _same(jf, fn, x)


class _Block(nn.Module):
    K = 1.0

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 4)
        self.act = nn.ReLU()
        self.scale = 2.0
        self.flag = True
        self.n = 2
        self.t = torch.linspace(0, 1, 4)
        self.extra = nn.Parameter(torch.ones(4))

    def forward(self, x):
        y = self.act(self.lin(x)) * self.scale * self.K + self.t
        if hasattr(self, "extra"):
            y = y + self.extra
        y = y.reshape(self.n, -1).sum(0)
        return y.relu() if self.flag else y


def _input():
    """The block's input, on the test's device (made per test: --device cuda sets the default device per test)."""
    return torch.linspace(-2, 2, 8).reshape(2, 4)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: setattr(m, "scale", 3.0),
        lambda m: setattr(m, "flag", False),
        lambda m: setattr(m, "n", 4),  # an int used as a shape
        lambda m: setattr(m, "t", torch.full((4,), 5.0)),  # a plain tensor attribute
        lambda m: setattr(type(m), "K", 7.0),  # a class attribute
        lambda m: setattr(m, "act", nn.Tanh()),  # a submodule without parameters
        lambda m: setattr(m.lin, "bias", None),
        lambda m: delattr(m, "extra"),
        lambda m: m.register_forward_hook(lambda mod, i, o: o * 10),
        lambda m: m.lin.register_forward_pre_hook(lambda mod, i: (i[0] + 1,)),
        lambda m: m.register_parameter("extra", nn.Parameter(torch.full((4,), 3.0))),
    ],
    ids=["scale", "flag", "int_shape", "tensor_attr", "class_attr", "submodule", "bias_none", "del_param",
         "forward_hook", "pre_hook", "replaced_param"],  # fmt: skip
)
def test_module_change_after_jit(change):
    class Block(_Block):  # a fresh class: the class-attribute case changes it
        pass

    m = Block()
    jm = thunder.jit(m)
    _same(jm, m, _input())
    change(m)
    _same(jm, m, _input())


def test_global_module_hook_runs_once_and_is_guarded():
    m = _Block()
    jm = thunder.jit(m)
    _same(jm, m, _input())
    handle = nn.modules.module.register_module_forward_hook(lambda mod, i, o: o + 1)
    try:
        _same(jm, m, _input())
    finally:
        handle.remove()
    _same(jm, m, _input())


def test_global_hook_and_a_hook_on_the_jitted_module_each_run_as_in_eager():
    m = _Block()
    jm = thunder.jit(m)
    calls = []
    handle = nn.modules.module.register_module_forward_hook(lambda mod, i, o: calls.append(type(mod).__name__))
    try:
        expected = m(_input())
        eager_calls, calls[:] = list(calls), []
        torch.testing.assert_close(jm(_input()), expected)  # a new hook: traced again, its side effect runs there
        assert calls == eager_calls  # the original modules' calls, none for the wrapper
        own = jm.register_forward_hook(lambda mod, i, o: o * 2)  # a hook on the wrapper itself runs too
        torch.testing.assert_close(jm(_input()), expected * 2)
        own.remove()
        torch.testing.assert_close(jm(_input()), expected)
    finally:
        handle.remove()
    assert not nn.modules.module._global_forward_hooks  # the global table is the user's again, unchanged


def test_attribute_of_a_plain_object_held_by_a_module():
    class WithConfig(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = types.SimpleNamespace(mult=2.0)

        def forward(self, x):
            return x * self.config.mult

    m = WithConfig()
    jm = thunder.jit(m)
    _same(jm, m, x)
    m.config.mult = -3.0
    _same(jm, m, x)


def test_attribute_of_an_object_argument():
    class Options:
        scale = 1.0

    def fn(x, o):
        return x * o.scale

    opts = Options()
    opts.scale = 2.0
    jf = thunder.jit(fn)
    _same(jf, fn, x, opts)
    opts.scale = -4.0
    _same(jf, fn, x, opts)


def test_symbolic_values_recompile_for_a_changed_global_number():
    global S
    jf = thunder.jit(lambda x, n: _times_s(x) * n, cache="symbolic values")
    try:
        torch.testing.assert_close(jf(x, 2), x * S * 2)
        S = 5.0
        torch.testing.assert_close(jf(x, 2), x * S * 2)
    finally:
        S = 2.0


def test_guards_are_one_generated_function():
    jf = thunder.jit(_scaled)
    jf(x)
    (entry,) = [e for entries in jf._cache.values() for e in entries]
    assert entry.check() and entry.hot_call(x) is not MISS
    cfg.SCALE = 3.0
    try:
        assert not entry.check() and entry.hot_call(x) is MISS
    finally:
        cfg.SCALE = 2.0
    assert entry.check()


# -- item 2: aliasing ------------------------------------------------------------------------------------
def _add_then_read(a, b):
    a.add_(1)
    return b * 10


def test_same_tensor_twice_after_separate_tensors():
    jf = thunder.jit(_add_then_read)
    x1, y1 = torch.zeros(3), torch.zeros(3)
    torch.testing.assert_close(jf(x1, y1), torch.zeros(3))
    t, t_ref = torch.zeros(3), torch.zeros(3)
    torch.testing.assert_close(jf(t, t), _add_then_read(t_ref, t_ref))
    torch.testing.assert_close(t, t_ref)
    assert thunder.cache_misses(jf) == 2


def test_parameter_passed_as_argument_of_its_module():
    lin = nn.Linear(3, 3)
    jm = thunder.jit(lin)
    with torch.no_grad():
        torch.testing.assert_close(jm(lin.weight), lin(lin.weight))


def test_base_and_view_read_together_match_eager():
    def fn(a, b):
        return a.sum() + b * 2

    jf = thunder.jit(fn)
    base = torch.linspace(-1, 1, 6)
    _same(jf, fn, base[:3], torch.ones(3))
    _same(jf, fn, base, base[2:])


def test_base_and_view_written_together_is_a_clear_error():
    jf = thunder.jit(_add_then_read)
    base = torch.zeros(4)
    with pytest.raises(NotImplementedError, match="share memory"):
        jf(base, base[:2])
    torch.testing.assert_close(base, torch.zeros(4))  # nothing of the user's was changed


# -- item 3: floats by their bits ------------------------------------------------------------------------
def _divide(x, s):
    return x / s


@pytest.mark.parametrize("cache", ["constant values", "symbolic values"])
def test_negative_zero_and_nan_scalars(cache):
    jf = thunder.jit(_divide, cache=cache)
    for s in (0.0, -0.0, float("nan"), float("nan"), 0.0):
        _same(jf, _divide, x, s)


def test_negative_zero_in_a_nested_argument():
    def fn(x, d):
        return x / d["s"][0]

    jf = thunder.jit(fn)
    for s in (0.0, -0.0):
        _same(jf, fn, x, {"s": (s,)})


def test_nan_constant_finds_its_entry():
    jf = thunder.jit(_divide)
    for _ in range(3):
        jf(x, float("nan"))
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (1, 2)


def test_recording_leaves_nn_module_and_the_trace_function_as_they_were():
    before = sys.gettrace()
    jf = thunder.jit(_times_s)
    jf(x)
    assert "__getattribute__" not in vars(nn.Module) and sys.gettrace() is before


def test_code_thunder_generates_is_not_guarded(monkeypatch):
    """Dataclass methods of Thunder's own (compiled from a string, so without a file Thunder's paths match) ran
    on every compilation: each was taken for user code and looked up through gc, a whole-heap scan per compile."""
    import gc

    import thunder.frontend.guards as guards

    asked = []

    def referrers(*objects):
        asked.extend(objects)
        return gc.get_referrers(*objects)

    monkeypatch.setattr(guards, "gc", types.SimpleNamespace(get_referrers=referrers))
    w = torch.randn(3, requires_grad=True)
    jf = thunder.jit(lambda a: (a * w).sum())
    jf(torch.randn(3)).backward()
    assert not asked, [code.co_name for code in asked]


def test_a_failed_compilation_leaves_nothing_installed():
    def bad(x):
        return x.item()  # data-dependent: refused while tracing

    with pytest.raises(Exception, match="needs the value"):
        thunder.jit(bad)(x)
    assert "__getattribute__" not in vars(nn.Module)


def test_hot_path_without_torchs_tensor_guard_checks_metadata_in_python(monkeypatch):
    import thunder.frontend.guards as guards

    monkeypatch.setattr(guards, "_tensor_guard", lambda args: None)  # as where TensorGuards' signature differs
    jf = thunder.jit(lambda a, b: a + b)
    a, b = torch.ones(2, 2), torch.ones(2, 2)
    torch.testing.assert_close(jf(a, b), a + b)
    for other in (torch.ones(2, 2, dtype=torch.float64), torch.ones(2, 2).t(), torch.ones(1, 2),
                  torch.ones(2, 2, requires_grad=True)):
        torch.testing.assert_close(jf(a, other), a + other)
    torch.testing.assert_close(jf(a, b), a + b)
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (5, 1)
