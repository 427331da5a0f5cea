"""Dead-code elimination: drops bound symbols whose outputs nothing uses.

Expects: a trace. Guarantees: the same outputs and side effects (symbols tagged "side_effect" are kept).
"""

from __future__ import annotations

from thunder.core.symbol import flat_proxies
from thunder.core.trace import TraceCtx


def dce(trace: TraceCtx) -> TraceCtx:
    needed = {p.name for p in flat_proxies(trace.output)}
    kept = []
    for bsym in reversed(trace.bound_symbols):
        if "side_effect" in bsym.sym.tags or any(o.name in needed for o in bsym.flat_outs):
            kept.append(bsym)
            needed.update(a.name for a in bsym.flat_args)
    kept.reverse()
    return trace.from_trace("dead code elimination", kept)
