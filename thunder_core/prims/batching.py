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

from thunder.prims import batching_indexing  # noqa: E402,F401  (registers the indexing prims' rules)
