"""Batching rules for vmap, beside the prims (as their grad rules are in grads.py).

A rule takes the bound symbol's arguments, where every batched tensor carries its batch dimension at
dimension 0 (size `batch`), plus the set `batched` of argument positions holding batched tensors, and
returns the outputs with the batch dimension at 0. Unbatched tensors keep their per-example shape; a
rule broadcasts them where the operation needs equal shapes. The vmap transform
(thunder/transforms/vmap.py) looks rules up in BATCHING_RULES by symbol id; a torch-level symbol without
a rule is batched through its decomposition.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from thunder import prims

BATCHING_RULES: dict[str, Callable] = {}


def _rule(*names: str):
    def register(fn):
        for name in names:
            BATCHING_RULES[f"prims.{name}"] = fn
        return fn

    return register


def broadcast_batch(t, batch: int):
    """An unbatched tensor repeated along a new leading batch dimension of size `batch`."""
    return prims.broadcast_in_dim(t, (batch, *t.shape), tuple(range(1, t.ndim + 1)))


def _elementwise(sym):
    def rule(batch, batched, *args, **kwargs):
        args = [broadcast_batch(a, batch) if isinstance(a, torch.Tensor) and i not in batched else a
                for i, a in enumerate(args)]  # fmt: skip
        return sym(*args, **kwargs)

    return rule


for _name in (*prims.UNARY_ELEMENTWISE, *prims.BINARY_ELEMENTWISE, "where", "convert_element_type"):
    BATCHING_RULES[f"prims.{_name}"] = _elementwise(getattr(prims, _name))


def _shift(dims):
    return tuple(d + 1 for d in dims)


@_rule("broadcast_in_dim")
def _broadcast_in_dim(batch, batched, a, shape, broadcast_dimensions):
    return prims.broadcast_in_dim(a, (batch, *shape), (0, *_shift(broadcast_dimensions)))


@_rule("reshape")
def _reshape(batch, batched, a, shape):
    return prims.reshape(a, (batch, *shape))


@_rule("permute")
def _permute(batch, batched, a, perm):
    return prims.permute(a, (0, *_shift(perm)))


@_rule("slice")
def _slice(batch, batched, a, start_indices, end_indices, strides=None):
    strides = (1,) * len(start_indices) if strides is None else strides
    return prims.slice(a, (0, *start_indices), (batch, *end_indices), (1, *strides))


@_rule("pad")
def _pad(batch, batched, a, padding_value, padding_config):
    return prims.pad(a, padding_value, ((0, 0, 0), *padding_config))


@_rule("squeeze")
def _squeeze(batch, batched, a, dims):
    return prims.squeeze(a, _shift(dims))


@_rule("flip")
def _flip(batch, batched, a, dims):
    return prims.flip(a, _shift(dims))


@_rule("cat")
def _cat(batch, batched, tensors, dim):
    # `tensors` is one argument (a list): member j is batched when (0, j) is in `batched`
    members = [t if (0, j) in batched else broadcast_batch(t, batch) for j, t in enumerate(tensors)]
    return prims.cat(members, dim + 1)


_REDUCTIONS = {name: getattr(prims, name) for name in ("sum", "prod", "amax", "amin", "var")}


def _reduction_rule(name):
    def rule(batch, batched, a, dims, **kwargs):
        if not dims:
            # over no dimension: each element is its own group. torch reads an empty dim list as "all
            # dimensions", so reduce over a new trailing dimension of size 1 instead.
            return _REDUCTIONS[name](prims.reshape(a, (*a.shape, 1)), (a.ndim,), **kwargs)
        return _REDUCTIONS[name](a, _shift(dims), **kwargs)

    return rule


for _name in _REDUCTIONS:
    BATCHING_RULES[f"prims.{_name}"] = _reduction_rule(_name)


def _dim_rule(name):
    def rule(batch, batched, a, dim, *rest):
        if dim is None:  # over all elements of each example
            return getattr(prims, name)(prims.reshape(a, (batch, a.numel() // max(batch, 1))), 1, *rest)
        if a.ndim == 1:  # scalar examples: the op runs along a new dimension of size 1
            out = getattr(prims, name)(prims.reshape(a, (batch, 1)), 1, *rest)
            return out if out.ndim == 1 else prims.reshape(out, (batch,))
        return getattr(prims, name)(a, dim + 1, *rest)

    return rule


for _name in ("argmax", "argmin", "cumsum", "cumprod"):
    BATCHING_RULES[f"prims.{_name}"] = _dim_rule(_name)


@_rule("matmul")
def _matmul(batch, batched, a, b):
    # Give both operands a batch dimension and the same rank, so that torch.matmul's broadcasting over
    # leading dimensions lines the batch dimensions up; vectors become matrices and are squeezed after.
    a = a if 0 in batched else broadcast_batch(a, batch)
    b = b if 1 in batched else broadcast_batch(b, batch)
    a_vector, b_vector = a.ndim == 2, b.ndim == 2
    if a_vector:
        a = prims.reshape(a, (batch, 1, a.shape[1]))
    if b_vector:
        b = prims.reshape(b, (batch, b.shape[1], 1))
    rank = max(a.ndim, b.ndim)
    a = _insert_ones_after_batch(a, rank)
    b = _insert_ones_after_batch(b, rank)
    out = prims.matmul(a, b)
    keep = [d for d in range(out.ndim) if not ((a_vector and d == out.ndim - 2) or (b_vector and d == out.ndim - 1))]
    if len(keep) != out.ndim:
        out = prims.reshape(out, tuple(out.shape[d] for d in keep))
    return out


def _insert_ones_after_batch(t, rank: int):
    if t.ndim == rank:
        return t
    shape = (t.shape[0], *([1] * (rank - t.ndim)), *t.shape[1:])
    return prims.reshape(t, shape)


@_rule("linear")
def _linear(batch, batched, a, w, bias):
    if 1 not in batched and 2 not in batched:  # one weight for every example: linear maps leading dims
        a = a if 0 in batched else broadcast_batch(a, batch)
        return prims.linear(a, w, bias)
    out = _matmul(batch, {i for i in (0, 1) if i in batched}, a, _transpose_last(w, 1 in batched))
    if bias is not None:
        shape = tuple(out.shape)
        if 2 in batched:
            bias = prims.broadcast_in_dim(bias, shape, (0, len(shape) - 1) if bias.ndim == 2 else (0,))
        else:
            bias = prims.broadcast_in_dim(bias, shape, (len(shape) - 1,) if bias.ndim == 1 else ())
        out = prims.add(out, bias)
    return out


def _transpose_last(w, is_batched: bool):
    rank = w.ndim
    if rank - int(is_batched) < 2:
        return w
    perm = list(range(rank))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return prims.permute(w, tuple(perm))


# -- sorting, selection, gathering and scattering ------------------------------------------------------------
def _batched_all(batch, batched, args, positions):
    """args with every tensor at `positions` given the batch dimension (broadcast where it had none)."""
    return [broadcast_batch(a, batch) if i in positions and isinstance(a, torch.Tensor) and i not in batched else a
            for i, a in enumerate(args)]  # fmt: skip


def _along_new_dim(a, dim, op):
    """op(a, dim + 1) on a batched tensor; scalar examples (a of shape (batch,)) run along a new dimension of size
    1, removed from each output after."""
    if a.ndim > 1:
        return op(a, dim + 1)
    outs = op(prims.reshape(a, (a.shape[0], 1)), 1)
    return tuple(prims.reshape(o, (o.shape[0],)) if o.ndim == 2 and o.shape[1] == 1 else o for o in outs)


@_rule("sort")
def _sort(batch, batched, a, dim, descending, stable):
    return _along_new_dim(a, dim, lambda x, d: prims.sort(x, d, descending, stable))


@_rule("topk")
def _topk(batch, batched, a, k, dim, largest, sorted):
    return _along_new_dim(a, dim, lambda x, d: prims.topk(x, k, d, largest, sorted))


def _index_along(index, batch: int, shape, dim: int):
    """A batched 1-D index (batch, n) as an index of `shape` (batch first) selecting along `dim`: broadcast over the
    other dimensions, as take_along_axis and scatter_add read it."""
    return prims.broadcast_in_dim(index, tuple(shape), (0, dim))


@_rule("take")
def _take(batch, batched, a, indices, dim):
    if 1 not in batched:  # one index for every example: select along the shifted dimension
        return prims.take(a, indices, dim + 1)
    a = a if 0 in batched else broadcast_batch(a, batch)
    scalar_index = indices.ndim == 1  # each example selects one element: the dimension goes away
    if scalar_index:
        indices = prims.reshape(indices, (batch, 1))
    shape = list(a.shape)
    shape[dim + 1] = indices.shape[1]
    out = prims.take_along_axis(a, _index_along(indices, batch, shape, dim + 1), dim + 1)
    return prims.squeeze(out, (dim + 1,)) if scalar_index else out


@_rule("take_along_axis")
def _take_along_axis(batch, batched, a, index, dim):
    a, index = _batched_all(batch, batched, (a, index), {0, 1})
    if a.ndim == 1:  # scalar examples
        out = prims.take_along_axis(prims.reshape(a, (batch, 1)), prims.reshape(index, (batch, 1)), 1)
        return prims.reshape(out, (batch,))
    return prims.take_along_axis(a, index, dim + 1)


def _scatter_rule(name):
    def rule(batch, batched, a, index, value, dim):
        a, index, value = _batched_all(batch, batched, (a, index, value), {0, 1, 2})
        return getattr(prims, name)(a, index, value, dim + 1)

    return rule


for _name in ("scatter", "scatter_add"):
    BATCHING_RULES[f"prims.{_name}"] = _scatter_rule(_name)


@_rule("index_add")
def _index_add(batch, batched, a, index, value, dim):
    a, value = _batched_all(batch, batched, (a, index, value), {0, 2})[::2]
    if 1 not in batched:
        return prims.index_add(a, index, value, dim + 1)
    # one index per example: index_add along dim is a scatter_add with the index broadcast to value's shape
    return prims.scatter_add(a, _index_along(index, batch, value.shape, dim + 1), value, dim + 1)


@_rule("advanced_index")
def _advanced_index(batch, batched, a, indices):
    a = a if 0 in batched else broadcast_batch(a, batch)
    tensors = [i for i, x in enumerate(indices) if isinstance(x, torch.Tensor)]
    if not any((1, j) in batched for j in range(len(indices))):
        out = prims.advanced_index(a, (slice(None), *indices))
        # index tensors apart from each other put their dimensions first (numpy's rule), before the batch dimension
        if tensors and tensors != list(range(tensors[0], tensors[-1] + 1)):
            return _move_to_front(out, max(indices[i].ndim for i in tensors))
        return out
    # an index per example: index the batch dimension too, with 0..batch-1 lined up with the examples' indices
    indices = [broadcast_batch(x, batch) if isinstance(x, torch.Tensor) and (1, j) not in batched else x
               for j, x in enumerate(indices)]  # fmt: skip
    rank = max(indices[i].ndim for i in tensors)
    positions = prims.iota(batch, start=0, step=1, dtype=torch.int64, device=a.device)
    positions = prims.reshape(positions, (batch, *[1] * (rank - 1)))
    out = prims.advanced_index(a, (positions, *[_lead_batch(x, rank) for x in indices]))
    # the indexed dimensions come first: (batch, *index shape, *rest); per example they sit where the first index
    # tensor was when the index tensors are next to each other, else first as well
    adjacent = tensors == list(range(tensors[0], tensors[-1] + 1))
    if adjacent and tensors[0] > 0:
        index_dims = list(range(1, rank))
        before = list(range(rank, rank + tensors[0]))
        rest = list(range(rank + tensors[0], out.ndim))
        out = prims.permute(out, (0, *before, *index_dims, *rest))
    return out


def _lead_batch(x, rank: int):
    """A batched index tensor with ones inserted after its batch dimension up to `rank` dimensions."""
    if not isinstance(x, torch.Tensor) or x.ndim == rank:
        return x
    return prims.reshape(x, (x.shape[0], *[1] * (rank - x.ndim), *x.shape[1:]))


def _move_to_front(out, count: int):
    """out with dimension `count` (the batch dimension, after `count` index dimensions) moved to the front."""
    return prims.permute(out, (count, *range(count), *range(count + 1, out.ndim)))


# -- embedding and convolution ---------------------------------------------------------------------------------
def _offset_rows(indices, batch: int, rows: int):
    """Batched indices into `rows` rows per example, as indices into the examples' rows stacked (example b's
    rows start at b * rows)."""
    offsets = prims.iota(batch, start=0, step=rows, dtype=indices.dtype, device=indices.device)
    return prims.add(indices, prims.broadcast_in_dim(offsets, tuple(indices.shape), (0,)))


@_rule("embedding")
def _embedding(batch, batched, indices, weight, padding_idx):
    if 1 not in batched:  # one table: embedding takes indices of any shape
        return prims.embedding(indices, weight, padding_idx)
    indices = indices if 0 in batched else broadcast_batch(indices, batch)
    rows, width = weight.shape[1], weight.shape[2]
    # padding_idx changes only the gradient, which embedding_backward's rule handles
    return prims.embedding(_offset_rows(indices, batch, rows), prims.reshape(weight, (batch * rows, width)), None)


@_rule("embedding_backward")
def _embedding_backward(batch, batched, grad, indices, num_weights, padding_idx, scale_grad_by_freq, sparse):
    grad, indices = _batched_all(batch, batched, (grad, indices), {0, 1})
    # stacked tables: example b's rows are b * num_weights + row, so counts (scale_grad_by_freq) stay per example
    out = prims.embedding_backward(grad, _offset_rows(indices, batch, num_weights), batch * num_weights, None,
                                   scale_grad_by_freq, sparse)  # fmt: skip
    out = prims.reshape(out, (batch, num_weights, out.shape[-1]))
    if padding_idx is not None:  # the padding row gets no gradient in any example
        rows = prims.iota(num_weights, start=0, step=1, dtype=torch.int64, device=out.device)
        keep = prims.broadcast_in_dim(prims.ne(rows, padding_idx), tuple(out.shape), (1,))
        out = prims.where(keep, out, 0)
    return out


def _fold_examples_into_channels(t):
    """(batch, N, C, *spatial) -> (N, batch * C, *spatial): each example's channels become their own group."""
    t = prims.permute(t, (1, 0, *range(2, t.ndim)))
    return prims.reshape(t, (t.shape[0], t.shape[1] * t.shape[2], *t.shape[3:]))


