"""Wrong results of decompositions into prims (what the fusion executors see: nvFuser runs the part of a composite
it claims, and torch the rest), found by the decomposed OpInfo sweep (`python3 -m tests.opinfo_check
--decomposed`): each against eager, run whole by the torch executor and decomposed to prims."""

from __future__ import annotations

import pytest
import torch

import thunder
from tests.ops.opdb import EXECUTOR_LISTS

EXECUTORS = pytest.mark.parametrize("executors", ["torch", "prims"])


def assert_matches_eager(fn, *args, executors):
    expected = fn(*args)
    out = thunder.jit(fn, executors=EXECUTOR_LISTS[executors])(*args)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@EXECUTORS
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
@pytest.mark.parametrize("bounds", [(-0.9, 2.1, 2.0), (3.1,), (0.5, 3.7, 1.5), (1.0, 5.000001, 2.0)])
def test_arange_with_float_bounds_and_an_integer_dtype(bounds, dtype, executors):
    # torch truncates start and step; int64 computes the length from the truncated ends, other dtypes from the
    # given ones: arange(3.1, dtype=int64) has 3 elements, int32 4 (the trace said 4 for both)
    device = torch.get_default_device()
    assert_matches_eager(lambda: torch.arange(*bounds, dtype=dtype, device=device) * 1, executors=executors)


@EXECUTORS
def test_integer_addmm_family_truncates_float_alpha_and_beta(executors):
    # eager multiplies integer tensors by int(alpha) and int(beta); the decomposition gave float32 results
    g = torch.Generator().manual_seed(0)

    def ints(*shape):
        return torch.randint(-5, 5, shape, generator=g).to(torch.get_default_device())

    bias, a, b, v = ints(4, 3), ints(4, 5), ints(5, 3), ints(5)
    assert_matches_eager(lambda: torch.addmm(bias, a, b, beta=1.7, alpha=2.9), executors=executors)
    assert_matches_eager(lambda: torch.addmv(bias[:, 0], a, v, beta=0.2, alpha=0.6), executors=executors)
    assert_matches_eager(lambda: torch.baddbmm(bias[None], a[None], b[None], beta=-1.7, alpha=2.2), executors=executors)
    assert_matches_eager(lambda: torch.addbmm(bias, a.expand(2, 4, 5), b.expand(2, 5, 3), beta=2.5, alpha=-1.5),
                         executors=executors)  # fmt: skip


@EXECUTORS
def test_bool_addr_is_logical(executors):
    g = torch.Generator().manual_seed(1)
    bias, v, w = (torch.rand(s, generator=g).to(torch.get_default_device()) > 0.5 for s in ((4, 3), (4,), (3,)))
    for alpha, beta in ((2, 3), (0, 1), (1, 0), (True, False)):
        assert_matches_eager(lambda beta=beta, alpha=alpha: torch.addr(bias, v, w, beta=beta, alpha=alpha), executors=executors)


@EXECUTORS
def test_linspace_with_an_integer_dtype_converts_float_ends_first(executors):
    device = torch.get_default_device()
    assert_matches_eager(lambda: torch.linspace(4.3, -3, 50, dtype=torch.int64, device=device), executors=executors)
    assert_matches_eager(lambda: torch.linspace(-2.7, 9.9, 13, dtype=torch.int32, device=device), executors=executors)


@EXECUTORS
def test_max_and_min_with_a_dim_of_bool_tensors(executors):
    x = torch.tensor([[True, False, True], [False, False, True]])
    assert_matches_eager(lambda x: torch.max(x, 1), x, executors=executors)
    assert_matches_eager(lambda x: torch.min(x, 0, keepdim=True), x, executors=executors)


@EXECUTORS
def test_tanhshrink_of_integers_is_a_float_tensor_and_square_of_bools_an_int64_one(executors):
    x = torch.arange(-3, 4, device=torch.get_default_device())
    assert_matches_eager(lambda x: torch.nn.functional.tanhshrink(x), x, executors=executors)
    assert_matches_eager(lambda x: torch.square(x > 0), x, executors=executors)


@EXECUTORS
def test_a_result_computed_from_an_input_is_not_changed_by_a_later_write_into_that_input(executors):
    # decomposed, repeat is expand + reshape, which torch may run as a view of x; the write-back of x.mul_(3)
    # at the end of the program then changed the returned v (eager's repeat copies)
    def fn(x):
        v = x.repeat(2, *[1] * x.ndim)
        w = x.t().reshape(-1)
        x.mul_(3)
        return v, w

    make = lambda: torch.arange(8.0, device=torch.get_default_device()).reshape(2, 4).t()  # noqa: E731
    expected_x, x = make(), make()
    expected = fn(expected_x)
    out = thunder.jit(fn, executors=EXECUTOR_LISTS[executors])(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(x, expected_x, rtol=0, atol=0)



@EXECUTORS
def test_integer_addcmul_truncates_a_float_value(executors):
    # eager multiplies by int(value) (0.5 gives 0); the decomposition multiplied by 0.5 (found by the fuzzer)
    a = torch.tensor([3, -5, 7], device=torch.get_default_device())
    for value in (0.5, 2.7, -1.5):
        assert_matches_eager(lambda a, value=value: torch.addcmul(a, a, a, value=value), a, executors=executors)


@EXECUTORS
def test_logsumexp_over_an_empty_dim_is_minus_infinity(executors):
    # the decomposition's shift (amax over the dim) raised on an empty dim (found by the fuzzer, seed 1784)
    device = torch.get_default_device()
    assert_matches_eager(lambda x: torch.logsumexp(x, -1), torch.randn(3, 0, device=device), executors=executors)
    assert_matches_eager(lambda x: torch.logsumexp(x, (0, 1), keepdim=True), torch.randn(2, 0, 3, device=device),
                         executors=executors)  # fmt: skip
