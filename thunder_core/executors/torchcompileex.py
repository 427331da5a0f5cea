"""The `torchcompile` executor: a fusion executor that compiles each region of the trace with TorchInductor.

It fuses what the torch executor can run: the torch operations, and the aten kernels that the torch executor
runs as operators of its own (what autodiff records with its grad rules, see torchex_grads.py: layer_norm's and
nll_loss's forward and backward, the backward of softmax, log_softmax, gelu and silu), which Inductor
decomposes and fuses with their neighbours as torch.compile does. It leaves out what is unsafe or pointless to
compile:

- operations with side effects (`prims.copy_to`): they write into the caller's tensors;
- random operations (and operations whose decomposition draws random numbers): they stay on the torch
  executor, one torch RNG call each, so that a seeded run draws exactly what eager draws. Inductor would
  generate its own random numbers, from another stream;
- fallback operators (torch operators without a Thunder symbol): nothing says they are pure and of static
  shape;
- other executors' operators (the sdpa executor's attention kernels): Inductor would only call the same
  kernel. A region stops at each, so in a transformer the regions between two attention calls are the same
  program in every block, and compile once;
- operations on number proxies: a region's source is its cache key, so its arguments must be literals;
- complex tensors, and tensors on devices Inductor does not compile for.

A region becomes a straight-line program of torch calls (each operation lowered by the torch executor) and
an FX graph of those calls, which `torch._inductor.compile` turns into one callable. It is Inductor without
Dynamo: the program is already captured, so nothing is re-traced or guarded at each call, and a call costs
what Inductor's generated code costs (`torch.compile` would add Dynamo's guard evaluation, ~15 us a call).

Compilation happens on the region's first call, with the metadata of its actual inputs: the torch executor
returns views (expand, permute...) whose strides the trace's proxies do not record, and Inductor specializes
on strides. Identical regions (the same program up to names, and the same input metadata: the blocks of a
transformer) compile once: the compiled callables are cached process-wide, keyed on the region's canonical
source and its inputs' metadata.
"""

from __future__ import annotations

import operator
import sys
import threading
import warnings
from collections.abc import Callable
from contextlib import ExitStack

import torch

from thunder.core.proxies import TensorProxy
from thunder.core.symbol import BoundSymbol, Symbol
from thunder.core.trace import TraceCtx, tracectx
from thunder.executors.torchex import ex as torchex
from thunder.extend.executors import FusionExecutor
from thunder.transforms.claim_operators import lower_bsym
from thunder.transforms.fusion import Region

_NOT_COMPILED_TAGS = frozenset({"side_effect", "random", "fallback", "python"})
_DEVICES = frozenset({"cpu", "cuda"})
_PLAIN_TYPES = (type(None), bool, int, float, str, type(Ellipsis), torch.dtype, torch.device, torch.memory_format,
                torch.layout)  # fmt: skip


class TorchCompileWarning(UserWarning):
    """Inductor could not compile a fusion region; the region runs on the torch executor instead."""


