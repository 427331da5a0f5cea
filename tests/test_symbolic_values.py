"""cache="symbolic values": int and float arguments are inputs of the trace (number proxies), not constants.

Each test compares with eager on the same inputs and checks how many compilations the calls cost: a value
the program only computes with must not recompile; a value it branches on or uses as a size must.
"""

from __future__ import annotations

import numbers

import pytest
import torch

import thunder
from thunder.core.proxies import FloatProxy, IntegerProxy
from thunder.core.trace import TraceCtx, tracectx


def _jit(fn, **kwargs):
    return thunder.jit(fn, cache="symbolic values", **kwargs)


def test_scalar_arguments_are_trace_inputs_and_do_not_recompile():
    def f(x, scale, shift):
        return x * scale + shift

    jf = _jit(f)
    x = torch.randn(3, 4)
    for scale, shift in ((0.5, 1), (2.0, -3), (-7.25, 0)):
        torch.testing.assert_close(jf(x, scale, shift), f(x, scale, shift), rtol=0, atol=0)
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (1, 2)
    assert thunder.cache_option(jf) == "symbolic values"
    source = str(thunder.last_traces(jf)[0])
    assert "def computation(x, scale, shift):" in source
    assert "scale" in source.split("\n", 3)[-1]  # used by name in the body, not folded into a constant


def test_scalar_type_is_part_of_the_key():
    jf = _jit(lambda x, s: x * s)
    x = torch.arange(4)
    assert torch.equal(jf(x, 2), x * 2)  # int: the result stays integral
    out = jf(x, 2.5)  # float: a new entry, with float promotion
    assert out.dtype == torch.float32 and torch.equal(out, x * 2.5)
    assert thunder.cache_misses(jf) == 2


def test_arithmetic_on_numbers_is_recorded_and_numbers_are_returned():
    def f(x, n, s):
        k = (n * 3 + 1) // 2
        return x * (s / 3) ** 2 - k, k, s % 1.5, -n, abs(s)

    jf = _jit(f)
    x = torch.randn(5)
    for n, s in ((4, 2.5), (7, -1.25)):
        out, ref = jf(x, n, s), f(x, n, s)
        torch.testing.assert_close(out[0], ref[0])
        assert out[1:] == ref[1:] and [type(v) for v in out[1:]] == [type(v) for v in ref[1:]]
    assert thunder.cache_misses(jf) == 1
    assert "scalar_floordiv" in str(thunder.last_traces(jf)[0])


def test_a_number_used_as_a_size_guards_the_relations_the_reshape_relied_on():
    def f(x, n):
        return x.reshape(n, -1).sum(0)

    jf = _jit(f)
    x = torch.randn(4, 6)
    for n in (2, 3, 2, 3, 4):
        torch.testing.assert_close(jf(x, n), f(x, n))
    # n is a size of the program (n divides x's numel); n == x.shape[0] makes the reshape the identity: a second
    # program (see test_symbolic_shapes.py for symbolic tensor sizes)
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (2, 3)
    with pytest.raises(RuntimeError, match="invalid"):  # 5 does not divide 24: the guard fails, eager's error
        jf(x, 5)


def test_a_branch_on_a_number_guards_its_outcome_only():
    def f(x, s):
        if s > 0:
            return x * s
        return x - s

    jf = _jit(f)
    x = torch.randn(3)
    for s in (1.0, 2.0, -1.0, -5.0, 0.5):
        torch.testing.assert_close(jf(x, s), f(x, s), rtol=0, atol=0)
    # one entry per outcome of `s > 0`
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (2, 3)


def test_a_guard_failing_with_an_error_recompiles_and_raises_as_eager_does():
    def f(x, n):
        if 1 / n > 0.25:
            return x + 1
        return x - 1

    jf = _jit(f)
    x = torch.zeros(2)
    assert torch.equal(jf(x, 2), f(x, 2))
    with pytest.raises(ZeroDivisionError):
        f(x, 0)
    with pytest.raises(ZeroDivisionError):
        jf(x, 0)


