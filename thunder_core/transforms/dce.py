"""Dead-code elimination: drops bound symbols whose outputs nothing uses.

Expects: a trace. Guarantees: the same outputs and side effects (symbols tagged "side_effect" are kept), and
the symbolic sizes of the inputs (symbols tagged "input_sizes": a backward built later may need them).
"""

from __future__ import annotations

from thunder.core.proxies import Proxy
from thunder.core.symbol import flat_proxies, proxies_read
from thunder.core.trace import TraceCtx

_ALWAYS_KEPT = frozenset({"side_effect", "input_sizes"})


def dce(trace: TraceCtx) -> TraceCtx:
    needed = {p.name for p in flat_proxies(trace.output)}
    kept = []
    for bsym in reversed(trace.bound_symbols):
        if bsym.sym.tags & _ALWAYS_KEPT or any(o.name in needed for o in bsym.flat_outs):
            kept.append(bsym)
            needed.update(a.name for a in proxies_read(bsym))
            # a symbolic size of a value computed here is kept with it: later passes (autodiff's grad rules)
            # build operations on that value's shape
            needed.update(_symbolic_sizes_made(bsym))
    kept.reverse()
    return trace.from_trace("dead code elimination", kept)


def _symbolic_sizes_made(bsym) -> set[str]:
    """The names of the symbolic sizes of the values bsym and its decomposition compute."""
    names = set()
    for out in bsym.flat_outs:
        shape = getattr(out, "_thunder_shape", None)
        if shape is not None:
            names.update(s.name for s in shape if isinstance(s, Proxy))
    for sub in bsym.subsymbols:
        names |= _symbolic_sizes_made(sub)
    return names
