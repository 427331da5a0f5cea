"""Reductions: sum, mean, prod, amax/amin, max/min, var/std, argmax/argmin, all/any, logsumexp, norms,
cumulative sums."""

from __future__ import annotations

import torch

from thunder import prims
from thunder.core.dtypes import is_exact_dtype
from thunder.torch.base import canonicalize_dim, canonicalize_dims, to_dtype, torchsymbol

__all__ = [
    "sum", "mean", "prod", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "argmax", "argmin",
    "all", "any", "logsumexp", "cumsum", "norm", "count_nonzero", "aminmax",
]  # fmt: skip

_builtin_sum, _builtin_all, _builtin_any, _builtin_max = sum, all, any, max


def _keepdim(out, a, dims, keepdim):
    if not keepdim:
        return out
    shape = tuple(1 if i in dims else s for i, s in enumerate(a.shape))
    return prims.reshape(out, shape)


def _reduce(prim, a, dim, keepdim, dtype=None):
    dims = canonicalize_dims(a.ndim, dim if dim != () else None)
    if a.ndim == 0:
        out = prim(a, ())
        return out
    out = prim(a, dims)
    return _keepdim(out, a, dims, keepdim)


@torchsymbol(torch.sum, torch.Tensor.sum, tags=("reduction",))
def sum(a, dim=None, keepdim=False, *, dtype=None):
    if dtype is None and is_exact_dtype(a.dtype):
        dtype = torch.int64
    a = to_dtype(a, dtype) if dtype is not None else a
    return _reduce(prims.sum, a, dim, keepdim)


@torchsymbol(torch.prod, torch.Tensor.prod, tags=("reduction",))
def prod(a, dim=None, keepdim=False, *, dtype=None):
    if dtype is None and is_exact_dtype(a.dtype):
        dtype = torch.int64
    a = to_dtype(a, dtype) if dtype is not None else a
    return _reduce(prims.prod, a, dim, keepdim)


@torchsymbol(torch.mean, torch.Tensor.mean, tags=("reduction",))
def mean(a, dim=None, keepdim=False, *, dtype=None):
    dtype = dtype or a.dtype
    if is_exact_dtype(dtype):
        raise RuntimeError(
            f"mean(): could not infer output dtype. Input dtype must be either a floating point or complex dtype. Got: {a.dtype}"
        )
    dims = canonicalize_dims(a.ndim, dim if dim != () else None)
    n = 1
    for d in dims:
        n *= a.shape[d]
    total = sum(to_dtype(a, dtype), dim, keepdim)
    return prims.div(total, n)


@torchsymbol(torch.amax, torch.Tensor.amax, tags=("reduction",))
def amax(a, dim=(), keepdim=False):
    return _reduce(prims.amax, a, dim, keepdim)


@torchsymbol(torch.amin, torch.Tensor.amin, tags=("reduction",))
def amin(a, dim=(), keepdim=False):
    return _reduce(prims.amin, a, dim, keepdim)


def _max_min(reduce_prim, arg_prim, binary, a, dim, keepdim):
    from thunder.torch import elementwise

    if dim is None:
        return reduce_prim(a, tuple(range(a.ndim)))
    if isinstance(dim, torch.Tensor):  # torch.max(a, b): elementwise
        return getattr(elementwise, binary)(a, dim)
    d = canonicalize_dim(a.ndim, dim)
    values = _keepdim(reduce_prim(a, (d,) if a.ndim else ()), a, (d,), keepdim)
    indices = _keepdim(arg_prim(a, d if a.ndim else None), a, (d,), keepdim)
    return torch.return_types.max((values, indices)) if binary == "maximum" else torch.return_types.min((values, indices))


@torchsymbol(torch.max, torch.Tensor.max, tags=("reduction",))
def max(a, dim=None, keepdim=False):
    return _max_min(prims.amax, prims.argmax, "maximum", a, dim, keepdim)


@torchsymbol(torch.min, torch.Tensor.min, tags=("reduction",))
def min(a, dim=None, keepdim=False):
    return _max_min(prims.amin, prims.argmin, "minimum", a, dim, keepdim)


@torchsymbol(torch.aminmax, torch.Tensor.aminmax, tags=("reduction",))
def aminmax(a, *, dim=None, keepdim=False):
    return torch.return_types.aminmax((amin(a, dim if dim is not None else (), keepdim), amax(a, dim if dim is not None else (), keepdim)))


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    if unbiased is None:
        return 1
    return 1 if unbiased else 0


