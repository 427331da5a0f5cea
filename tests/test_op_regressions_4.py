"""Operator gaps of issues #26 and #17, checked against torch eager and torch.autograd.

- `torch.arange` with 0-d tensor bounds (eager reads their values): traced with the values, which each call
  checks again (a value guard), so a changed value never reuses a stale program;
- `narrow` with a 0-d tensor start out of range raises eager's error, checked before any indexing runs;
- a user's `TorchFunctionMode` around a jitted call is refused by name; entered inside the function it is traced;
- `thunder.extend.mark_non_differentiable` for plugin authors' grad transforms;
- operators whose meta kernel cannot run (cov, histogram, ctc_loss...), in-place random fills, and gradients of
  random operators without a Thunder symbol (replayed from the generator state of the forward).
"""

from __future__ import annotations

import re

import pytest
import torch
from torch.overrides import TorchFunctionMode

import thunder
from thunder import extend

t = torch.tensor


# -- torch.arange with 0-d tensor bounds --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bounds",
    [(t(5),), (t(5, dtype=torch.int32),), (t(4.5),), (t(True),), (t(1), 9, t(3)), (-2, t(2.5)),
     (t(-1.5, dtype=torch.float64), t(4), 0.5)],
    ids=["int64-end", "int32-end", "float-end", "bool-end", "tensor-start-and-step", "tensor-end", "float64-start"],
)  # fmt: skip
def test_arange_with_0d_tensor_bounds_matches_eager(bounds):
    def fn(x, *bounds):
        return torch.arange(*bounds) + x

    x = t(0.5)
    expected, actual = fn(x, *bounds), thunder.jit(fn)(x, *bounds)
    assert actual.dtype == expected.dtype
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_arange_with_tensor_keyword_bounds_and_dtype_matches_eager():
    def fn(start, end):
        return torch.arange(start=start, end=end, step=2, dtype=torch.float64)

    args = (t(1), t(8))
    torch.testing.assert_close(thunder.jit(fn)(*args), fn(*args), rtol=0, atol=0)


@pytest.mark.parametrize("cache", ["constant values", "symbolic values", "same input"])
def test_arange_follows_a_tensor_argument_whose_value_changes_between_calls(cache):
    def fn(x, n):
        return torch.arange(n) * x

    jfn = thunder.jit(fn, cache=cache)
    x = t(2.0)
    for n in (t(4), t(2), t(7), t(4)):
        torch.testing.assert_close(jfn(x, n), fn(x, n), rtol=0, atol=0)
    if cache != "same input":  # the entry for 4 is found again
        assert thunder.cache_misses(jfn) == 3


def test_arange_follows_a_tensor_changed_in_place_between_calls():
    n = t(3)
    jfn = thunder.jit(lambda x, n: torch.arange(n) + x)
    x = t(1.0)
    torch.testing.assert_close(jfn(x, n), torch.arange(3) + x)
    n.fill_(5)  # the same tensor object and metadata, another value
    torch.testing.assert_close(jfn(x, n), torch.arange(5) + x)


