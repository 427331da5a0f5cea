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
    # name -> the proxy that defines it; a use by that same object agrees with it by construction, so only a
    # use by another object with the name has its shape and dtype compared (the verifier runs after every pass
    # in the test suite: this keeps it linear and cheap)
    defined: dict[str, Proxy] = {}
    deleted: set[str] = set()

    def check_use(p: Proxy, where: str) -> None:
        name = p.name
        if defined.get(name) is p and name not in deleted:
            return
        if name in deleted:
            _fail(trace, f"{name} is used after it was deleted, in {where}")
        if name not in defined:
            _fail(trace, f"{name} is used before it is defined, in {where}")
        expected, used = _signature(defined[name]), _signature(p)
        if expected != used:
            _fail(trace, f"{name} is used as {used} but defined as {expected}, in {where}")

    for a in trace.args:
        if isinstance(a, Proxy):
            if a.name in defined:
                _fail(trace, f"input {a.name} appears twice")
            defined[a.name] = a
    for bsym in trace.bound_symbols:
        if bsym.sym.id == "python.del":
            for name in bsym.args:
                if name not in defined:
                    _fail(trace, f"del of undefined {name}")
                deleted.add(name)
            continue
        for a in bsym.flat_args:
            if defined.get(a.name) is not a or a.name in deleted:  # inline: the common case calls nothing
                check_use(a, bsym.sym.print_name)
        for o in bsym.flat_outs:
            if o.name in defined:
                _fail(trace, f"{o.name} is defined twice (again by {bsym.sym.print_name})")
            defined[o.name] = o
    for o in flat_proxies(trace.output):
        check_use(o, "the return statement")