class TorchCompileExecutor(FusionExecutor):
    """Fuses regions of torch-executable operations and compiles each with TorchInductor."""

    def __init__(self):
        super().__init__("torchcompile", version=torch.__version__)
        # (canonical source, identities of the objects it names, defaults, input metadata) -> (callable, objects)
        self._cache: dict[tuple, tuple[Callable, dict]] = {}
        self._lock = threading.Lock()
        self.compilations = 0  # Inductor compilations (cache misses); read by tests and benchmarks
        self.cache_hits = 0

    def can_fuse(self, bsym: BoundSymbol) -> bool:
        # First, before any metadata is read: a number proxy has none, and a region's source is its key.
        if not _plain(bsym.args) or not _plain(bsym.kwargs):
            return False
        if bsym.sym.tags & _NOT_COMPILED_TAGS:
            return False
        if bsym.sym.python_impl is not None:  # an executor's operator, which runs its own implementation
            if not _compilable_aten_operator(bsym):
                return False
        elif not torchex.can_execute(bsym):
            return False
        for p in bsym.flat_args + bsym.flat_outs:
            if p.dtype.is_complex or p.device.type not in _DEVICES:
                return False
        return not _draws_random(bsym)

    def fuse(self, region: Region, fusion_index: int) -> BoundSymbol:
        name = f"TorchCompile{fusion_index}"
        program = _RegionProgram(region)
        sym = Symbol(name, python_impl=_CompileOnFirstCall(self, program), id=f"torchcompile.{name}", tags=("fusion",))
        sym.region = region
        sym.executor = self
        return sym.bind(*region.inputs, output=tuple(region.outputs), subsymbols=tuple(region.bound_symbols))

    def compiled(self, program: _RegionProgram, args: tuple) -> Callable:
        """The compiled callable for `program` on inputs with `args`' metadata (compiled once per process)."""
        # Creation ops without dtype= or device= read the defaults when compiled: they are part of the program.
        defaults = (torch.get_default_dtype(), torch.get_default_device())
        key = (program.key, defaults, tuple((a.shape, a.stride(), a.dtype, a.device) for a in args))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self.cache_hits += 1
                return hit[0]
            fn = _inductor_compile(program, args)
            self.compilations += 1
            self._cache[key] = (fn, program.ctx)  # the entry keeps the objects alive, so their ids stay unique
            return fn

    def clear_cache(self) -> None:
        """Forgets every compiled region (the callables already in traces keep working)."""
        with self._lock:
            self._cache.clear()


class _RegionProgram:
    """A region lowered to torch calls, with canonical names (inputs i0, i1..., other values t0, t1...).

    `trace` is the region as a trace of torch calls; `key` identifies the program up to the names of its values.
    """

    def __init__(self, region: Region):
        scratch = region.as_trace()
        lowered: list[BoundSymbol] = []
        # Execution transforms registered on the torch executor record into the current trace; the scratch
        # trace's names keep their new values from colliding with the region's.
        with tracectx(scratch):
            for bsym in region.bound_symbols:
                lowered.extend(lower_bsym(bsym, (torchex,)))
        names: dict[str, TensorProxy] = {}
        for i, p in enumerate(region.inputs):
            names[p.name] = p.replace_name(f"i{i}")
        for bsym in lowered:
            for p in bsym.flat_outs:
                if p.name not in names:
                    names[p.name] = p.replace_name(f"t{len(names) - len(region.inputs)}")
        trace = TraceCtx("region")
        trace.args = [names[p.name] for p in region.inputs]
        trace.bound_symbols = [
            b.from_bsym(args=_renamed(b.args, names), kwargs=_renamed(b.kwargs, names),
                        output=_renamed(b.output, names), subsymbols=())
            for b in lowered
        ]  # fmt: skip
        trace.output = tuple(names[p.name] for p in region.outputs)
        self.trace = trace
        source, ctx = trace.python(with_comments=False), trace.python_ctx()
        # The names of objects in the source are numbered per trace: their identities complete the key.
        self.key = (source, tuple((k, id(v)) for k, v in sorted(ctx.items())))
        self.ctx = ctx

    def fx_graph(self) -> torch.fx.GraphModule:
        graph = torch.fx.Graph()
        env: dict[str, torch.fx.Node] = {p.name: graph.placeholder(p.name) for p in self.trace.args}

        def to_fx(x):
            if isinstance(x, TensorProxy):
                return env[x.name]
            if isinstance(x, (tuple, list)):
                return (list if type(x) is list else tuple)(to_fx(v) for v in x)
            if isinstance(x, dict):
                return {k: to_fx(v) for k, v in x.items()}
            return x

        def bind_outputs(out, node):
            if isinstance(out, TensorProxy):
                env[out.name] = node
            elif isinstance(out, (tuple, list)):
                for i, o in enumerate(out):
                    if _contains_proxy(o):
                        bind_outputs(o, graph.call_function(operator.getitem, (node, i)))

        for bsym in self.trace.bound_symbols:
            node = graph.call_function(bsym.sym.python_impl, to_fx(bsym.args), to_fx(bsym.kwargs))
            bind_outputs(bsym.output, node)
        graph.output([env[p.name] for p in self.trace.output])
        return torch.fx.GraphModule(torch.nn.Module(), graph)