def test_arange_follows_a_captured_tensor_and_a_module_buffer():
    limit = t(2)
    jfn = thunder.jit(lambda x: torch.arange(limit) + x)
    x = t(0.0)
    torch.testing.assert_close(jfn(x), torch.arange(2) + x)
    limit.fill_(6)
    torch.testing.assert_close(jfn(x), torch.arange(6) + x)

    class Positions(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("length", t(3))

        def forward(self, x):
            return x + torch.arange(self.length)

    module = Positions()
    jmodule = thunder.jit(module)
    for length in (3, 5):
        module.length.fill_(length)
        torch.testing.assert_close(jmodule(x), module(x))


def test_arange_of_a_value_computed_inside_the_function_is_a_clear_error():
    with pytest.raises(thunder.frontend.tracer.DataDependentError, match=r"arange\(\) with a tensor `end` computed"):
        thunder.jit(lambda x: torch.arange(x.sum()))(torch.ones(3))

    def written_first(n):
        n.add_(1)  # the value the call began with is no longer the one arange reads
        return torch.arange(n)

    with pytest.raises(thunder.frontend.tracer.DataDependentError, match="computed or changed inside"):
        thunder.jit(written_first)(t(2))


def test_arange_of_a_tensor_that_requires_grad_is_refused_like_eager():
    n = t(3.0, requires_grad=True)
    with pytest.raises(TypeError, match="must be Number"):
        torch.arange(n)
    with pytest.raises(TypeError, match="must be Number"):
        thunder.jit(lambda n: torch.arange(n))(n)


# -- narrow with a 0-d tensor start ----------------------------------------------------------------------------------
def _narrowed(x, start):
    return torch.narrow(x * 2, 0, start, 2).sin()


@pytest.mark.parametrize("executors", [None, ["torchcompile"]], ids=["default", "torchcompile"])
@pytest.mark.parametrize("start", [4, 5, -6, 10, -100])
def test_narrow_with_a_tensor_start_out_of_range_raises_eagers_error(start, executors):
    # on CUDA an out-of-range gather is a device-side assert that poisons the process: the start is checked first
    x, start = torch.arange(5.0, requires_grad=True), t(start)
    with pytest.raises((IndexError, RuntimeError)) as eager:
        _narrowed(x, start)
    jfn = thunder.jit(_narrowed, executors=executors)
    with pytest.raises(type(eager.value), match=f"^{re.escape(str(eager.value))}$"):
        jfn(x, start)


@pytest.mark.parametrize("start", [0, 3, -2, -5])
def test_narrow_with_a_tensor_start_in_range_matches_eager_forward_and_backward(start):
    x = torch.randn(5, 3, requires_grad=True)
    x_ref = x.detach().requires_grad_()
    out, expected = thunder.jit(_narrowed)(x, t(start)), _narrowed(x_ref, t(start))
    torch.testing.assert_close(out, expected)
    cotangent = torch.randn_like(expected)
    (g,), (g_ref,) = torch.autograd.grad(out, x, cotangent), torch.autograd.grad(expected, x_ref, cotangent)
    torch.testing.assert_close(g, g_ref)


def test_narrow_with_a_tensor_start_follows_its_value_without_recompiling():
    jfn = thunder.jit(_narrowed)
    x = torch.randn(6, requires_grad=True)
    for start in (0, 4, -3):
        torch.testing.assert_close(jfn(x, t(start)), _narrowed(x, t(start)))
    with pytest.raises(RuntimeError, match=r"start \(5\) \+ length \(2\) exceeds dimension size \(6\)"):
        jfn(x, t(5))
    assert thunder.cache_misses(jfn) == 1


def test_writing_through_a_narrow_view_with_a_tensor_start_out_of_range_raises():
    def write(x, start):
        x.narrow(0, start, 2).mul_(10)
        return x

    ok = torch.arange(5.0)
    torch.testing.assert_close(thunder.jit(write)(ok.clone(), t(-2)), write(ok.clone(), t(-2)))
    with pytest.raises(IndexError, match="start out of range"):
        thunder.jit(write)(ok.clone(), t(-7))


# -- a user's TorchFunctionMode ----------------------------------------------------------------------------------------
class DoubleSines(TorchFunctionMode):
    """Changes what torch.sin returns: a program that did not run the mode would differ from eager under it."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        return out * 2 if func is torch.sin else out


def _sine_plus_one(x):
    return torch.sin(x) + 1


@pytest.mark.parametrize("compiled_before", [False, True], ids=["first-call", "cached"])
def test_a_jitted_call_under_a_users_function_mode_is_refused_by_name(compiled_before):
    jfn = thunder.jit(_sine_plus_one)
    x = torch.randn(3)
    if compiled_before:
        jfn(x)  # the cached fast path must refuse too
    with DoubleSines(), pytest.raises(RuntimeError, match=r"TorchFunctionMode .*DoubleSines.*inside the jitted function"):
        jfn(x)
    torch.testing.assert_close(jfn(x), _sine_plus_one(x))  # outside the mode again: runs as before


def test_a_function_mode_entered_inside_the_jitted_function_is_traced_like_eager():
    def fn(x):
        with DoubleSines():
            return torch.sin(x) + 1

    x = torch.randn(4)
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x))


def test_torchs_device_context_around_a_jitted_call_is_not_refused():
    jfn = thunder.jit(lambda x: x + torch.ones(3))
    x = torch.randn(3, device="cpu")  # the context's device (the test's default device may be another)
    with torch.device("cpu"):
        torch.testing.assert_close(jfn(x), x + 1)


# -- thunder.extend.mark_non_differentiable -----------------------------------------------------------------------
def test_mark_non_differentiable_through_thunder_extend_matches_an_autograd_function():
    class ScaledAndSign(torch.autograd.Function):  # the eager reference: the sign output is not differentiable
        @staticmethod
        def forward(ctx, x):
            sign = torch.sign(x)
            ctx.mark_non_differentiable(sign)
            return x * 3, sign

        @staticmethod
        def backward(ctx, g, _):
            return g * 3

    ex = extend.OperatorExecutor("regressions4_mark_nondiff")
    op = ex.register_operator("scaled_and_sign", meta=lambda x: (extend.TensorProxy(like=x), extend.TensorProxy(like=x)),
                              fn=lambda x: (x * 3, torch.sign(x)))  # fmt: skip

    def scaled_and_sign_grad(x):
        scaled, sign = op(x)
        extend.mark_non_differentiable(sign)
        extend.put_grad(x, extend.get_grad(scaled) * 3)
        return scaled, sign

    ex.register_implementation(op, grad_transform=scaled_and_sign_grad)
    x = torch.randn(5, requires_grad=True)
    scaled, sign = thunder.jit(lambda x: op(x), executors=[ex])(x)
    expected_scaled, expected_sign = ScaledAndSign.apply(x)
    assert (scaled.requires_grad, sign.requires_grad) == (expected_scaled.requires_grad, expected_sign.requires_grad)
    assert sign.requires_grad is False
    torch.testing.assert_close((scaled, sign), (expected_scaled, expected_sign))
    cotangent = torch.randn(5)
    (g,), (g_ref,) = torch.autograd.grad(scaled, x, cotangent), torch.autograd.grad(expected_scaled, x, cotangent)
    torch.testing.assert_close(g, g_ref)


def test_mark_non_differentiable_is_part_of_the_extension_api():
    assert "mark_non_differentiable" in extend.__all__
    assert extend.mark_non_differentiable.__doc__ and "grad_transform" in extend.mark_non_differentiable.__doc__


# -- operators whose torch meta kernel cannot run: hand-written output metadata, run by torch ----------------------
def _assert_forward_and_grads_match_eager(fn, *inputs):
    jit_inputs = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    expected, actual = fn(*inputs), thunder.jit(fn)(*jit_inputs)
    torch.testing.assert_close(actual, expected)
    assert actual.requires_grad == expected.requires_grad
    differentiable = [x for x in inputs if x.requires_grad]
    if differentiable and expected.requires_grad:
        cotangent = torch.randn_like(expected)
        expected_grads = torch.autograd.grad(expected, differentiable, cotangent, allow_unused=True)
        actual_grads = torch.autograd.grad(actual, [x for x in jit_inputs if x.requires_grad], cotangent,
                                           allow_unused=True)  # fmt: skip
        assert [g is None for g in actual_grads] == [g is None for g in expected_grads]
        torch.testing.assert_close([g for g in actual_grads if g is not None],
                                   [g for g in expected_grads if g is not None])  # fmt: skip


def test_cov_and_corrcoef_with_weights_match_eager():
    x = torch.randn(3, 6, requires_grad=True)
    frequency, weights = t([1, 2, 1, 3, 1, 1]), torch.rand(6, requires_grad=True)
    _assert_forward_and_grads_match_eager(lambda x, w: torch.cov(x, correction=0, fweights=frequency, aweights=w) * 2,
                                          x, weights)  # fmt: skip
    _assert_forward_and_grads_match_eager(lambda x: torch.corrcoef(x).sin(), x)
    _assert_forward_and_grads_match_eager(lambda v: torch.cov(v) + 1, torch.randn(5, requires_grad=True))  # 0-d


def test_cov_with_negative_frequency_weights_raises_eagers_error():
    x, frequency = torch.randn(2, 3), t([1, -1, 2])
    with pytest.raises(RuntimeError, match="fweights cannot be negative"):
        torch.cov(x, fweights=frequency)
    with pytest.raises(RuntimeError, match="fweights cannot be negative"):
        thunder.jit(lambda x: torch.cov(x, fweights=frequency))(x)


@pytest.mark.parametrize("r, with_replacement", [(0, False), (1, False), (2, False), (3, True), (5, False)])
def test_combinations_match_eager(r, with_replacement):
    _assert_forward_and_grads_match_eager(lambda x: torch.combinations(x, r, with_replacement) * 3,
                                          torch.randn(4, requires_grad=True))  # fmt: skip


@pytest.mark.cpu_only(reason="torch.histogram has no CUDA kernel in eager")
def test_histogram_matches_eager():
    x = torch.randn(20)
    for bins in (5, t([-2.0, 0.0, 0.5, 3.0])):
        expected, actual = torch.histogram(x, bins), thunder.jit(lambda x, bins=bins: torch.histogram(x, bins))(x)
        torch.testing.assert_close(tuple(actual), tuple(expected))


def test_geqrf_matches_eager():
    a = torch.randn(2, 5, 3)
    torch.testing.assert_close(tuple(thunder.jit(torch.geqrf)(a)), tuple(torch.geqrf(a)))


def test_ctc_and_gaussian_nll_losses_match_eager():
    log_probs = torch.randn(12, 2, 5).log_softmax(-1).detach().requires_grad_()
    targets, input_lengths, target_lengths = t([[1, 2, 3], [2, 2, 4]]), t([12, 10]), t([3, 2])
    for reduction in ("mean", "none"):
        _assert_forward_and_grads_match_eager(
            lambda lp, r=reduction: torch.nn.functional.ctc_loss(lp, targets, input_lengths, target_lengths, reduction=r),
            log_probs,
        )
    variance = torch.rand(3, 4, requires_grad=True)
    _assert_forward_and_grads_match_eager(lambda x, v: torch.nn.functional.gaussian_nll_loss(x, torch.ones(3, 4), v),
                                          torch.randn(3, 4, requires_grad=True), variance)  # fmt: skip


# -- random operators: in-place fills, and gradients of random operators without a Thunder symbol -----------------
def test_in_place_random_fills_draw_what_eager_draws():
    def fills(x):
        return (x.clone().uniform_(-1, 2), x.clone().normal_(3, 0.5), x.clone().exponential_(2.0),
                x.clone().cauchy_(), x.clone().log_normal_(), x.clone().geometric_(0.3))  # fmt: skip

    x = torch.zeros(4, 5)
    torch.manual_seed(3)
    expected = fills(x)
    torch.manual_seed(3)
    actual = thunder.jit(fills)(x)
    torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize(
    "op",
    [lambda x: torch.nn.functional.dropout2d(x, 0.5, training=True),
     lambda x: torch.nn.functional.rrelu(x, training=True),
     lambda x: torch.nn.functional.fractional_max_pool2d(x, 2, output_ratio=(0.5, 0.5))],
    ids=["dropout2d", "rrelu", "fractional_max_pool2d"],
)  # fmt: skip
def test_gradients_of_random_fallback_operators_match_eager_with_the_same_seed(op):
    def fn(x):
        return op(x * 2).sin()

    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    cotangent = torch.randn(2, 3, 6, 6) if op(x).shape == x.shape else torch.randn(op(x).shape)
    torch.manual_seed(7)
    expected = fn(x)
    (expected_grad,) = torch.autograd.grad(expected, x, cotangent)
    after_eager = torch.rand(3)
    torch.manual_seed(7)
    actual = thunder.jit(fn)(x)
    (actual_grad,) = torch.autograd.grad(actual, x, cotangent)
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(actual_grad, expected_grad)
    # the backward's replay leaves the generator where the forward left it, as eager's backward does
    torch.testing.assert_close(torch.rand(3), after_eager)


# -- tensor arguments whose values fix an output's shape: tensor_split's indices, repeat_interleave's repeats --------
def test_tensor_split_with_a_tensor_of_indices_follows_its_values():
    def fn(x, indices):
        return torch.tensor_split(x * 2, indices, dim=1)

    jfn = thunder.jit(fn)
    x = torch.randn(3, 7)
    for indices in (t([2, 5]), t(3), t([1, 9, 0]), t([2, 5])):
        indices = indices.cpu()  # eager requires the indices on the CPU
        torch.testing.assert_close(jfn(x, indices), fn(x, indices))
    assert thunder.cache_misses(jfn) == 3


@pytest.mark.parametrize("repeats, dim", [([1, 0, 2], 1), ([2], 0), (2, None), ([0, 0, 0], 1)])
def test_repeat_interleave_with_tensor_repeats_matches_eager_forward_and_backward(repeats, dim):
    repeats = t(repeats)  # made here, on the test's device (eager needs repeats where the input is)
    x = torch.randn(2, 3, requires_grad=True)
    _assert_forward_and_grads_match_eager(lambda x: torch.repeat_interleave(x * 1, repeats, dim=dim), x)


def test_repeat_interleave_follows_repeats_changed_in_place_and_raises_eagers_errors():
    jfn = thunder.jit(lambda x, r: x.repeat_interleave(r, dim=0))
    x, repeats = torch.arange(3.0), t([1, 2, 3])
    torch.testing.assert_close(jfn(x, repeats), x.repeat_interleave(repeats, dim=0))
    repeats[0] = 4  # another output length from the same tensor object
    torch.testing.assert_close(jfn(x, repeats), x.repeat_interleave(repeats, dim=0))
    with pytest.raises(RuntimeError, match="repeats can not be negative"):
        jfn(x, t([1, -1, 1]))
    with pytest.raises(RuntimeError, match="repeats must have the same size as input along dim"):
        jfn(x, t([1, 2]))


# -- complex autodiff: abs is the magnitude, and products' gradients conjugate as torch's do --------------------------
@pytest.mark.parametrize(
    "fn",
    [lambda x, y: (x.abs() * 3).sum(), lambda x, y: x * y, lambda x, y: (x + 1) / y, lambda x, y: x.abs() / y.abs(),
     lambda x, y: torch.masked.normalize(x, 2.0, 0), lambda x, y: torch.linalg.vector_norm(x, dtype=x.dtype) * 2,
     lambda x, y: x.reshape(2, 3) @ y.reshape(3, 2)],
    ids=["abs", "mul", "div", "abs-ratio", "masked-normalize", "vector-norm", "matmul"],
)  # fmt: skip
def test_complex_forward_and_gradients_match_eager(fn):
    x, y = torch.randn(6, dtype=torch.complex64), torch.randn(6, dtype=torch.complex64)
    x[1] = 0  # abs's gradient at 0 is 0, as torch's sgn
    _assert_forward_and_grads_match_eager(fn, x.requires_grad_(), y.requires_grad_())
