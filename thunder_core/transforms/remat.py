"""Rematerialization: which forward values the backward recomputes instead of saving, by a min-cut.

Expects: the forward's bound symbols, its input names, and the names the backward reads from the forward.
Guarantees: bound symbols (in forward order) whose recomputation in the backward, from the saved values,
yields every value the backward reads; the saved set is a minimum cut in bytes over the joint graph.

The flow network has, for each candidate value v, an edge v_in -> v_out whose capacity is v's size (the cost
of saving v; zero for the function's inputs, which the caller holds anyway). A value that cannot be
recomputed (its producer is not a cheap elementwise or shape op, or is random, or has side effects) is fed
from the source: the forward must compute it. A recomputable value's inputs feed it with infinite capacity,
and every value the backward reads drains into the sink. Cutting v_in -> v_out means saving v; a minimum cut
saves the fewest bytes from which the rest can be recomputed.
"""

from __future__ import annotations

from collections import defaultdict, deque

from thunder.core.proxies import TensorProxy
from thunder.core.symbol import BoundSymbol

CHEAP_TAGS = frozenset({"elementwise", "shape"})
_INF = float("inf")


def is_recomputable(bsym: BoundSymbol | None) -> bool:
    if bsym is None:
        return False
    tags = bsym.sym.tags
    return bool(tags & CHEAP_TAGS) and "random" not in tags and "side_effect" not in tags


def _nbytes(p: TensorProxy) -> int:
    return p.numel() * p.element_size()


def _candidates(needed: set[str], producer: dict[str, BoundSymbol]) -> set[str]:
    """The values that may be saved or recomputed: what the backward reads, and back through cheap producers."""
    region: set[str] = set()
    stack = list(needed)
    while stack:
        name = stack.pop()
        if name in region:
            continue
        region.add(name)
        bsym = producer.get(name)
        if is_recomputable(bsym):
            stack.extend(a.name for a in bsym.flat_args)
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


def choose_recomputation(fwd_bsyms: list[BoundSymbol], fwd_inputs: set[str], needed: set[str]) -> list[BoundSymbol]:
    producer = {o.name: b for b in fwd_bsyms for o in b.flat_outs}
    proxies = {o.name: o for b in fwd_bsyms for o in b.flat_outs}
    region = _candidates(needed, producer)
    capacity: dict = defaultdict(lambda: defaultdict(float))

    def edge(u, v, c):
        capacity[u][v] += c
        capacity[v][u] += 0.0  # the reverse edge of the residual graph

    for name in region:
        edge((name, "in"), (name, "out"), 0.0 if name in fwd_inputs else float(_nbytes(proxies[name])))
        bsym = producer.get(name)
        if is_recomputable(bsym):
            for a in bsym.flat_args:
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
        stack.extend(a.name for a in bsym.flat_args if a.name not in saved and a.name not in fwd_inputs)
    return [b for b in fwd_bsyms if id(b) in recompute]
