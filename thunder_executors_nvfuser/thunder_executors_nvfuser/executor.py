"""The `nvfuser` executor: a fusion executor that runs regions of primitives as nvFuser fusions.

Claiming (`can_fuse`): a primitive when translation.py has a rule for it whose checker accepts its arguments
and every tensor it reads or writes is on a CUDA device, of a supported dtype, and not empty; a composite
`thunder.torch` operation when its whole decomposition is (the partitioner flattens a composite that is only
partly fusible, so its fusible part still joins a region). Random primitives (dropout's bernoulli) are claimed
while `enable_random` is on, matmul and linear only with `enable_matmul`. Executors' own operators (the torch
executor's aten kernels, sdpa's attention) are never claimed: a region stops at them.

Fusing (`fuse`): the region's operations are flattened to primitives and split (`split_edges`) into
- a prologue: shape-only operations on the region's inputs whose results leave the region (torch views);
- the core, planned into nvFuser fusions of at most `max_fusion_ops` primitives each;
- an epilogue: shape-only operations on core results whose results leave the region (torch views of the
  fusion's outputs: nvFuser would write copies, or return outputs aliasing each other).
A region with an empty core (it only reshapes) never reaches nvFuser, nor does a chunk without inputs.

Fusions are compiled on a region's first call, with the actual inputs' layout, and cached by (plan, input
sizes, strides, dtypes, devices, pointer alignment): the identical regions of a transformer's layers, and
later calls, reuse one compiled fusion. A failure anywhere falls back to torch for that region (runtime.py).
"""

from __future__ import annotations

import threading

from thunder_executors_nvfuser._thunder import BoundSymbol, FusionExecutor, Symbol, TensorProxy
from thunder_executors_nvfuser.grads import register_grad_rules
from thunder_executors_nvfuser.options import NvFuserOptions, declared_options
from thunder_executors_nvfuser.runtime import (
    FusionCache,
    FusionRecord,
    NvFuserStats,
    NvFuserStep,
    RegionRunner,
    TorchStep,
)
from thunder_executors_nvfuser.translation import RULES, claims, plan_fusion, prim_name, supported_tensor

_NOT_FUSED_TAGS = frozenset({"fusion", "side_effect", "fallback", "python"})


