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
- number proxies (numbers that are inputs of the program: the learning rate and step count of a training step,
  every number under `cache="symbolic values"`) other than as a whole argument of an operation that computes
  with them as a 0-d tensor: a region's source is its cache key, so a number either prints as a literal or is
  an input of the region, which the region passes to Inductor as a 0-d CPU tensor (`_NumbersAsTensors`). That
  is how Dynamo hands Inductor a number it does not specialize on: Inductor reads it as a kernel argument on
  each call, so a new learning rate neither recompiles nor is baked into the kernel. An operation takes a
  number this way only where it accepts the tensor and gives the same result dtype and shape as with the
  number (`_numbers_work_as_tensors`: `t * lr` does; `torch.add(t, u, alpha=lr)`, or an integer tensor times a
  float, do not, and stay outside the region or are fused through their decomposition);
- complex tensors, and tensors on devices Inductor does not compile for.

A region becomes a straight-line program of torch calls (each operation lowered by the torch executor) and
an FX graph of those calls, which `torch._inductor.compile` turns into one callable. It is Inductor without
Dynamo: the program is already captured, so nothing is re-traced or guarded at each call, and a call costs
what Inductor's generated code costs (`torch.compile` would add Dynamo's guard evaluation, ~15 us a call).

Compilation happens on the region's first call, with the metadata of its actual inputs
(`thunder.extend.CompileOnFirstCall`): the torch executor returns views (expand, permute...) whose strides
the trace's proxies do not record, and Inductor specializes on strides. Identical regions (the same program up
to names, the same options and the same input metadata: the blocks of a transformer) compile once: the
compiled callables are cached process-wide (`thunder.extend.CompileCache`).

Options (`thunder.jit(fn, executors=["torchcompile"], executor_options={"torchcompile": {...}})`):
`max_autotune` (Inductor benchmarks kernel variants: slower compilation, faster kernels on GPUs) and
`min_region_size` (smaller regions are declined and run on the next executor).

Written against the public extension API only (thunder.extend and thunder.core.trace), as an executor
package would be.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Callable, Mapping
from contextlib import ExitStack

import torch

from thunder.core.proxies import NumberProxy, Proxy, number_tensor_dtype
from thunder.extend import (
    BoundSymbol,
    CompileCache,
    CompileOnFirstCall,
    ExecutorOption,
    FusionExecutor,
    OpTag,
    Region,
    Symbol,
    TensorProxy,
    TraceCtx,
    get_executor,
    has_symbolic_shape,
    lower_bound_symbols,
    lower_region,
)

_NOT_COMPILED_TAGS = frozenset({OpTag.SIDE_EFFECT, OpTag.RANDOM, OpTag.FALLBACK, "python"})
_DEVICES = frozenset({"cpu", "cuda"})
_PLAIN_TYPES = (type(None), bool, int, float, str, type(Ellipsis), torch.dtype, torch.device, torch.memory_format,
                torch.layout)  # fmt: skip


class TorchCompileWarning(UserWarning):
    """Inductor could not compile a fusion region; the region runs on the torch executor instead."""


class TorchCompileExecutor(FusionExecutor):
    """Fuses regions of torch-executable operations and compiles each with TorchInductor."""

    def __init__(self):
        options = [
            ExecutorOption("max_autotune", bool, False,
                           "let Inductor benchmark kernel variants (slower compilation, faster GPU kernels)"),
            ExecutorOption("min_region_size", int, 1,
                           "regions of fewer operations are declined and run on the next executor"),
        ]  # fmt: skip
        super().__init__("torchcompile", version=torch.__version__, options=options)
        self.torch = get_executor("torch")
        self.cache = CompileCache()  # one Inductor compilation per program, options and input metadata

    @property
    def compilations(self) -> int:
        """Inductor compilations so far (cache misses); read by tests and benchmarks."""
        return self.cache.compilations

    @property
    def cache_hits(self) -> int:
        return self.cache.hits

    def can_fuse(self, bsym: BoundSymbol) -> bool:
        # First, before any metadata is read: a number proxy has none, and a region's source is its key.
        if not _plain_arguments(bsym):
            return False
        if bsym.sym.tags & _NOT_COMPILED_TAGS:
            return False
        if bsym.sym.python_impl is not None:  # an executor's operator, which runs its own implementation
            if not _compilable_aten_operator(bsym, self.torch):
                return False
        elif not self.torch.can_execute(bsym):
            return False
        tensors = [p for p in bsym.flat_args + bsym.flat_outs if isinstance(p, TensorProxy)]
        if not all(inductor_compiles(p.dtype, p.device) for p in tensors):
            return False
        if len(tensors) != len(bsym.flat_args) + len(bsym.flat_outs) and not _numbers_work_as_tensors(bsym, self.torch):
            return False
        return not _draws_random(bsym)

    def fuse(self, region: Region, fusion_index: int, *, options: Mapping) -> BoundSymbol | None:
        if len(region.bound_symbols) < options["min_region_size"]:
            return None
        name = f"TorchCompile{fusion_index}"
        program = _RegionProgram(region, self.torch)
        inductor_options = {"max_autotune": True} if options["max_autotune"] else None
        # symbolic sizes (cache="symbolic values"): Inductor compiles per concrete shape underneath
        static = not any(has_symbolic_shape(p) for p in (*region.inputs, *region.outputs))
        impl = CompileOnFirstCall(lambda args: _inductor_compile(program, args, inductor_options),
                                  key=(program.key, options["max_autotune"]), cache=self.cache,
                                  static_shapes=static)  # fmt: skip
        numbers = tuple((i, number_tensor_dtype(p)) for i, p in enumerate(region.inputs) if isinstance(p, NumberProxy))
        if numbers:
            impl = _NumbersAsTensors(impl, numbers)
        sym = Symbol(name, python_impl=impl, id=f"torchcompile.{name}", tags=(OpTag.FUSION,))
        sym.region = region
        sym.executor = self
        return sym.bind(*region.inputs, output=tuple(region.outputs), subsymbols=tuple(region.bound_symbols))

    def clear_cache(self) -> None:
        """Forgets every compiled region (the callables already in traces keep working)."""
        self.cache.clear()