@torchsymbol(torch.var, torch.Tensor.var, tags=("reduction",))
def var(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):  # var(a, unbiased)
        dim, unbiased = None, dim
    return _reduce(lambda x, dims: prims.var(x, dims, correction=_correction(unbiased, correction)), a, dim, keepdim)


@torchsymbol(torch.std, torch.Tensor.std, tags=("reduction",))
def std(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return prims.sqrt(var(a, dim, unbiased, keepdim, correction=correction))


@torchsymbol(torch.var_mean, tags=("reduction",))
def var_mean(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(a, dim, unbiased, keepdim, correction=correction), mean(a, dim, keepdim)


@torchsymbol(torch.std_mean, tags=("reduction",))
def std_mean(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(a, dim, unbiased, keepdim, correction=correction), mean(a, dim, keepdim)


@torchsymbol(torch.argmax, torch.Tensor.argmax, tags=("reduction",))
def argmax(a, dim=None, keepdim=False):
    if dim is None:
        return prims.argmax(prims.reshape(a, (a.numel(),)) if a.ndim != 1 else a, 0)
    d = canonicalize_dim(a.ndim, dim)
    return _keepdim(prims.argmax(a, d), a, (d,), keepdim)


@torchsymbol(torch.argmin, torch.Tensor.argmin, tags=("reduction",))
def argmin(a, dim=None, keepdim=False):
    if dim is None:
        return prims.argmin(prims.reshape(a, (a.numel(),)) if a.ndim != 1 else a, 0)
    d = canonicalize_dim(a.ndim, dim)
    return _keepdim(prims.argmin(a, d), a, (d,), keepdim)


@torchsymbol(torch.all, torch.Tensor.all, tags=("reduction",))
def all(a, dim=None, keepdim=False):
    as_bool = a if a.dtype == torch.bool else prims.ne(a, 0)
    # all(x) == not any(not x); computed as min over bools cast to uint8
    return to_dtype(_reduce(prims.amin, to_dtype(as_bool, torch.uint8), dim, keepdim), torch.bool)


@torchsymbol(torch.any, torch.Tensor.any, tags=("reduction",))
def any(a, dim=None, keepdim=False):
    as_bool = a if a.dtype == torch.bool else prims.ne(a, 0)
    return to_dtype(_reduce(prims.amax, to_dtype(as_bool, torch.uint8), dim, keepdim), torch.bool)


@torchsymbol(torch.count_nonzero, torch.Tensor.count_nonzero, tags=("reduction",))
def count_nonzero(a, dim=None):
    return sum(to_dtype(prims.ne(a, 0), torch.int64), dim)


@torchsymbol(torch.logsumexp, torch.Tensor.logsumexp, tags=("reduction",))
def logsumexp(a, dim, keepdim=False):
    from thunder.torch import elementwise as ew

    a = to_dtype(a, torch.get_default_dtype()) if is_exact_dtype(a.dtype) else a
    m = amax(a, dim, True)
    m = ew.where(ew.isinf(m), 0.0, m)  # an all -inf slice must give -inf, not nan
    out = ew.add(ew.log(sum(ew.exp(ew.sub(a, m)), dim, True)), m)
    dims = canonicalize_dims(a.ndim, dim)
    if not keepdim:
        out = prims.squeeze(out, dims) if a.ndim else out
    return out


@torchsymbol(torch.cumsum, torch.Tensor.cumsum)
def cumsum(a, dim, *, dtype=None):
    if dtype is None and is_exact_dtype(a.dtype):
        dtype = torch.int64
    a = to_dtype(a, dtype) if dtype is not None else a
    return prims.cumsum(a, canonicalize_dim(a.ndim, dim))


@torchsymbol(torch.norm, torch.Tensor.norm, torch.linalg.vector_norm, tags=("reduction",))
def norm(a, p="fro", dim=None, keepdim=False, dtype=None):
    from thunder.torch import elementwise as ew

    if p in ("fro", 2, 2.0):
        return ew.sqrt(sum(ew.mul(a, a) if not a.dtype.is_complex else ew.mul(ew.abs(a), ew.abs(a)), dim, keepdim))
    if p == float("inf"):
        return amax(ew.abs(a), dim if dim is not None else (), keepdim)
    if p == 1:
        return sum(ew.abs(a), dim, keepdim)
    return ew.pow(sum(ew.pow(ew.abs(a), p), dim, keepdim), 1.0 / p)
