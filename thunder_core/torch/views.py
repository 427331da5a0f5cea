"""How in-place operations are traced: the functional form of in-place methods whose out-of-place version
is not their name without the underscore (`INPLACE_SPECIAL`), and which torch callables return views and how
an in-place update of such a view is written back to its base (`VIEW_OPS`, read by frontend/tracer.py).

It sits above `thunder.torch.shapes`, `indexing` and `creation`, whose operations it combines.
"""

from __future__ import annotations

import torch

from thunder import prims
from thunder.torch.base import canonicalize_dim, canonicalize_dims, expand_to, to_dtype
from thunder.torch.creation import _check_generator, full_like
from thunder.torch.fallback import fallback_symbol
from thunder.torch.indexing import setitem_functional
from thunder.torch.shapes import _narrow_indices, _shape_arg, _split_sizes, detach, movedim, permute, reshape, transpose

__all__ = ["INPLACE_SPECIAL", "VIEW_OPS"]


# -- in-place forms whose functional version is not "the same name without the underscore" -------------
def _on_device_of(a, value, non_blocking=False):
    """value on a's device: `a.copy_(value)` and `a.fill_(value)` copy across devices, as eager does."""
    if isinstance(value, torch.Tensor) and value.device != a.device:
        return prims.to_device(value, a.device, non_blocking)
    return value


def _copy_value(a, src, non_blocking=False):
    if not isinstance(src, torch.Tensor):  # eager accepts a Python number
        return full_like(a, src)
    src = to_dtype(_on_device_of(a, src, non_blocking), a.dtype)
    return expand_to(src, tuple(a.shape)) if tuple(src.shape) != tuple(a.shape) else prims.convert_element_type(src, a.dtype)


def _in_place_draw(method: str):
    """`Tensor.<method>` for an in-place random fill (`exponential_`, `uniform_`...): a new tensor like `a`, filled
    by the same torch call on a tensor of `a`'s layout, so that a seeded run draws what eager draws. It runs as a
    fallback operator (random: never recomputed, never compiled by a fusion executor)."""

    def fill(a, *args, generator=None, **kwargs):
        _check_generator(generator)
        return getattr(torch.empty_like(a), method)(*args, **kwargs)

    fill.__name__ = fill.__qualname__ = f"drawn_{method.rstrip('_')}"  # its symbol prints as this name

    def draw(a, *args, **kwargs):
        return fallback_symbol(fill)(a, *args, **kwargs)

    return draw


_IN_PLACE_DRAWS = ("uniform_", "normal_", "exponential_", "cauchy_", "log_normal_", "geometric_")

INPLACE_SPECIAL = {
    **{method: _in_place_draw(method) for method in _IN_PLACE_DRAWS},
    "copy_": _copy_value,
    "zero_": lambda a: full_like(a, 0),
    "fill_": lambda a, value: (
        full_like(a, value) if not isinstance(value, torch.Tensor) else expand_to(_on_device_of(a, value), a.shape)
    ),
    "requires_grad_": lambda a, requires_grad=True: a,
    "detach_": detach,
}


# -- views: how an in-place update of a view is written back to its base --------------------------------
def _scatter_getitem(base_obj, rest, kwargs, i):
    key = rest[0]
    return lambda base, new: setitem_functional(base, key, new)


def _scatter_reshape(base_obj, rest, kwargs, i):
    return lambda base, new: reshape(new, tuple(base.shape))


def _scatter_select(base_obj, rest, kwargs, i):
    dim, index = rest[0], rest[1]
    return lambda base, new: setitem_functional(
        base, (slice(None),) * canonicalize_dim(base.ndim, dim) + (index,), new
    )


def _scatter_narrow(base_obj, rest, kwargs, i):
    dim, start, length = rest[0], rest[1], rest[2]

    def scatter(base, new):
        d = canonicalize_dim(base.ndim, dim)
        if isinstance(start, torch.Tensor):
            return setitem_functional(base, (slice(None),) * d + (_narrow_indices(base, d, start, length),), new)
        s = start % base.shape[d] if start < 0 else start
        return setitem_functional(base, (slice(None),) * d + (slice(s, s + length),), new)

    return scatter


