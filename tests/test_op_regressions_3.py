"""More regressions found by PyTorch's OpInfo samples (issue #26), checked against torch eager / torch.autograd.

Two classes: 0-d tensors passed where torch takes a number (linspace's ends, narrow's start, a fill value), which a
symbol's decomposition computes with; and outputs that eager's autograd does not differentiate (lu_unpack's
permutation, the statistics native_layer_norm and native_batch_norm return), which must not require grad.
"""

from __future__ import annotations

import pytest
import torch

import thunder
from tests.test_op_regressions_2 import assert_matches_eager

t = torch.tensor


# -- 0-d tensors where torch takes a number ---------------------------------------------------------------------
def _spaced_cases():
    ends = {
        "tensor-tensor": (t(-2.5), t(3, dtype=torch.int32)), "tensor-number": (t(4), 1.5),
        "number-tensor": (-3, t(0.25, dtype=torch.float64)), "complex-start": (t(1 + 2j), 3),
    }  # fmt: skip
    for label, (start, end) in ends.items():
        # eager refuses a complex end with a real dtype: no result to compare
        dtypes = (None, torch.complex64) if label == "complex-start" else (None, torch.float64, torch.int64, torch.complex64)
        for dtype in dtypes:
            for steps in (0, 1, 2, 7):
                yield pytest.param(start, end, steps, dtype, id=f"{label}-{dtype}-{steps}")


@pytest.mark.parametrize("start, end, steps, dtype", _spaced_cases())
def test_linspace_and_logspace_take_0d_tensor_ends(start, end, steps, dtype):
    for op in (torch.linspace, lambda a, b, n, dtype: torch.logspace(a, b, n, base=2.0, dtype=dtype)):
        expected = op(start, end, steps, dtype=dtype)
        actual = thunder.jit(lambda a, b, op=op: op(a, b, steps, dtype=dtype))(start, end)
        assert actual.dtype == expected.dtype
        torch.testing.assert_close(actual, expected)


def test_linspace_with_an_end_that_requires_grad_gives_no_gradient_as_eager():
    start = t(0.5, requires_grad=True)
    assert_matches_eager(lambda a: torch.linspace(a, 4, 5) * 2, start)
    assert not thunder.jit(lambda a: torch.linspace(a, 4, 5))(start).requires_grad


def test_linspace_refuses_a_tensor_steps_and_a_dimensioned_end_clearly():
    with pytest.raises(NotImplementedError, match="tensor `steps`.*data-dependent shape.*Python int"):
        thunder.jit(lambda n: torch.linspace(0, 1, n))(t(3))
    with pytest.raises(RuntimeError, match="only supports 0-dimensional start and end tensors"):
        thunder.jit(lambda a: torch.linspace(a, 1, 3))(t([0.0]))


@pytest.mark.parametrize("beta, sym", [(12.0, True), (0.9, False)])
def test_kaiser_window_matches_eager(beta, sym):
    # kaiser passes 0-d tensors it computes to linspace
    for m in (2, 5):
        fn = lambda m=m: torch.signal.windows.kaiser(m, beta=beta, sym=sym, dtype=torch.float64)  # noqa: E731
        torch.testing.assert_close(thunder.jit(fn)(), fn())


@pytest.mark.parametrize("start", [t(-3), t(1, dtype=torch.int32), t(0), t(2, dtype=torch.int16)])
def test_narrow_takes_a_0d_tensor_start(start):
    x = torch.randn(4, 5)
    assert_matches_eager(lambda a, s: torch.narrow(a, 1, s, 2), x, start)
    assert_matches_eager(lambda a, s: a.narrow(-1, s, 0) + 1, x, start)


def test_an_inplace_write_through_narrow_at_a_tensor_start_reaches_the_base():
    def f(a, s):
        a = a.clone()
        view = a.narrow(0, s, 2)
        view.mul_(10)
        return a, view

    x = torch.randn(5, 3)
    for s in (t(-2), t(1)):
        torch.testing.assert_close(thunder.jit(f)(x, s), f(x, s))


