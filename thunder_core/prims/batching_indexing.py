"""Batching rules for the indexing prims (`take`, `take_along_axis`, `advanced_index`), beside the others in
thunder/prims/batching.py: an index that differs per example (vmap over index ranges, as transformers' mask
builders do) becomes a gather along the batch."""

from __future__ import annotations

from thunder import prims
from thunder.prims.batching import BATCHING_RULES, broadcast_batch


def _batched(t, position, batched, batch):
    return t if position in batched else broadcast_batch(t, batch)


def _take(batch, batched, a, indices, dim):
    if 1 not in batched:  # one index for every example: select along the shifted dim
        return prims.take(a, indices, dim + 1)
    a = _batched(a, 0, batched, batch)
    scalar = indices.ndim == 1  # a 0-d index per example: the dim disappears
    index = prims.reshape(indices, (batch, 1)) if scalar else indices
    count = index.shape[1]
    # index[b, j] placed at dim + 1 and broadcast over the other dims: out[b, ..., j, ...] = a[b, ..., index[b, j], ...]
    shape = (*a.shape[: dim + 1], count, *a.shape[dim + 2 :])
    spread = prims.broadcast_in_dim(index, shape, (0, dim + 1))
    out = prims.take_along_axis(a, spread, dim + 1)
    return prims.squeeze(out, (dim + 1,)) if scalar else out


def _take_along_axis(batch, batched, a, index, dim):
    return prims.take_along_axis(_batched(a, 0, batched, batch), _batched(index, 1, batched, batch), dim + 1)


BATCHING_RULES["prims.take"] = _take
BATCHING_RULES["prims.take_along_axis"] = _take_along_axis
