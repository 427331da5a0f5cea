"""`thunderfx(fn_or_module)`: `torch.compile` with a `ThunderCompiler`, and what it did, in one object."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from thunder.dynamo.compiler import ThunderCompiler
from thunder.dynamo.splitter import SplitReason


class ThunderFXCompiledObject:
    """The callable `thunderfx` returns: calls the compiled program and reports on its parts.

    `last_traces` / `last_backward_traces`: one list of traces per Thunder region (in the order the regions were
    compiled; each list as `thunder.last_traces` gives it). `split_reasons`: why each part that Thunder does not
    run runs elsewhere, Dynamo's graph breaks included. `report()`: all of it as text.
    """

    def __init__(self, fn: Callable, compiler: ThunderCompiler, torch_compile_options: dict):
        self._fn = fn
        self._compiler = compiler
        self._compiled = torch.compile(fn, backend=compiler, **torch_compile_options)
        self._graph_breaks: list[SplitReason] = []

    def __call__(self, *args, **kwargs):
        before = Counter(_graph_break_counter())
        out = self._compiled(*args, **kwargs)
        for message in Counter(_graph_break_counter()) - before:
            reason = SplitReason("dynamo graph break", "", "graph break", _one_line(message))
            if reason not in self._graph_breaks:
                self._graph_breaks.append(reason)
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
