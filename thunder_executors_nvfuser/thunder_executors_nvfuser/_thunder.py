"""The Thunder names this package uses beyond `thunder.extend`, in one place.

DESIGN.md asks executor packages to import only Thunder's public extension surface. While that surface is
being written (issue #12), the internal names below are imported here and nowhere else in the package, so
that moving them to `thunder.extend` is a one-file change: `TensorProxy`, `NumberProxy`, `BoundSymbol`,
`Symbol`, `flat_proxies`, `ImplInfo` (an implmap entry carrying a grad rule), `TraceCtx`/`tracectx`, `Region` (the partitioner's record) and `lower_bsym`
(lowering a bound symbol through an executor list, for the torch fallback).
"""

from __future__ import annotations

from thunder.core.proxies import NumberProxy, TensorProxy
from thunder.core.symbol import BoundSymbol, Symbol, flat_proxies
from thunder.core.trace import TraceCtx, tracectx
from thunder.extend import FusionExecutor, get_executor
from thunder.extend.executors import ImplInfo
from thunder.transforms.claim_operators import lower_bsym
from thunder.transforms.fusion import Region

__all__ = [
    "BoundSymbol",
    "FusionExecutor",
    "ImplInfo",
    "NumberProxy",
    "Region",
    "Symbol",
    "TensorProxy",
    "TraceCtx",
    "flat_proxies",
    "get_executor",
    "lower_bsym",
    "tracectx",
]
