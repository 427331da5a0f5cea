"""Trace passes of data parallelism, run at the post-autodiff stage on the forward/backward pair.

- `bucket_all_reduce_grads`: the backward packs parameter gradients into buckets, all-reduces each bucket as soon
  as its last gradient exists, and waits for all of them at the end (DDP).
- `sink_waits`: each `wait` moves down to just before the first use of its result, so computation overlaps the
  collective in flight.
- `prefetch_all_gathers`: each all_gather is issued just before the previous one is waited for (FSDP's prefetch
  of the next layer's parameters).
- `regather_saved_parameters`: the forward saves parameter shards instead of gathered parameters, and the
  backward gathers them again (FSDP ZeRO-3).

Each pass expects a valid trace and returns a new valid one (same outputs), built with `TraceCtx.from_trace`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from thunder import prims
from thunder.core.proxies import TensorProxy
from thunder.core.symbol import BoundSymbol
from thunder.core.trace import TraceCtx, tracectx
from thunder.distributed import prims as dist_prims
from thunder.distributed.accumulation import GradientStash, stash_gradient, take_stashed_gradient
from thunder.transforms.dce import dce


def _definitions(bsyms: Sequence[BoundSymbol]) -> dict[str, int]:
    return {o.name: i for i, b in enumerate(bsyms) for o in b.flat_outs}


def _param_grads(fwd: TraceCtx, bwd: TraceCtx, param_names: set[str]) -> list[tuple[int, TensorProxy]]:
    """(position, gradient) of the parameters named in `param_names`: the backward returns one gradient per forward
    input, in `fwd.args` order."""
    return [(i, g) for i, (a, g) in enumerate(zip(fwd.args, bwd.output))
            if isinstance(g, TensorProxy) and getattr(a, "name", None) in param_names]  # fmt: skip


def stash_param_grads(fwd: TraceCtx, bwd: TraceCtx, param_names: set[str], stash: GradientStash) -> TraceCtx:
    """no_sync: the parameters' gradients go to `stash` (accumulated there) and the backward returns None for
    them."""
    new = bwd.from_trace("no_sync: gradients accumulated in the stash")
    outputs = list(bwd.output)
    with tracectx(new):
        for i, g in _param_grads(fwd, bwd, param_names):
            stash_gradient(stash, fwd.args[i].name, g)
            outputs[i] = None
    new.output = outputs
    return new


def bucket_all_reduce_grads(fwd: TraceCtx, bwd: TraceCtx, param_names: set[str], bucket_bytes: int, group,
                            world: int, stash: GradientStash | None = None) -> TraceCtx:  # fmt: skip
    """All-reduces (sum, then divided by `world`) the gradients of the forward inputs named in `param_names`, the
    gradients accumulated in `stash` (if given) added first."""
    grads = _param_grads(fwd, bwd, param_names)
    defined = _definitions(bwd.bound_symbols)
    grads.sort(key=lambda ig: defined.get(ig[1].name, -1))
    new = bwd.from_trace("ddp: bucketed gradient all_reduce", [])
    issue_after: dict[int, list] = {}  # index of the bound symbol after which a bucket is complete (-1: inputs)
    pending = []
    outputs = list(bwd.output)
    with tracectx(new):
        for bucket in _buckets(grads, bucket_bytes):
            complete = max(defined.get(g.name, -1) for _, g in bucket)
            with new.collecting() as issued:
                if stash is not None:
                    bucket = [(i, prims.add(g, take_stashed_gradient(stash, fwd.args[i].name, g))) for i, g in bucket]
                buffer = prims.cat([prims.reshape(g, (g.numel(),)) for _, g in bucket], 0)
                future = dist_prims.all_reduce(buffer, "sum", group)
            issue_after.setdefault(complete, []).extend(issued)
            pending.append((future, bucket))
        new.bound_symbols.extend(issue_after.get(-1, ()))
        for index, bsym in enumerate(bwd.bound_symbols):
            new.bound_symbols.append(bsym)
            new.bound_symbols.extend(issue_after.get(index, ()))
        for future, bucket in pending:  # waited for at the end: the backward's computation overlaps them
            reduced = prims.div(dist_prims.wait(future), float(world))
            offset = 0
            for i, g in bucket:
                piece = prims.slice(reduced, [offset], [offset + g.numel()])
                outputs[i] = prims.reshape(piece, tuple(g.shape))
                offset += g.numel()
    new.output = outputs
    return new


def _buckets(grads: list, bucket_bytes: int) -> list[list]:
    """Consecutive gradients (in the order the backward makes them) of one dtype and device, up to bucket_bytes."""
    buckets: list[list] = []
    size = 0
    for i, g in grads:
        nbytes = g.numel() * g.element_size()
        if buckets and size + nbytes <= bucket_bytes and _same_kind(buckets[-1][-1][1], g):
            buckets[-1].append((i, g))
            size += nbytes
        else:
            buckets.append([(i, g)])
            size = nbytes
    return buckets


def _same_kind(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.device == b.device


def sink_waits(trace: TraceCtx) -> TraceCtx:
    """Moves each `wait` to just before the first bound symbol that reads its result (or to the end)."""
    waits = [b for b in trace.bound_symbols if b.sym.id == dist_prims.wait.id]
    if not waits:
        return trace
    waiting = {b.flat_outs[0].name: b for b in waits}
    result: list[BoundSymbol] = []
    for bsym in trace.bound_symbols:
        if bsym.sym.id == dist_prims.wait.id:
            continue
        for a in bsym.flat_args:
            w = waiting.pop(a.name, None)
            if w is not None:
                result.append(w)
        result.append(bsym)
    result.extend(w for w in waits if w.flat_outs[0].name in waiting)
    return trace.from_trace("distributed: waits moved to first use", result)


def prefetch_all_gathers(trace: TraceCtx) -> TraceCtx:
    """All-gathers of the trace's inputs (parameter shards) are issued one ahead: the first just before its wait,
    each next one just before the previous one's wait. While a layer computes, the next layer's parameters are in
    flight, and at most two are gathered ahead of their use. Expects each wait just before its first use."""
    inputs = {a.name for a in trace.args if isinstance(a, TensorProxy)}
    bsyms = list(trace.bound_symbols)
    waits = {b.args[0].name: b for b in bsyms if b.sym.id == dist_prims.wait.id}
    gathers = [b for b in bsyms if b.sym.id == dist_prims.all_gather.id and b.args[0].name in inputs
               and b.flat_outs[0].name in waits]  # fmt: skip
    if not gathers:
        return trace
    position = {id(b): i for i, b in enumerate(bsyms)}
    gathers.sort(key=lambda g: position[id(waits[g.flat_outs[0].name])])
    ordered_waits = [waits[g.flat_outs[0].name] for g in gathers]
    move_before: dict[int, list[BoundSymbol]] = {id(ordered_waits[0]): [gathers[0]]}
    for previous_wait, nxt in zip(ordered_waits, gathers[1:]):
        move_before.setdefault(id(previous_wait), []).append(nxt)
    moved = {id(g) for g in gathers}
    result: list[BoundSymbol] = []
    for b in bsyms:
        if id(b) in moved:
            continue
        result.extend(move_before.get(id(b), ()))
        result.append(b)
    return trace.from_trace("fsdp: all_gather prefetch", result)


def regather_saved_parameters(fwd: TraceCtx, bwd: TraceCtx, shard_names: set[str]) -> tuple[TraceCtx, TraceCtx]:
    """ZeRO-3: every value the forward saves that is a gathered parameter (made from a shard input by all_gather,
    wait, slice and reshape alone) is replaced in the saved list by its shard, and the backward gathers it again
    before it needs it. Expects the split pair of autodiff: the backward's arguments are the saved values, then
    the cotangents."""
    outputs, saved = fwd.output
    producer = {o.name: b for b in fwd.bound_symbols for o in b.flat_outs}
    fwd_inputs = {a.name: a for a in fwd.args if isinstance(a, TensorProxy)}
    new_saved: list = []
    regather: list[BoundSymbol] = []
    chained: set[int] = set()
    kept: set[str] = set()
    for s in saved:
        chain = _gather_chain(s, producer, shard_names)
        value = s if chain is None else fwd_inputs[chain[0].args[0].name]
        if value.name not in kept:
            kept.add(value.name)
            new_saved.append(value)
        if chain is None:
            continue
        for b in chain:
            if id(b) not in chained:
                chained.add(id(b))
                regather.append(b)
    if not regather:
        return fwd, bwd
    new_fwd = fwd.from_trace("fsdp zero3: save shards, not gathered parameters")
    new_fwd.output = (outputs, new_saved)
    n_saved = len(saved)
    cotangents = bwd.args[n_saved:]
    new_bwd = bwd.from_trace("fsdp zero3: regather parameters in the backward", [*regather, *bwd.bound_symbols])
    new_bwd.args = [*new_saved, *cotangents]
    return new_fwd, new_bwd


_GATHER_CHAIN_OPS = {dist_prims.all_gather.id, dist_prims.wait.id, "prims.slice", "prims.reshape"}


def _gather_chain(value, producer: dict, shard_names: set[str]) -> list[BoundSymbol] | None:
    """The bound symbols, in program order, that make `value` from a shard input through ops that only gather and
    reshape; None when it is made otherwise."""
    chain = []
    current = value
    while current.name not in shard_names:
        b = producer.get(current.name)
        if b is None or b.sym.id not in _GATHER_CHAIN_OPS or len(b.flat_args) != 1:
            return None
        chain.append(b)
        current = b.flat_args[0]
    if not any(b.sym.id == dist_prims.all_gather.id for b in chain):
        return None
    return chain[::-1]


def stash_reduce_scatters(bwd: TraceCtx, shard_positions: list[int], stash: GradientStash) -> TraceCtx:
    """FSDP no_sync: each reduce_scatter's input (a rank's full local gradient, padded) goes to `stash` instead, and
    the backward returns None for the shards. The k-th reduce_scatter is stashed under key k: the backward of the
    synchronizing entry has the same reduce_scatters in the same order (see `add_stashed_to_reduce_scatters`)."""
    result = []
    dropped: set[str] = set()
    k = 0
    for b in bwd.bound_symbols:
        if b.sym.id == dist_prims.reduce_scatter.id:
            result.append(stash_gradient.bind(stash, f"reduce_scatter{k}", b.args[0], output=None))
            dropped.add(b.flat_outs[0].name)
            k += 1
        elif b.sym.id == dist_prims.wait.id and b.args[0].name in dropped:
            continue
        else:
            result.append(b)
    new = bwd.from_trace("fsdp no_sync: local gradients accumulated in the stash", result)
    new.output = [None if i in shard_positions else g for i, g in enumerate(bwd.output)]
    return dce(new)


def add_stashed_to_reduce_scatters(bwd: TraceCtx, stash: GradientStash) -> TraceCtx:
    """The synchronizing backward after no_sync ones: each reduce_scatter reduces its gradient plus the stashed one."""
    new = bwd.from_trace("fsdp: stashed gradients added before reduce_scatter", [])
    k = 0
    with tracectx(new):
        for b in bwd.bound_symbols:
            if b.sym.id == dist_prims.reduce_scatter.id:
                g = b.args[0]
                total = prims.add(g, take_stashed_gradient(stash, f"reduce_scatter{k}", g))
                b = b.from_bsym(args=(total, *b.args[1:]))
                k += 1
            new.bound_symbols.append(b)
    return new
