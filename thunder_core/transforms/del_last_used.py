"""Frees every value right after its last use by inserting `del` statements.

Expects: an executable trace. Guarantees: the same results; no intermediate outlives its last use
(inputs are deleted too, so the caller's references are the only ones left).
"""

from __future__ import annotations

from thunder.core.symbol import Symbol, flat_proxies
from thunder.core.trace import TraceCtx


def _print_del(bsym, ctx) -> str:
    return "del " + ", ".join(bsym.args)


python_del = Symbol("python_del", python_impl=lambda *names: None, id="python.del", tags=("python",))
python_del.printer = _print_del


def del_last_used(trace: TraceCtx, *, keep: set[str] = frozenset()) -> TraceCtx:
    keep = set(keep) | {p.name for p in flat_proxies(trace.output)}
    seen: set[str] = set()
    result = []
    for bsym in reversed(trace.bound_symbols):
        dead = []
        for p in bsym.flat_args:
            if p.name not in seen and p.name not in keep:
                dead.append(p.name)
            seen.add(p.name)
        for p in bsym.flat_outs:
            if p.name not in seen and p.name not in keep:
                dead.append(p.name)  # an output nothing reads
            seen.add(p.name)
        if dead:
            result.append(python_del.bind(*sorted(set(dead))))
        result.append(bsym)
    result.reverse()
    return trace.from_trace("delete last used", result)