def test_bools_stay_constants():
    def f(x, flag, s):
        return x * s if flag else x + s

    jf = _jit(f)
    x = torch.randn(3)
    torch.testing.assert_close(jf(x, True, 2.0), f(x, True, 2.0))
    torch.testing.assert_close(jf(x, False, 2.0), f(x, False, 2.0))
    torch.testing.assert_close(jf(x, False, 3.0), f(x, False, 3.0))
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (2, 1)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, s: (x * s).sin().sum(),
        lambda x, s: (x**s).sum(),
        lambda x, s: (s / (x.abs() + 1)).sum(),
        lambda x, s: (s - x).pow(2).mean(),
        lambda x, s: torch.clamp(x, min=-s, max=s).sum(),
        lambda x, s: torch.where(x > s, x, s * x).sum(),
        lambda x, s: x.masked_fill(x < 0, s).sum(),
        lambda x, s: torch.lerp(x, x.exp(), s).sum(),
    ],
    ids=["mul", "pow", "rdiv", "rsub", "clamp", "where", "masked_fill", "lerp"],
)
def test_gradients_with_symbolic_scalars_match_autograd(fn):
    jf = _jit(fn)
    base = torch.rand(4, 3, dtype=torch.float64) + 0.5
    for s in (0.75, 1.5):
        x = base.clone().requires_grad_(True)
        x_ref = base.clone().requires_grad_(True)
        out, ref = jf(x, s), fn(x_ref, s)
        torch.testing.assert_close(out, ref)
        out.backward()
        ref.backward()
        torch.testing.assert_close(x.grad, x_ref.grad)
    assert thunder.cache_misses(jf) == 1


def test_in_place_update_by_a_symbolic_scalar_reaches_the_caller():
    def f(x, s):
        x.mul_(s)
        x += s
        return x.sum()

    jf = _jit(f)
    for s in (2.0, -0.5):
        a, b = torch.ones(3), torch.ones(3)
        torch.testing.assert_close(jf(a, s), f(b, s))
        torch.testing.assert_close(a, b)
    assert thunder.cache_misses(jf) == 1


def test_creation_with_a_symbolic_fill_value():
    def f(x, s):
        return x + torch.full((3,), s) + torch.full_like(x, s) + x.new_full((3,), s)

    jf = _jit(f)
    x = torch.randn(3)
    for s in (1.5, -2.0):
        torch.testing.assert_close(jf(x, s), f(x, s))
    assert thunder.cache_misses(jf) == 1


def test_module_forward_with_a_number_argument():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 4)

        def forward(self, x, temperature):
            return torch.softmax(self.linear(x) / temperature, dim=-1)

    model = Scaled()
    jm = thunder.jit(model, cache="symbolic values")
    x = torch.randn(2, 4)
    for t in (0.5, 1.0, 2.0):
        torch.testing.assert_close(jm(x, t), model(x, t))
        torch.testing.assert_close(jm(x, temperature=t), model(x, temperature=t))
    assert thunder.cache_misses(jm) == 2  # positional and keyword calls have different keys


def test_printed_trace_with_numbers_runs_on_its_own():
    def f(x, n, s):
        return x * (n + s), n * 2

    jf = _jit(f)
    x = torch.randn(3)
    jf(x, 2, 0.5)
    final = thunder.last_traces(jf)[-1]
    namespace = dict(final.python_ctx())
    exec(final.python(), namespace)
    out = namespace["computation"](x.clone(), 5, 1.25)
    ref = f(x, 5, 1.25)
    torch.testing.assert_close(out[0], ref[0])
    assert out[1] == ref[1]


def test_torchcompile_executor_runs_around_symbolic_scalars():
    def f(x, s):
        return ((x * s).sin() * s + 1).cos()

    jf = _jit(f, executors=["torchcompile"])
    x = torch.randn(8)
    for s in (0.5, 3.0):
        torch.testing.assert_close(jf(x, s), f(x, s))
    assert thunder.cache_misses(jf) == 1


def test_number_proxies_are_numbers_to_python():
    trace = TraceCtx()
    with tracectx(trace):
        n = IntegerProxy("n", value=3)
        s = FloatProxy("s", value=0.5)
    assert isinstance(n, numbers.Integral) and isinstance(s, numbers.Real)
    assert list(range(n)) == [0, 1, 2] and float(s) == 0.5


def test_a_value_needed_outside_a_compilation_is_an_error():
    # Code tracing outside jit's compilation would specialize a program on the value without a guard: refused.
    trace = TraceCtx()
    n = IntegerProxy("n", value=3, expr=lambda inputs: inputs[0])
    with tracectx(trace), pytest.raises(RuntimeError, match="outside a compilation"):
        int(n)


def test_autograd_function_backward_may_branch_on_a_number():
    class SignedScale(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, s):
            ctx.s = s
            return x * s

        @staticmethod
        def backward(ctx, g):
            if ctx.s > 0:  # traced by autodiff, after acquisition: still a guard of the entry
                return g * ctx.s, None
            return -g, None

    def f(x, s):
        return SignedScale.apply(x, s).sum()

    jf = _jit(f)
    for s in (2.0, 3.0, -1.0, -4.0):
        x = torch.randn(3, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_(True)
        jf(x, s).backward()
        f(x_ref, s).backward()
        torch.testing.assert_close(x.grad, x_ref.grad)
    assert (thunder.cache_misses(jf), thunder.cache_hits(jf)) == (2, 2)
