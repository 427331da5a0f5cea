"""Traces: straight-line programs that print as runnable Python.

A `TraceCtx` holds the function's input proxies, its bound symbols (in program order) and its output
structure. `str(trace)` is the program's source with a comment per line (device, dtype, shape);
`trace.python_ctx()` is the namespace that source needs; `trace.python_callable()` compiles it with `exec`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from thunder.core.context import ContextStack

# The traces being recorded, innermost last: per thread (see thunder.core.context).
_tracectx_stack = ContextStack("thunder_trace")


def get_tracectx() -> TraceCtx | None:
    """The trace that symbols called now record into (None outside tracing), for the current thread."""
    return _tracectx_stack.top()


@contextmanager
def tracectx(trace: TraceCtx) -> Iterator[TraceCtx]:
    """Symbols called inside the block record into `trace` (in this thread only)."""
    _tracectx_stack.append(trace)
    try:
        yield trace
    finally:
        _tracectx_stack.pop()


class TraceCtx:
    """A trace: inputs, bound symbols, output, and provenance (the pass that made it, how long it took)."""

    def __init__(self, fn_name: str = "computation"):
        self.fn_name = fn_name
        self.args: list = []  # input proxies, in call order
        self.bound_symbols: list = []
        self.output: Any = None
        self.provenance: str = ""  # the pass that made this trace
        self.stage: str = ""  # the pipeline stage it belongs to (see thunder.extend.passes)
        self.duration_ms: float | None = None
        self.names: set[str] = set()
        self._counters: dict[str, Iterator[int]] = {}
        self._scopes: list[list] = [self.bound_symbols]
        self.tags: dict[str, Any] = {}  # free-form annotations passes leave for later passes

    # -- naming ------------------------------------------------------------------------------------
    def make_name(self, prefix: str = "t") -> str:
        counter = self._counters.setdefault(prefix, itertools.count())
        while True:
            name = f"{prefix}{next(counter)}"
            if name not in self.names:
                self.names.add(name)
                return name

    def add_name(self, name: str) -> None:
        if name in self.names:
            raise ValueError(f"the name {name!r} is already used in this trace")
        self.names.add(name)

    # -- recording ---------------------------------------------------------------------------------
    def record(self, bsym) -> None:
        self._scopes[-1].append(bsym)

    @contextmanager
    def collecting(self) -> Iterator[list]:
        """Bound symbols recorded inside go into the yielded list instead of the current scope."""
        scope: list = []
        self._scopes.append(scope)
        try:
            yield scope
        finally:
            self._scopes.pop()

    def from_trace(self, provenance: str, bound_symbols: list | None = None) -> TraceCtx:
        """A new trace with the same signature and name space; `bound_symbols` replaces the program."""
        new = TraceCtx(self.fn_name)
        new.args = list(self.args)
        new.output = self.output
        new.names = set(self.names)
        new._counters = dict(self._counters)
        # Counters are shared iterators: names made in either trace stay unique across both.
        new.bound_symbols = list(self.bound_symbols if bound_symbols is None else bound_symbols)
        new._scopes = [new.bound_symbols]
        new.provenance = provenance
        new.tags = dict(self.tags)
        return new

    # -- printing and compiling --------------------------------------------------------------------
    def python(self, *, with_comments: bool = True) -> str:
        from thunder.core.codegen import trace_source  # a cycle: codegen imports proxies, which import this module

        return trace_source(self, with_comments=with_comments)[0]

    def python_ctx(self) -> dict[str, Any]:
        from thunder.core.codegen import trace_source  # a cycle: codegen imports proxies, which import this module

        return trace_source(self, with_comments=False)[1]

    def python_callable(self) -> Callable:
        from thunder.core.codegen import (  # a cycle: codegen imports proxies, which import this module
            compile_source,
            trace_source,
        )

        source, ctx = trace_source(self, with_comments=False)
        namespace = dict(ctx)
        exec(compile_source(source, f"thunder.{self.fn_name}"), namespace)
        fn = namespace[self.fn_name]
        fn.__thunder_source__ = source
        return fn

    def __str__(self) -> str:
        return self.python()

    def __repr__(self) -> str:
        return f"<TraceCtx {self.fn_name} ({len(self.bound_symbols)} bound symbols) by {self.provenance or 'tracing'}>"


# The frontend's tracer registers how to trace torch code with proxies (its TorchFunctionMode). Lower
# layers that must trace a torch-level function (an operator registered with `like=`, a user
# autograd.Function) call `torch_tracing()` without importing the frontend.
_torch_tracing_factory: Callable | None = None


def register_torch_tracing(factory: Callable) -> None:
    global _torch_tracing_factory
    _torch_tracing_factory = factory


def torch_tracing():
    """A context in which torch calls on proxies record into the current trace."""
    from contextlib import nullcontext

    if _torch_tracing_factory is None:
        return nullcontext()
    return _torch_tracing_factory()
