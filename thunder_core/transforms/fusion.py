"""Fusion partitioning: cuts a trace into maximal regions of operations a fusion executor can fuse, and
replaces each region by the one bound symbol the executor makes of it.

Expects: a trace of `thunder.torch`/prims symbols (and of executors' operators, which carry their own Python
implementation; fusions of earlier fusion executors are left alone) and a fusion executor, one of `executors`.
Guarantees: the same results. Each operation that an executor earlier in the priority list can run is kept
as it is; each one the fusion executor can fuse is in exactly one region (an executor's operator too, when
the fusion executor accepts it); an operation neither can take is flattened into its decomposition when some
part of it is fusible, unless it is an executor's operator (its implementation, not its decomposition, is
what runs). Regions follow data flow and never form a cycle with the operations outside them, and the
program order stays valid.

How regions are found (the idea of torch.fx's CapabilityBasedPartitioner, with a cheaper cycle check):
every operation starts as its own group, and the groups are kept in a topological order ("slots"). For each
data edge between two fusible operations, in program order, their groups merge unless another group lies on
a path between them (merging would then both feed and consume it); then, under the same condition, groups
that read a common value merge (horizontal fusion), and so do groups that feed a common operation left out
of the regions (they run one after the other just before it anyway: one region instead of several, and one
compilation less) and groups that read results of a common operation left out of the regions (they can all
start once it ran: in a training step, the optimizer update of a normalization weight, whose gradient an
unfused backward kernel returns beside the gradient of its input, joins the region that continues the
backward from that input gradient, instead of being a region of its own), and, last, groups that compute what
the program writes back into its inputs (an optimizer step alone: one region updates every parameter). Only
groups whose slots lie between the two need to be searched; after a merge, the groups reachable from the earlier
group move after the merged group, so the slot order stays topological.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thunder.core.proxies import TensorProxy
from thunder.core.symbol import BoundSymbol, OpTag, flat_proxies
from thunder.core.trace import TraceCtx


@dataclass
class Region:
    """Bound symbols that one fusion executor runs as one callable.

    bound_symbols: in a valid program order. inputs: the proxies the region reads but does not define, in order
    of first use. outputs: the proxies it defines that are used after it (by other operations or as outputs of
    the trace), in order of definition.
    """

    bound_symbols: list[BoundSymbol]
    inputs: list[TensorProxy]
    outputs: list[TensorProxy]

    def split_at(self, cuts: Sequence[int]) -> list[Region]:
        """The region cut before each index in `cuts` (positions in `bound_symbols`): consecutive sub-regions,
        which run one after the other give the region's results. Each sub-region's outputs are what later
        sub-regions read and this region's own outputs; a fusion executor may fuse some of them and return the
        others' bound symbols as they are (see FusionExecutor.fuse)."""
        bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(self.bound_symbols))), len(self.bound_symbols)]
        pieces = [self.bound_symbols[lo:hi] for lo, hi in zip(bounds, bounds[1:])]
        needed = {p.name for p in self.outputs}
        regions: list[Region] = []
        for i in reversed(range(len(pieces))):
            region = _make_region(pieces[i], needed)
            regions.append(region)
            needed |= {p.name for p in region.inputs}
        return regions[::-1]

    def as_trace(self, fn_name: str = "fusion") -> TraceCtx:
        """The region as a standalone trace `fn_name(*inputs) -> tuple(outputs)`."""
        trace = TraceCtx(fn_name)
        trace.args = list(self.inputs)
        trace.bound_symbols = list(self.bound_symbols)
        trace.output = tuple(self.outputs)
        trace.names = {p.name for p in self.inputs}
        for bsym in self.bound_symbols:
            trace.names.update(p.name for p in bsym.flat_outs)
        return trace


