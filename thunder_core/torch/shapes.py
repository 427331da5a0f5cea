"""Shape and view operations: reshape/view, permute/transpose, squeeze/unsqueeze, expand, flatten,
indexing (`__getitem__`, functional `__setitem__`), narrow/select/split/chunk/unbind, cat/stack.

`VIEW_OPS` tells the tracer which torch callables return views and how an in-place update of such a
view is written back to its base (see frontend/tracer.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from thunder import prims
from thunder.core.proxies import TensorProxy
from thunder.torch.base import (
    broadcast_shapes,
    canonicalize_dim,
    canonicalize_dims,
    expand_to,
    register_handler,
    to_dtype,
    torchsymbol,
)

__all__ = [
    "reshape", "view", "permute", "transpose", "t", "unsqueeze", "squeeze", "flatten", "unflatten", "expand",
    "expand_as", "contiguous", "getitem", "setitem_functional", "select", "narrow", "split", "chunk", "unbind",
    "cat", "stack", "movedim", "view_as", "reshape_as", "broadcast_to", "detach", "INPLACE_SPECIAL", "VIEW_OPS",
    "swapaxes", "flip", "repeat", "tile", "repeat_interleave", "hstack", "vstack", "roll", "clone",
]  # fmt: skip


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        return tuple(shape[0])
    return tuple(shape)


def infer_shape(numel: int, shape: Sequence[int]) -> tuple[int, ...]:
    shape = [int(s) for s in shape]
    if shape.count(-1) > 1:
        raise RuntimeError("only one dimension can be inferred")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return tuple(shape)


@torchsymbol(torch.reshape, torch.Tensor.reshape, tags=("shape",))
def reshape(a, *shape):
    shape = infer_shape(a.numel(), _shape_arg(shape))
    if shape == tuple(a.shape):
        return a
    return prims.reshape(a, shape)


@torchsymbol(torch.Tensor.view, tags=("shape",))
def view(a, *shape):
    if len(shape) == 1 and isinstance(shape[0], torch.dtype):
        raise NotImplementedError("Tensor.view(dtype) reinterprets memory; Thunder does not support it")
    return reshape(a, *shape)


@torchsymbol(torch.Tensor.view_as, tags=("shape",))
def view_as(a, other):
    return reshape(a, tuple(other.shape))


@torchsymbol(torch.Tensor.reshape_as, tags=("shape",))
def reshape_as(a, other):
    return reshape(a, tuple(other.shape))


@torchsymbol(torch.permute, torch.Tensor.permute, tags=("shape",))
def permute(a, *dims):
    dims = canonicalize_dims(a.ndim, _shape_arg(dims))
    if dims == tuple(range(a.ndim)):
        return a
    return prims.permute(a, dims)


@torchsymbol(torch.transpose, torch.Tensor.transpose, torch.swapaxes, torch.Tensor.swapaxes, torch.swapdims,
             torch.Tensor.swapdims, tags=("shape",))  # fmt: skip
def transpose(a, dim0, dim1):
    if a.ndim == 0:
        return a
    dim0, dim1 = canonicalize_dim(a.ndim, dim0), canonicalize_dim(a.ndim, dim1)
    perm = list(range(a.ndim))
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return permute(a, perm)


swapaxes = transpose


@torchsymbol(torch.t, torch.Tensor.t, tags=("shape",))
def t(a):
    if a.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {a.ndim}D")
    return transpose(a, 0, 1) if a.ndim == 2 else a


register_handler(torch.Tensor.T.__get__, lambda a: permute(a, tuple(reversed(range(a.ndim)))))
register_handler(torch.Tensor.mT.__get__, lambda a: transpose(a, -2, -1))


@torchsymbol(torch.movedim, torch.Tensor.movedim, torch.moveaxis, torch.Tensor.moveaxis, tags=("shape",))
def movedim(a, source, destination):
    source = canonicalize_dims(a.ndim, source)
    destination = canonicalize_dims(a.ndim, destination)
    order = [d for d in range(a.ndim) if d not in source]
    perm = [None] * a.ndim
    for s, d in zip(source, destination):
        perm[d] = s
    it = iter(order)
    perm = [p if p is not None else next(it) for p in perm]
    return permute(a, perm)


@torchsymbol(torch.unsqueeze, torch.Tensor.unsqueeze, tags=("shape",))
def unsqueeze(a, dim):
    dim = canonicalize_dim(a.ndim + 1, dim)
    shape = list(a.shape)
    shape.insert(dim, 1)
    return prims.reshape(a, tuple(shape))


@torchsymbol(torch.squeeze, torch.Tensor.squeeze, tags=("shape",))
def squeeze(a, dim=None):
    if dim is None:
        dims = tuple(i for i, s in enumerate(a.shape) if s == 1)
    else:
        dims = tuple(d for d in canonicalize_dims(a.ndim, dim) if a.ndim and a.shape[d] == 1)
    if not dims:
        return a
    return prims.squeeze(a, dims)


@torchsymbol(torch.flatten, torch.Tensor.flatten, tags=("shape",))
def flatten(a, start_dim=0, end_dim=-1):
    if a.ndim == 0:
        return reshape(a, (1,))
    start, end = canonicalize_dim(a.ndim, start_dim), canonicalize_dim(a.ndim, end_dim)
    if start > end:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    n = 1
    for s in a.shape[start : end + 1]:
        n *= s
    return reshape(a, tuple(a.shape[:start]) + (n,) + tuple(a.shape[end + 1 :]))


@torchsymbol(torch.unflatten, torch.Tensor.unflatten, tags=("shape",))
def unflatten(a, dim, sizes):
    dim = canonicalize_dim(a.ndim, dim)
    sizes = infer_shape(a.shape[dim], sizes)
    return reshape(a, tuple(a.shape[:dim]) + tuple(sizes) + tuple(a.shape[dim + 1 :]))


@torchsymbol(torch.Tensor.expand, tags=("shape",))
def expand(a, *shape):
    shape = _shape_arg(shape)
    offset = len(shape) - a.ndim
    if offset < 0:
        raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be >= the tensor's rank ({a.ndim})")
    target = tuple(a.shape[i - offset] if s == -1 else s for i, s in enumerate(shape))
    broadcast_shapes(tuple(a.shape), target)
    return expand_to(a, target)


@torchsymbol(torch.broadcast_to, torch.Tensor.broadcast_to, tags=("shape",))
def broadcast_to(a, shape):
    return expand(a, tuple(shape))


@torchsymbol(torch.Tensor.expand_as, tags=("shape",))
def expand_as(a, other):
    return expand(a, tuple(other.shape))


@torchsymbol(torch.Tensor.contiguous, tags=("shape",))
def contiguous(a, memory_format=torch.contiguous_format):
    # a copy in the functional semantics of traces; the torch executor runs Tensor.contiguous (free if already so)
    return prims.convert_element_type(a, a.dtype)


@torchsymbol(torch.clone, torch.Tensor.clone)
def clone(a, *, memory_format=torch.preserve_format):
    return prims.convert_element_type(a, a.dtype)


@torchsymbol(torch.detach, torch.Tensor.detach, torch.Tensor.detach_)
def detach(a):
    # A detached value stops gradients: autodiff knows this symbol (it has no decomposition to differentiate).
    return TensorProxy(like=a, requires_grad=False)


register_handler(torch.Tensor.data.__get__, detach)


# -- indexing --------------------------------------------------------------------------------------------
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
    return all(k is None or isinstance(k, (int, slice)) and not isinstance(k, bool) for k in key)


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
        key = tuple(k if not isinstance(k, (list, tuple)) else torch.tensor(k) for k in key)
        return prims.advanced_index(a, key)
    starts, ends, strides, final_shape = [], [], [], []
    dim = 0
    squeeze_dims = []
    for k in key:
        if k is None:
            final_shape.append(1)
            continue
        length = a.shape[dim]
        if isinstance(k, int):
            if not -length <= k < length:
                raise IndexError(f"index {k} is out of bounds for dimension {dim} with size {length}")
            k = k % length
            starts.append(k), ends.append(k + 1), strides.append(1)
            squeeze_dims.append(dim)
        else:
            start, stop, step = k.indices(length)
            if step <= 0:
                raise ValueError("step must be greater than zero")
            stop = max(stop, start)
            starts.append(start), ends.append(stop), strides.append(step)
            final_shape.append((stop - start + step - 1) // step)
        dim += 1
    out = a
    if any(s != 0 for s in starts) or tuple(ends) != tuple(a.shape) or any(s != 1 for s in strides):
        out = prims.slice(a, starts, ends, strides)
    if tuple(out.shape) != tuple(final_shape):
        out = prims.reshape(out, tuple(final_shape))
    return out


@torchsymbol(name="setitem_functional")
def setitem_functional(a, key, value):
    """`a` with `a[key] = value` applied, as a new value (the tracer rebinds `a`'s holder to it)."""
    if isinstance(value, torch.Tensor):
        value = to_dtype(value, a.dtype)
    return prims.setitem(a, key, value)


@torchsymbol(torch.select, torch.Tensor.select, tags=("shape",))
def select(a, dim, index):
    dim = canonicalize_dim(a.ndim, dim)
    return getitem(a, (slice(None),) * dim + (index,))


@torchsymbol(torch.narrow, torch.Tensor.narrow, tags=("shape",))
def narrow(a, dim, start, length):
    dim = canonicalize_dim(a.ndim, dim)
    start = start % a.shape[dim] if start < 0 else start
    return getitem(a, (slice(None),) * dim + (slice(start, start + length),))


def _split_sizes(length: int, split_size_or_sections) -> list[int]:
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        return [min(size, length - i) for i in range(0, length, size)] if length else [0]
    sizes = list(split_size_or_sections)
    if sum(sizes) != length:
        raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {length}")
    return sizes


@torchsymbol(torch.split, torch.Tensor.split, torch.Tensor.split_with_sizes, tags=("shape",))
def split(a, split_size_or_sections, dim=0):
    dim = canonicalize_dim(a.ndim, dim)
    outs, start = [], 0
    for size in _split_sizes(a.shape[dim], split_size_or_sections):
        outs.append(narrow(a, dim, start, size))
        start += size
    return tuple(outs)


@torchsymbol(torch.chunk, torch.Tensor.chunk, tags=("shape",))
def chunk(a, chunks, dim=0):
    dim = canonicalize_dim(a.ndim, dim)
    size = -(-a.shape[dim] // chunks)
    return split(a, max(size, 1), dim)


@torchsymbol(torch.unbind, torch.Tensor.unbind, tags=("shape",))
def unbind(a, dim=0):
    dim = canonicalize_dim(a.ndim, dim)
    return tuple(select(a, dim, i) for i in range(a.shape[dim]))


register_handler(torch.Tensor.__iter__, lambda a: iter(unbind(a, 0)))


@torchsymbol(torch.cat, torch.concat, torch.concatenate, tags=("shape",))
def cat(tensors, dim=0):
    tensors = [x for x in tensors if not (x.ndim == 1 and x.shape[0] == 0)] or list(tensors[:1])
    from thunder.core.dtypes import result_dtype

    dtype = result_dtype(*tensors)
    dim = canonicalize_dim(tensors[0].ndim, dim)
    tensors = [to_dtype(x, dtype) for x in tensors]
    if len(tensors) == 1:
        return prims.convert_element_type(tensors[0], dtype)
    return prims.cat(tensors, dim)


@torchsymbol(torch.stack, tags=("shape",))
def stack(tensors, dim=0):
    dim = canonicalize_dim(tensors[0].ndim + 1, dim)
    return cat([unsqueeze(x, dim) for x in tensors], dim)


@torchsymbol(torch.hstack, tags=("shape",))
def hstack(tensors):
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


@torchsymbol(torch.vstack, tags=("shape",))
def vstack(tensors):
    return cat([x if x.ndim >= 2 else reshape(x, (1, -1)) for x in tensors], 0)


@torchsymbol(torch.flip, torch.Tensor.flip, tags=("shape",))
def flip(a, dims):
    return prims.flip(a, canonicalize_dims(a.ndim, dims))


@torchsymbol(torch.roll, torch.Tensor.roll, tags=("shape",))
def roll(a, shifts, dims=None):
    if dims is None:
        return reshape(roll(flatten(a), shifts, 0), tuple(a.shape))
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    out = a
    for shift, dim in zip(shifts, dims):
        dim = canonicalize_dim(a.ndim, dim)
        length = a.shape[dim]
        if length == 0:
            continue
        shift %= length
        if shift:
            head = narrow(out, dim, length - shift, shift)
            tail = narrow(out, dim, 0, length - shift)
            out = cat([head, tail], dim)
    return out


@torchsymbol(torch.Tensor.repeat, tags=("shape",))
def repeat(a, *sizes):
    sizes = _shape_arg(sizes)
    if len(sizes) < a.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    a = reshape(a, (1,) * (len(sizes) - a.ndim) + tuple(a.shape))
    # interleave a new axis of length `r` before each dim, broadcast, then merge
    expanded_shape, target, final = [], [], []
    for r, s in zip(sizes, a.shape):
        expanded_shape += [1, s]
        target += [r, s]
        final.append(r * s)
    out = reshape(a, tuple(expanded_shape))
    out = expand_to(out, tuple(target))
    return reshape(out, tuple(final))


@torchsymbol(torch.tile, torch.Tensor.tile, tags=("shape",))
def tile(a, dims):
    dims = tuple(dims)
    if len(dims) < a.ndim:
        dims = (1,) * (a.ndim - len(dims)) + dims
    return repeat(a, dims)


@torchsymbol(torch.repeat_interleave, torch.Tensor.repeat_interleave, tags=("shape",))
def repeat_interleave(a, repeats, dim=None, *, output_size=None):
    if isinstance(repeats, torch.Tensor):
        raise NotImplementedError("repeat_interleave with tensor repeats has a data-dependent shape")
    if dim is None:
        a, dim = flatten(a), 0
    dim = canonicalize_dim(a.ndim, dim)
    shape = list(a.shape)
    out = unsqueeze(a, dim + 1)
    target = shape[: dim + 1] + [repeats] + shape[dim + 1 :]
    out = expand_to(out, tuple(target))
    shape[dim] *= repeats
    return reshape(out, tuple(shape))


# -- in-place forms whose functional version is not "the same name without the underscore" -------------
def _full_like_value(a, value):
    from thunder.torch.creation import full_like

    return full_like(a, value)


def _copy_value(a, src, non_blocking=False):
    src = to_dtype(src, a.dtype)
    return expand_to(src, tuple(a.shape)) if tuple(src.shape) != tuple(a.shape) else prims.convert_element_type(src, a.dtype)


INPLACE_SPECIAL = {
    "copy_": _copy_value,
    "zero_": lambda a: _full_like_value(a, 0),
    "fill_": lambda a, value: _full_like_value(a, value) if not isinstance(value, torch.Tensor) else expand_to(value, a.shape),
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
    return lambda base, new: setitem_functional(base, (slice(None),) * canonicalize_dim(base.ndim, dim) + (index,), new)


def _scatter_narrow(base_obj, rest, kwargs, i):
    dim, start, length = rest[0], rest[1], rest[2]

    def scatter(base, new):
        d = canonicalize_dim(base.ndim, dim)
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
    torch.transpose: True, torch.Tensor.transpose: True, torch.permute: True, torch.Tensor.permute: True,
    torch.t: True, torch.Tensor.t: True, torch.Tensor.T.__get__: True, torch.Tensor.mT.__get__: True,
    torch.Tensor.expand: True, torch.Tensor.expand_as: True, torch.movedim: True, torch.Tensor.movedim: True,
    torch.diagonal: True, torch.Tensor.diagonal: True, torch.Tensor.unfold: True, torch.as_strided: True,
}  # fmt: skip