def _scatter_split(base_obj, rest, kwargs, i, chunks=False):
    def scatter(base, new):
        dim = canonicalize_dim(base.ndim, rest[1] if len(rest) > 1 else kwargs.get("dim", 0))
        sizes = _split_sizes(base.shape[dim], -(-base.shape[dim] // rest[0]) if chunks else rest[0])
        start = sum(sizes[:i])
        return setitem_functional(base, (slice(None),) * dim + (slice(start, start + sizes[i]),), new)

    return scatter


def _scatter_unbind(base_obj, rest, kwargs, i):
    def scatter(base, new):
        dim = canonicalize_dim(base.ndim, rest[0] if rest else kwargs.get("dim", 0))
        return setitem_functional(base, (slice(None),) * dim + (i,), new)

    return scatter


def _scatter_identity(base_obj, rest, kwargs, i):
    return lambda base, new: new


# Views that permute dims are written back by the inverse permutation
def _scatter_transpose(base_obj, rest, kwargs, i):
    dims = (*rest, *(kwargs[k] for k in ("dim0", "dim1", "axis0", "axis1") if k in kwargs))
    return lambda base, new: transpose(new, *dims)


def _scatter_permute(base_obj, rest, kwargs, i):
    def scatter(base, new):
        dims = canonicalize_dims(base.ndim, _shape_arg(rest) if "dims" not in kwargs else tuple(kwargs["dims"]))
        return permute(new, [dims.index(d) for d in range(base.ndim)])

    return scatter


def _scatter_movedim(base_obj, rest, kwargs, i):
    source = rest[0] if rest else kwargs["source"]
    destination = rest[1] if len(rest) > 1 else kwargs["destination"]
    return lambda base, new: movedim(new, destination, source)


def _scatter_reverse_dims(base_obj, rest, kwargs, i):
    return lambda base, new: permute(new, tuple(reversed(range(new.ndim))))


VIEW_OPS = {
    torch.Tensor.__getitem__: _scatter_getitem,
    torch.Tensor.view: _scatter_reshape, torch.reshape: _scatter_reshape, torch.Tensor.reshape: _scatter_reshape,
    torch.Tensor.view_as: _scatter_reshape, torch.flatten: _scatter_reshape, torch.Tensor.flatten: _scatter_reshape,
    torch.unflatten: _scatter_reshape, torch.Tensor.unflatten: _scatter_reshape,
    torch.squeeze: _scatter_reshape, torch.Tensor.squeeze: _scatter_reshape,
    torch.unsqueeze: _scatter_reshape, torch.Tensor.unsqueeze: _scatter_reshape,
    torch.select: _scatter_select, torch.Tensor.select: _scatter_select,
    torch.narrow: _scatter_narrow, torch.Tensor.narrow: _scatter_narrow,
    torch.split: _scatter_split, torch.Tensor.split: _scatter_split,
    torch.chunk: lambda b, r, k, i: _scatter_split(b, r, k, i, chunks=True),
    torch.Tensor.chunk: lambda b, r, k, i: _scatter_split(b, r, k, i, chunks=True),
    torch.unbind: _scatter_unbind, torch.Tensor.unbind: _scatter_unbind,
    torch.Tensor.detach: _scatter_identity, torch.Tensor.data.__get__: _scatter_identity,
    torch.Tensor.contiguous: _scatter_identity,
    torch.transpose: _scatter_transpose, torch.Tensor.transpose: _scatter_transpose,
    torch.swapaxes: _scatter_transpose, torch.Tensor.swapaxes: _scatter_transpose,
    torch.swapdims: _scatter_transpose, torch.Tensor.swapdims: _scatter_transpose,
    torch.permute: _scatter_permute, torch.Tensor.permute: _scatter_permute,
    torch.t: _scatter_reverse_dims, torch.Tensor.t: _scatter_reverse_dims, torch.Tensor.T.__get__: _scatter_reverse_dims,
    torch.Tensor.mT.__get__: lambda b, r, k, i: (lambda base, new: transpose(new, -2, -1)),
    torch.movedim: _scatter_movedim, torch.Tensor.movedim: _scatter_movedim,
    torch.moveaxis: _scatter_movedim, torch.Tensor.moveaxis: _scatter_movedim,
    # writes through these would reach one element of the base several times (expand), or need a strided
    # scatter Thunder does not have yet: refused with a clear error (see frontend/tracer.py)
    torch.Tensor.expand: True, torch.Tensor.expand_as: True,
    torch.diagonal: True, torch.Tensor.diagonal: True, torch.Tensor.unfold: True, torch.as_strided: True,
}  # fmt: skip
