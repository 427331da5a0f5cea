"""Pattern rewrites that route pairs of operations to the `triton` executor's fused operators.

Each rewrite is a plain function ``TraceCtx -> TraceCtx`` on an acquired trace (Thunder-level `ltorch`
symbols, before autodiff): it expects a valid trace and returns a new one computing the same outputs, with
each matched pattern replaced by one operator and the operations it consumed dropped.

* `fuse_linear_cross_entropy`: ``cross_entropy(linear(x, w, b), target, ...)``, the logits optionally
  flattened by a `view`/`reshape` to [N, V], becomes ``linear_cross_entropy(x, w, b, target, ...)`` (x
  flattened to [N, H]), so that the [N, V] logits are never materialized.
* `fuse_swiglu`: ``silu(a) * b`` (either operand order, same shape and dtype) becomes ``swiglu(a, b)``.

A pattern matches only where the intermediate (the logits, silu's output) feeds nothing else and is not
an output of the trace, and where the fused operator's checker accepts the operands (so the kernels can
run them). The `triton` executor registers both as executor passes before autodiff, so they run whenever
`triton` is in the executor list; `TritonPatterns` applies them as a `thunder.Transform` on their own
(``jit(..., transforms=[TritonPatterns()])``), for an executor list without `triton`'s other operators.
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict

import thunder
import thunder.torch as ltorch
from thunder.core.symbol import BoundSymbol, flat_proxies
from thunder.core.trace import TraceCtx, torch_tracing, tracectx
from thunder_executors_triton import checkers

_RESHAPES = ("ltorch.view", "ltorch.reshape")
_CROSS_ENTROPY_SIGNATURE = inspect.signature(ltorch.cross_entropy.meta)


class _Uses:
    """Who defines each proxy of a trace, and how often it is read (an output of the trace counts as a read)."""

    def __init__(self, trace: TraceCtx):
        self.producer: dict[str, BoundSymbol] = {}
        self.reads: dict[str, int] = defaultdict(int)
        for bsym in trace.bound_symbols:
            for out in bsym.flat_outs:
                self.producer[out.name] = bsym
            for arg in {a.name for a in bsym.flat_args}:
                self.reads[arg] += 1
        for out in flat_proxies(trace.output):
            self.reads[out.name] += 1

    def single_use_producer(self, proxy, sym_ids) -> BoundSymbol | None:
        """The bound symbol (one of sym_ids) that defines proxy, if proxy is read exactly once."""
        bsym = self.producer.get(getattr(proxy, "name", None))
        if bsym is None or bsym.sym.id not in sym_ids or self.reads[proxy.name] != 1 or len(bsym.flat_outs) != 1:
            return None
        return bsym


def _replace(trace: TraceCtx, replacements: dict[int, tuple[list, object]], drop: set[int], provenance: str):
    """A new trace: the bound symbol at index i becomes replacements[i] (a function recording the new
    operations and returning the proxy that takes the old output's name); indices in drop are removed."""
    new = trace.from_trace(provenance, [])
    for index, bsym in enumerate(trace.bound_symbols):
        if index in drop:
            continue
        if index not in replacements:
            new.bound_symbols.append(bsym)
            continue
        with tracectx(new), new.collecting() as recorded, torch_tracing():
            out = replacements[index]()
        mapping = {out.name: bsym.output} if out is not bsym.output else {}
        new.bound_symbols.extend(b.swap_proxies(mapping) for b in recorded)
    return new


def _linear_cross_entropy_match(bsym: BoundSymbol, uses: _Uses):
    """(linear bsym, reshape bsym or None, bound CE arguments), or None where bsym is not the pattern."""
    bound = _CROSS_ENTROPY_SIGNATURE.bind(*bsym.args, **bsym.kwargs)
    bound.apply_defaults()
    args = bound.arguments
    if args["weight"] is not None or args["size_average"] is not None or args["reduce"] is not None:
        return None
    logits = args["input"]
    reshape = uses.single_use_producer(logits, _RESHAPES)
    linear = uses.single_use_producer(reshape.args[0] if reshape else logits, ("ltorch.linear",))
    if linear is None or logits.ndim != 2:
        return None
    if reshape is not None and logits.shape[1] != linear.output.shape[-1]:
        return None  # the reshape mixes the vocabulary dimension with the tokens
    return linear, reshape, args


def _linear_operands(linear: BoundSymbol) -> tuple:
    """(input, weight, bias) of a bound `linear`, bias None if absent."""
    args = list(linear.args) + [linear.kwargs.get(k) for k in ("input", "weight", "bias") if k in linear.kwargs]
    return (args + [None])[:3]


def fuse_linear_cross_entropy(trace: TraceCtx) -> TraceCtx:
    """Rewrites ``cross_entropy(linear(x, w, b)[.view(-1, V)], target, ...)`` to ``linear_cross_entropy``."""
    from thunder_executors_triton.executor import linear_cross_entropy

    uses = _Uses(trace)
    index_of = {id(b): i for i, b in enumerate(trace.bound_symbols)}
    replacements, drop = {}, set()
    for index, bsym in enumerate(trace.bound_symbols):
        if bsym.sym.id != "ltorch.cross_entropy":
            continue
        match = _linear_cross_entropy_match(bsym, uses)
        if match is None:
            continue
        linear, reshape, args = match
        x, weight, bias = _linear_operands(linear)
        n_tokens = math.prod(x.shape[:-1])
        options = (args["ignore_index"], args["label_smoothing"], args["reduction"])
        if n_tokens != args["input"].shape[0]:
            continue
        if not checkers.linear_cross_entropy_operands_fit(x, weight, bias, args["target"], *options):
            continue

        def fused(x=x, weight=weight, bias=bias, target=args["target"], options=options):
            flat = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
            return linear_cross_entropy(flat, weight, bias, target, *options)

        replacements[index] = fused
        drop.update(index_of[id(b)] for b in (linear, reshape) if b is not None)
    if not replacements:
        return trace
    return _replace(trace, replacements, drop, "fuse linear + cross_entropy (triton)")


def _swiglu_operands(bsym: BoundSymbol, uses: _Uses):
    if bsym.sym.id != "ltorch.mul" or len(bsym.args) != 2 or bsym.kwargs:
        return None
    for gate, other in (bsym.args, reversed(bsym.args)):
        silu = uses.single_use_producer(gate, ("ltorch.silu",))
        if silu is None or silu.kwargs.get("inplace", False) or (len(silu.args) > 1 and silu.args[1]):
            continue
        a = silu.args[0]
        if checkers.swiglu_checker(a, other):
            return silu, a, other
    return None


def fuse_swiglu(trace: TraceCtx) -> TraceCtx:
    """Rewrites ``silu(a) * b`` (and ``b * silu(a)``) to ``swiglu(a, b)``."""
    from thunder_executors_triton.executor import swiglu_op

    uses = _Uses(trace)
    index_of = {id(b): i for i, b in enumerate(trace.bound_symbols)}
    replacements, drop = {}, set()
    for index, bsym in enumerate(trace.bound_symbols):
        match = _swiglu_operands(bsym, uses)
        if match is None:
            continue
        silu, a, b = match
        replacements[index] = lambda a=a, b=b: swiglu_op(a, b)
        drop.add(index_of[id(silu)])
    if not replacements:
        return trace
    return _replace(trace, replacements, drop, "fuse silu(a) * b into swiglu (triton)")


class TritonPatterns(thunder.Transform):
    """Applies `fuse_linear_cross_entropy` and `fuse_swiglu` to the acquired trace."""

    def transform_traces_pre_prologue(self, prologue, computation, epilogue, **kwargs):
        return prologue, fuse_swiglu(fuse_linear_cross_entropy(computation)), epilogue
