"""The tracing context: per-thread state of the compilation in progress, as a core service.

Tracing keeps a few stacks: the trace being recorded (`thunder.core.trace.tracectx`), the tracers
acquiring a program, the grad rules being applied, the guard sinks of a compilation. Each is a
:class:`ContextStack`, kept in a :class:`contextvars.ContextVar`, so every thread (and every asyncio
task) sees its own stack: compiling from several threads at once never mixes their traces.
Lower layers (core, prims, torch) read these stacks directly; nothing is installed by a higher layer.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ContextStack"]


class ContextStack:
    """A stack private to the current thread (and asyncio task), with the list operations tracing uses.

    The stack is stored as a tuple in a ContextVar: `append`/`pop` replace the tuple, so a stack is
    never shared between threads, even when a new thread copies the current context.
    """

    __slots__ = ("_var",)

    def __init__(self, name: str):
        self._var: contextvars.ContextVar[tuple] = contextvars.ContextVar(name, default=())

    def append(self, item: Any) -> None:
        self._var.set((*self._var.get(), item))

    def pop(self) -> Any:
        stack = self._var.get()
        if not stack:
            raise IndexError(f"pop from an empty context stack {self._var.name!r}")
        self._var.set(stack[:-1])
        return stack[-1]

    def top(self, default: Any = None) -> Any:
        """The innermost item, or `default` when the stack is empty."""
        stack = self._var.get()
        return stack[-1] if stack else default

    @contextmanager
    def pushed(self, item: Any) -> Iterator[Any]:
        """`item` is on top of the stack inside the block."""
        self.append(item)
        try:
            yield item
        finally:
            self.pop()

    def __bool__(self) -> bool:
        return bool(self._var.get())

    def __len__(self) -> int:
        return len(self._var.get())

    def __getitem__(self, index):
        return self._var.get()[index]

    def __iter__(self):
        return iter(self._var.get())

    def __repr__(self) -> str:
        return f"<ContextStack {self._var.name} depth={len(self)}>"