class _CompileOnFirstCall:
    """A fusion's implementation: compiles on the first call (the actual inputs' strides are known only
    then), then rebinds the name it was called by in the calling trace's namespace to the compiled callable,
    so that later calls go straight to Inductor's code."""

    __slots__ = ("executor", "program", "fn")

    def __init__(self, executor: TorchCompileExecutor, program: _RegionProgram):
        self.executor = executor
        self.program = program
        self.fn: Callable | None = None

    def __call__(self, *args):
        fn = self.fn
        if fn is None:
            fn = self.fn = self.executor.compiled(self.program, args)
            caller = sys._getframe(1)
            # Only the functions Thunder compiles from traces (see TraceCtx.python_callable) are rebound.
            if caller.f_code.co_filename.startswith("thunder."):
                namespace = caller.f_globals
                for name in [k for k, v in namespace.items() if v is self]:
                    namespace[name] = fn
        return fn(*args)


def _inductor_compile(program: _RegionProgram, args: tuple) -> Callable:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with ExitStack() as stack:
        # The region is an inference program: Thunder differentiates traces itself, and autocast is applied to
        # the trace, not to the compiled code.
        stack.enter_context(torch.no_grad())
        for device in ("cpu", "cuda"):
            stack.enter_context(torch.autocast(device, enabled=False))
        with FakeTensorMode():
            examples = [torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device=a.device) for a in args]
        try:
            return torch._inductor.compile(program.fx_graph(), examples)
        except Exception as e:  # Inductor's failures are many and version-dependent: degrade, loudly
            warnings.warn(
                f"torchcompile could not compile a fusion region ({type(e).__name__}: {e}); it runs on the torch "
                "executor instead. To skip the attempt, leave 'torchcompile' out of the executors.",
                TorchCompileWarning,
                stacklevel=3,
            )
            return program.trace.python_callable()


def _plain(x) -> bool:
    """Whether x holds only values that print as Python literals (and proxies): the region's source is its key."""
    if isinstance(x, (TensorProxy, *_PLAIN_TYPES)):
        return True
    if isinstance(x, (tuple, list)):
        return all(_plain(v) for v in x)
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, slice):
        return _plain((x.start, x.stop, x.step))
    return False


def _renamed(x, names: dict[str, TensorProxy]):
    """x with proxies replaced through `names`; tuple subclasses (torch.return_types) become plain tuples."""
    if isinstance(x, TensorProxy):
        return names[x.name]
    if isinstance(x, (tuple, list)):
        return (list if type(x) is list else tuple)(_renamed(v, names) for v in x)
    if isinstance(x, dict):
        return {k: _renamed(v, names) for k, v in x.items()}
    return x


_REFUSED_ATEN_TAGS = (torch.Tag.nondeterministic_seeded, torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output,
                      torch.Tag.inplace_view)  # fmt: skip


def _compilable_aten_operator(bsym: BoundSymbol) -> bool:
    """Whether bsym is one of the torch executor's own operators that calls an aten operator Inductor compiles
    as torch.compile would: a pure one, of static output shape, that draws no random numbers."""
    op = bsym.sym.python_impl
    if getattr(bsym.sym, "executor", None) is not torchex:
        return False
    if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten":
        return False
    return not op._schema.is_mutable and not any(tag in op.tags for tag in _REFUSED_ATEN_TAGS)


def _draws_random(bsym: BoundSymbol) -> bool:
    return "random" in bsym.sym.tags or any(_draws_random(s) for s in bsym.subsymbols)


def _contains_proxy(x) -> bool:
    if isinstance(x, TensorProxy):
        return True
    return isinstance(x, (tuple, list)) and any(_contains_proxy(v) for v in x)


ex = TorchCompileExecutor()
torchcompile_ex = ex
