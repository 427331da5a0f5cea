"""Indexing operations: `__getitem__` (basic and advanced), functional `__setitem__` (what the tracer
records for `x[key] = value`), gather/scatter/scatter_reduce, index_select/index_add/index_copy/index_fill/
index_put, take/take_along_dim and select_scatter/slice_scatter. They build on `thunder.torch.shapes`.
"""

from __future__ import annotations

import torch

from thunder import prims
from thunder.core.proxies import IntegerProxy, TensorProxy
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES
from thunder.torch.base import broadcast_shapes, canonicalize_dim, expand_to, register_handler, to_dtype, torchsymbol
from thunder.torch.elementwise import add, div, eq, floor_divide, logical_and, lt, mul, where
from thunder.torch.shapes import basic_index, movedim, reshape

__all__ = [
    "getitem", "setitem_functional", "gather", "take_along_dim", "scatter", "scatter_add", "scatter_reduce",
    "index_select", "index_add", "index_copy", "index_fill", "index_put", "take", "select_scatter", "slice_scatter",
]  # fmt: skip


# -- getitem and functional setitem ---------------------------------------------------------------------
def _normalize_key(a, key) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis and not isinstance(k, bool))
    for k in key:
        if isinstance(k, torch.Tensor) and k.dtype == torch.bool:
            consumed += k.ndim - 1
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = key[:i] + (slice(None),) * (a.ndim - consumed) + key[i + 1 :]
    else:
        key = key + (slice(None),) * (a.ndim - consumed)
    return key


def _is_basic(key) -> bool:
    return all(k is None or isinstance(k, (int, slice, IntegerProxy)) and not isinstance(k, bool) for k in key)


@torchsymbol(torch.Tensor.__getitem__, tags=("shape",))
def getitem(a, key):
    key = _normalize_key(a, key)
    if not _is_basic(key):
        if any(isinstance(k, torch.Tensor) and k.dtype == torch.bool for k in key) or any(
            isinstance(k, bool) for k in key
        ):
            raise NotImplementedError(
                "indexing with a boolean mask gives a data-dependent shape, which Thunder cannot trace; "
                "use torch.where(mask, x, other) or masked_fill instead"
            )
        key = tuple(k if not isinstance(k, (list, tuple)) else torch.tensor(k, device="cpu") for k in key)
        scalar_positions = [i for i, k in enumerate(key) if isinstance(k, torch.Tensor) and k.ndim == 0]
        if scalar_positions:
            return _index_with_scalar_tensors(a, key, scalar_positions)
        return prims.advanced_index(a, key)
    return basic_index(a, key)


def _index_with_scalar_tensors(a, key, positions):
    """Indexing where some indices are 0-dim integer tensors: torch reads their values as ints, which tracing
    cannot, so each becomes an index_select of one element (or, beside other index tensors, a 1-element index
    tensor, which broadcasts the same way)."""

    if any(isinstance(k, torch.Tensor) and k.ndim > 0 for k in key):
        return prims.advanced_index(a, tuple(reshape(k, (1,)) if i in positions else k for i, k in enumerate(key)))
    out = getitem(a, tuple(slice(None) if i in positions else k for i, k in enumerate(key)))
    for i in reversed(positions):
        dim = sum(1 for k in key[:i] if not isinstance(k, int))  # ints drop their dim, the rest keep one
        index = where(lt(key[i], 0), add(key[i], out.shape[dim]), key[i])
        out = prims.squeeze(prims.take(out, reshape(index, (1,)), dim), (dim,))
    return out


@torchsymbol(name="setitem_functional")
def setitem_functional(a, key, value):
    """`a` with `a[key] = value` applied, as a new value (the tracer rebinds `a`'s holder to it)."""
    if isinstance(value, torch.Tensor):
        value = to_dtype(value, a.dtype)
    return prims.setitem(a, key, value)


