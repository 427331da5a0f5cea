"""The Thunder names this package uses, in one place, all from Thunder's public modules (DESIGN.md: an executor
package imports only the extension surface; tests/test_public_api.py checks it)."""

from __future__ import annotations

from thunder.core.proxies import NumberProxy, TensorProxy, number_tensor_dtype
from thunder.core.symbol import BoundSymbol, Symbol, flat_proxies
from thunder.core.trace import TraceCtx, tracectx
from thunder.extend import FusionExecutor, ImplInfo, Region, get_executor, lower_bound_symbols

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
    "lower_bound_symbols",
    "number_tensor_dtype",
    "tracectx",
]