class NvFuserExecutor(FusionExecutor):
    """Fuses regions of primitives into nvFuser fusions.

    options: `NvFuserOptions` (or None for the defaults).
    device_types: the device types whose tensors are claimed; nvFuser runs on "cuda". Tests of the claiming
        and splitting logic widen it to "cpu" to trace on a machine without a GPU.
    build: `build(plan, input_tensors) -> run(tensors, scalars)`; default: emit.build_fusion (nvFuser).
    """

    def __init__(self, options: NvFuserOptions | None = None, *, device_types=("cuda",), build=None):
        options = options if options is not None else NvFuserOptions()
        if not isinstance(options, NvFuserOptions):
            raise TypeError(f"options must be NvFuserOptions, got {type(options).__name__}")
        # declared with this object's values as the defaults: `executor_options` changes only what it names
        super().__init__("nvfuser", version=_nvfuser_version(), options=declared_options(options))
        self.options = options
        self.device_types = frozenset(device_types)
        if self.options.own_grad_rules:
            register_grad_rules(self.implmap, self.device_types)
        if build is None:
            from thunder_executors_nvfuser.emit import build_fusion as build
        self.stats = NvFuserStats()
        self.cache = FusionCache(build, self.stats)
        self._build = build
        self._lock = threading.Lock()
        self._variants: dict[NvFuserOptions, NvFuserExecutor] = {}

    #: The type of this executor's options: `options_type.from_dict(d)` validates a dict of them.
    options_type = NvFuserOptions

    def with_options(self, **changes) -> NvFuserExecutor:
        """The executor with these options changed, e.g. `ex.with_options(enable_matmul=True)`: one object (and one
        fusion cache) per distinct set of options, so that every jit call with the same options shares it."""
        values = {f: getattr(self.options, f) for f in NvFuserOptions.__dataclass_fields__}
        options = NvFuserOptions.from_dict({**values, **changes})
        if options == self.options:
            return self
        with self._lock:
            variant = self._variants.get(options)
            if variant is None:
                variant = self._variants[options] = NvFuserExecutor(options, device_types=self.device_types,
                                                                    build=self._build)  # fmt: skip
        return variant

    # -- claiming -----------------------------------------------------------------------------------------
    def can_execute(self, bsym: BoundSymbol) -> bool:
        return False  # no operator implementations: everything it runs, it runs as a fusion

    def _for(self, options) -> NvFuserExecutor:
        """The executor variant for `executor_options={"nvfuser": {...}}` of one jit call (itself for the defaults)."""
        return self.with_options(**options) if options else self

    def can_fuse(self, bsym: BoundSymbol, options=None) -> bool:
        ex = self._for(options)
        if ex is not self:
            return ex.can_fuse(bsym)
        if bsym.sym.tags & _NOT_FUSED_TAGS or bsym.sym.python_impl is not None:
            return False
        if prim_name(bsym) is not None:
            return claims(bsym, self.options, self.device_types)
        if not bsym.subsymbols or bsym.sym.is_prim:
            return False
        outs = bsym.flat_outs
        if not outs or not all(isinstance(o, TensorProxy) and supported_tensor(o, self.device_types) for o in outs):
            return False
        return all(self.can_fuse(sub) for sub in bsym.subsymbols)

    # -- fusing -------------------------------------------------------------------------------------------
    def fuse(self, region, fusion_index: int, options=None) -> BoundSymbol:
        ex = self._for(options)
        if ex is not self:
            return ex.fuse(region, fusion_index)
        name = f"nvFusion{fusion_index}"
        prims = _flatten(region.bound_symbols)
        steps, n_fusions = self._steps(region, prims, name)
        record = FusionRecord(name=name, operations=len(prims), nvfuser_fusions=n_fusions)
        with self._lock:
            self.stats.records.append(record)
        runner = RegionRunner(name, region, steps, record, self.stats)
        sym = Symbol(name, python_impl=runner, id=f"nvfuser.{name}", tags=("fusion",))
        sym.region = region
        sym.executor = self
        return sym.bind(*region.inputs, output=tuple(region.outputs), subsymbols=tuple(region.bound_symbols))

    def _steps(self, region, prims: list[BoundSymbol], name: str) -> tuple[list, int]:
        region_outputs = {p.name for p in region.outputs}
        prologue, core, epilogue = split_edges(prims, {p.name for p in region.inputs}, region_outputs)
        scratch = region.as_trace()
        steps: list = []
        made_by_torch = {p.name for b in prologue + epilogue for p in b.flat_outs}
        if prologue:
            needed = _used_after(prologue, core + epilogue, region_outputs)
            steps.append(TorchStep(prologue, _inputs_of(prologue), needed, scratch, f"{name}_prologue"))
        chunks = [core[i : i + self.options.max_fusion_ops] for i in range(0, len(core), self.options.max_fusion_ops)]
        for k, chunk in enumerate(chunks):
            later = [b for c in chunks[k + 1 :] for b in c] + epilogue
            inputs, outputs = _inputs_of(chunk), _used_after(chunk, later, region_outputs)
            # a view torch makes (prologue, epilogue) is never also an nvFuser output (an alias)
            outputs = [p for p in outputs if p.name not in made_by_torch]
            if not any(isinstance(p, TensorProxy) for p in inputs):
                # only creation ops (an arange): nvFuser would have no input tensor to take the device from
                steps.append(TorchStep(chunk, inputs, outputs, scratch, f"{name}_creation{k}"))
                continue
            plan, sources = plan_fusion(chunk, inputs, outputs)
            devices = [b.kwargs["device"] for b in chunk if RULES[prim_name(b)].random]
            steps.append(NvFuserStep(plan, sources, inputs, outputs, devices, self.cache))
        if epilogue:
            steps.append(TorchStep(epilogue, _inputs_of(epilogue), _used_after(epilogue, [], region_outputs),
                                   scratch, f"{name}_epilogue"))  # fmt: skip
        return steps, sum(isinstance(s, NvFuserStep) for s in steps)

    def clear_cache(self) -> None:
        """Forgets every compiled fusion (regions already compiled into traces rebuild theirs when next called)."""
        self.cache.clear()