def inductor_compiles(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether Inductor generates code for tensors of `dtype` on `device`: CPU, or CUDA devices Triton supports
    (compute capability 7.0 or higher); never complex or 8-bit floating-point tensors (Inductor has no
    arithmetic for them: they stay on the torch executor)."""
    if dtype.is_complex or (dtype.is_floating_point and dtype.itemsize == 1) or device.type not in _DEVICES:
        return False
    return device.type == "cpu" or _cuda_capability(device) >= (7, 0)


@functools.cache
def _cuda_capability(device: torch.device) -> tuple[int, int]:
    try:
        return torch.cuda.get_device_capability(device)
    except (AssertionError, RuntimeError):  # no CUDA here: nothing to compile for
        return (0, 0)


class _RegionProgram:
    """A region lowered to torch calls, with canonical names (inputs i0, i1..., other values t0, t1...).
    Number inputs are placeholders like tensor inputs (the callable gets them as 0-d tensors: `_NumbersAsTensors`).

    `trace` is the region as a trace of torch calls; `key` identifies the program up to the names of its values.
    """

    def __init__(self, region: Region, torch_executor):
        lowered = lower_region(region, [torch_executor])
        names: dict[str, Proxy] = {}
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
        # The names of objects in the source are numbered per trace: the objects complete the key. The key holds
        # them (an id alone could be reused by a new object once the old one is freed).
        self.key = (source, tuple((k, _KeyedByIdentity(v)) for k, v in sorted(ctx.items())))

    def fx_graph(self) -> torch.fx.GraphModule:
        graph = torch.fx.Graph()
        env: dict[str, torch.fx.Node] = {p.name: graph.placeholder(p.name) for p in self.trace.args}

        def to_fx(x):
            if isinstance(x, Proxy):
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
            args, kwargs = to_fx(bsym.args), to_fx(bsym.kwargs)
            if bsym.sym.python_impl is torch.add and kwargs.get("alpha", 1) != 1 and len(args) == 2:
                # `add(a, b, alpha=k)` as `add(a, mul(b, k))`: Inductor's post-grad pass that turns `mm(x, y) + b`
                # into addmm ignores alpha (torch 2.13: `add(mm(x, y), b, alpha=k)` computes `mm(x, y) + b`), which
                # SGD's and Adam's weight decay `grad.add(param, alpha=wd)` meet when the gradient is a matmul
                alpha = kwargs.pop("alpha")
                args = (args[0], graph.call_function(torch.mul, (args[1], alpha)))
            node = graph.call_function(bsym.sym.python_impl, args, kwargs)
            bind_outputs(bsym.output, node)
        graph.output([env[p.name] for p in self.trace.output])
        return torch.fx.GraphModule(torch.nn.Module(), graph)


class _KeyedByIdentity:
    """Makes any object a cache-key component that compares by identity and keeps the object alive."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other) -> bool:
        return isinstance(other, _KeyedByIdentity) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _inductor_compile(program: _RegionProgram, args: tuple, inductor_options: dict | None = None) -> Callable:
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
            extra = {"options": inductor_options} if inductor_options else {}
            return torch._inductor.compile(program.fx_graph(), examples, **extra)
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


def _plain_arguments(bsym: BoundSymbol) -> bool:
    """Whether bsym's arguments are literals and proxies (`_plain`), number proxies only as whole arguments."""
    arguments = (*bsym.args, *bsym.kwargs.values())
    return all(isinstance(a, NumberProxy) or _plain(a) for a in arguments)


def _numbers_work_as_tensors(bsym: BoundSymbol, torch_executor) -> bool:
    """Whether bsym's torch calls, given its number proxies as 0-d tensors (`number_tensor_dtype`), accept them and
    make outputs of the dtypes and shapes the trace says (those of eager with the Python numbers). Tensors and
    numbers differ in type promotion: `int_tensor * 0.5` is a float32 tensor, `int_tensor * tensor(0.5,
    dtype=float64)` a float64 one; two 0-d tensors promote each other. Checked by running the lowered calls
    on meta tensors."""
    outs = bsym.flat_outs
    if not outs or not all(isinstance(p, TensorProxy) for p in outs):
        return False  # a number result would be an output of the region, which Inductor returns as a tensor
    inputs = list({p.name: p for p in bsym.flat_args}.values())
    if any(isinstance(p, NumberProxy) and number_tensor_dtype(p) is None for p in inputs):
        return False
    env = {p.name: _meta_example(p) for p in inputs}
    try:
        lowered = lower_bound_symbols([bsym], [torch_executor], Region([bsym], inputs, outs).as_trace())
        for b in lowered:
            result = b.sym.python_impl(*_renamed(b.args, env), **_renamed(b.kwargs, env))
            _bind_results(b.output, result, env)
    except Exception:  # a torch call that takes no tensor there (`alpha=`, a fill value): not fused
        return False
    return all(_same_metadata(env.get(p.name), p) for p in outs)


def _meta_example(p: Proxy) -> torch.Tensor:
    if isinstance(p, NumberProxy):
        return torch.empty((), dtype=number_tensor_dtype(p), device="meta")
    return torch.empty(_example_shape(p), dtype=p.dtype, device="meta")


def _example_shape(p: TensorProxy) -> tuple[int, ...]:
    """p's shape, symbolic sizes at the values they have while tracing (read without guarding them: the check
    is about dtypes and argument types, which do not depend on the sizes)."""
    return tuple(d.value if isinstance(d, NumberProxy) else d for d in p.shape)


def _bind_results(out, result, env: dict[str, torch.Tensor]) -> None:
    if isinstance(out, Proxy):
        env[out.name] = result
    elif isinstance(out, (tuple, list)):
        for o, r in zip(out, result, strict=True):
            _bind_results(o, r, env)


def _same_metadata(t, p: TensorProxy) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype == p.dtype and tuple(t.shape) == _example_shape(p)


class _NumbersAsTensors:
    """A region's callable whose number inputs are passed on as 0-d CPU tensors (`numbers`: (position, dtype)
    pairs, the dtype `number_tensor_dtype` gives the proxy): Inductor specializes on a Python number's value
    (it would be baked into the kernel, and every new value would need a new compilation), and reads a 0-d CPU
    tensor's value on each call (a kernel argument, on CUDA too). The compile cache then keys the region on the
    tensors' metadata, not on the numbers' values."""

    __slots__ = ("fn", "numbers")

    def __init__(self, fn: Callable, numbers: tuple[tuple[int, torch.dtype], ...]):
        self.fn = fn
        self.numbers = numbers

    def __call__(self, *args):
        args = list(args)
        for i, dtype in self.numbers:
            args[i] = torch.scalar_tensor(args[i], dtype=dtype)
        return self.fn(*args)


def _renamed(x, names: dict):
    """x with proxies replaced through `names` (by proxy name: other proxies, or tensors standing for them);
    tuple subclasses (torch.return_types) become plain tuples."""
    if isinstance(x, Proxy):
        return names[x.name]
    if isinstance(x, (tuple, list)):
        return (list if type(x) is list else tuple)(_renamed(v, names) for v in x)
    if isinstance(x, dict):
        return {k: _renamed(v, names) for k, v in x.items()}
    return x


_REFUSED_ATEN_TAGS = (torch.Tag.nondeterministic_seeded, torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output,
                      torch.Tag.inplace_view)  # fmt: skip


def _compilable_aten_operator(bsym: BoundSymbol, torchex) -> bool:
    """Whether bsym is one of the torch executor's own operators that calls an aten operator Inductor compiles
    as torch.compile would: a pure one, of static output shape, that draws no random numbers."""
    op = bsym.sym.python_impl
    if getattr(bsym.sym, "executor", None) is not torchex:
        return False
    if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten":
        return False
    return not op._schema.is_mutable and not any(tag in op.tags for tag in _REFUSED_ATEN_TAGS)


def _draws_random(bsym: BoundSymbol) -> bool:
    return OpTag.RANDOM in bsym.sym.tags or any(_draws_random(s) for s in bsym.subsymbols)


def _contains_proxy(x) -> bool:
    if isinstance(x, TensorProxy):
        return True
    return isinstance(x, (tuple, list)) and any(_contains_proxy(v) for v in x)


ex = TorchCompileExecutor()
torchcompile_ex = ex
