"""Rematerialization: which forward values the backward recomputes instead of saving, by a min-cut.

Expects: the forward's bound symbols, its input names, and the names the backward reads from the forward.
Guarantees: bound symbols (in forward order) whose recomputation in the backward, from the saved values,
yields every value the backward reads; the saved set is a minimum cut in bytes over the joint graph.

The flow network has, for each candidate value v, an edge v_in -> v_out whose capacity is v's size (the cost
of saving v; zero for the function's inputs, which the caller holds anyway). A value that cannot be
recomputed (see is_recomputable: cheap elementwise and shape ops when a fusion executor is active, views
otherwise; never random or side-effecting ops) is fed
from the source: the forward must compute it. A recomputable value's inputs feed it with infinite capacity,
and every value the backward reads drains into the sink. Cutting v_in -> v_out means saving v; a minimum cut
saves the fewest bytes from which the rest can be recomputed.
"""

from __future__ import annotations

from collections import defaultdict, deque

from thunder.core.proxies import NumberProxy, TensorProxy
from thunder.core.symbol import BoundSymbol, OpTag, proxies_read

CHEAP_TAGS = frozenset({OpTag.ELEMENTWISE, OpTag.SHAPE})
_INF = float("inf")


def is_recomputable(bsym: BoundSymbol | None, *, fusing: bool = True) -> bool:
    """Whether the backward may recompute bsym: a cheap elementwise or shape op when a fusion executor will fuse
    the recomputation (nearly free there), a view otherwise. Never a random or side-effecting op."""
    if bsym is None:
        return False
    tags = bsym.sym.tags
    if OpTag.RANDOM in tags or OpTag.SIDE_EFFECT in tags:
        return False
    # Without a fusion executor each recomputed op is one more kernel over memory, so only views are recomputed
    return bool(tags & CHEAP_TAGS) if fusing else OpTag.VIEW in tags


def _nbytes(p: TensorProxy | NumberProxy) -> int:
    if isinstance(p, NumberProxy):
        return 8  # a Python number: saving it costs next to nothing
    return p.numel() * p.element_size()


def _may_recompute(bsym: BoundSymbol | None, fusing: bool, checkpointed: frozenset[str]) -> bool:
    """is_recomputable, widened to every non-random op inside a checkpointed region (torch.utils.checkpoint)."""
    if is_recomputable(bsym, fusing=fusing):
        return True
    if bsym is None or not checkpointed or "random" in bsym.sym.tags or "side_effect" in bsym.sym.tags:
        return False
    return bool(bsym.flat_outs) and all(o.name in checkpointed for o in bsym.flat_outs)


def _candidates(needed: set[str], producer: dict[str, BoundSymbol], fusing: bool,
                checkpointed: frozenset[str] = frozenset()) -> set[str]:
    """The values that may be saved or recomputed: what the backward reads, and back through cheap producers."""
    region: set[str] = set()
    stack = list(needed)
    while stack:
        name = stack.pop()
        if name in region:
            continue
        region.add(name)
        bsym = producer.get(name)
        if _may_recompute(bsym, fusing, checkpointed):
            stack.extend(a.name for a in proxies_read(bsym))
    return region


def _max_flow_reachable(capacity: dict, source, sink) -> set:
    """Edmonds-Karp on `capacity` (modified into the residual graph); the nodes reachable from the source
    in the final residual graph (the source side of a minimum cut)."""
    while True:
        parent = {source: None}
        queue = deque([source])
        while queue and sink not in parent:
            u = queue.popleft()
            for v, c in capacity[u].items():
                if c > 0 and v not in parent:
                    parent[v] = u
                    queue.append(v)
        if sink not in parent:
            return set(parent)
        path, v = [], sink
        while parent[v] is not None:
            path.append((parent[v], v))
            v = parent[v]
        flow = min(capacity[u][v] for u, v in path)
        for u, v in path:
            capacity[u][v] -= flow
            capacity[v][u] += flow


def choose_recomputation(
    fwd_bsyms: list[BoundSymbol], fwd_inputs: set[str], needed: set[str], *, fusing: bool = True,
    checkpointed: frozenset[str] = frozenset(),
) -> list[BoundSymbol]:
    producer = {o.name: b for b in fwd_bsyms for o in b.flat_outs}
    proxies = {o.name: o for b in fwd_bsyms for o in b.flat_outs}
    region = _candidates(needed, producer, fusing, checkpointed)
    capacity: dict = defaultdict(lambda: defaultdict(float))

    def edge(u, v, c):
        capacity[u][v] += c
        capacity[v][u] += 0.0  # the reverse edge of the residual graph

    for name in region:
        edge((name, "in"), (name, "out"), 0.0 if name in fwd_inputs else float(_nbytes(proxies[name])))
        bsym = producer.get(name)
        if _may_recompute(bsym, fusing, checkpointed):
            for a in proxies_read(bsym):
                edge((a.name, "out"), (name, "in"), _INF)
        else:
            edge("source", (name, "in"), _INF)
    for name in needed:
        edge((name, "out"), "sink", _INF)
    source_side = _max_flow_reachable(capacity, "source", "sink")
    saved = {n for n in region if (n, "in") in source_side and (n, "out") not in source_side}
    # what the backward must recompute: from what it reads, back to saved values
    recompute: set[int] = set()
    stack = [n for n in needed if n not in saved and n not in fwd_inputs]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        bsym = producer[name]
        recompute.add(id(bsym))
        stack.extend(a.name for a in proxies_read(bsym) if a.name not in saved and a.name not in fwd_inputs)
    return [b for b in fwd_bsyms if id(b) in recompute]
