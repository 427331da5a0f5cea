"""The trace verifier: IR validity as an executable check.

Every proxy is defined (as an input or by one bound symbol) before it is used, and only once; nothing is
used after it is deleted; every use of a name agrees with its definition's shape and dtype; every output
exists. Run after every pass when `thunder.jit(..., debug_verify=True)` or THUNDER_DEBUG_VERIFY=1 (the
test suite sets it).
"""

from __future__ import annotations

from thunder.core.proxies import NumberProxy, Proxy
from thunder.core.symbol import flat_proxies
from thunder.core.trace import TraceCtx


class TraceVerificationError(AssertionError):
    pass


def _fail(trace: TraceCtx, message: str):
    raise TraceVerificationError(f"invalid trace made by {trace.provenance or 'tracing'}: {message}")


def _signature(p) -> tuple:
    if isinstance(p, NumberProxy):
        return ("number", p.python_type)
    return (tuple(p.shape), p.dtype)


def verify_trace(trace: TraceCtx) -> None:
    meta: dict[str, tuple] = {}
    deleted: set[str] = set()

    def check_use(p: Proxy, where: str) -> None:
        if p.name in deleted:
            _fail(trace, f"{p.name} is used after it was deleted, in {where}")
        if p.name not in meta:
            _fail(trace, f"{p.name} is used before it is defined, in {where}")
        if meta[p.name] != _signature(p):
            _fail(trace, f"{p.name} is used as {_signature(p)} but defined as {meta[p.name]}, in {where}")

    for a in trace.args:
        if isinstance(a, Proxy):
            if a.name in meta:
                _fail(trace, f"input {a.name} appears twice")
            meta[a.name] = _signature(a)
    for bsym in trace.bound_symbols:
        if bsym.sym.id == "python.del":
            for name in bsym.args:
                if name not in meta:
                    _fail(trace, f"del of undefined {name}")
                deleted.add(name)
            continue
        where = bsym.sym.print_name
        for a in bsym.flat_args:
            check_use(a, where)
        for o in bsym.flat_outs:
            if o.name in meta:
                _fail(trace, f"{o.name} is defined twice (again by {where})")
            meta[o.name] = _signature(o)
    for o in flat_proxies(trace.output):
        check_use(o, "the return statement")
