"""Op database for the reduction family of `thunder.torch` (sums, means, extrema, variance, norms, scans)
and for sorting and selection (sort, argsort, topk, kthvalue, median), against torch eager.

Each sample runs with the default executors (the torch executor runs each symbol whole) and decomposed
into prims; values, dtypes and shapes must match eager's, and so must the trace's inferred metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from .cases import ALL, FLOATS, INTS, OpCase, assert_matches_eager, make, op_params, run_case


# -- reductions ----------------------------------------------------------------------------------------
def reduction_samples(fn: Callable, *, dims=True, keepdim=True, method: Callable | None = None, low=None, high=None):
    """Full reductions, one dim, negative dim, several dims, keepdim, 0-dim, empty and non-contiguous input."""

    def samples(dtype):
        a = make((3, 4, 5), dtype, low, high)
        yield "all", fn, (a,)
        yield "0-dim", fn, (make((), dtype, low, high),)
        yield "transposed", fn, (a.transpose(0, 2),)
        if method is not None:
            yield "method", method, (a,)
        if dims:
            yield "dim", lambda x: fn(x, 1), (a,)
            yield "negative dim", lambda x: fn(x, -1), (a,)
            yield "dims", lambda x: fn(x, (0, 2)), (a,)
            yield "dim keyword", lambda x: fn(x, dim=0), (a,)
            yield "empty slice", lambda x: fn(x, 1), (make((0, 4), dtype, low, high),)
            yield "0-dim with dim", lambda x: fn(x, 0), (make((), dtype, low, high),)
            if keepdim:
                yield "keepdim", lambda x: fn(x, 1, keepdim=True), (a,)
                yield "dims keepdim", lambda x: fn(x, (0, -1), True), (a,)

    return samples


def _reduction(name, dtypes, **kw):
    return OpCase(name, reduction_samples(getattr(torch, name), method=lambda x: getattr(x, name)(), **kw), dtypes)


def _single_dim(name, dtypes, **kw):
    """Reductions whose dim is one int (max with dim, argmax, cumsum...): every dim, keepdim, 0-dim."""
    fn = getattr(torch, name)

    def samples(dtype):
        a = make((3, 4, 5), dtype, **kw)
        for d in (0, 1, -1):
            yield f"dim {d}", lambda x, d=d: fn(x, d), (a,)
        yield "transposed", lambda x: fn(x, 1), (a.transpose(0, 2),)
        yield "0-dim", lambda x: fn(x, 0), (make((), dtype, **kw),)
        if name not in ("cumsum", "cumprod"):
            yield "keepdim", lambda x: fn(x, 1, keepdim=True), (a,)
            yield "method keyword", lambda x: getattr(x, name)(dim=2, keepdim=True), (a,)
        else:
            yield "method", lambda x: getattr(x, name)(dim=2), (a,)
            yield "empty", lambda x: fn(x, 0), (make((0, 3), dtype),)

    return OpCase(f"{name}_dim", samples, FLOATS + INTS)


REDUCTION_CASES = [
    _reduction("sum", ALL),
    _reduction("prod", FLOATS + INTS, low=0.5, high=1.5),
    _reduction("mean", FLOATS),
    _reduction("nansum", FLOATS),
    _reduction("nanmean", FLOATS),
    _reduction("amax", FLOATS + INTS),
    _reduction("amin", FLOATS + INTS),
    _reduction("all", ALL),
    _reduction("any", ALL),
    _reduction("count_nonzero", ALL, keepdim=False),
    _reduction("std", FLOATS),
    _reduction("var", FLOATS),
    _reduction("logsumexp", FLOATS, dims=True),
    OpCase("max_min_all", lambda d: iter([
        ("max", torch.max, (make((3, 4), d),)), ("min", lambda x: x.min(), (make((3, 4), d),)),
        ("0-dim", torch.max, (make((), d),)), ("binary max", torch.max, (make((3, 4), d), make((4,), d))),
        ("binary min", lambda x, y: x.min(y), (make((3, 4), d), make((4,), d))),
    ]), ALL),  # fmt: skip
    _single_dim("max", FLOATS + INTS),
    _single_dim("min", FLOATS + INTS),
    _single_dim("argmax", FLOATS + INTS),
    _single_dim("argmin", FLOATS + INTS),
    _single_dim("cumsum", FLOATS + INTS),
    _single_dim("cumprod", FLOATS + INTS, low=0.5, high=1.5),
    OpCase("argmax_flat", lambda d: iter([
        ("flat", torch.argmax, (make((3, 4), d),)), ("keepdim", lambda x: torch.argmin(x, keepdim=True), (make((3, 4), d),)),
        ("0-dim", torch.argmax, (make((), d),)),
    ]), FLOATS + INTS),  # fmt: skip
    OpCase("var_correction", lambda d: iter([
        ("unbiased False", lambda x: torch.var(x, 1, unbiased=False), (make((3, 4), d),)),
        ("correction 0", lambda x: x.std(dim=0, correction=0), (make((3, 4), d),)),
        ("correction 2 keepdim", lambda x: torch.var(x, (0, 1), correction=2, keepdim=True), (make((3, 4), d),)),
        ("positional unbiased", lambda x: torch.std(x, False), (make((3, 4), d),)),
        ("var_mean", lambda x: torch.var_mean(x, 1), (make((3, 4), d),)),
        ("std_mean", lambda x: torch.std_mean(x, dim=(0, 1), correction=0, keepdim=True), (make((3, 4), d),)),
    ]), FLOATS),  # fmt: skip
    OpCase("reduction_dtype", lambda d: iter([
        ("sum int to float", lambda x: torch.sum(x, dtype=torch.float64), (make((3, 4), d),)),
        ("sum dim dtype", lambda x: x.sum(1, dtype=torch.float32), (make((3, 4), d),)),
        ("prod dtype", lambda x: torch.prod(x, 0, dtype=torch.float64), (make((3, 4), d, 1, 3),)),
        ("cumsum dtype", lambda x: torch.cumsum(x, 1, dtype=torch.float64), (make((3, 4), d),)),
    ]), FLOATS + INTS),  # fmt: skip
    OpCase("mean_dtype", lambda d: iter([
        ("mean to float32", lambda x: torch.mean(x, dtype=torch.float32), (make((3, 4), d),)),
        ("mean dim to float64", lambda x: x.mean(1, dtype=torch.float64), (make((3, 4), d),)),
    ]), FLOATS),  # fmt: skip
    OpCase("aminmax", lambda d: iter([
        ("all", torch.aminmax, (make((3, 4), d),)),
        ("dim", lambda x: torch.aminmax(x, dim=1, keepdim=True), (make((3, 4), d),)),
    ]), FLOATS + INTS),  # fmt: skip
    OpCase("norm", lambda d: iter([
        (f"p={p} dim={dim}", lambda x, p=p, dim=dim: torch.norm(x, p, dim), (make((3, 4), d),))
        for p in ("fro", 1, 2, 3, 0, math.inf, -math.inf) for dim in (None, 1, (0, 1))
    ]), FLOATS),  # fmt: skip
    OpCase("vector_norm", lambda d: iter([
        ("default", torch.linalg.vector_norm, (make((3, 4), d),)),
        ("ord keyword", lambda x: torch.linalg.vector_norm(x, ord=3, dim=-1, keepdim=True), (make((3, 4), d),)),
        ("inf", lambda x: torch.linalg.vector_norm(x, math.inf, dim=(0, 1)), (make((3, 4), d),)),
        ("dtype", lambda x: torch.linalg.vector_norm(x, dtype=torch.float64), (make((3, 4), d),)),
        ("method norm", lambda x: x.norm(dim=1, keepdim=True), (make((3, 4), d),)),
    ]), FLOATS),  # fmt: skip
]


@pytest.mark.parametrize("case, dtype", op_params(REDUCTION_CASES))
def test_reduction_op_matches_eager(case, dtype):
    run_case(case, dtype)


def test_reductions_propagate_nan_like_eager():
    a = torch.tensor([[1.0, math.nan, 2.0], [0.5, 3.0, -1.0]])
    assert_matches_eager(lambda x: (x.sum(1), x.amax(1), x.mean(), x.nansum(1), x.nanmean(0), torch.logsumexp(x, 1)), a)


def test_logsumexp_of_infinities_matches_eager():
    a = torch.tensor([[-math.inf, -math.inf], [math.inf, 1.0], [-math.inf, 0.0]])
    assert_matches_eager(lambda x: torch.logsumexp(x, 1), a)


def test_mean_of_integers_is_an_error_like_eager():
    assert_matches_eager(torch.mean, make((3,), torch.int64))


def test_sum_of_bfloat16_keeps_bfloat16():
    assert_matches_eager(lambda x: (x.sum(), x.mean(0)), make((64, 3), torch.bfloat16))


# -- sorting and selection -------------------------------------------------------------------------------
def _sort_samples(dtype):
    a = make((4, 5), dtype)
    yield "sort", torch.sort, (a,)
    yield "sort dim 0 descending", lambda x: torch.sort(x, 0, descending=True), (a,)
    yield "sort stable keyword", lambda x: x.sort(dim=-1, stable=True), (make((4, 5), dtype, 0, 3),)
    yield "sort transposed", torch.sort, (a.t(),)
    yield "argsort", torch.argsort, (a,)
    yield "argsort descending", lambda x: x.argsort(0, descending=True), (a,)
    yield "msort", torch.msort, (a,)
    yield "sort 0-dim", torch.sort, (make((), dtype),)
    yield "sort empty", torch.sort, (make((0, 3), dtype),)


def _topk_samples(dtype):
    a = make((4, 6), dtype)
    yield "topk", lambda x: torch.topk(x, 2), (a,)
    yield "topk smallest dim 0", lambda x: torch.topk(x, 3, dim=0, largest=False), (a,)
    yield "topk method", lambda x: x.topk(1, -1), (a,)
    yield "topk k=0", lambda x: torch.topk(x, 0), (a,)
    yield "topk too large", lambda x: torch.topk(x, 7), (a,)
    yield "topk transposed", lambda x: torch.topk(x, 2), (a.t(),)


def _selection_samples(dtype):
    a = make((3, 5), dtype)
    yield "kthvalue", lambda x: torch.kthvalue(x, 2), (a,)
    yield "kthvalue dim keepdim", lambda x: x.kthvalue(3, 0, keepdim=True), (a,)
    yield "kthvalue out of range", lambda x: torch.kthvalue(x, 6), (a,)
    yield "median", torch.median, (a,)
    yield "median even count", torch.median, (make((4,), dtype),)
    yield "median dim", lambda x: torch.median(x, 1), (a,)
    yield "median dim keepdim", lambda x: x.median(dim=0, keepdim=True), (make((4, 3), dtype),)


SORTING_CASES = [
    OpCase("sort", _sort_samples, FLOATS + INTS),
    OpCase("topk", _topk_samples, FLOATS + INTS),
    OpCase("selection", _selection_samples, FLOATS + INTS),
]


@pytest.mark.parametrize("case, dtype", op_params(SORTING_CASES))
def test_sorting_op_matches_eager(case, dtype):
    run_case(case, dtype)


def test_median_of_a_slice_with_nan_is_nan_at_the_nan():
    a = torch.tensor([[1.0, math.nan, 2.0, 0.0], [3.0, 1.0, 2.0, 0.5]])
    assert_matches_eager(lambda x: (torch.median(x, 1), torch.median(x)), a)
