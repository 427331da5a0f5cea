"""CUDA graphs: the compiled forward and backward programs replayed as CUDA graphs, one launch per region.

`thunder.jit(fn, transforms=["cudagraphs"])` (or `transforms=[CUDAGraphTransform()]`, or
`thunder.compile(fn, plugins="reduce-overhead")`) rewrites each execution trace, after fusion and claiming:
maximal regions of operations that a CUDA graph can hold become one bound symbol each (`CUDAGraph0`, ...),
which captures its region into a `torch.cuda.CUDAGraph` on its first call and replays it afterwards.

What a graph holds: operations whose tensors all live on one CUDA device. These split the graph (they run
as before, between graphs): operations on CPU tensors or on numbers that change between calls
(`cache="symbolic values"`), random operations (a seeded run draws what eager draws), fallback operators
(torch operators without a Thunder symbol: their shapes may depend on data, they may synchronize with the
CPU), and side effects on host state (collectives, Python bookkeeping). In-place writes into an input
(`x.add_(y)`, `prims.copy_to`) are captured: the graph then writes into that input tensor itself.

How a region runs:

* **inputs** are copied into static buffers that the graph reads, except parameters (`nn.Parameter`) and the
  tensors the region writes into, which the graph reads and writes where they are. For those, the address
  is part of the graph's key: a new tensor there captures a new graph.
* **capture**: on the first call with a new *signature* (each input's shape, strides, dtype, device, and the
  address of the tensors used in place), the region runs once on a side stream (the warm-up torch
  requires before a capture; its result is that call's result), then is captured with
  `torch.cuda.graph(..., capture_error_mode="thread_local")` into a memory pool shared by every graph of the
  transform. Later calls with that signature copy their inputs in and replay.
* **outputs** are copies of the graph's static outputs, made right after the replay: the next replay
  overwrites the static outputs, and a caller (or autograd, which may keep a gradient as `.grad`) must
  never see an earlier result change. Outputs are therefore never views of the inputs.
* **failure**: when a capture fails (an operation that synchronizes with the CPU, say), the region warns once
  (`CUDAGraphWarning`, with the reason) and runs without a graph from then on; that call's result is the
  warm-up's, so it is still correct.

A program with no CUDA operation (a CPU program) runs unchanged: the transform warns once
(`CUDAGraphWarning`) and captures nothing, as `torch.compile(mode="reduce-overhead")` runs CPU code without
CUDA graphs. Memory: each graph keeps its static inputs and outputs alive, and the pool keeps the peak
memory of the regions' intermediates; that is the usual price of CUDA graphs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from thunder.core.proxies import Proxy, TensorProxy
from thunder.core.symbol import BoundSymbol, OpTag, Symbol, flat_proxies
from thunder.core.trace import TraceCtx
from thunder.transforms.del_last_used import del_last_used
from thunder.transforms.fusion import Region, partition_regions
from thunder.transforms.transform import Transform

__all__ = ["CUDAGraphTransform", "CUDAGraphWarning", "CUDAGraphStats", "graph_regions"]

# Properties that keep an operation out of a graph (see the module docstring); a SIDE_EFFECT is captured only
# when it is a DEVICE_WRITE.
_NOT_CAPTURED = frozenset({OpTag.RANDOM, OpTag.FALLBACK, "python"})

#: Captures per region above which the transform warns that the region keeps seeing new signatures.
MANY_CAPTURES = 8


class CUDAGraphWarning(UserWarning):
    """CUDA graphs were not used where they were asked for (a CPU program, a failed capture), or a region keeps
    capturing new graphs; the program still runs, without graphs there."""


@dataclass
class CUDAGraphStats:
    """Counters of one CUDAGraphTransform, over every program it rewrote: graphs captured, replays, regions
    that fell back to running without a graph."""

    regions: int = 0
    captures: int = 0
    replays: int = 0
    fallbacks: int = 0


class CUDAGraphTransform(Transform):
    """Runs the compiled programs (forward and backward) as CUDA graphs; see `thunder.transforms.cudagraph`.

    `thunder.jit(model, transforms=[CUDAGraphTransform()])`, or by name: `transforms=["cudagraphs"]`. The
    object's `stats` (`CUDAGraphStats`) count captures, replays and fallbacks. One object may serve several
    jitted functions; their graphs then share one memory pool per device.
    """

    def __init__(self):
        self.stats = CUDAGraphStats()
        self._pools: dict[int, tuple] = {}  # device index -> the graphs' shared memory pool
        self._streams: dict[int, torch.cuda.Stream] = {}  # device index -> the warm-up and capture stream
        self._warned_no_cuda = False

    def transform_trace_post_optimization(self, trace: TraceCtx, **kwargs) -> TraceCtx:
        device = _graph_device(trace)
        if device is None:
            if not self._warned_no_cuda:
                self._warned_no_cuda = True
                warnings.warn(
                    "CUDAGraphTransform: the program has no CUDA operation (its tensors are on the CPU); CUDA graphs "
                    "capture CUDA work only, so it runs without them. Move the model and inputs to a CUDA device, "
                    "or leave out the 'cudagraphs' transform.",
                    CUDAGraphWarning,
                    stacklevel=2,
                )
            return trace
        return graph_regions(trace, lambda bsym: graphable(bsym, device), self._make_runner)

    def _make_runner(self, region: Region, index: int) -> Callable:
        self.stats.regions += 1
        return GraphRunner(f"CUDAGraph{index}", region, self)

    def pool(self, device: torch.device):
        """The memory pool every graph of this transform on `device` is captured into."""
        pool = self._pools.get(device.index)
        if pool is None:
            with torch.cuda.device(device):
                pool = self._pools[device.index] = torch.cuda.graph_pool_handle()
        return pool

    def side_stream(self, device: torch.device) -> torch.cuda.Stream:
        """The stream warm-ups and captures run on (torch captures on a stream other than the default one)."""
        stream = self._streams.get(device.index)
        if stream is None:
            stream = self._streams[device.index] = torch.cuda.Stream(device)
        return stream


def _graph_device(trace: TraceCtx) -> torch.device | None:
    """The CUDA device of the trace's first CUDA operation (a graph holds one device's work), or None."""
    for bsym in trace.bound_symbols:
        for p in (*bsym.flat_args, *bsym.flat_outs):
            if isinstance(p, TensorProxy) and p.device.type == "cuda":
                return torch.device("cuda", p.device.index if p.device.index is not None else 0)
    return None


def _touches_host(bsym: BoundSymbol) -> bool:
    """Whether the operation (or, for a fusion, an operation inside it) must not be captured."""
    tags = bsym.sym.tags
    if tags & _NOT_CAPTURED or (OpTag.SIDE_EFFECT in tags and OpTag.DEVICE_WRITE not in tags):
        return True
    return any(_touches_host(sub) for sub in bsym.subsymbols)


def graphable(bsym: BoundSymbol, device: torch.device) -> bool:
    """Whether a graph of `device`'s work may hold this executable operation: every value it reads or makes is a
    tensor on `device` (no tensor elsewhere, no number that may change between calls) and it touches no host
    state."""
    proxies = (*bsym.flat_args, *bsym.flat_outs)
    if not proxies or _touches_host(bsym):
        return False
    index = device.index or 0
    return all(isinstance(p, TensorProxy) and p.device.type == device.type and (p.device.index or 0) == index
               for p in proxies)  # fmt: skip


def graph_regions(trace: TraceCtx, is_graphable: Callable[[BoundSymbol], bool],
                  make_runner: Callable[[Region, int], Callable]) -> TraceCtx:  # fmt: skip
    """The trace with each maximal region of operations `is_graphable` accepts replaced by one bound symbol that
    runs `make_runner(region, index)(*region.inputs) -> tuple(region.outputs)`.

    Expects: an executable trace (after claiming). Guarantees: the same results when each runner computes its
    region's outputs from its inputs; the program order stays valid (regions follow data flow, as fusion
    regions do: `thunder.transforms.fusion.partition_regions`).
    """
    nodes = list(trace.bound_symbols)
    fusible = [is_graphable(bsym) for bsym in nodes]
    if not any(fusible):
        return trace.from_trace("CUDA graphs (nothing to capture)")
    parts = partition_regions(nodes, fusible, {p.name for p in flat_proxies(trace.output)})
    result: list[BoundSymbol] = []
    index = 0
    for part in parts:
        if not isinstance(part, Region):
            result.append(part)
            continue
        runner = make_runner(part, index)
        name = f"CUDAGraph{index}"
        sym = Symbol(name, python_impl=runner, id=f"cudagraph.{name}", tags=(OpTag.FUSION,))
        sym.region = part
        result.append(sym.bind(*part.inputs, output=tuple(part.outputs), subsymbols=tuple(part.bound_symbols)))
        index += 1
    return trace.from_trace("CUDA graphs", result)


def _written_inputs(region: Region) -> frozenset[int]:
    """Positions among region.inputs of the tensors an in-place write inside the region writes into."""
    position = {p.name: i for i, p in enumerate(region.inputs)}
    written = set()
    for bsym in region.bound_symbols:
        if OpTag.DEVICE_WRITE in bsym.sym.tags and bsym.args and isinstance(bsym.args[0], Proxy):
            if bsym.args[0].name in position:
                written.add(position[bsym.args[0].name])
    return frozenset(written)


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    buffers: list  # the static inputs the graph reads, for the copied inputs
    copied: list[int]  # positions of the inputs copied into `buffers`
    outputs: list  # the static outputs the graph writes


class GraphRunner:
    """Runs one region: captures a CUDA graph per input signature, then copies inputs in, replays, copies
    outputs out (see the module docstring)."""

    def __init__(self, name: str, region: Region, transform: CUDAGraphTransform):
        self.name = name
        self.transform = transform
        program = del_last_used(region.as_trace(name), keep=frozenset())
        self.fn = program.python_callable()
        self.written = _written_inputs(region)
        self.graphs: dict[tuple, _Graph] = {}
        self.failed: str | None = None  # why the region runs without a graph
        self._warned_many = False

    def __call__(self, *inputs):
        if self.failed is not None:
            return self.fn(*inputs)
        in_place = [i in self.written or isinstance(x, torch.nn.Parameter) for i, x in enumerate(inputs)]
        key = tuple((x.shape, x.stride(), x.dtype, x.device, x.data_ptr() if by_address else None)
                    for x, by_address in zip(inputs, in_place))  # fmt: skip
        captured = self.graphs.get(key)
        if captured is None:
            return self._capture(key, inputs, in_place)
        if captured.copied:
            with torch.no_grad():  # the buffers are the graph's, never part of the caller's autograd graph
                torch._foreach_copy_(captured.buffers, [inputs[i] for i in captured.copied])
        captured.graph.replay()
        self.transform.stats.replays += 1
        return _copies(captured.outputs)

    def _capture(self, key: tuple, inputs: tuple, in_place: list[bool]):
        device = inputs[0].device if inputs else torch.device("cuda", torch.cuda.current_device())
        stream = self.transform.side_stream(device)
        current = torch.cuda.current_stream(device)
        # The warm-up torch asks for before a capture (lazy initialization happens outside the graph) is this
        # call's run: its result is returned.
        stream.wait_stream(current)
        with torch.cuda.stream(stream), torch.no_grad():
            result = self.fn(*inputs)
        current.wait_stream(stream)
        elsewhere = [f"output {i} on {t.device}" for i, t in enumerate(result)
                     if isinstance(t, torch.Tensor) and t.device != device]  # fmt: skip
        if elsewhere:  # a graph replays only the device's work: a tensor made elsewhere would keep its first value
            return self._give_up(f"the region made tensors off {device} ({', '.join(elsewhere)})", result)
        for t in result:
            if isinstance(t, torch.Tensor):
                t.record_stream(current)
        copied = [i for i, by_address in enumerate(in_place) if not by_address]
        buffers = [torch.empty_like(inputs[i]) for i in copied]
        static_inputs = list(inputs)
        for i, buffer in zip(copied, buffers):
            static_inputs[i] = buffer
        graph = torch.cuda.CUDAGraph()
        # A capture that fails leaves the device's default generator in capture mode (torch ends its capture
        # bookkeeping only when the capture succeeds), and every random op of the process fails after it: the
        # failure path puts a copy of the generator's state from before the capture back.
        generator = torch.cuda.default_generators[device.index if device.index is not None else 0]
        generator_before = generator.clone_state()
        try:
            with torch.cuda.device(device), torch.no_grad():
                with torch.cuda.graph(graph, pool=self.transform.pool(device), stream=stream,
                                      capture_error_mode="thread_local"):  # fmt: skip
                    outputs = list(self.fn(*static_inputs))
        except Exception as error:  # a capture can fail for many reasons; the warm-up's result is still right
            generator.graphsafe_set_state(generator_before)
            return self._give_up(f"{type(error).__name__}: {error}", result)
        self.graphs[key] = _Graph(graph, buffers, copied, outputs)
        self.transform.stats.captures += 1
        if len(self.graphs) > MANY_CAPTURES and not self._warned_many:
            self._warned_many = True
            warnings.warn(
                f"CUDAGraphTransform: {self.name} has captured {len(self.graphs)} graphs, one per new input signature "
                "(shapes, strides, dtypes, or a new tensor where a parameter or an in-place input was). Each keeps "
                "its own memory; pass inputs of fixed shapes and keep parameters in place (update them in place).",
                CUDAGraphWarning,
                stacklevel=3,
            )
        return result


    def _give_up(self, reason: str, result):
        """This region runs without a graph from now on, saying why; `result` (the warm-up's) is returned."""
        self.failed = reason
        self.transform.stats.fallbacks += 1
        warnings.warn(
            f"CUDAGraphTransform: capturing {self.name} failed ({reason}); it runs without a CUDA graph from now on. "
            f"Its operations: {_describe(self.fn)}",
            CUDAGraphWarning,
            stacklevel=4,
        )
        return result


def _copies(outputs: list) -> list:
    """Fresh tensors holding the static outputs' values (one multi-tensor copy)."""
    fresh = [torch.empty_like(o) for o in outputs]
    if fresh:
        torch._foreach_copy_(fresh, outputs)
    return fresh


def _describe(fn) -> str:
    source = getattr(fn, "__thunder_source__", "")
    lines = [line.strip() for line in source.splitlines()[1:] if line.strip() and not line.strip().startswith("del ")]
    return "; ".join(lines[:6]) + (" ..." if len(lines) > 6 else "")