def test_narrow_refuses_a_floating_or_dimensioned_start_as_eager():
    for bad in (t(1.0), t([1])):
        with pytest.raises(RuntimeError, match="start must be an 0-dim integral Tensor"):
            thunder.jit(lambda a, s: a.narrow(0, s, 1))(torch.randn(3), bad)


@pytest.mark.parametrize("value", [t(1.5, dtype=torch.float64), t(7), t(True), t(2 + 1j), t(3, dtype=torch.int32)])
def test_fill_value_may_be_a_0d_tensor(value):
    cases = [
        lambda v: torch.full((2, 3), v),
        lambda v: torch.full((2,), v, dtype=torch.float64),
        lambda v: torch.zeros(2, dtype=torch.int32).new_full((3,), v),
        lambda v: torch.full_like(torch.zeros(2, 2), v),
    ]
    for fn in cases:
        try:
            expected = fn(value)
        except RuntimeError:  # eager refuses a complex value for a real dtype; so does the jitted call
            with pytest.raises(RuntimeError):
                thunder.jit(fn)(value)
            continue
        actual = thunder.jit(fn)(value)
        assert actual.dtype == expected.dtype
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_a_fill_value_that_requires_grad_gives_no_gradient_as_eager():
    weight = t(0.5, requires_grad=True)
    # eager's full refuses a tensor that requires grad; full_like through the Tensor method takes its value
    fn = lambda x, w: x * torch.full_like(x, w.detach()) + w  # noqa: E731
    assert_matches_eager(fn, torch.randn(3), weight)


# -- outputs eager does not differentiate -------------------------------------------------------------------------
def _lu_factors(*shape):
    lu, pivots = torch.linalg.lu_factor(torch.randn(*shape, dtype=torch.float64))
    return lu, pivots


@pytest.mark.parametrize("shape", [(4, 4), (2, 3, 3)])
def test_lu_unpack_permutation_does_not_require_grad_and_gradients_match(shape):
    lu, pivots = _lu_factors(*shape)
    assert_matches_eager(lambda a, p: torch.lu_unpack(a, p), lu, pivots, variants={"torch": (None, False)})
    # the permutation used downstream: eager gives it no gradient
    fn = lambda a, p: (lambda P, L, U: (P * 3 + L).sum() + U.sum())(*torch.lu_unpack(a, p))  # noqa: E731
    assert_matches_eager(fn, lu, pivots, variants={"torch": (None, False)})


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (2, 3, 5)])
def test_linalg_lu_permutation_does_not_require_grad_and_gradients_match(shape):
    a = torch.randn(*shape, dtype=torch.float64)
    assert_matches_eager(torch.linalg.lu, a, variants={"torch": (None, False)})


def test_native_layer_norm_statistics_do_not_require_grad():
    x, w, b = torch.randn(2, 3, 4), torch.randn(4), torch.randn(4)
    fn = lambda x, w, b: torch.native_layer_norm(x, [4], w, b, 1e-5)  # noqa: E731
    assert_matches_eager(fn, x, w, b, variants={"torch": (None, False)})
    # the statistics used downstream contribute no gradient, as in eager
    uses_stats = lambda x, w, b: (lambda out, mean, rstd: out * rstd + mean)(*fn(x, w, b))  # noqa: E731
    assert_matches_eager(uses_stats, x, w, b, variants={"torch": (None, False)})


@pytest.mark.parametrize("training", [True, False])
def test_native_batch_norm_statistics_do_not_require_grad(training):
    x, w, b = torch.randn(4, 3, 5), torch.randn(3), torch.randn(3)
    running_mean, running_var = torch.zeros(3), torch.ones(3)
    ops = [
        lambda x, w, b, m, v: torch.native_batch_norm(x, w, b, m, v, training, 0.1, 1e-5),
        lambda x, w, b, m, v: torch._native_batch_norm_legit(x, w, b, m, v, training, 0.1, 1e-5),
        lambda x, w, b, m, v: torch.ops.aten._batch_norm_with_update(x, w, b, m, v, 0.1, 1e-5),
    ]
    for fn in ops:
        # the running statistics (updated in place by eager) are frozen: not inputs to differentiate
        assert_matches_eager(fn, x, w, b, running_mean.clone(), running_var.clone(), frozen=(3, 4),
                             variants={"torch": (None, False)})  # fmt: skip
