"""Operators that used to take the meta-kernel fallback and now have `thunder.torch` symbols: F.interpolate,
max pooling with indices, scatter_reduce (and scatter with reduce="multiply"), cummax, cummin and logcumsumexp.

Each sample runs under thunder.jit with the default executors (the torch executor runs each symbol whole) and
decomposed into prims, on the inputs and on non-contiguous copies, against torch eager; float64 gradients are
checked against torch.autograd, by the symbols' own rules and decompositions too (opdb.run_grads).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.torch import nn_spatial

from .cases import FLOATS, OpCase, assert_matches_eager, make, op_params, run_case
from .opdb import (
    EXECUTOR_LISTS,
    TEST_DEVICE,
    OpInfo,
    SampleInput,
    opinfo_grad_samples,
    opinfo_params,
    run_grads,
    run_opinfo,
)
from .opdb import make as make_on

F32, F64, BF16, I64 = torch.float32, torch.float64, torch.bfloat16, torch.int64


def S(*args, name="", raises=None, **kwargs) -> SampleInput:
    return SampleInput(args, kwargs, name=name, raises=raises)


# -- interpolate ---------------------------------------------------------------------------------------------
def interpolate_samples(dtype, device):
    x1, x2, x3 = (make_on(shape, dtype, device) for shape in ((2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 2)))
    yield S(x1, size=8, name="nearest 1d size")
    yield S(x1, scale_factor=1.5, mode="nearest-exact", name="nearest-exact 1d")
    yield S(x1, size=3, mode="linear", name="linear 1d")
    yield S(x1, scale_factor=2.5, mode="linear", align_corners=True, name="linear 1d align_corners")
    yield S(x2, scale_factor=2, name="nearest 2d scale 2")
    yield S(x2, scale_factor=(1.1, 2.1), name="nearest 2d, scales truncated to 1x and 2x")
    yield S(x2, scale_factor=(1.3, 0.6), name="nearest 2d, scales below and above 1")
    yield S(x2, size=(7, 3), mode="nearest-exact", name="nearest-exact 2d")
    yield S(x2, size=(5, 7), mode="bilinear", name="bilinear")
    yield S(x2, scale_factor=(0.6, 1.5), mode="bilinear", align_corners=True, name="bilinear align_corners")
    yield S(x2, scale_factor=1.7, mode="bilinear", recompute_scale_factor=True, name="bilinear recompute scale")
    yield S(x2, scale_factor=2, mode="bicubic", name="bicubic")
    yield S(x2, size=(3, 8), mode="bicubic", align_corners=True, name="bicubic align_corners")
    # F.interpolate calls adaptive average pooling for mode="area", and so does its trace
    yield SampleInput((x2,), {"size": (2, 3), "mode": "area"}, name="area", expect_symbol=False)
    yield S(x3, size=(5, 2, 3), name="nearest 3d")
    yield S(x3, scale_factor=2, mode="trilinear", name="trilinear")
    yield S(x3, size=(2, 5, 3), mode="trilinear", align_corners=True, name="trilinear align_corners")
    yield S(x2, size=(3, 3), mode="linear", name="linear of a 4-d input", raises=NotImplementedError)


INTERPOLATE = OpInfo("interpolate", F.interpolate, interpolate_samples, (F32, F64, BF16),
                     {BF16: {"rtol": 2e-2, "atol": 2e-2}, F32: {"rtol": 1e-5, "atol": 1e-5}},
                     symbol="ltorch.interpolate")  # fmt: skip


def test_interpolate_gradient_without_dense_resampling_matrices_matches_torch_autograd(monkeypatch):
    # long dims: the gradient adds the weighted cotangents at the taps' indices instead of a matrix product
    monkeypatch.setattr(nn_spatial, "_DENSE_RESAMPLING_LIMIT", 0)
    samples = [(F.interpolate, sample) for sample in INTERPOLATE.sample_inputs(F64, torch.get_default_device())]
    assert {"checked", "borrowed backward"} & set(run_grads("interpolate", samples))


def test_interpolate_of_uint8_images_matches_eager():
    image = torch.randint(0, 256, (1, 3, 5, 6), dtype=torch.uint8)
    assert_matches_eager(lambda x: F.interpolate(x, size=(9, 4)), image)
    assert_matches_eager(lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest-exact"), image)


@pytest.mark.parametrize("executors", EXECUTOR_LISTS.values(), ids=EXECUTOR_LISTS.keys())
def test_interpolate_modes_thunder_cannot_decompose_run_through_torch(executors):
    x = torch.randn(1, 2, 6, 5, dtype=F64, requires_grad=True)
    fn = lambda a: F.interpolate(a, size=(3, 4), mode="bilinear", antialias=True)
    jfn = thunder.jit(fn, executors=executors)
    actual = jfn(x)
    torch.testing.assert_close(actual, fn(x))
    trace = thunder.last_traces(jfn)[0]
    assert [b.sym.id for b in trace.bound_symbols if "fallback" in b.sym.tags] == [
        "torch_fallback.torch.nn.functional.interpolate"
    ]
    cotangent = torch.randn_like(actual)
    torch.testing.assert_close(torch.autograd.grad(actual, x, cotangent), torch.autograd.grad(fn(x), x, cotangent))


# -- max pooling with indices ----------------------------------------------------------------------------------
def max_pool_with_indices_samples(n: int):
    def gen(dtype, device):
        spatial = (7, 6, 5)[:n]
        x = make_on((2, 3, *spatial), dtype, device)
        yield S(x, 2)
        yield S(x, 3, stride=2, padding=1, name="stride, padding")
        yield S(x, 2, ceil_mode=True, name="ceil_mode")
        yield S(x, 2, stride=1, dilation=2, padding=1, name="dilation, padding")
        yield S(make_on((3, *spatial), dtype, device), 3, 2, 1, 1, True, name="unbatched, positional")
        ties = torch.randint(-2, 2, (1, 2, *spatial)).to(dtype)
        yield S(ties, 3, stride=1, padding=1, name="ties: the first maximum")
        if dtype.is_floating_point:
            special = make_on((1, 2, *spatial), dtype, device)
            special.view(-1)[::4] = -math.inf
            special.view(-1)[1::7] = math.nan
            yield S(special, 2, stride=1, padding=1, name="-inf and NaN: the last NaN")
        yield S(x, 2, padding=2, name="padding too large", raises=RuntimeError)

    return gen


def _returning_indices(pool):
    return lambda *args, **kwargs: pool(*args, **kwargs, return_indices=True)


MAX_POOL_WITH_INDICES = [
    OpInfo(f"max_pool{n}d(return_indices=True)", _returning_indices(getattr(F, f"max_pool{n}d")),
           # CUDA has no integer max_pool kernel (eager raises): int64 on the CPU only
           max_pool_with_indices_samples(n), ((F32, F64) if TEST_DEVICE == "cuda" else (F32, F64, I64)) if n == 2 else (F64,),
           symbol=f"ltorch.max_pool{n}d_with_indices")
    for n in (1, 2, 3)
]  # fmt: skip

MAX_POOL_WITH_INDICES_FORMS = [
    OpInfo(name, fn, lambda dtype, device: [S(make_on((2, 3, 6, 5), dtype, device), name="kernel 3")], (F32,),
           symbol=f"ltorch.{symbol}")
    for name, fn, symbol in [
        ("F.max_pool2d_with_indices", lambda a: F.max_pool2d_with_indices(a, 3), "max_pool2d_with_indices"),
        ("torch.max_pool1d_with_indices", lambda a: torch.max_pool1d_with_indices(a[0], 3), "max_pool1d_with_indices"),
        ("torch._C._nn.max_pool3d_with_indices", lambda a: torch._C._nn.max_pool3d_with_indices(a[None], [2, 3, 2]),
         "max_pool3d_with_indices"),
        ("nn.MaxPool2d(return_indices=True)", torch.nn.MaxPool2d(2, return_indices=True), "max_pool2d_with_indices"),
    ]
]  # fmt: skip

NN_OPS = [INTERPOLATE, *MAX_POOL_WITH_INDICES, *MAX_POOL_WITH_INDICES_FORMS]


@pytest.mark.parametrize("opinfo, dtype", opinfo_params(NN_OPS))
def test_op_matches_eager(opinfo, dtype):
    run_opinfo(opinfo, dtype)


@pytest.mark.parametrize("opinfo", [INTERPOLATE, *MAX_POOL_WITH_INDICES], ids=lambda o: o.name)
def test_op_gradients_match_torch_autograd(opinfo):
    statuses = run_grads(opinfo.name, opinfo_grad_samples(opinfo), tol=opinfo.tolerance(F64))
    assert {"checked", "borrowed backward"} & set(statuses)


# -- scatter_reduce and scatter with a reduction -----------------------------------------------------------------
def _scatter_operands(dtype):
    # small integer values: sums are exact, and products and extrema see ties and zeros
    a = torch.randint(-2, 3, (3, 4)).to(dtype)
    src = torch.randint(-2, 3, (3, 4)).to(dtype)
    index = torch.tensor([[0, 1, 2, 0], [2, 2, 1, 0], [1, 0, 0, 2]])
    return a, src, index


def _scatter_reduce_samples(dtype):
    a, src, index = _scatter_operands(dtype)
    for reduce in ("sum", "prod", "mean", "amax", "amin"):
        for include_self in (True, False):
            yield (
                f"{reduce} include_self={include_self}",
                lambda x, s, i, r=reduce, inc=include_self: torch.scatter_reduce(x, 0, i, s, r, include_self=inc),
                (a, src, index),
            )
    yield (
        "method, dim 1, random values",
        lambda x, s, i: x.scatter_reduce(-1, i, s, reduce="amax"),
        (make((3, 4), dtype), make((3, 4), dtype), index),
    )
    yield (
        "src larger than the index",
        lambda x, s, i: x.scatter_reduce(0, i, s, reduce="sum"),
        (make((3, 4), dtype), make((4, 5), dtype), index),
    )
    yield "in place", lambda x, s, i: x.clone().scatter_reduce_(0, i, s, "mean", include_self=False), (a, src, index)
    yield (
        "max, an alias of amax",
        lambda x, s, i: torch.scatter_reduce(x, 1, i, s, "max"),
        (make((3, 4), dtype), make((3, 4), dtype), index),
    )
    yield "unknown reduction", lambda x, s, i: torch.scatter_reduce(x, 0, i, s, "maximum"), (a, src, index)
    yield "scatter multiply", lambda x, s, i: x.scatter(0, i, s, reduce="multiply"), (a, src, index)
    yield "scatter multiply by a number", lambda x, i: x.scatter(1, i, 2, reduce="multiply"), (a, index)
    yield "scatter add a number", lambda x, i: torch.scatter(x, 1, i, 3, reduce="add"), (a, index)


# -- cumulative extrema and logcumsumexp --------------------------------------------------------------------------
def _scan_samples(name):
    fn = getattr(torch, name)

    def samples(dtype):
        a = make((3, 6), dtype)
        for d in (0, 1, -1):
            yield f"dim {d}", lambda x, d=d: fn(x, d), (a,)
        yield "method keyword", lambda x: getattr(x, name)(dim=0), (make((2, 3, 9), dtype),)
        yield "ties", lambda x: fn(x, 1), (torch.randint(-1, 2, (2, 7)).to(dtype),)
        yield "transposed", lambda x: fn(x, 0), (a.t(),)
        yield "0-dim", lambda x: fn(x, 0), (make((), dtype),)
        yield "empty", lambda x: fn(x, 0), (make((0, 3), dtype),)
        yield "dim out of range", lambda x: fn(x, 2), (a,)

    return samples


FAMILY_CASES = [
    OpCase("scatter_reduce", _scatter_reduce_samples, (F32, F64, BF16, I64)),
    OpCase("cummax", _scan_samples("cummax"), (F32, F64, I64, torch.bool)),
    OpCase("cummin", _scan_samples("cummin"), (F64, torch.int32)),
    OpCase("logcumsumexp", _scan_samples("logcumsumexp"), FLOATS),
]


@pytest.mark.parametrize("case, dtype", op_params(FAMILY_CASES))
def test_family_op_matches_eager(case, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager's deprecation of scatter's reduce argument
        run_case(case, dtype)


@pytest.mark.parametrize("case", FAMILY_CASES, ids=lambda c: c.name)
def test_family_op_gradients_match_torch_autograd(case):
    samples = ((fn, SampleInput(args, name=label)) for label, fn, args in case.samples(F64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        statuses = run_grads(case.name, samples)
    assert {"checked", "finite differences"} & set(statuses)


def test_cumulative_extrema_pass_nan_and_infinities_like_eager():
    a = torch.tensor([[1.0, math.nan, 2.0, math.nan, 0.5], [-math.inf, 3.0, math.inf, 3.0, -1.0]])
    assert_matches_eager(lambda x: (torch.cummax(x, 1), torch.cummin(x, 1), torch.cummax(x, 0)), a)


def test_cumulative_extrema_of_extreme_integers_match_eager():
    info = torch.iinfo(torch.int64)
    a = torch.tensor([[0, info.max, -1, info.max], [info.min, 5, info.min, 2]])
    assert_matches_eager(lambda x: (torch.cummax(x, 1), torch.cummin(x, 1)), a)


def test_logcumsumexp_of_infinities_and_wide_ranges_matches_eager():
    a = torch.tensor([[-math.inf, -math.inf, 0.0, math.inf, math.inf, 1.0], [-1000.0, 0.0, 1000.0, 3.0, math.nan, 2.0]])
    assert_matches_eager(lambda x: torch.logcumsumexp(x, 1), a)


def test_logcumsumexp_of_a_long_dim_matches_eager():
    assert_matches_eager(lambda x: torch.logcumsumexp(x, 0), torch.randn(1000, 2, dtype=F64) * 30)


def test_complex_logcumsumexp_runs_through_torch():
    x = torch.randn(2, 5, dtype=torch.complex64)
    jfn = thunder.jit(lambda a: torch.logcumsumexp(a, 1))
    torch.testing.assert_close(jfn(x), torch.logcumsumexp(x, 1))
