"""`ThunderCompiler`: a `torch.compile` backend that runs the regions Thunder supports under `thunder.jit`.

Dynamo calls the backend with each FX graph it captured (graph breaks, such as `if tensor:` or `.item()`, end
one graph and start the next) and its example inputs. The backend splits the graph (`thunder.dynamo.splitter`)
and replaces each submodule by a region: `ThunderRegion` (thunder.jit of the submodule) or `FallbackRegion`
(Inductor, or eager). Dynamo's non-AOT backends receive the forward graph only and may return any callable:
gradients flow because thunder.jit wraps its outputs in a `torch.autograd.Function` whose backward is Thunder's
backward trace, and Inductor's compiled regions carry AOTAutograd's backward.

Dynamic shapes: with `dynamic=True` (or Dynamo's automatic dynamic shapes after a recompile) sizes reach a
region as Python ints. Thunder specializes on their values (the "constant values" cache), so each distinct size
compiles once; after `max_thunder_specializations` distinct compilations a region moves to the fallback, so
recompiles are bounded, and the switch is listed among the split reasons.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from thunder.dynamo.splitter import SplitReason, split_graph
from thunder.frontend.api import jit
from thunder.frontend.jit import jit_options_check

_FALLBACKS = ("inductor", "eager")


def _compile_with_inductor(module: torch.fx.GraphModule, args: Sequence) -> object:
    from torch._inductor import compile as inductor_compile

    compiled = inductor_compile(module, list(args))
    returned = next(node for node in module.graph.nodes if node.op == "output").args[0]
    if isinstance(returned, (tuple, list)):
        return compiled
    # Inductor always returns a sequence; split_module's single-output submodules return the value itself
    return lambda *call_args: compiled(*call_args)[0]


class FallbackRegion(torch.nn.Module):
    """A region Thunder does not run: compiled by Inductor at its first call, or run eagerly."""

    def __init__(self, name: str, module: torch.fx.GraphModule, fallback: str, reasons: list[SplitReason]):
        super().__init__()
        self.name = name
        self.module = module
        self.fallback = fallback
        self._compiled = None
        self._reasons = reasons

    def forward(self, *args):
        if self.fallback == "eager":
            return self.module(*args)
        if self._compiled is None:
            try:
                self._compiled = _compile_with_inductor(self.module, args)
            except Exception as error:  # Inductor cannot take some regions (data-dependent output shapes)
                self.fallback = "eager"
                message = f"Inductor could not compile it ({type(error).__name__}: {_first_line(error)}); runs eagerly"
                self._reasons.append(SplitReason("inductor failed", self.name, "fallback region", message))
                return self.module(*args)
        return self._compiled(*args)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


class ThunderRegion(torch.nn.Module):
    """A region compiled with `thunder.jit` (lazily, at its first call, as thunder.jit compiles).

    Should Thunder fail to compile it, or recompile it more than `max_specializations` times, the region
    switches to its fallback for good and records why in `reasons` (shared with the compiler).
    """

    def __init__(self, name: str, module: torch.fx.GraphModule, jit_options: dict, fallback: str,
                 max_specializations: int, reasons: list[SplitReason]):  # fmt: skip
        super().__init__()
        self.name = name
        self.module = module
        self.jitted = jit(module, **jit_options)
        self.max_specializations = max_specializations
        self._fallback = FallbackRegion(name, module, fallback, reasons)
        self._reasons = reasons
        self.uses_fallback = False


    @property
    def stats(self):
        """The jitted region's compile statistics (traces, cache hits and misses)."""
        return self.jitted._jfn.stats

    def forward(self, *args):
        if self.uses_fallback:
            return self._fallback(*args)
        try:
            out = self.jitted(*args)
        except Exception as error:
            # Thunder fails while tracing or compiling, before it runs anything of the region, so running the region
            # on the fallback is safe; an error that is the program's own is then raised there, by eager or Inductor
            self._switch_to_fallback("thunder failed", f"{type(error).__name__}: {_first_line(error)}")
            return self._fallback(*args)
        if self.stats.cache_misses > self.max_specializations:
            self._switch_to_fallback(
                "recompile limit",
                f"Thunder compiled this region {self.max_specializations} times (once per distinct input shape or "
                "Python number); further calls run on the fallback",
            )
        return out

    def _switch_to_fallback(self, kind: str, message: str) -> None:
        self.uses_fallback = True
        self._reasons.append(SplitReason(kind, self.name, "thunder region", message))


class ThunderCompiler:
    """A `torch.compile` backend: Thunder for the regions it supports, Inductor (or eager) for the rest.

    Example::

        import torch, thunder
        from thunder.dynamo import ThunderCompiler

        model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
        backend = ThunderCompiler(executors=["torch"])
        cmodel = torch.compile(model, backend=backend)
        cmodel(torch.randn(2, 8)).sum().backward()
        print(backend.split_reasons)            # why any part did not run under Thunder

    Arguments are `thunder.jit`'s options (executors, cache, transforms, ...), plus `fallback`: "inductor"
    (the default) or "eager", for the regions Thunder does not run, and `max_thunder_specializations` (default 8):
    how many times a Thunder region may compile (one per distinct size when shapes are dynamic) before it moves
    to the fallback.
    """

    def __init__(self, *, fallback: str = "inductor", max_thunder_specializations: int = 8, **jit_options):
        if fallback not in _FALLBACKS:
            raise ValueError(f"ThunderCompiler: fallback must be one of {_FALLBACKS}, got {fallback!r}")
        if max_thunder_specializations < 1:
            raise ValueError("ThunderCompiler: max_thunder_specializations must be at least 1")
        jit_options_check({k: v for k, v in jit_options.items() if k not in _JIT_KEYWORDS})
        self.jit_options = jit_options
        self.fallback = fallback
        self.max_thunder_specializations = max_thunder_specializations
        self.split_reasons: list[SplitReason] = []
        self.thunder_regions: list[ThunderRegion] = []
        self.graphs: list[torch.fx.GraphModule] = []

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: Sequence) -> torch.fx.GraphModule:
        split = split_graph(gm)
        self.split_reasons.extend(split.reasons)
        for name in split.thunder_submodules:
            region = ThunderRegion(f"graph{len(self.graphs)}.{name}", getattr(split.module, name), self.jit_options,
                                   self.fallback, self.max_thunder_specializations, self.split_reasons)  # fmt: skip
            setattr(split.module, name, region)
            self.thunder_regions.append(region)
        for name in split.fallback_submodules:
            region = FallbackRegion(f"graph{len(self.graphs)}.{name}", getattr(split.module, name), self.fallback,
                                    self.split_reasons)  # fmt: skip
            setattr(split.module, name, region)
        split.module.recompile()
        self.graphs.append(split.module)
        return split.module

    def report(self) -> str:
        """A readable summary: graphs, Thunder regions, and every reason part of the program runs elsewhere."""
        lines = [f"{len(self.graphs)} FX graph(s), {len(self.thunder_regions)} Thunder region(s)"]
        for region in self.thunder_regions:
            state = f"on the fallback ({self.fallback})" if region.uses_fallback else "under thunder.jit"
            lines.append(f"  {region.name}: {state}")
        if self.split_reasons:
            lines.append(f"Split reasons (fallback: {self.fallback}):")
            lines.extend(f"  {reason}" for reason in self.split_reasons)
        else:
            lines.append("Every node of the captured graphs ran under Thunder.")
        return "\n".join(lines)


# thunder.jit's own keyword arguments, which jit_options_check (for the free-form options) does not take
_JIT_KEYWORDS = {"executors", "cache", "transforms", "plugins", "disable_torch_autograd"}