def split_edges(prims: list[BoundSymbol], inputs: set[str], outputs: set[str]) -> tuple[list, list, list]:
    """(prologue, core, epilogue) of a region's primitives, each in program order.

    Shape-only operations computed from the region's inputs alone go to the prologue (torch views) when their
    results leave the region or feed the epilogue, and to the core when the core reads them (nvFuser then
    broadcasts or reshapes internally rather than reading a strided view): to both when both need them.
    Shape-only operations on core results whose results leave the region form the epilogue (and stay in the
    core too when the core reads them).
    """
    from_inputs, derived = set(inputs), set()
    for i, b in enumerate(prims):
        if _shape_only(b) and all(p.name in from_inputs for p in b.flat_args):
            derived.add(i)
            from_inputs.update(p.name for p in b.flat_outs)
    readers: dict[str, list[int]] = {}
    for i, b in enumerate(prims):
        for p in b.flat_args:
            readers.setdefault(p.name, []).append(i)

    def readers_of(i: int) -> list[int]:
        return [r for p in prims[i].flat_outs for r in readers.get(p.name, ())]

    epilogue: set[int] = set()
    for i in reversed(range(len(prims))):
        if i not in derived and _shape_only(prims[i]) and all(r in epilogue for r in readers_of(i)):
            epilogue.add(i)
    core = {i for i in range(len(prims)) if i not in derived and i not in epilogue}
    prologue: set[int] = set()
    for i in sorted(derived, reverse=True):
        used = readers_of(i)
        if any(r in core for r in used):
            core.add(i)
        if any(p.name in outputs for p in prims[i].flat_outs) or any(r in epilogue or r in prologue for r in used):
            prologue.add(i)
    # A view of a core value that leaves the region is also made by the epilogue, from the value: nvFuser then
    # returns no output that is a view of another (aliased outputs are where its runtime has asserted).
    for i in sorted(core, reverse=True):
        if _shape_only(prims[i]) and (any(p.name in outputs for p in prims[i].flat_outs)
                                      or any(r in epilogue for r in readers_of(i))):  # fmt: skip
            epilogue.add(i)
    return [prims[i] for i in sorted(prologue)], [prims[i] for i in sorted(core)], [prims[i] for i in sorted(epilogue)]


def _shape_only(bsym: BoundSymbol) -> bool:
    rule = RULES.get(prim_name(bsym))
    return rule is not None and rule.shape_only


def _flatten(bsyms) -> list[BoundSymbol]:
    prims = []
    for b in bsyms:
        if prim_name(b) is not None:
            prims.append(b)
        else:
            prims.extend(_flatten(b.subsymbols))
    return prims


def _inputs_of(bsyms) -> list:
    """The proxies (tensors, and number proxies that fusions take as scalar inputs) bsyms read and do not define,
    in order of first use."""
    defined, inputs = set(), {}
    for b in bsyms:
        for p in b.flat_args:
            if p.name not in defined and p.name not in inputs:
                inputs[p.name] = p
        defined.update(p.name for p in b.flat_outs)
    return list(inputs.values())


def _used_after(bsyms, later, region_outputs: set[str]) -> list[TensorProxy]:
    """What bsyms define that `later` reads or the region returns, in order of definition."""
    read_later = {p.name for b in later for p in b.flat_args} | region_outputs
    return [p for b in bsyms for p in b.flat_outs if p.name in read_later]


def _nvfuser_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("nvfuser-cu130-torch210")
    except Exception:  # not installed (a CPU machine): the executor is then reported unavailable anyway
        return None


ex = NvFuserExecutor()
nvfuser_ex = ex

__all__ = ["NvFuserExecutor", "NvFuserOptions", "ex", "nvfuser_ex", "split_edges"]