def fuse_regions(
    trace: TraceCtx,
    executor,
    executors: Sequence,
    progress: Callable[[str], None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> TraceCtx:
    """The trace with each maximal region of operations `executor` can fuse replaced by `executor.fuse(region, k)`.

    executors: the whole executor list in priority order; those before `executor` keep what they can execute.
    progress: called with a line of text before each region is handed to the executor.
    options: the executor's validated options, passed to `can_fuse` and `fuse` when they declare `options`.
    `fuse` may return one bound symbol, None (the region is declined: its operations stay as they are) or a
    list of bound symbols (the region split, see Region.split_at).
    """
    if executor not in executors:
        raise ValueError(f"the fusion executor {executor.name!r} is not in the executor list it is partitioned for")
    executors = list(executors)
    wrapped = _WithOptions(executor, options)
    executors[executors.index(executor)] = executor = wrapped
    earlier = [ex for ex in executors[: executors.index(executor)] if hasattr(ex, "can_execute")]
    nodes: list[BoundSymbol] = []
    fusible: list[bool] = []
    for bsym in trace.bound_symbols:
        for node, ok in _decide(bsym, executor, earlier):
            nodes.append(node)
            fusible.append(ok)
    if not any(fusible):
        return trace.from_trace(f"fusion ({executor.name})", nodes)

    parts = partition_regions(nodes, fusible, {p.name for p in flat_proxies(trace.output)})
    n_regions = sum(1 for part in parts if isinstance(part, Region))
    result: list[BoundSymbol] = []
    k = 0
    for region in parts:
        if not isinstance(region, Region):
            result.append(region)
            continue
        members = region.bound_symbols
        if progress is not None:
            progress(f"{executor.name}: compiling fusion region {k + 1} of {n_regions} ({len(members)} operations)")
        fused = executor.fuse(region, k)
        if fused is None:
            result.extend(region.bound_symbols)
        elif isinstance(fused, (list, tuple)):
            result.extend(fused)
        else:
            result.append(fused)
        k += 1
    return trace.from_trace(f"fusion ({executor.name})", result)


def partition_regions(nodes: list[BoundSymbol], fusible: list[bool], output_names: set[str]) -> list:
    """`nodes` (a valid program) regrouped: maximal regions of the nodes marked `fusible`, each a `Region`, and
    the other nodes as they are, in a valid program order (see the module docstring for how). `output_names`:
    the names the program returns (a region's outputs are those and what other groups read)."""
    preds, readers = _dependencies(nodes)
    siblings = [fusible_readers for rs in readers.values() if len(fusible_readers := [r for r in rs if fusible[r]]) > 1]
    siblings += [producers for v, ps in enumerate(preds)
                 if not fusible[v] and len(producers := sorted(u for u in ps if fusible[u])) > 1]  # fmt: skip
    siblings += [consumers for u, bsym in enumerate(nodes)
                 if not fusible[u] and len(consumers := _fusible_readers_of(bsym, readers, fusible)) > 1]  # fmt: skip
    siblings.append(_fusible_producers_of_write_backs(nodes, fusible))
    groups = _Partitioner(preds, fusible, siblings).groups()
    used_outside = _used_outside(nodes, groups, output_names)
    return [_make_region([nodes[i] for i in members], used_outside) if fusible[members[0]] else nodes[members[0]]
            for members in groups]  # fmt: skip


def _fusible_producers_of_write_backs(nodes: list[BoundSymbol], fusible: list[bool]) -> list[int]:
    """The fusible nodes that compute what the unfused write-backs into inputs write (`prims.copy_to`), in
    program order: an optimizer step alone updates each parameter independently of the others, and one region
    runs all the updates (as a foreach optimizer does) instead of one region per parameter."""
    producer = {p.name: i for i, bsym in enumerate(nodes) for p in bsym.flat_outs}
    sources = {producer.get(bsym.flat_args[1].name) for v, bsym in enumerate(nodes)
               if not fusible[v] and OpTag.DEVICE_WRITE in bsym.sym.tags and len(bsym.flat_args) > 1}  # fmt: skip
    return sorted(i for i in sources if i is not None and fusible[i])


def _fusible_readers_of(bsym: BoundSymbol, readers: dict[str, list[int]], fusible: list[bool]) -> list[int]:
    """The fusible nodes that read any result of `bsym`, in program order."""
    return sorted({r for p in bsym.flat_outs for r in readers.get(p.name, ()) if fusible[r]})


def _takes_options(method: Callable) -> bool:
    """Whether `method` accepts an `options` keyword (by name, or through **kwargs)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "options" or p.kind is p.VAR_KEYWORD for p in parameters)


class _WithOptions:
    """A fusion executor whose can_fuse and fuse get its options when they accept them (the two-argument
    forms of earlier executors keep working)."""

    def __init__(self, executor, options: Mapping[str, Any] | None):
        self.executor = executor
        self.name = executor.name
        kwargs = {"options": options if options is not None else {}}
        self._fuse_kwargs = kwargs if _takes_options(executor.fuse) else {}
        self._can_fuse_kwargs = kwargs if _takes_options(executor.can_fuse) else {}

    def can_fuse(self, bsym: BoundSymbol) -> bool:
        return self.executor.can_fuse(bsym, **self._can_fuse_kwargs)

    def fuse(self, region: Region, index: int):
        return self.executor.fuse(region, index, **self._fuse_kwargs)


def _decide(bsym: BoundSymbol, executor, earlier: list) -> list[tuple[BoundSymbol, bool]]:
    """(bound symbol, fusible) pairs that replace `bsym`: itself, or its decomposition when part of it is fusible."""
    if "fusion" in bsym.sym.tags or any(ex.can_execute(bsym) for ex in earlier):
        return [(bsym, False)]
    if executor.can_fuse(bsym):
        return [(bsym, True)]
    if bsym.sym.python_impl is None and bsym.subsymbols:
        parts = []
        for sub in bsym.subsymbols:
            if sub.tag is None and bsym.tag is not None:
                sub = sub.from_bsym()  # a copy: subsymbols are shared with earlier traces
                sub.tag = bsym.tag
            parts.extend(_decide(sub, executor, earlier))
        # Flattening only pays when the fusion executor gets part of it; otherwise the operation stays whole
        # so that a later executor can still claim it as one call.
        if any(ok for _, ok in parts):
            return parts
    return [(bsym, False)]


def _dependencies(nodes: list[BoundSymbol]) -> tuple[list[set[int]], dict[str, list[int]]]:
    """For each node, the nodes that must run before it: producers of what it reads, and, around operations
    with side effects, every other reader of the values they touch (so that a write is never reordered with
    a read of the same tensor) and the previous side effect. Also, for each value, the nodes that read it."""
    producer: dict[str, int] = {}
    readers: dict[str, list[int]] = {}
    preds: list[set[int]] = []
    for i, bsym in enumerate(nodes):
        deps = set()
        for p in bsym.flat_args:
            j = producer.get(p.name)
            if j is not None:
                deps.add(j)
            readers.setdefault(p.name, []).append(i)
        for p in bsym.flat_outs:
            producer.setdefault(p.name, i)
        preds.append(deps)
    last_effect = None
    for i, bsym in enumerate(nodes):
        if "side_effect" not in bsym.sym.tags:
            continue
        if last_effect is not None:
            preds[i].add(last_effect)
        last_effect = i
        for p in bsym.flat_args:
            for r in readers[p.name]:
                if r < i:
                    preds[i].add(r)
                elif r > i:
                    preds[r].add(i)
    return preds, readers


def _used_outside(nodes: list[BoundSymbol], groups: list[list[int]], output_names: set[str]) -> set[str]:
    """Names of the values read by a group other than the one that defines them, and the trace's outputs."""
    group_of = [0] * len(nodes)
    for gid, members in enumerate(groups):
        for i in members:
            group_of[i] = gid
    defined_in: dict[str, int] = {}
    used = set(output_names)
    for i, bsym in enumerate(nodes):
        for p in bsym.flat_args:
            g = defined_in.get(p.name)
            if g is not None and g != group_of[i]:
                used.add(p.name)
        for p in bsym.flat_outs:
            defined_in.setdefault(p.name, group_of[i])
    return used


def _make_region(bsyms: list[BoundSymbol], used_outside: set[str]) -> Region:
    defined: dict[str, TensorProxy] = {}
    inputs: dict[str, TensorProxy] = {}
    for bsym in bsyms:
        for p in bsym.flat_args:
            if p.name not in defined and p.name not in inputs:
                inputs[p.name] = p
        for p in bsym.flat_outs:
            defined.setdefault(p.name, p)
    outputs = [p for name, p in defined.items() if name in used_outside]
    return Region(bsyms, list(inputs.values()), outputs)


class _Partitioner:
    """Merges fusible nodes into groups along data edges, keeping the graph of groups acyclic.

    Groups are named by a representative node (union-find). `succ`/`pred` are the edges between groups;
    `slot[g]` is g's position in a topological order of the groups, `at[s]` the group at position s (None for
    positions freed by merges).
    """

    def __init__(self, preds: list[set[int]], fusible: list[bool], siblings: list[list[int]]):
        n = len(preds)
        self.preds = preds
        self.fusible = fusible
        self.siblings = siblings
        self.parent = list(range(n))
        self.members = [[i] for i in range(n)]
        self.pred = [set(p) for p in preds]
        self.succ: list[set[int]] = [set() for _ in range(n)]
        for i, ps in enumerate(preds):
            for p in ps:
                self.succ[p].add(i)
        # Every dependency points forward in program order, so program order is the first topological order.
        self.slot = list(range(n))
        self.at: list[int | None] = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def groups(self) -> list[list[int]]:
        """The groups in a valid execution order, each a list of node indices in program order."""
        for v in range(len(self.preds)):
            if not self.fusible[v]:
                continue
            for u in sorted(self.preds[v], reverse=True):  # the nearest producer first
                if self.fusible[u]:
                    self._try_merge(self.find(u), self.find(v))
        # Horizontal fusion: groups that read a common value share that read, and one call runs them both; groups
        # that feed a common unfused operation run one after the other just before it, and one call runs them.
        for readers in self.siblings:
            for r in readers[1:]:
                a, b = self.find(readers[0]), self.find(r)
                self._try_merge(*((a, b) if self.slot[a] < self.slot[b] else (b, a)))
        return [sorted(self.members[g]) for g in self.at if g is not None]

    def _try_merge(self, a: int, b: int) -> None:
        if a == b:
            return
        # slot[a] < slot[b]: for an edge a -> b because slots are topological, for siblings by the caller's choice
        limit = self.slot[b]
        reached: set[int] = set()
        stack = [g for g in self.succ[a] if g != b]
        while stack:
            g = stack.pop()
            if g in reached or self.slot[g] > limit:
                continue  # a group after b cannot lead back to b
            if g == b:
                return  # a path a -> g -> ... -> b: merging would make a cycle
            reached.add(g)
            stack.extend(self.succ[g])
        self._reorder(a, b, reached)
        self._union(a, b)

    def _reorder(self, a: int, b: int, reached: set[int]) -> None:
        """Within slots slot[a]..slot[b]: the other groups, then a and b (to be merged), then what a reaches."""
        lo, hi = self.slot[a], self.slot[b]
        in_range = [g for g in self.at[lo : hi + 1] if g is not None]
        others = [g for g in in_range if g not in reached and g != a and g != b]
        new_order = others + [a] + [g for g in in_range if g in reached]
        for s in range(lo, hi + 1):
            self.at[s] = None
        for offset, g in enumerate(new_order):
            self.at[lo + offset] = g
            self.slot[g] = lo + offset

    def _union(self, a: int, b: int) -> None:
        """Merges group b into a's slot, keeping the larger group's representative."""
        keep, gone = (a, b) if len(self.members[a]) >= len(self.members[b]) else (b, a)
        if keep != a:  # the merged group takes a's slot
            self.at[self.slot[a]] = keep
            self.slot[keep] = self.slot[a]
        self.parent[gone] = keep
        self.members[keep].extend(self.members[gone])
        self.members[gone] = []
        for edges, back in ((self.succ, self.pred), (self.pred, self.succ)):
            for g in edges[gone]:
                back[g].discard(gone)
                if g != keep:
                    back[g].add(keep)
            edges[keep] |= edges[gone]
            edges[keep].discard(keep)
            edges[keep].discard(gone)
            edges[gone] = set()