def _unfold_examples_from_channels(t, batch: int):
    """(N, batch * C, *spatial) -> (batch, N, C, *spatial)."""
    t = prims.reshape(t, (t.shape[0], batch, t.shape[1] // batch, *t.shape[2:]))
    return prims.permute(t, (1, 0, *range(2, t.ndim)))


def _stack_weights(weight, batch: int):
    """(batch, O, I, *k) -> (batch * O, I, *k)."""
    return prims.reshape(weight, (batch * weight.shape[1], *weight.shape[2:]))


@_rule("convolution")
def _convolution(batch, batched, a, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    rest = (stride, padding, dilation, transposed, output_padding)
    if 1 not in batched and 2 not in batched:  # one filter: the examples join the convolution's own batch
        a_shape = tuple(a.shape)
        flat = prims.reshape(a, (a_shape[0] * a_shape[1], *a_shape[2:]))
        out = prims.convolution(flat, weight, bias, *rest, groups)
        return prims.reshape(out, (a_shape[0], a_shape[1], *out.shape[1:]))
    # a filter per example: the examples become groups of one grouped convolution
    a = a if 0 in batched else broadcast_batch(a, batch)
    weight = weight if 1 in batched else broadcast_batch(weight, batch)
    if bias is not None:
        bias = prims.reshape(bias if 2 in batched else broadcast_batch(bias, batch), (batch * bias.shape[-1],))
    out = prims.convolution(_fold_examples_into_channels(a), _stack_weights(weight, batch), bias, *rest, groups * batch)
    return _unfold_examples_from_channels(out, batch)


@_rule("convolution_backward")
def _convolution_backward(batch, batched, grad, a, weight, bias_shape, stride, padding, dilation, transposed,
                          output_padding, groups):  # fmt: skip
    grad, a, weight = _batched_all(batch, batched, (grad, a, weight), {0, 1, 2})
    stacked_bias = None if bias_shape is None else (batch * bias_shape[0],)
    grad_a, grad_w, grad_b = prims.convolution_backward(
        _fold_examples_into_channels(grad), _fold_examples_into_channels(a), _stack_weights(weight, batch),
        stacked_bias, stride, padding, dilation, transposed, output_padding, groups * batch)  # fmt: skip
    grad_a = _unfold_examples_from_channels(grad_a, batch)
    grad_w = prims.reshape(grad_w, (batch, grad_w.shape[0] // batch, *grad_w.shape[1:]))
    grad_b = None if grad_b is None else prims.reshape(grad_b, (batch, bias_shape[0]))
    return grad_a, grad_w, grad_b


@_rule("index_put")
def _index_put(batch, batched, a, indices, values, accumulate):
    if any(not isinstance(x, torch.Tensor) for x in indices):
        raise NotImplementedError("vmap: index_put with None among its indices has no batching rule; index with tensors")
    a = a if 0 in batched else broadcast_batch(a, batch)
    indices = [x if (1, j) in batched else broadcast_batch(x, batch) for j, x in enumerate(indices)]
    rank = max(x.ndim for x in indices)
    positions = prims.reshape(prims.iota(batch, start=0, step=1, dtype=torch.int64, device=a.device),
                              (batch, *[1] * (rank - 1)))  # fmt: skip
    if isinstance(values, torch.Tensor) and 2 in batched:
        # each example's values line up with its indexed shape (index shape, then a's other dims) from the right
        indexed_ndim = rank + a.ndim - 1 - len(indices)
        values = _lead_batch(values, indexed_ndim)
    return prims.index_put(a, (positions, *[_lead_batch(x, rank) for x in indices]), values, accumulate)
