"""Shape and view operations: reshape/view, permute/transpose, squeeze/unsqueeze, expand, flatten,
narrow/select/split/chunk/unbind (on `basic_index`: ints, slices and None), cat/stack, flips and repeats.
Indexing (`__getitem__`, functional `__setitem__`, gather/scatter, index_*) lives in `thunder.torch.indexing`,
which builds on this module; how in-place updates of views reach their base, in `thunder.torch.views`, which
builds on both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from thunder import prims
from thunder.core.dtypes import result_dtype
from thunder.core.proxies import IntegerProxy, TensorProxy
from thunder.core.symbol import OpTag
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES
from thunder.torch.base import (
    broadcast_shapes,
    canonicalize_dim,
    canonicalize_dims,
    expand_to,
    register_handler,
    to_dtype,
    torchsymbol,
)
from thunder.torch.elementwise import add

__all__ = [
    "reshape", "view", "permute", "transpose", "t", "unsqueeze", "squeeze", "flatten", "unflatten", "expand",
    "expand_as", "contiguous", "select", "narrow", "split", "chunk", "unbind", "cat", "stack", "movedim", "view_as",
    "reshape_as", "broadcast_to", "detach", "with_data", "swapaxes", "flip", "repeat", "tile",
    "repeat_interleave", "hstack", "vstack", "roll", "clone", "ravel", "narrow_copy", "fliplr", "flipud", "rot90",
    "atleast_1d", "atleast_2d", "atleast_3d", "column_stack", "dstack", "tensor_split", "hsplit", "vsplit", "dsplit",
    "broadcast_tensors", "unfold", "size_entry",
]  # fmt: skip


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        return tuple(shape[0])
    return tuple(shape)


def size_entry(s):
    """A size as given: an IntegerProxy (a symbolic size) stays one, anything else becomes an int."""
    return s if isinstance(s, IntegerProxy) else int(s)


def infer_shape(numel: int, shape: Sequence[int]) -> tuple[int, ...]:
    shape = [size_entry(s) for s in shape]
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


# Tensor.reshape/permute/flip/tile come first: the torch executor calls the first callable with the
# arguments as recorded, and only the methods accept both `x.reshape(2, 3)` and `x.reshape((2, 3))`.
@torchsymbol(torch.Tensor.reshape, torch.reshape, tags=("shape", "view"))
def reshape(a, *sizes, shape=None):
    shape = infer_shape(a.numel(), _shape_arg(sizes) if shape is None else tuple(shape))
    if shape == tuple(a.shape):
        return a
    return prims.reshape(a, shape)


@torchsymbol(torch.Tensor.view, tags=("shape", "view"))
def view(a, *shape):
    if len(shape) == 1 and isinstance(shape[0], torch.dtype):
        raise NotImplementedError("Tensor.view(dtype) reinterprets memory; Thunder does not support it")
    return reshape(a, *shape)


@torchsymbol(torch.Tensor.view_as, tags=("shape", OpTag.GRAD_FROM_DECOMPOSITION))
def view_as(a, other):
    return reshape(a, tuple(other.shape))


@torchsymbol(torch.Tensor.reshape_as, tags=("shape", OpTag.GRAD_FROM_DECOMPOSITION))
def reshape_as(a, other):
    return reshape(a, tuple(other.shape))


@torchsymbol(torch.Tensor.permute, torch.permute, tags=("shape", "view"))
def permute(a, *dim_args, dims=None):
    dims = canonicalize_dims(a.ndim, _shape_arg(dim_args) if dims is None else tuple(dims))
    if len(dims) != a.ndim or len(set(dims)) != a.ndim:
        raise RuntimeError(f"permute(): the dims {dims} are not a permutation of the input's {a.ndim} dims")
    if dims == tuple(range(a.ndim)):
        return a
    return prims.permute(a, dims)


@torchsymbol(torch.transpose, torch.Tensor.transpose, torch.swapaxes, torch.Tensor.swapaxes, torch.swapdims,
             torch.Tensor.swapdims, tags=("shape", "view"))  # fmt: skip
def transpose(a, dim0, dim1):
    if a.ndim == 0:
        return a
    dim0, dim1 = canonicalize_dim(a.ndim, dim0), canonicalize_dim(a.ndim, dim1)
    perm = list(range(a.ndim))
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return permute(a, perm)


swapaxes = transpose


@torchsymbol(torch.t, torch.Tensor.t, tags=("shape", "view"))
def t(a):
    if a.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {a.ndim}D")
    return transpose(a, 0, 1) if a.ndim == 2 else a


register_handler(torch.Tensor.T.__get__, lambda a: permute(a, tuple(reversed(range(a.ndim)))))
register_handler(torch.Tensor.mT.__get__, lambda a: transpose(a, -2, -1))


@torchsymbol(torch.movedim, torch.Tensor.movedim, torch.moveaxis, torch.Tensor.moveaxis, tags=("shape", "view"))
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


@torchsymbol(torch.unsqueeze, torch.Tensor.unsqueeze, tags=("shape", "view"))
def unsqueeze(a, dim):
    dim = canonicalize_dim(a.ndim + 1, dim)
    shape = list(a.shape)
    shape.insert(dim, 1)
    return prims.reshape(a, tuple(shape))


@torchsymbol(torch.squeeze, torch.Tensor.squeeze, tags=("shape", "view"))
def squeeze(a, dim=None):
    if dim is None:
        dims = tuple(i for i, s in enumerate(a.shape) if s == 1)
    else:
        dims = tuple(d for d in canonicalize_dims(a.ndim, dim) if a.ndim and a.shape[d] == 1)
    if not dims:
        return a
    return prims.squeeze(a, dims)


@torchsymbol(torch.flatten, torch.Tensor.flatten, tags=("shape", "view"))
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


@torchsymbol(torch.unflatten, torch.Tensor.unflatten, tags=("shape", "view"))
def unflatten(a, dim, sizes):
    dim = canonicalize_dim(a.ndim, dim)
    sizes = infer_shape(a.shape[dim], sizes)
    return reshape(a, tuple(a.shape[:dim]) + tuple(sizes) + tuple(a.shape[dim + 1 :]))


@torchsymbol(torch.Tensor.expand, tags=("shape", "view"))
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


@torchsymbol(torch.Tensor.expand_as, tags=("shape", OpTag.GRAD_FROM_DECOMPOSITION))
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


@torchsymbol(name="with_data")
def with_data(tensor, data):
    """`tensor` after a write autograd does not record (under torch.no_grad(), or through `detach()` or `.data`):
    the values of `data` with the autograd identity of `tensor`, whose gradient a later use reaches, as eager's
    tensor object keeps its grad_fn (or stays the leaf) while its data changes. A copy in the trace; no torch
    counterpart."""
    return prims.convert_element_type(data, data.dtype)


def _with_data_grad(tensor, data):
    out = prims.convert_element_type(data, data.dtype)
    put_grad(tensor, get_grad(out))
    return out


GRAD_RULES[with_data.id] = _with_data_grad


# -- narrow, select, split ------------------------------------------------------------------------------
def _slice_bounds(k: slice, length) -> tuple:
    """slice.indices for a length (and bounds) that may be symbolic: comparisons guard their outcomes."""
    if not any(isinstance(v, IntegerProxy) for v in (k.start, k.stop, k.step, length)):
        return k.indices(length)
    step = 1 if k.step is None else k.step
    if step <= 0:
        raise ValueError("step must be greater than zero")

    def clamp(v, default):
        if v is None:
            return default
        if v < 0:
            v = v + length
            return 0 if v < 0 else v
        return length if v > length else v

    return clamp(k.start, 0), clamp(k.stop, length), step


def basic_index(a, key: tuple):
    """`a[key]` for a normalized basic key (one entry per dim of `a`, plus `None`s): ints, slices and `None`,
    whose bounds may be symbolic. `thunder.torch.indexing.getitem` normalizes keys and handles the rest."""
    starts, ends, strides, final_shape = [], [], [], []
    dim = 0
    squeeze_dims = []
    for k in key:
        if k is None:
            final_shape.append(1)
            continue
        length = a.shape[dim]
        if isinstance(k, (int, IntegerProxy)):
            if not -length <= k < length:
                raise IndexError(f"index {k} is out of bounds for dimension {dim} with size {length}")
            k = k + length if k < 0 else k
            starts.append(k), ends.append(k + 1), strides.append(1)
            squeeze_dims.append(dim)
        else:
            start, stop, step = _slice_bounds(k, length)
            if step <= 0:
                raise ValueError("step must be greater than zero")
            stop = start if stop < start else stop
            starts.append(start), ends.append(stop), strides.append(step)
            final_shape.append((stop - start + step - 1) // step)
        dim += 1
    out = a
    if any(s != 0 for s in starts) or tuple(ends) != tuple(a.shape) or any(s != 1 for s in strides):
        out = prims.slice(a, starts, ends, strides)
    if tuple(out.shape) != tuple(final_shape):
        out = prims.reshape(out, tuple(final_shape))
    return out


@torchsymbol(torch.select, torch.Tensor.select, tags=("shape",))
def select(a, dim, index):
    dim = canonicalize_dim(a.ndim, dim)
    return basic_index(a, (slice(None),) * dim + (index,) + (slice(None),) * (a.ndim - dim - 1))


@torchsymbol(torch.narrow, torch.Tensor.narrow, tags=("shape",))
def narrow(a, dim, start, length):
    dim = canonicalize_dim(a.ndim, dim)
    if isinstance(start, torch.Tensor):
        return prims.take(a, _narrow_indices(a, dim, start, length), dim)
    start = start % a.shape[dim] if start < 0 else start
    if length < 0 or start + length > a.shape[dim]:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({a.shape[dim]}).")
    return basic_index(a, (slice(None),) * dim + (slice(start, start + length),) + (slice(None),) * (a.ndim - dim - 1))


def _narrow_indices(a, dim: int, start: torch.Tensor, length: int) -> torch.Tensor:
    """The positions `narrow(a, dim, start, length)` reads, for a `start` given as a 0-d integer tensor.

    Eager reads the tensor's value (`.item()`) and returns a view at that offset; a trace cannot know the value, so
    it indexes `a` with `offset + arange(length)` instead (the same values and gradients, as a copy). The offset
    comes from `prims.narrow_offset`, which checks the start when it runs and raises eager's error for one out of
    range, so the indexing never reads outside the dimension.
    """
    if start.ndim != 0 or start.dtype.is_floating_point or start.dtype.is_complex:
        raise RuntimeError("start must be an 0-dim integral Tensor.")
    size = a.shape[dim]
    if length < 0 or length > size:
        raise RuntimeError(f"narrow(): length ({length}) must be in the range [0, {size}] of dimension {dim}.")
    offset = prims.narrow_offset(start, size, length)
    return add(prims.iota(length, start=0, step=1, dtype=torch.int64, device=a.device), offset)


def _split_sizes(length: int, split_size_or_sections) -> list[int]:
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        return [min(size, length - i) for i in range(0, length, size)] if length else [0]
    sizes = list(split_size_or_sections)
    if sum(sizes) != length:
        raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {length}")
    return sizes


@torchsymbol(torch.split, torch.Tensor.split, torch.Tensor.split_with_sizes, tags=("shape", "view"))
def split(a, split_size_or_sections, dim=0):
    dim = canonicalize_dim(a.ndim, dim)
    outs, start = [], 0
    for size in _split_sizes(a.shape[dim], split_size_or_sections):
        outs.append(narrow(a, dim, start, size))
        start += size
    return tuple(outs)


@torchsymbol(torch.chunk, torch.Tensor.chunk, tags=("shape", "view"))
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
    # eager skips legacy empty tensors (shape (0,)) beside tensors of other ranks, but still promotes their dtype
    # and gives them a gradient: reshaped to the others' shape with no elements along `dim`, they stay in the graph
    dtype = result_dtype(*tensors)
    legacy_empty = [x.ndim == 1 and x.shape[0] == 0 for x in tensors]
    reference = next((x for x, empty in zip(tensors, legacy_empty) if not empty), None)
    if reference is not None and reference.ndim != 1:
        dim = canonicalize_dim(reference.ndim, dim)
        empty_shape = tuple(0 if d == dim else n for d, n in enumerate(reference.shape))
        tensors = [reshape(x, empty_shape) if empty else x for x, empty in zip(tensors, legacy_empty)]
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
    tensors = [x if x.ndim >= 1 else reshape(x, (1,)) for x in tensors]  # as eager: atleast_1d first
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


@torchsymbol(torch.vstack, tags=("shape",))
def vstack(tensors):
    return cat([x if x.ndim >= 2 else reshape(x, (1, -1)) for x in tensors], 0)


@torchsymbol(torch.Tensor.flip, torch.flip, tags=("shape",))
def flip(a, *dim_args, dims=None):
    dims = canonicalize_dims(a.ndim, _shape_arg(dim_args) if dims is None else dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"flip(): dims {dims} appear multiple times")
    return prims.flip(a, dims)


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


@torchsymbol(torch.Tensor.tile, torch.tile, tags=("shape",))
def tile(a, *dim_args, dims=None):
    dims = _shape_arg(dim_args) if dims is None else tuple(dims)
    if len(dims) < a.ndim:
        dims = (1,) * (a.ndim - len(dims)) + dims
    return repeat(a, dims)


@torchsymbol(torch.repeat_interleave, torch.Tensor.repeat_interleave, tags=("shape",))
def repeat_interleave(a, repeats, dim=None, *, output_size=None):
    if isinstance(repeats, torch.Tensor) and output_size is None:
        raise NotImplementedError(
            "repeat_interleave with tensor repeats computed inside the function has a data-dependent shape; pass "
            "the repeats as an argument of the jitted function (their values are then read and guarded), or "
            "output_size="
        )
    if dim is None:
        a, dim = flatten(a), 0
    dim = canonicalize_dim(a.ndim, dim)
    if isinstance(repeats, torch.Tensor):
        return prims.take(a, _repeated_positions(a.shape[dim], repeats, output_size, a.device), dim)
    shape = list(a.shape)
    out = unsqueeze(a, dim + 1)
    target = shape[: dim + 1] + [repeats] + shape[dim + 1 :]
    out = expand_to(out, tuple(target))
    shape[dim] *= repeats
    return reshape(out, tuple(shape))


def _repeated_positions(length: int, repeats: torch.Tensor, output_size: int, device) -> torch.Tensor:
    """For each of the `output_size` positions of repeat_interleave's output, the input position it copies: the
    number of cumulative repeat counts at or below it (no value is read, as with eager's `output_size`)."""
    if repeats.ndim > 1 or repeats.dtype.is_floating_point or repeats.dtype.is_complex or repeats.dtype == torch.bool:
        raise RuntimeError("repeat_interleave: repeats must be a 0-d or 1-d tensor of integers")
    counts = prims.convert_element_type(repeats, torch.int64)
    if counts.ndim == 0 or counts.shape[0] == 1:
        counts = prims.broadcast_in_dim(prims.reshape(counts, ()), (length,), ())
    elif counts.shape[0] != length:
        raise RuntimeError(
            f"repeats must have the same size as input along dim, but got repeats.size(0) = {counts.shape[0]} and "
            f"input.size(dim) = {length}"
        )
    ends = prims.broadcast_in_dim(prims.cumsum(counts, 0), (output_size, length), (1,))
    positions = prims.iota(output_size, start=0, step=1, dtype=torch.int64, device=device)
    passed = prims.ge(prims.broadcast_in_dim(positions, (output_size, length), (0,)), ends)
    return prims.sum(prims.convert_element_type(passed, torch.int64), (1,))


@torchsymbol(torch.ravel, torch.Tensor.ravel, tags=("shape",))
def ravel(a):
    return reshape(a, (-1,))


@torchsymbol(torch.narrow_copy, torch.Tensor.narrow_copy, tags=("shape",))
def narrow_copy(a, dim, start, length):
    out = narrow(a, dim, start, length)
    return prims.convert_element_type(out, out.dtype) if out is a else out


@torchsymbol(torch.fliplr, torch.Tensor.fliplr, tags=("shape",))
def fliplr(a):
    if a.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return flip(a, (1,))


@torchsymbol(torch.flipud, torch.Tensor.flipud, tags=("shape",))
def flipud(a):
    if a.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return flip(a, (0,))


@torchsymbol(torch.rot90, torch.Tensor.rot90, tags=("shape",))
def rot90(a, k=1, dims=(0, 1)):
    if len(dims) != 2 or a.ndim < 2:
        raise RuntimeError(f"expected total rotation dims == 2 and total dims >= 2, but got {len(dims)} and {a.ndim}")
    d0, d1 = canonicalize_dims(a.ndim, dims)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return transpose(flip(a, (d1,)), d0, d1)
    if k == 2:
        return flip(a, (d0, d1))
    if k == 3:
        return transpose(flip(a, (d0,)), d0, d1)
    return prims.convert_element_type(a, a.dtype)


def _tensors_arg(tensors) -> tuple:
    """`f(a, b)` and `f((a, b))` both mean the tensors a and b."""
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        return tuple(tensors[0])
    return tuple(tensors)


def _atleast(ndim: int, shape_for):
    def meta(*tensors):
        many = len(tensors) != 1 or isinstance(tensors[0], (tuple, list))
        outs = tuple(x if x.ndim >= ndim else reshape(x, shape_for(x)) for x in _tensors_arg(tensors))
        return outs if many else outs[0]

    return meta


atleast_1d = torchsymbol(torch.atleast_1d, name="atleast_1d", tags=("shape",))(_atleast(1, lambda x: (1,)))
atleast_2d = torchsymbol(torch.atleast_2d, name="atleast_2d", tags=("shape",))(
    _atleast(2, lambda x: (1,) * (2 - x.ndim) + tuple(x.shape))
)
atleast_3d = torchsymbol(torch.atleast_3d, name="atleast_3d", tags=("shape",))(
    _atleast(3, lambda x: {0: (1, 1, 1), 1: (1, x.numel(), 1), 2: (*x.shape, 1)}[x.ndim])
)


@torchsymbol(torch.column_stack, tags=("shape",))
def column_stack(tensors):
    return hstack([reshape(x, (x.numel(), 1)) if x.ndim <= 1 else x for x in tensors])


@torchsymbol(torch.dstack, tags=("shape",))
def dstack(tensors):
    return cat(list(atleast_3d(tuple(tensors))), 2)


register_handler(torch.row_stack, lambda tensors: vstack(tensors))


@torchsymbol(torch.tensor_split, torch.Tensor.tensor_split, tags=("shape",))
def tensor_split(a, indices_or_sections, dim=0):
    if isinstance(indices_or_sections, torch.Tensor):
        raise NotImplementedError(
            "tensor_split with a tensor of indices computed inside the function (or not of ints): pass it as an "
            "argument of the jitted function (its values are then read and guarded), or a Python int or list"
        )
    d = canonicalize_dim(a.ndim, dim)
    length = a.shape[d]
    if isinstance(indices_or_sections, int):
        n = indices_or_sections
        if n <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {n}")
        bounds = [i * (length // n) + min(i, length % n) for i in range(n + 1)]
    else:
        bounds = [0, *(min(max(i, 0), length) for i in indices_or_sections), length]
    return tuple(narrow(a, d, start, max(end - start, 0)) for start, end in zip(bounds, bounds[1:]))


def _directional_split(name: str, dim: int, min_ndim: int):
    def meta(a, indices_or_sections):
        if a.ndim < min_ndim:
            raise RuntimeError(f"torch.{name} requires a tensor with at least {min_ndim} dimension, but got {a.ndim}")
        d = 0 if name == "hsplit" and a.ndim == 1 else dim
        if isinstance(indices_or_sections, int) and (indices_or_sections == 0 or a.shape[d] % indices_or_sections):
            raise RuntimeError(
                f"torch.{name} attempted to split along dimension {d}, but the size of the dimension {a.shape[d]} "
                f"is not divisible by the split_size {indices_or_sections}!"
            )
        return tensor_split(a, indices_or_sections, d)

    meta.__name__ = name
    return torchsymbol(getattr(torch, name), getattr(torch.Tensor, name), name=name, tags=("shape",))(meta)


hsplit = _directional_split("hsplit", 1, 1)
vsplit = _directional_split("vsplit", 0, 2)
dsplit = _directional_split("dsplit", 2, 3)
register_handler(torch.split_with_sizes, lambda a, split_sizes, dim=0: split(a, split_sizes, dim))


@torchsymbol(torch.broadcast_tensors, tags=("shape",))
def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*(tuple(x.shape) for x in tensors))
    return tuple(expand_to(x, shape) for x in tensors)


@torchsymbol(torch.Tensor.unfold, tags=("shape",))
def unfold(a, dimension, size, step):
    """Windows of `size` every `step` along `dimension`, as a new last dim (gathered, so a copy)."""
    d = canonicalize_dim(a.ndim, dimension)
    length = a.shape[d] if a.ndim else 1
    if size > length or step <= 0:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {length} but size is {size}")
    if a.ndim == 0:
        return reshape(a, (1,))
    count = (length - size) // step + 1
    starts = prims.iota(count, start=0, step=step, dtype=torch.int64, device=a.device)
    offsets = prims.iota(size, start=0, step=1, dtype=torch.int64, device=a.device)

    index = reshape(add(unsqueeze(starts, 1), unsqueeze(offsets, 0)), (count * size,))
    windows = prims.take(a, index, d)
    windows = reshape(windows, tuple(a.shape[:d]) + (count, size) + tuple(a.shape[d + 1 :]))
    return movedim(windows, d + 1, -1)


# -- grad rules at this level: the gradient of splitting is one concatenation (not a zero-padded sum per piece)
def _split_grad(a, split_size_or_sections, dim=0):
    outs = split(a, split_size_or_sections, dim)
    put_grad(a, cat([get_grad(o) for o in outs], canonicalize_dim(a.ndim, dim)))
    return outs


def _chunk_grad(a, chunks, dim=0):
    outs = chunk(a, chunks, dim)
    put_grad(a, cat([get_grad(o) for o in outs], canonicalize_dim(a.ndim, dim)))
    return outs


def _unbind_grad(a, dim=0):
    outs = unbind(a, dim)
    put_grad(a, stack([get_grad(o) for o in outs], canonicalize_dim(a.ndim, dim)))
    return outs


GRAD_RULES[split.id] = _split_grad
GRAD_RULES[chunk.id] = _chunk_grad
GRAD_RULES[unbind.id] = _unbind_grad
