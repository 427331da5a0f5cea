"""Reductions: sum, mean, prod, amax/amin, max/min, var/std, argmax/argmin, all/any, logsumexp, norms,
cumulative sums and products, cumulative extrema and logcumsumexp, sorting and selection."""

from __future__ import annotations

import builtins
import math

import torch

from thunder import prims
from thunder.core.dtypes import computation_dtype, is_exact_dtype
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES, conjugate
from thunder.torch import elementwise
from thunder.torch import elementwise as ew
from thunder.torch.base import canonicalize_dim, canonicalize_dims, to_dtype, torchsymbol
from thunder.torch.elementwise import div, eq, isnan, logical_and, logical_or, mul, sub, where
from thunder.torch.fallback import fallback_symbol
from thunder.torch.shapes import flip, narrow

__all__ = [
    "sum", "mean", "prod", "amax", "amin", "max", "min", "var", "std", "var_mean", "std_mean", "argmax", "argmin",
    "all", "any", "logsumexp", "cumsum", "norm", "count_nonzero", "aminmax", "vector_norm", "nansum", "nanmean",
    "cumprod", "cummax", "cummin", "logcumsumexp", "sort", "argsort", "msort", "topk", "kthvalue", "median",
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
    total = sum(to_dtype(a, computation_dtype(dtype)), dim, keepdim)
    return to_dtype(prims.div(total, _count(a, dim)), dtype)


def _count(a, dim) -> int:
    """How many elements each slice of a reduction over `dim` holds."""
    n = 1
    for d in canonicalize_dims(a.ndim, dim if dim != () else None):
        n *= a.shape[d] if a.ndim else 1
    return n


@torchsymbol(torch.amax, torch.Tensor.amax, tags=("reduction",))
def amax(a, dim=(), keepdim=False):
    return _reduce(prims.amax, a, dim, keepdim)


@torchsymbol(torch.amin, torch.Tensor.amin, tags=("reduction",))
def amin(a, dim=(), keepdim=False):
    return _reduce(prims.amin, a, dim, keepdim)


def _max_min(reduce_prim, arg_prim, binary, a, dim, keepdim):

    if dim is None:
        return extremum_of_all(a, reduce_prim is prims.amax)
    if isinstance(dim, torch.Tensor):  # torch.max(a, b): elementwise
        return getattr(elementwise, binary)(a, dim)
    d = canonicalize_dim(a.ndim, dim)
    ordered = to_dtype(a, torch.uint8) if a.dtype == torch.bool else a  # torch's argmax/argmin take no bool
    indices = _keepdim(arg_prim(ordered, d if a.ndim else None), a, (d,), keepdim)
    if a.ndim and a.dtype.is_floating_point:
        # eager's gradient goes to the returned index only (one of several ties, or the NaN): read the values there
        # (whether `a` requires grad is autodiff's to know; the torch executor runs torch.max whole anyway)
        kept = indices if keepdim else prims.reshape(indices, tuple(1 if i == d else s for i, s in enumerate(a.shape)))
        values = prims.take_along_axis(a, kept, d)
        values = values if keepdim else prims.reshape(values, tuple(indices.shape))
    else:
        values = _keepdim(reduce_prim(a, (d,) if a.ndim else ()), a, (d,), keepdim)
    return torch.return_types.max((values, indices)) if binary == "maximum" else torch.return_types.min((values, indices))


@torchsymbol(name="extremum_of_all", tags=("reduction",))
def extremum_of_all(a, largest: bool):
    """`a.max()` / `a.min()`: amax/amin over every dim, with eager's gradient for them (below)."""
    return (prims.amax if largest else prims.amin)(a, tuple(range(a.ndim)))


def _extremum_of_all_grad(a, largest: bool):
    # eager's evenly_distribute_backward: shared among the elements equal to the result, or among the NaNs when
    # the result is NaN (amax's own gradient, by contrast, is NaN everywhere then)

    out = extremum_of_all(a, largest)
    g = get_grad(out)
    mask = to_dtype(logical_or(eq(a, out), logical_and(isnan(a), isnan(out))), g.dtype)
    put_grad(a, mul(mask, div(g, sum(mask))))
    return out


GRAD_RULES[extremum_of_all.id] = _extremum_of_all_grad


@torchsymbol(torch.max, torch.Tensor.max, tags=("reduction",))
def max(a, dim=None, keepdim=False):
    return _max_min(prims.amax, prims.argmax, "maximum", a, dim, keepdim)


@torchsymbol(torch.min, torch.Tensor.min, tags=("reduction",))
def min(a, dim=None, keepdim=False):
    return _max_min(prims.amin, prims.argmin, "minimum", a, dim, keepdim)


@torchsymbol(torch.aminmax, torch.Tensor.aminmax, tags=("reduction",))
def aminmax(a, *, dim=None, keepdim=False):
    return torch.return_types.aminmax((amin(a, dim if dim is not None else (), keepdim), amax(a, dim if dim is not None else (), keepdim)))


def _unbiased_by_position(dim, unbiased):
    """(dim, unbiased) of a variance-family call: torch's `var(input, unbiased)` overload puts a bool where the
    other overloads put `dim`, so `var(x, True)` reduces every dim."""
    if isinstance(dim, bool):
        return None, dim
    return dim, unbiased


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    if unbiased is None:
        return 1
    return 1 if unbiased else 0


@torchsymbol(torch.var, torch.Tensor.var, tags=("reduction",))
def var(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, unbiased = _unbiased_by_position(dim, unbiased)
    return _reduce(lambda x, dims: prims.var(x, dims, correction=_correction(unbiased, correction)), a, dim, keepdim)


@torchsymbol(torch.std, torch.Tensor.std, tags=("reduction",))
def std(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return prims.sqrt(var(a, dim, unbiased, keepdim, correction=correction))


def _std_grad(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """torch's std_backward: where the deviation is 0 (a constant slice) the gradient is 0, not 0 * inf."""
    dim, unbiased = _unbiased_by_position(dim, unbiased)
    out = std(a, dim, keepdim=keepdim, correction=_correction(unbiased, correction))
    g = get_grad(out)
    dims = canonicalize_dims(a.ndim, dim if dim != () else None)
    kept_shape = tuple(1 if i in dims else s for i, s in enumerate(a.shape))
    grad_var = where(eq(out, 0), 0.0, div(g, mul(out, 2)))
    if tuple(grad_var.shape) != kept_shape:
        grad_var = prims.reshape(grad_var, kept_shape)
    count = _count(a, dim)
    dof = count - _correction(unbiased, correction)
    mean = prims.reshape(div(prims.sum(a, dims), count), kept_shape) if dims else a
    scale = 2.0 / dof if dof > 0 else float("nan")
    put_grad(a, mul(mul(grad_var, sub(a, mean)), scale))
    return out


GRAD_RULES[std.id] = _std_grad


@torchsymbol(torch.var_mean, tags=("reduction",))
def var_mean(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, unbiased = _unbiased_by_position(dim, unbiased)
    return var(a, dim, unbiased, keepdim, correction=correction), mean(a, dim, keepdim)


@torchsymbol(torch.std_mean, tags=("reduction",))
def std_mean(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
    dim, unbiased = _unbiased_by_position(dim, unbiased)
    return std(a, dim, unbiased, keepdim, correction=correction), mean(a, dim, keepdim)


def _arg_reduction(prim, a, dim, keepdim):
    if dim is None:
        out = prim(prims.reshape(a, (a.numel(),)) if a.ndim != 1 else a, 0)
        return prims.reshape(out, (1,) * a.ndim) if keepdim else out
    d = canonicalize_dim(a.ndim, dim)
    if a.ndim == 0:
        return prim(a, None)
    return _keepdim(prim(a, d), a, (d,), keepdim)


@torchsymbol(torch.argmax, torch.Tensor.argmax, tags=("reduction",))
def argmax(a, dim=None, keepdim=False):
    return _arg_reduction(prims.argmax, a, dim, keepdim)


@torchsymbol(torch.argmin, torch.Tensor.argmin, tags=("reduction",))
def argmin(a, dim=None, keepdim=False):
    return _arg_reduction(prims.argmin, a, dim, keepdim)


@torchsymbol(torch.all, torch.Tensor.all, tags=("reduction",))
def all(a, dim=None, keepdim=False):
    # counts (not amin/amax, which refuse empty dims): all(x) is "no zero", any(x) is "some nonzero"
    zeros = _reduce(prims.sum, to_dtype(prims.eq(a, 0), torch.int64), dim, keepdim)
    return to_dtype(prims.eq(zeros, 0), torch.uint8 if a.dtype == torch.uint8 else torch.bool)


@torchsymbol(torch.any, torch.Tensor.any, tags=("reduction",))
def any(a, dim=None, keepdim=False):
    nonzeros = _reduce(prims.sum, to_dtype(prims.ne(a, 0), torch.int64), dim, keepdim)
    return to_dtype(prims.gt(nonzeros, 0), torch.uint8 if a.dtype == torch.uint8 else torch.bool)


@torchsymbol(torch.count_nonzero, torch.Tensor.count_nonzero, tags=("reduction",))
def count_nonzero(a, dim=None):
    return sum(to_dtype(prims.ne(a, 0), torch.int64), dim)


@torchsymbol(torch.logsumexp, torch.Tensor.logsumexp, tags=("reduction",))
def logsumexp(a, dim, keepdim=False):

    a = to_dtype(a, torch.get_default_dtype()) if is_exact_dtype(a.dtype) else a
    reduced = canonicalize_dims(a.ndim, dim)
    if a.ndim and builtins.any(a.shape[d] == 0 for d in reduced):  # `any` here is torch.any's symbol
        # an empty sum: log(0) = -inf, as eager gives (the shift's amax would have no element to reduce)
        kept = tuple(1 if i in reduced else length for i, length in enumerate(a.shape))
        out = prims.full(kept, -math.inf, dtype=a.dtype, device=a.device)
        return out if keepdim else prims.squeeze(out, reduced)
    # a complex input's shift is the largest real part, as eager's
    m = amax(prims.real(a) if a.dtype.is_complex else a, dim, True)
    m = ew.where(ew.isinf(m), 0.0, m)  # an all -inf slice must give -inf, not nan
    out = ew.add(ew.log(sum(ew.exp(ew.sub(a, m)), dim, True)), m)
    dims = canonicalize_dims(a.ndim, dim)
    if not keepdim:
        out = prims.squeeze(out, dims) if a.ndim else out
    return out


def _logsumexp_grad(a, dim, keepdim=False):
    """torch's logsumexp_backward, `grad * (a - result).exp()` (its conjugate for complex inputs): one formula,
    which differentiating the shifted decomposition matches only up to the shift's rounding (complex inputs with
    imaginary parts of 1e6 lose everything to it)."""
    out = logsumexp(a, dim, keepdim)
    if not (a.dtype.is_floating_point or a.dtype.is_complex):
        return out
    g = get_grad(out)
    dims = canonicalize_dims(a.ndim, dim)
    kept_shape = tuple(1 if i in dims else length for i, length in enumerate(a.shape))
    g, kept = prims.reshape(g, kept_shape), prims.reshape(out, kept_shape)
    put_grad(a, ew.mul(g, conjugate(ew.exp(ew.sub(a, kept)))))
    return out


GRAD_RULES[logsumexp.id] = _logsumexp_grad


@torchsymbol(torch.cumsum, torch.Tensor.cumsum)
def cumsum(a, dim, *, dtype=None):
    if dtype is None and is_exact_dtype(a.dtype):
        dtype = torch.int64
    a = to_dtype(a, dtype) if dtype is not None else a
    return prims.cumsum(a, canonicalize_dim(a.ndim, dim))


def _vector_norm(a, ord, dim, keepdim, dtype):

    if dtype is not None:
        a = to_dtype(a, dtype)
    elif is_exact_dtype(a.dtype):
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got {a.dtype}")
    result_dtype = a.dtype if not a.dtype.is_complex else ew.abs(a).dtype
    x = ew.abs(to_dtype(a, computation_dtype(a.dtype)))
    if ord == float("inf"):
        out = amax(x, dim if dim is not None else (), keepdim)
    elif ord == float("-inf"):
        out = amin(x, dim if dim is not None else (), keepdim)
    elif ord == 0:
        out = sum(to_dtype(ew.ne(x, 0), x.dtype), dim, keepdim)
    elif ord == 1:
        out = sum(x, dim, keepdim)
    else:
        # the root of a zero sum is taken of 1 and replaced by 0: torch defines the norm's gradient at a zero
        # vector as 0, where the root's derivative is infinite (0 * inf would be NaN)
        total = sum(ew.mul(x, x) if ord == 2 else ew.pow(x, ord), dim, keepdim)
        zero = ew.eq(total, 0)
        safe = ew.where(zero, 1, total)
        out = ew.where(zero, 0, ew.sqrt(safe) if ord == 2 else ew.pow(safe, 1.0 / ord))
    return to_dtype(out, result_dtype)


@torchsymbol(torch.norm, torch.Tensor.norm, tags=("reduction",))
def norm(a, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    if out is not None:
        raise NotImplementedError("out= arguments are not supported inside thunder.jit; use the returned tensor")
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str):  # 'nuc' (or a name matrix_norm refuses, with its error): a matrix norm, as eager calls it
        dims = list(range(a.ndim)) if dim is None else dim
        return fallback_symbol(torch.linalg.matrix_norm)(a, p, dims, keepdim, dtype=dtype)
    return _vector_norm(a, p, dim, keepdim, dtype)


@torchsymbol(torch.linalg.vector_norm, tags=("reduction",))
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    if out is not None:
        raise NotImplementedError("out= arguments are not supported inside thunder.jit; use the returned tensor")
    return _vector_norm(x, ord, dim, keepdim, dtype)


@torchsymbol(torch.nansum, torch.Tensor.nansum, tags=("reduction",))
def nansum(a, dim=None, keepdim=False, *, dtype=None):

    if not is_exact_dtype(a.dtype):
        a = ew.where(ew.isnan(a), 0, a)
    return sum(a, dim, keepdim, dtype=dtype)


@torchsymbol(torch.nanmean, torch.Tensor.nanmean, tags=("reduction",))
def nanmean(a, dim=None, keepdim=False, *, dtype=None):

    dtype = dtype or a.dtype
    if is_exact_dtype(dtype):
        raise RuntimeError(f"nanmean(): expected input to have floating point or complex dtype but got {a.dtype}")
    compute = computation_dtype(dtype)
    not_nan = ew.logical_not(ew.isnan(a))
    total = nansum(to_dtype(a, compute), dim, keepdim)
    return to_dtype(ew.div(total, sum(to_dtype(not_nan, compute), dim, keepdim)), dtype)


@torchsymbol(torch.cumprod, torch.Tensor.cumprod)
def cumprod(a, dim, *, dtype=None):
    if dtype is None and is_exact_dtype(a.dtype):
        dtype = torch.int64
    a = to_dtype(a, dtype) if dtype is not None else a
    return prims.cumprod(a, canonicalize_dim(a.ndim, dim))


# -- scans without a primitive ---------------------------------------------------------------------------------
# cummax, cummin and logcumsumexp are inclusive scans of an associative operation, computed in log2(n) steps of
# elementwise operations (Hillis-Steele): step k combines each position with the one 2**k before it.
def _shifted(x, dim, shift, fill):
    """x moved `shift` positions later along dim, the first `shift` positions holding `fill`."""
    ends = list(x.shape)
    ends[dim] -= shift
    config = [(shift, 0, 0) if i == dim else (0, 0, 0) for i in range(x.ndim)]
    return prims.pad(prims.slice(x, [0] * x.ndim, ends), fill, config)


def _inclusive_scan(combine, operands: tuple, fills: tuple, dim: int) -> tuple:
    """`combine(earlier, later, shift)` (on tuples of tensors) scanned along dim. The first `shift` positions have no
    earlier element: they are combined with `fills`, which must be identities, or `combine` must mask them."""
    shift = 1
    while shift < operands[0].shape[dim]:
        earlier = tuple(_shifted(x, dim, shift, fill) for x, fill in zip(operands, fills))
        operands = combine(earlier, operands, shift)
        shift *= 2
    return operands


def _cumulative_extremum(a, dim, largest: bool):
    """(values, indices) of torch's cummax (largest) or cummin: the later element wins ties, and NaN wins over
    every number (the last NaN over earlier ones)."""

    if a.ndim == 0:
        canonicalize_dim(0, dim)
        return prims.convert_element_type(a, a.dtype), prims.full((), 0, dtype=torch.int64, device=a.device)
    d = canonicalize_dim(a.ndim, dim)
    positions = prims.iota(a.shape[d], start=0, step=1, dtype=torch.int64, device=a.device)
    positions = prims.broadcast_in_dim(positions, tuple(a.shape), (d,))
    beats = ew.ge if largest else ew.le
    floating = not is_exact_dtype(a.dtype)

    def combine(earlier, later, shift):
        (v1, i1), (v2, i2) = earlier, later
        later_wins = beats(v2, v1)
        if floating:  # the padding holds -inf (cummax) or inf (cummin), which every value beats
            later_wins = ew.logical_or(ew.isnan(v2), ew.logical_and(ew.logical_not(ew.isnan(v1)), later_wins))
        else:  # no integer fill pads exactly (an int64 extreme does not survive a float): mask the padding
            later_wins = ew.logical_or(later_wins, ew.lt(positions, shift))
        return ew.where(later_wins, v2, v1), ew.where(later_wins, i2, i1)

    fill = (-math.inf if largest else math.inf) if floating else 0
    values, indices = _inclusive_scan(combine, (a, positions), (fill, 0), d)
    return values if values is not a else prims.convert_element_type(a, a.dtype), indices


@torchsymbol(torch.cummax, torch.Tensor.cummax)
def cummax(a, dim):
    return torch.return_types.cummax(_cumulative_extremum(a, dim, True))


@torchsymbol(torch.cummin, torch.Tensor.cummin)
def cummin(a, dim):
    return torch.return_types.cummin(_cumulative_extremum(a, dim, False))


def _cumulative_extremum_grad(symbol):
    # as torch's cummaxmin_backward: each output's cotangent goes to the element its index names
    def rule(a, dim):
        out = symbol(a, dim)
        g = get_grad(out[0])
        if a.ndim == 0:
            put_grad(a, g)
        else:
            zeros = prims.full(tuple(a.shape), 0, dtype=g.dtype, device=g.device)
            put_grad(a, prims.scatter_add(zeros, out[1], g, canonicalize_dim(a.ndim, dim)))
        return out

    return rule


GRAD_RULES[cummax.id] = _cumulative_extremum_grad(cummax)
GRAD_RULES[cummin.id] = _cumulative_extremum_grad(cummin)


def _log_add_exp(x, y):
    """log(exp(x) + exp(y)) as torch's scan computes it; equal infinities give themselves (not inf - inf), and the
    branch not taken there is kept finite so that its gradient is not NaN."""

    high, low = ew.maximum(x, y), ew.minimum(x, y)
    same_infinity = ew.logical_and(ew.isinf(low), ew.eq(low, high))
    difference = ew.where(same_infinity, 0.0, ew.sub(low, high))
    return ew.where(same_infinity, high, ew.add(high, ew.log1p(ew.exp(difference))))


@torchsymbol(torch.logcumsumexp, torch.Tensor.logcumsumexp)
def logcumsumexp(a, dim):
    if not a.dtype.is_floating_point:  # complex inputs, and the integers eager rejects: torch's own kernel
        return fallback_symbol(torch.logcumsumexp)(a, dim)
    d = canonicalize_dim(a.ndim, dim)
    x = to_dtype(a, computation_dtype(a.dtype))
    if a.ndim:
        (x,) = _inclusive_scan(lambda earlier, later, _: (_log_add_exp(earlier[0], later[0]),), (x,), (-math.inf,), d)
    return to_dtype(x, a.dtype) if x is not a else prims.convert_element_type(a, a.dtype)


def _logcumsumexp_grad(a, dim):
    """torch's logcumsumexp_backward: the positive and negative parts of the cotangent summed in log space (a
    reversed logcumsumexp each), which stays accurate where differentiating the scan loses ~1e-3 in float32."""
    out = logcumsumexp(a, dim)
    if a.dtype.is_complex and a.ndim:
        # d out_j / d a_i = exp(a_i - out_j) for i <= j, so the gradient is conj(exp(a_i)) times the reversed
        # cumulative sum of g_j exp(-conj(out_j)); summed in log space (complex logs carry g's phase), as exp(a)
        # alone overflows where a is large
        d = canonicalize_dim(a.ndim, dim)
        log_terms = ew.sub(ew.log(get_grad(out)), conjugate(out))
        put_grad(a, ew.exp(ew.add(flip(logcumsumexp(flip(log_terms, d), d), d), conjugate(a))))
        return out
    if not a.dtype.is_floating_point or a.ndim == 0:
        put_grad(a, get_grad(out))
        return out
    g = get_grad(out)
    d = canonicalize_dim(a.ndim, dim)
    lowest = torch.finfo(a.dtype).min
    log_abs_g = ew.log(ew.abs(g))

    def part(mask):
        log_part = ew.sub(ew.where(mask, log_abs_g, lowest), out)
        return ew.exp(ew.add(flip(logcumsumexp(flip(log_part, d), d), d), a))

    put_grad(a, ew.sub(part(ew.gt(g, 0)), part(ew.lt(g, 0))))
    return out


GRAD_RULES[logcumsumexp.id] = _logcumsumexp_grad


# -- sorting and selection ----------------------------------------------------------------------------------
@torchsymbol(torch.sort, torch.Tensor.sort)
def sort(a, dim=-1, descending=False, *, stable=False):
    values, indices = prims.sort(a, canonicalize_dim(a.ndim, dim), descending, bool(stable))
    return torch.return_types.sort((values, indices))


@torchsymbol(torch.argsort, torch.Tensor.argsort)
def argsort(a, dim=-1, descending=False, *, stable=False):
    return prims.sort(a, canonicalize_dim(a.ndim, dim), descending, bool(stable))[1]


@torchsymbol(torch.msort, torch.Tensor.msort)
def msort(a):
    return prims.sort(a, 0, False, False)[0]


@torchsymbol(torch.topk, torch.Tensor.topk)
def topk(a, k, dim=-1, largest=True, sorted=True):
    d = canonicalize_dim(a.ndim, dim)
    length = a.shape[d] if a.ndim else 1
    if not 0 <= k <= length:
        raise RuntimeError(f"selected index k out of range: k={k} for a dimension of size {length}")
    values, indices = prims.topk(a, k, d, largest, sorted)
    return torch.return_types.topk((values, indices))


def _select_sorted(a, dim, position, keepdim):
    """The value and index at `position` of `a` sorted (stably) along `dim`."""

    values, indices = prims.sort(a, dim, False, True)
    values, indices = narrow(values, dim, position, 1), narrow(indices, dim, position, 1)
    if not keepdim:
        values, indices = prims.squeeze(values, (dim,)), prims.squeeze(indices, (dim,))
    return values, indices


@torchsymbol(torch.kthvalue, torch.Tensor.kthvalue)
def kthvalue(a, k, dim=-1, keepdim=False):
    d = canonicalize_dim(a.ndim, dim)
    length = a.shape[d] if a.ndim else 1
    if not 1 <= k <= length:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim}")
    if a.ndim == 0:
        return torch.return_types.kthvalue((a, prims.full((), 0, dtype=torch.int64, device=a.device)))
    return torch.return_types.kthvalue(_select_sorted(a, d, k - 1, keepdim))


def _median_along(a, dim, keepdim):

    values, indices = prims.sort(a, dim, False, True)
    length = a.shape[dim]
    position = (length - 1) // 2
    if a.dtype.is_floating_point:
        # torch: a slice holding NaN has median NaN, at the first NaN's index (sorting puts NaNs last)
        nans = sum(to_dtype(ew.isnan(a), torch.int64), dim, True)
        position = ew.where(ew.gt(nans, 0), ew.sub(length, nans), position)
    else:
        shape = tuple(1 if i == dim else s for i, s in enumerate(a.shape))
        position = prims.full(shape, position, dtype=torch.int64, device=a.device)
    values, indices = prims.take_along_axis(values, position, dim), prims.take_along_axis(indices, position, dim)
    if not keepdim:
        values, indices = prims.squeeze(values, (dim,)), prims.squeeze(indices, (dim,))
    return values, indices


@torchsymbol(torch.median, torch.Tensor.median)
def median(a, dim=None, keepdim=False):
    """The lower median of all elements, or (values, indices) of the lower medians along `dim`."""
    if dim is None:
        if a.numel() == 0:
            raise IndexError("median() input tensor cannot be empty")
        flat = prims.reshape(a, (a.numel(),)) if a.ndim != 1 else a
        return _median_along(flat, 0, False)[0]
    d = canonicalize_dim(a.ndim, dim)
    if a.ndim == 0:
        return torch.return_types.median((a, prims.full((), 0, dtype=torch.int64, device=a.device)))
    return torch.return_types.median(_median_along(a, d, keepdim))
