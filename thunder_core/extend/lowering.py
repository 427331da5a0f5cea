"""Lowering a region to the implementations of given executors, for fusion executors that compile what
other executors would run (as `torchcompile` compiles the torch executor's calls with Inductor)."""

from __future__ import annotations

from collections.abc import Sequence

from thunder.core.symbol import BoundSymbol
from thunder.core.trace import TraceCtx, tracectx
from thunder.transforms.claim_operators import lower_bsym
from thunder.transforms.fusion import Region

__all__ = ["lower_bound_symbols", "lower_region"]


def lower_region(region: Region, executors: Sequence) -> list[BoundSymbol]:
    """The region's operations claimed by `executors` (in order) or decomposed until one claims them: bound
    symbols whose `sym.python_impl` runs them. Raises if some operation has no executor among `executors`.

    Execution transforms record new values while lowering; they are named in a scratch trace of the region,
    so they never collide with the region's own names.
    """
    return lower_bound_symbols(region.bound_symbols, executors, region.as_trace())


def lower_bound_symbols(bsyms: Sequence[BoundSymbol], executors: Sequence, scratch: TraceCtx) -> list[BoundSymbol]:
    """`bsyms` claimed by `executors` (in order) or decomposed until one claims them, as `lower_region` does;
    new values are named in the trace `scratch`."""
    lowered: list[BoundSymbol] = []
    with tracectx(scratch):
        for bsym in bsyms:
            lowered.extend(lower_bsym(bsym, executors))
    return lowered