# -- gather, scatter and index_* ------------------------------------------------------------------------
@torchsymbol(torch.gather, torch.Tensor.gather)
def gather(a, dim, index, *, sparse_grad=False):
    if index.ndim != a.ndim and index.numel() == 0:
        # eager accepts an empty index of any rank; gathering from the flattened input keeps it in the graph
        flat = prims.take_along_axis(reshape(a, (-1,)), reshape(index, (0,)), 0)
        return reshape(flat, tuple(index.shape))
    if index.ndim != a.ndim and not (index.ndim <= 1 and a.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    return prims.take_along_axis(a, index, canonicalize_dim(a.ndim, dim))


def _wrap_negative(indices, size: int):
    """Negative indices count from the end, as eager's take_along_dim with a dim counts them (gather does not)."""
    return where(lt(indices, 0), add(indices, size), indices)


@torchsymbol(torch.take_along_dim, torch.Tensor.take_along_dim)
def take_along_dim(a, indices, dim=None):
    if dim is None:
        return prims.take_along_axis(reshape(a, (-1,)), reshape(indices, (-1,)), 0)
    if a.ndim != indices.ndim:
        raise RuntimeError("torch.take_along_dim(): input and indices should have the same number of dimensions")
    d = canonicalize_dim(a.ndim, dim)
    indices = _wrap_negative(indices, a.shape[d])
    # every dim but `dim` broadcasts between the input and the indices
    common = list(broadcast_shapes(*(tuple(1 if i == d else s for i, s in enumerate(x.shape)) for x in (a, indices))))
    a = expand_to(a, tuple(common[:d]) + (a.shape[d],) + tuple(common[d + 1 :]))
    indices = expand_to(indices, tuple(common[:d]) + (indices.shape[d],) + tuple(common[d + 1 :]))
    return prims.take_along_axis(a, indices, d)


@torchsymbol(torch.scatter, torch.Tensor.scatter)
def scatter(a, dim, index, src=None, value=None, *, reduce=None):
    src = value if src is None else src
    if src is None:
        raise TypeError("scatter() needs src (a tensor) or value (a number)")
    d = canonicalize_dim(a.ndim, dim)
    if isinstance(src, torch.Tensor) and src.dtype != a.dtype:
        raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype ({a.dtype} and {src.dtype})")
    if reduce is None:
        return prims.scatter(a, index, src, d)
    if reduce not in ("add", "multiply"):
        raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
    if not isinstance(src, torch.Tensor):
        src = prims.full(tuple(index.shape), src, dtype=a.dtype, device=a.device)
    if reduce == "add":
        return prims.scatter_add(a, index, src, d)
    return scatter_reduce(a, d, index, src, "prod")


_SCATTER_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")
_SCATTER_ALIASES = {"max": "amax", "min": "amin"}  # eager's forward accepts these too (its backward does not)


def _check_scatter(a, dim, index, src, name):
    """torch's checks of a scatter's operands (scatter_gather_dtype_check and scatter_shape_check)."""
    if index.dtype != torch.int64:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")
    if src.dtype != a.dtype:
        raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype")
    if index.numel() == 0:
        return
    if not index.ndim == a.ndim == src.ndim and not (index.ndim <= 1 and a.ndim <= 1 and src.ndim <= 1):
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    for i in range(index.ndim):
        if index.shape[i] > src.shape[i] or (i != dim and index.shape[i] > a.shape[i]):
            raise RuntimeError(
                f"Expected index {tuple(index.shape)} to be no larger than self {tuple(a.shape)} apart from dimension "
                f"{dim} and to be no larger than src {tuple(src.shape)}"
            )


def _read_part(src, index):
    """The part of src a scatter reads: the leading index.shape of it (torch ignores the rest)."""
    if tuple(src.shape) == tuple(index.shape):
        return src
    return prims.slice(src, [0] * src.ndim, list(index.shape))


@torchsymbol(torch.scatter_reduce, torch.Tensor.scatter_reduce)
def scatter_reduce(a, dim, index, src, reduce, *, include_self=True):
    """Sums and means decompose into scatter_add; products and extrema have no primitive, so the torch executor
    runs the operation whole (this symbol records no decomposition for them) and its grad rule is below."""

    reduce = _SCATTER_ALIASES.get(reduce, reduce)
    if reduce not in _SCATTER_REDUCTIONS:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    d = canonicalize_dim(a.ndim, dim)
    _check_scatter(a, d, index, src, "scatter_reduce")
    if reduce not in ("sum", "mean"):
        return TensorProxy(like=a, requires_grad=False)
    src = _read_part(src, index)
    base = a if include_self else prims.scatter(a, index, 0, d)
    total = prims.scatter_add(base, index, src, d)
    if reduce == "sum":
        return total
    count = prims.full(tuple(a.shape), 1 if include_self else 0, dtype=a.dtype, device=a.device)
    count = prims.scatter_add(count, index, prims.full(tuple(index.shape), 1, dtype=a.dtype, device=a.device), d)
    count = where(eq(count, 0), 1, count)
    return div(total, count) if a.dtype.is_floating_point or a.dtype.is_complex else floor_divide(total, count)


def _scatter_reduce_grad(a, dim, index, src, reduce, *, include_self=True):
    """torch's scatter_reduce_backward (its amax/amin gradient of src included, which counts ties with the
    original value even where include_self=False excludes it)."""

    out = scatter_reduce(a, dim, index, src, reduce, include_self=include_self)
    g = get_grad(out)
    d = canonicalize_dim(a.ndim, dim)
    reduce = _SCATTER_ALIASES.get(reduce, reduce)
    part = _read_part(src, index)
    gather_g = lambda x: prims.take_along_axis(x, index, d)
    zeros = prims.full(tuple(a.shape), 0, dtype=a.dtype, device=a.device)
    if reduce == "sum":
        grad_self, grad_src = g, gather_g(g)
    elif reduce == "mean":
        count = prims.full(tuple(a.shape), 1 if include_self else 0, dtype=a.dtype, device=a.device)
        count = prims.scatter_add(count, index, prims.full(tuple(index.shape), 1, dtype=a.dtype, device=a.device), d)
        count = where(eq(count, 0), 1, count)
        grad_self, grad_src = div(g, count), div(gather_g(g), gather_g(count))
    elif reduce == "prod":
        masked_self = where(eq(a, 0), 1, a)
        grad_self = div(mul(g, scatter_reduce(masked_self, d, index, part, "prod", include_self=include_self)),
                        masked_self)  # fmt: skip
        src_zero = eq(part, 0)
        zeros_there = gather_g(prims.scatter_add(zeros, index, to_dtype(src_zero, a.dtype), d))
        single_zero = logical_and(src_zero, eq(zeros_there, 1))
        masked_src_result = scatter_reduce(a, d, index, where(single_zero, 1, part), "prod", include_self=include_self)
        grad_src = where(single_zero, gather_g(mul(g, masked_src_result)),
                         div(gather_g(mul(g, out)), where(src_zero, 1, part)))  # fmt: skip
    else:
        self_is_result = to_dtype(eq(a, out), a.dtype)
        src_is_result = to_dtype(eq(part, gather_g(out)), a.dtype)
        distributed = div(g, prims.scatter_add(self_is_result, index, src_is_result, d))
        grad_self, grad_src = mul(self_is_result, distributed), mul(src_is_result, gather_g(distributed))
    put_grad(a, grad_self if include_self else prims.scatter(grad_self, index, 0, d))
    if tuple(part.shape) != tuple(src.shape):  # the elements of src the scatter does not read get no gradient
        grad_src = prims.pad(grad_src, 0, [(0, s - i, 0) for s, i in zip(src.shape, index.shape)])
    put_grad(src, grad_src)
    return out


GRAD_RULES[scatter_reduce.id] = _scatter_reduce_grad


@torchsymbol(torch.scatter_add, torch.Tensor.scatter_add)
def scatter_add(a, dim, index, src):
    if src.dtype != a.dtype:
        raise RuntimeError(f"scatter_add(): Expected self.dtype to be equal to src.dtype ({a.dtype} and {src.dtype})")
    return prims.scatter_add(a, index, src, canonicalize_dim(a.ndim, dim))


def _index_1d(index):
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    return reshape(index, (index.numel(),)) if index.ndim == 0 else index


@torchsymbol(torch.index_select, torch.Tensor.index_select)
def index_select(a, dim, index):
    return prims.take(a, _index_1d(index), canonicalize_dim(a.ndim, dim))


@torchsymbol(torch.index_add, torch.Tensor.index_add)
def index_add(a, dim, index, source, *, alpha=1):

    if alpha != 1:
        source = to_dtype(mul(source, alpha), a.dtype)
    return prims.index_add(a, _index_1d(index), source, canonicalize_dim(a.ndim, dim))


def _index_put_along(a, dim, index, values):
    """`a` with `a.select(dim, index[i]) = values.select(dim, i)`: an index_put on `dim` moved to the front."""
    if a.ndim == 0:  # torch reads a 0-d tensor as one of one element
        canonicalize_dim(0, dim)
        values = reshape(values, (1,)) if isinstance(values, torch.Tensor) and values.ndim == 0 else values
        return reshape(prims.index_put(reshape(a, (1,)), (_index_1d(index),), values, False), ())
    d = canonicalize_dim(a.ndim, dim)
    moved = movedim(a, d, 0) if a.ndim else a
    if isinstance(values, torch.Tensor) and values.ndim == a.ndim and a.ndim:
        values = movedim(values, d, 0)
    out = prims.index_put(moved, (_index_1d(index),), values, False)
    return movedim(out, 0, d) if a.ndim else out


@torchsymbol(torch.index_copy, torch.Tensor.index_copy)
def index_copy(a, dim, index, source):
    if source.dtype != a.dtype:
        raise RuntimeError(f"index_copy_(): self and source expected to have the same dtype ({a.dtype}, {source.dtype})")
    return _index_put_along(a, dim, index, source)


@torchsymbol(torch.index_fill, torch.Tensor.index_fill)
def index_fill(a, dim, index, value):
    if isinstance(value, torch.Tensor):
        if value.ndim != 0:
            raise RuntimeError("index_fill_ only supports a 0-dimensional value tensor")
        value = to_dtype(value, a.dtype)
    d = canonicalize_dim(a.ndim, dim)
    # a mask of the filled positions, not an index_put of the value: eager's value gradient counts a position
    # named twice in `index` once
    length = a.shape[d] if a.ndim else 1
    none = prims.full((length,), False, dtype=torch.bool, device=a.device)
    filled = prims.index_put(none, (_index_1d(index),), prims.full((), True, dtype=torch.bool, device=a.device), False)
    filled = reshape(filled, tuple(length if i == d else 1 for i in range(a.ndim)))
    out = where(filled, value, a)
    return out if out.dtype == a.dtype else to_dtype(out, a.dtype)


@torchsymbol(torch.index_put, torch.Tensor.index_put)
def index_put(a, indices, values, accumulate=False):
    if any(isinstance(k, torch.Tensor) and k.dtype in (torch.bool, torch.uint8) for k in indices):
        # the mask's true elements are the rows of `values`: how many is in the data
        raise NotImplementedError(
            "index_put with a boolean mask: the mask's count of true elements is a data-dependent shape, which "
            "Thunder cannot trace; use torch.where(mask, values, a) where values broadcasts to a"
        )
    return prims.index_put(a, tuple(indices), to_dtype(values, a.dtype), accumulate)


def _aten_index(a, indices):
    """`torch.ops.aten.index(a, indices)`: `a[indices]`, None standing for a whole dimension. torch's own
    TransformGetItemToIndex mode (transformers' mask builders run under it) turns `a[i]` into this call."""
    return getitem(a, tuple(slice(None) if i is None else i for i in indices))


register_handler(torch.ops.aten.index, _aten_index)
register_handler(torch.ops.aten.index.Tensor, _aten_index)


@torchsymbol(torch.take, torch.Tensor.take)
def take(a, index):

    flat = reshape(a, (-1,))
    wrapped = where(lt(index, 0), add(index, a.numel()), index)  # torch.take counts negative indices from the end
    return reshape(prims.take(flat, reshape(wrapped, (-1,)), 0), tuple(index.shape))


@torchsymbol(torch.select_scatter, torch.Tensor.select_scatter)
def select_scatter(a, src, dim, index):
    d = canonicalize_dim(a.ndim, dim)
    return setitem_functional(a, (slice(None),) * d + (index,), src)


@torchsymbol(torch.slice_scatter, torch.Tensor.slice_scatter)
def slice_scatter(a, src, dim=0, start=None, end=None, step=1):
    d = canonicalize_dim(a.ndim, dim)
    return setitem_functional(a, (slice(None),) * d + (slice(start, end, step),), src)
