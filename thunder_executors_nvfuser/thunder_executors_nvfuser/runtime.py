"""Running a fusion region: its steps (torch views at the edges, nvFuser fusions inside), the RNG state, the
fusion cache, and the fallback to torch.

A region's callable runs a list of steps over an environment of named tensors. A `TorchStep` runs bound
symbols with the torch executor (the shape-only operations at the region's edges: views stay views, and a
region that only reshapes never reaches nvFuser); an `NvFuserStep` runs one planned fusion. If any step fails
(nvFuser raises while defining, compiling or running it), the region warns once, counts the event, and from
then on runs all its operations with the torch executor: never an error for the user.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from thunder_executors_nvfuser._thunder import NumberProxy, TraceCtx, get_executor, lower_bound_symbols
from thunder_executors_nvfuser.translation import FusionPlan, describe_plan

log = logging.getLogger("thunder.nvfuser")

#: Set to 1 to add the failing fusion's nvFuser calls to the fallback warning (they are always logged at DEBUG).
DEBUG_ENV_VAR = "THUNDER_NVFUSER_DEBUG"


class NvFuserFallbackWarning(UserWarning):
    """nvFuser failed on a fusion region; the region runs on the torch executor instead."""


@dataclass
class FusionRecord:
    """What happened to one fusion region (see `fusion_report`)."""

    name: str
    operations: int
    nvfuser_fusions: int  # nvFuser fusions the region runs (0: it only reshapes, all in torch)
    first_call_ms: float | None = None  # the region's first call: nvFuser's compilation (or a cache hit) + run
    status: str = "not run yet"  # "nvfuser", "torch fallback: <reason>"


@dataclass
class NvFuserStats:
    """Counters of one executor object, across every function it compiled."""

    compilations: int = 0  # nvFuser fusions compiled (fusion cache misses)
    cache_hits: int = 0  # fusions reused for another region or call with the same key
    fallbacks: int = 0  # regions that fell back to torch
    compile_ms: float = 0.0  # total time of the first runs of compiled fusions
    records: list[FusionRecord] = field(default_factory=list)


class FusionCache:
    """Compiled fusions keyed by (plan key, input sizes/strides/dtypes/devices), shared by all regions."""

    def __init__(self, build: Callable, stats: NvFuserStats):
        self._build = build
        self._stats = stats
        self._entries: dict[tuple, _CompiledFusion] = {}
        self._lock = threading.Lock()

    def get(self, plan: FusionPlan, tensors: list[torch.Tensor]) -> _CompiledFusion:
        key = (plan.key, input_layout(tensors))
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _CompiledFusion(self._stats)
                self._stats.compilations += 1
            else:
                self._stats.cache_hits += 1
        if entry.error is not None:
            raise RuntimeError(f"an identical fusion failed before: {entry.error}")
        if entry.run is None:
            try:
                entry.run = self._build(plan, tensors)
            except Exception as e:
                entry.error = f"{type(e).__name__}: {_first_line(e)}"
                raise
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class _CompiledFusion:
    __slots__ = ("run", "error", "compiled", "stats")

    def __init__(self, stats: NvFuserStats):
        self.run: Callable | None = None
        self.error: str | None = None
        self.compiled = False
        self.stats = stats

    def __call__(self, tensors, scalars):
        if self.compiled:
            return self.run(tensors, scalars)
        start = time.perf_counter()
        try:
            outs = self.run(tensors, scalars)
        except Exception as e:
            self.error = f"{type(e).__name__}: {_first_line(e)}"
            raise
        self.compiled = True
        self.stats.compile_ms += (time.perf_counter() - start) * 1e3
        return outs


def philox_scalars(devices: list[torch.device]) -> list[int]:
    """(seed, offset) for each random operation, from torch's CUDA generator of its device, which is advanced
    past them: a seeded run draws the same numbers, and later draws (torch's or nvFuser's) new ones.

    nvFuser's offset is Philox's counter; torch counts its offset in 32-bit values, four per counter step.
    """
    scalars = []
    for device in devices:
        index = device.index if device.index is not None else torch.cuda.current_device()
        generator = torch.cuda.default_generators[index]
        seed, offset = generator.initial_seed(), generator.get_offset()
        generator.set_offset(offset + 4)
        # nvFuser takes a signed 64-bit scalar and reads its bits as the unsigned seed
        scalars += [seed - (1 << 64) if seed >= (1 << 63) else seed, offset // 4]
    return scalars


def input_layout(tensors) -> tuple:
    """What a compiled fusion is specialized on: sizes, strides, dtypes, devices, and the alignment of each data
    pointer (nvFuser vectorizes for the alignment it saw; a view at another offset must not reuse that kernel)."""
    return tuple([(t.shape, t.stride(), t.dtype, t.device, t.data_ptr() % 16) for t in tensors])


class TorchStep:
    """Bound symbols run by the torch executor, as one compiled Python function over named values."""

    def __init__(self, bsyms, inputs, outputs, scratch: TraceCtx, name: str):
        self.inputs = [p.name for p in inputs]
        self.outputs = [p.name for p in outputs]
        self.fn = torch_program(bsyms, inputs, outputs, scratch, name)

    def __call__(self, env: dict) -> None:
        outs = self.fn(*[env[n] for n in self.inputs])
        env.update(zip(self.outputs, outs))


class NvFuserStep:
    """One planned nvFuser fusion: its tensor inputs, and its number inputs (number proxies: given to the fusion
    as scalars at each call, after the tensors and before the RNG scalars, as the plan defines them)."""

    def __init__(self, plan: FusionPlan, sources: list, inputs, outputs, random_devices, cache: FusionCache):
        self.plan = plan
        self.sources = sources
        self.inputs = [p.name for p in inputs if not isinstance(p, NumberProxy)]
        self.numbers = [p.name for p in inputs if isinstance(p, NumberProxy)]
        self.outputs = [p.name for p in outputs]
        self.random_devices = random_devices
        self.cache = cache
        self._last: tuple = (None, None)  # (input metadata, fusion) of the last call: the common case

    def __call__(self, env: dict) -> None:
        tensors = [env[n] for n in self.inputs]
        meta = input_layout(tensors)
        last_meta, fusion = self._last
        if meta != last_meta:
            fusion = self.cache.get(self.plan, tensors)
            self._last = (meta, fusion)
        scalars = [env[n] for n in self.numbers]
        if self.random_devices:
            scalars += philox_scalars(self.random_devices)
        outs = fusion(tensors, scalars)
        used = set()
        for name, (kind, i) in zip(self.outputs, self.sources):
            value = outs[i] if kind == "output" else tensors[i]
            # An output that is an input, or a second name for one output, gets its own tensor as in eager
            env[name] = value.clone() if kind == "input" or i in used else value
            if kind == "output":
                used.add(i)


class RegionRunner:
    """The callable of a fusion region: its steps, or, once one failed, the torch executor for all of it."""

    def __init__(self, name: str, region, steps: list, record: FusionRecord, stats: NvFuserStats):
        self.name = name
        self.region = region
        self.steps = steps
        self.record = record
        self.stats = stats
        self.inputs = [p.name for p in region.inputs]
        self.outputs = [p.name for p in region.outputs]
        self.fallback: Callable | None = None

    def __call__(self, *args):
        if self.fallback is not None:
            return self.fallback(*args)
        first = self.record.first_call_ms is None
        start = time.perf_counter() if first else 0.0
        step = None
        try:
            env = dict(zip(self.inputs, args))
            for step in self.steps:
                step(env)
            result = tuple(env[n] for n in self.outputs)
        except Exception as e:
            self.fall_back(e, step)
            return self.fallback(*args)
        if first:
            self.record.first_call_ms = (time.perf_counter() - start) * 1e3
            self.record.status = "nvfuser" if self.record.nvfuser_fusions else "torch (no nvFuser work)"
        return result

    def fall_back(self, error: BaseException, step=None) -> None:
        """Switches this region to the torch executor, with one warning that names it."""
        plan = describe_plan(step.plan) if isinstance(step, NvFuserStep) else ""
        if plan:
            log.debug("nvFuser failed on region %s; its fusion:\n%s", self.name, plan)
        ops = [b.sym.name for b in self.region.bound_symbols]
        shown = ", ".join(ops[:6]) + (", ..." if len(ops) > 6 else "")
        reason = f"{type(error).__name__}: {_first_line(error)}"
        where = " of the backward" if any(b.tag == "backward" for b in self.region.bound_symbols) else ""
        warnings.warn(
            f"nvFuser could not compile or run fusion region {self.name}{where} ({len(ops)} operations: {shown}): "
            f"{reason}. This region runs on the torch executor instead; other regions keep using nvFuser. "
            "To keep nvFuser away from a program entirely, leave 'nvfuser' out of the executors."
            + (f" The fusion's nvFuser calls:\n{plan}" if plan and os.environ.get(DEBUG_ENV_VAR) == "1" else ""),
            NvFuserFallbackWarning,
            stacklevel=3,
        )
        self.stats.fallbacks += 1
        self.record.status = f"torch fallback: {reason}"
        self.fallback = torch_program(self.region.bound_symbols, self.region.inputs, self.region.outputs,
                                      self.region.as_trace(), f"{self.name}_torch")  # fmt: skip


def torch_program(bsyms, inputs, outputs, scratch: TraceCtx, name: str) -> Callable:
    """A Python function `name(*inputs) -> tuple(outputs)` running `bsyms` with the torch executor.

    scratch: the trace whose name space new values (made by execution transforms) are named in.
    """
    executors = [get_executor("torch"), get_executor("python")]
    lowered = lower_bound_symbols(bsyms, executors, scratch)
    trace = TraceCtx(name)
    trace.args = list(inputs)
    trace.bound_symbols = lowered
    trace.output = tuple(outputs)
    return trace.python_callable()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "(no message)"
