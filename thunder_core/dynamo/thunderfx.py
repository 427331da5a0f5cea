"""`thunderfx(fn_or_module)`: `torch.compile` with a `ThunderCompiler`, and what it did, in one object."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

import torch

from thunder.dynamo.compiler import ThunderCompiler
from thunder.dynamo.splitter import SplitReason


class ThunderFXCompiledObject:
    """The callable `thunderfx` returns: calls the compiled program and reports on its parts.

    `last_traces` / `last_backward_traces`: one list of traces per Thunder region (in the order the regions were
    compiled; each list as `thunder.last_traces` gives it). `split_reasons`: why each part that Thunder does not
    run runs elsewhere, Dynamo's graph breaks included, and the frames Dynamo failed to capture (kind "dynamo
    failed"), which run eagerly unless `fullgraph=True`. `report()`: all of it as text.
    """

    def __init__(self, fn: Callable, compiler: ThunderCompiler, torch_compile_options: dict):
        self._fn = fn
        self._compiler = compiler
        self._compiled = torch.compile(fn, backend=compiler, **torch_compile_options)
        self._fullgraph = bool(torch_compile_options.get("fullgraph"))
        self._graph_breaks: list[SplitReason] = []

    def __call__(self, *args, **kwargs):
        before = Counter(_graph_break_counter())
        with _frames_dynamo_fails_on_run_eagerly(not self._fullgraph) as failures:
            out = self._compiled(*args, **kwargs)
        found = [SplitReason("dynamo graph break", "", "graph break", _one_line(m))
                 for m in Counter(_graph_break_counter()) - before]  # fmt: skip
        found += [SplitReason("dynamo failed", "", "frame", message) for message in failures]
        self._graph_breaks.extend(reason for reason in found if reason not in self._graph_breaks)
        return out

    @property
    def compiler(self) -> ThunderCompiler:
        return self._compiler

    @property
    def split_reasons(self) -> list[SplitReason]:
        return [*self._graph_breaks, *self._compiler.split_reasons]

    @property
    def last_traces(self) -> list[list]:
        return [r.stats.last_traces for r in self._compiler.thunder_regions if _compiled(r)]

    @property
    def last_backward_traces(self) -> list[list]:
        return [r.stats.last_backward_traces for r in self._compiler.thunder_regions if _compiled(r)]

    def report(self) -> str:
        """Graphs, Thunder regions, Dynamo's graph breaks and the reasons of every split, as text."""
        lines = [self._compiler.report()]
        if self._graph_breaks:
            lines.append("Dynamo graph breaks:")
            lines.extend(f"  {reason.message}" for reason in self._graph_breaks)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"thunderfx({getattr(self._fn, '__name__', type(self._fn).__name__)})"


def _compiled(region) -> bool:
    return not region.uses_fallback and region.stats.cache_misses > 0


class _DynamoFailureLog(logging.Handler):
    """Collects the warnings Dynamo logs when it gives up on a frame and runs it eagerly (suppressed errors)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        frame = record.getMessage().split(" due to:")[0]  # "WON'T CONVERT <function> <file> line <n>"
        error = record.exc_info[1] if record.exc_info else None
        why = f"{type(error).__name__}: {_one_line(str(error))[:_MAX_ERROR_TEXT]}" if error is not None else ""
        self.messages.append(f"Dynamo could not capture it ({_one_line(frame)}) and ran it eagerly, its callees "
                             f"still compiled: {why}")  # fmt: skip


_MAX_ERROR_TEXT = 400


@contextmanager
def _frames_dynamo_fails_on_run_eagerly(active: bool):
    """A frame whose capture fails inside Dynamo (transformers 4.55's BART adds a (q, q + 1) mask to (q, q) scores
    on its torch.compile-only path; a tracing error in Dynamo itself) runs eagerly, as a graph break would, instead
    of failing the call: the frames it calls are still captured. An error that is the program's own is raised again
    by the eager run. Yields the list of Dynamo's messages, one per frame given up."""
    if not active:
        yield []
        return
    handler = _DynamoFailureLog()
    logger = logging.getLogger("torch._dynamo.convert_frame")
    logger.addHandler(handler)
    try:
        with torch._dynamo.config.patch(suppress_errors=True):
            yield handler.messages
    finally:
        logger.removeHandler(handler)


def _graph_break_counter() -> Counter:
    from torch._dynamo.utils import counters

    return counters["graph_break"]


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def thunderfx(fn: Callable | torch.nn.Module, *, dynamic: bool | None = None, fullgraph: bool = False,
              **options) -> ThunderFXCompiledObject:  # fmt: skip
    """Compiles `fn` (a function or module) with `torch.compile` and a `ThunderCompiler` backend.

    `dynamic` and `fullgraph` go to `torch.compile`; every other option to `ThunderCompiler` (`fallback`,
    `max_thunder_specializations`) and, through it, to `thunder.jit` (executors, cache, transforms...). Parameters
    are the module's own: training and `state_dict` work as usual.

    Example::

        from thunder.dynamo import thunderfx
        cfn = thunderfx(model, executors=["torch"], fallback="eager")
        loss = cfn(x).sum(); loss.backward()
        print(cfn.report())
    """
    compiler = ThunderCompiler(**options)
    return ThunderFXCompiledObject(fn, compiler, {"dynamic": dynamic, "fullgraph": fullgraph})
