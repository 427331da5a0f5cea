"""Claiming: each bound symbol goes to the first executor, in priority order, that can run it; what no
executor claims is replaced by its subsymbols (its decomposition), down to primitives.

Expects: a trace of `thunder.torch`/prims symbols (and fusion symbols already made). Guarantees: every
bound symbol of the result has a Python implementation (the trace is executable).
"""

from __future__ import annotations

from collections.abc import Sequence

from thunder.core.symbol import BoundSymbol
from thunder.core.trace import TraceCtx, tracectx


class UnclaimedOperationError(NotImplementedError):
    pass


def claim_operators(trace: TraceCtx, executors: Sequence) -> TraceCtx:
    new = trace.from_trace("claim operators", [])
    with tracectx(new):
        for bsym in trace.bound_symbols:
            new.bound_symbols.extend(lower_bsym(bsym, executors))
    return new


def lower_bsym(bsym: BoundSymbol, executors: Sequence) -> list[BoundSymbol]:
    if bsym.sym.python_impl is not None:
        return [bsym]
    for ex in executors:
        if hasattr(ex, "can_execute") and ex.can_execute(bsym):
            result = []
            for lowered in ex.lower(bsym):
                result.extend(lower_bsym(lowered, executors) if lowered.sym.python_impl is None else [lowered])
            return result
    if bsym.subsymbols:
        result = []
        for sub in bsym.subsymbols:
            sub.tag = sub.tag or bsym.tag
            result.extend(lower_bsym(sub, executors))
        return result
    names = ", ".join(getattr(ex, "name", repr(ex)) for ex in executors)
    raise UnclaimedOperationError(
        f"no executor among [{names}] can run {bsym.sym.id}, and it has no decomposition. Add an executor that "
        "implements it, or include the 'torch' executor."
    )
