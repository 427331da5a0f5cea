"""The `liger` executor's passes: pattern rewrites that route compositions of operations to Liger's kernels.

Each pass is ``(trace, context) -> trace`` on the computation trace before autodiff (Thunder-level `ltorch`
symbols); it expects a valid trace and returns one computing the same outputs, where each match's last
operation is replaced by one of the executor's operators (whose grad transform autodiff then uses). The
operations a match consumed are left for dead-code elimination, which runs next, so that an intermediate
read elsewhere is still computed. Each pass is on unless its option (``context.options``) turns it off.

* `fuse_swiglu`: ``silu(a) * b`` (either operand order) -> ``swiglu(a, b)``.
* `fuse_geglu`: ``gelu(a, approximate="tanh") * b`` -> ``geglu(a, b)``.
* `fuse_rope`: ``x * cos + cat((-x[..., D/2:], x[..., :D/2]), -1) * sin`` (operands in any order, the halves
  taken by indexing or by ``x.chunk(2, -1)``) ->
  ``rope(x, cos, sin)``, only where cos and sin are seen to have two equal halves along D: computed in the
  program from ``cat((f, f), -1)`` through operations that keep that (cos, sin, dtype conversions, scaling
  by a number, reshapes of the leading dimensions). Liger reads only the first half, so a cos or sin from
  elsewhere (a buffer, an input) is rewritten only under the option ``rope_cache_is_duplicated``.
* `fuse_linear_cross_entropy`: ``cross_entropy(linear(x, w, b)[.view/.reshape(-1, V)], target)`` ->
  ``fused_linear_cross_entropy(x, w, b, target, ...)``.

A match is rewritten only where the fused operator's checker accepts its operands (so Liger runs it) and
the intermediate it removes (silu's output, the logits) is read only by the matched operation.
"""

from __future__ import annotations

import inspect
from collections import Counter
from numbers import Number

import thunder.torch as ltorch
from thunder.core.symbol import BoundSymbol, flat_proxies
from thunder.core.trace import TraceCtx, torch_tracing, tracectx
from thunder.extend import TensorProxy
from thunder_liger import checkers


class _Uses:
    """Who defines each proxy of a trace, and how often it is read (an output of the trace counts as a read)."""

    def __init__(self, trace: TraceCtx):
        self.producer: dict[str, BoundSymbol] = {}
        self.reads: Counter = Counter()
        for bsym in trace.bound_symbols:
            for out in bsym.flat_outs:
                self.producer[out.name] = bsym
            self.reads.update({a.name for a in bsym.flat_args})
        self.reads.update(p.name for p in flat_proxies(trace.output))

    def made_by(self, proxy, *symbols, single_use: bool = False) -> BoundSymbol | None:
        """The bound symbol (of one of `symbols`) that defines proxy, if any (and if proxy is read only once)."""
        bsym = self.producer.get(getattr(proxy, "name", None))
        if bsym is None or bsym.sym.id not in {s.id for s in symbols} or len(bsym.flat_outs) != 1:
            return None
        return None if single_use and self.reads[proxy.name] != 1 else bsym


def _argument(bsym: BoundSymbol, position: int, name: str, default=None):
    if len(bsym.args) > position:
        return bsym.args[position]
    return bsym.kwargs.get(name, default)


def replace_outputs(trace: TraceCtx, replacements: dict[int, callable], provenance: str) -> TraceCtx:
    """A new trace where the bound symbol at index i is replaced by what `replacements[i]()` records (on the
    trace's proxies); the proxy it returns takes the old output's name, so later readers are unchanged."""
    if not replacements:
        return trace
    new = trace.from_trace(provenance, [])
    for index, bsym in enumerate(trace.bound_symbols):
        if index not in replacements:
            new.bound_symbols.append(bsym)
            continue
        with tracectx(new), new.collecting() as recorded, torch_tracing():
            out = replacements[index]()
        mapping = {out.name: bsym.output} if out is not bsym.output else {}
        new.bound_symbols.extend(b.swap_proxies(mapping) for b in recorded)
    return new


# -- SwiGLU / GeGLU -----------------------------------------------------------------------------------------


def _gated_operands(bsym: BoundSymbol, uses: _Uses, activation) -> tuple | None:
    """(a, b) where bsym is ``activation(a) * b`` or ``b * activation(a)`` and activation() accepts the call."""
    if bsym.sym.id != ltorch.mul.id or len(bsym.args) != 2 or bsym.kwargs:
        return None
    for gated, other in (bsym.args, bsym.args[::-1]):
        made = uses.made_by(gated, activation.symbol, single_use=True)
        if made is not None and activation.accepts(made) and checkers.gated_checker(made.args[0], other):
            return made.args[0], other
    return None


class _Silu:
    symbol = ltorch.silu

    @staticmethod
    def accepts(bsym: BoundSymbol) -> bool:
        return not _argument(bsym, 1, "inplace", False)


class _TanhGelu:
    symbol = ltorch.gelu

    @staticmethod
    def accepts(bsym: BoundSymbol) -> bool:
        return _argument(bsym, 1, "approximate", "none") == "tanh"


def _fuse_gated(trace: TraceCtx, activation, op, provenance: str) -> TraceCtx:
    uses = _Uses(trace)
    replacements = {}
    for index, bsym in enumerate(trace.bound_symbols):
        operands = _gated_operands(bsym, uses, activation)
        if operands is not None:
            replacements[index] = lambda a=operands[0], b=operands[1]: op(a, b)
    return replace_outputs(trace, replacements, provenance)


def fuse_swiglu(trace: TraceCtx, context) -> TraceCtx:
    """``silu(a) * b`` -> ``swiglu(a, b)`` (see the module docstring)."""
    from thunder_liger.executor import swiglu

    if not context.options.get("fuse_swiglu", True):
        return trace
    return _fuse_gated(trace, _Silu, swiglu, "liger: fuse silu(a) * b")


def fuse_geglu(trace: TraceCtx, context) -> TraceCtx:
    """``gelu(a, approximate="tanh") * b`` -> ``geglu(a, b)`` (see the module docstring)."""
    from thunder_liger.executor import geglu

    if not context.options.get("fuse_geglu", True):
        return trace
    return _fuse_gated(trace, _TanhGelu, geglu, "liger: fuse gelu(a) * b")


# -- RoPE ---------------------------------------------------------------------------------------------------


def _index_tuple(index) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _last_dim_slice(index, ndim: int) -> slice | None:
    """The slice an index takes along the last dimension, where it takes all of every other one."""
    index = _index_tuple(index)
    *leading, last = index
    if not isinstance(last, slice) or last.step not in (None, 1):
        return None
    if len(leading) == 1 and leading[0] is Ellipsis:
        return last
    full = slice(None)  # (isinstance first: == on an index tensor's proxy would record an operation)
    return last if len(index) == ndim and all(isinstance(i, slice) and i == full for i in leading) else None


def _chunk_half_of(proxy, x, uses: _Uses) -> str | None:
    """"first" or "second" where proxy is that output of ``x.chunk(2, dim=-1)``."""
    chunk = uses.producer.get(getattr(proxy, "name", None))
    if chunk is None or chunk.sym.id != ltorch.chunk.id or len(chunk.flat_outs) != 2 or len(chunk.args) < 2:
        return None
    if chunk.args[0] is not x or _argument(chunk, 1, "chunks") != 2:  # `is`: == on proxies records an operation
        return None
    if not _is_last_dim(_argument(chunk, 2, "dim", 0), x.ndim):
        return None
    return "first" if chunk.flat_outs[0] is proxy else "second"


def _half_of(proxy, x, uses: _Uses) -> str | None:
    """"first" or "second" where proxy is that half of x along its last dimension (x[..., :D/2], x[..., D/2:],
    or an output of x.chunk(2, -1))."""
    if (half := _chunk_half_of(proxy, x, uses)) is not None:
        return half
    getitem = uses.made_by(proxy, ltorch.getitem)
    if getitem is None or getitem.args[0] is not x or len(getitem.args) != 2:
        return None
    taken = _last_dim_slice(getitem.args[1], x.ndim)
    dim = x.shape[-1]
    if taken is None or not all(v is None or isinstance(v, int) for v in (taken.start, taken.stop)):
        return None
    bounds = taken.indices(dim)[:2]
    return {(0, dim // 2): "first", (dim // 2, dim): "second"}.get(bounds)


def _is_last_dim(dim, ndim: int) -> bool:
    return isinstance(dim, int) and dim in (-1, ndim - 1)


def _is_rotate_half(rotated, x, uses: _Uses) -> bool:
    """Whether rotated is ``cat((-x[..., D/2:], x[..., :D/2]), -1)``."""
    cat = uses.made_by(rotated, ltorch.cat)
    if cat is None or x.shape[-1] % 2 or not _is_last_dim(_argument(cat, 1, "dim", 0), x.ndim):
        return False
    parts = _argument(cat, 0, "tensors")
    if not isinstance(parts, (tuple, list)) or len(parts) != 2:
        return False
    negated = uses.made_by(parts[0], ltorch.neg)
    return (negated is not None and _half_of(negated.args[0], x, uses) == "second"
            and _half_of(parts[1], x, uses) == "first")  # fmt: skip


def _tensor_and_number(bsym: BoundSymbol):
    if len(bsym.args) != 2 or bsym.kwargs:
        return None
    a, b = bsym.args
    if isinstance(a, TensorProxy) and isinstance(b, Number) and not isinstance(b, bool):
        return a
    return b if isinstance(b, TensorProxy) and isinstance(a, Number) and not isinstance(a, bool) else None


def _keeps_last_dim(bsym: BoundSymbol):
    """The tensor bsym reads, where bsym maps each last-dimension row to a row computed from it alone, position
    by position (so two equal halves stay equal); else None."""
    sym_id = bsym.sym.id
    if sym_id in {ltorch.mul.id, ltorch.true_divide.id, ltorch.div.id}:
        return _tensor_and_number(bsym)
    source = bsym.args[0] if bsym.args else None
    if not isinstance(source, TensorProxy) or source.ndim == 0 or bsym.output.shape[-1:] != source.shape[-1:]:
        return None
    if sym_id in {ltorch.cos.id, ltorch.sin.id, ltorch.to.id, ltorch.type_as.id, ltorch.contiguous.id,
                  ltorch.clone.id, ltorch.unsqueeze.id, ltorch.expand.id,
                  ltorch.detach.id}:  # (transformers computes cos and sin under torch.no_grad()) # fmt: skip
        return source
    if sym_id == ltorch.getitem.id:
        index = [i for i in _index_tuple(bsym.args[1]) if i is not None]  # None adds a leading dimension
        plain = all(isinstance(i, (int, slice)) and not isinstance(i, bool) for i in index)
        return source if plain and len(index) < source.ndim else None  # the last dimension is not indexed
    return None


def _has_equal_halves(t, uses: _Uses) -> bool:
    """Whether the program shows t to be made from ``cat((f, f), -1)`` by operations that keep equal halves."""
    while True:
        bsym = uses.producer.get(getattr(t, "name", None))
        if bsym is None:
            return False
        if bsym.sym.id == ltorch.cat.id:
            parts = _argument(bsym, 0, "tensors")
            return (isinstance(parts, (tuple, list)) and len(parts) == 2 and parts[0] is parts[1]
                    and _is_last_dim(_argument(bsym, 1, "dim", 0), t.ndim))  # fmt: skip
        t = _keeps_last_dim(bsym)
        if t is None:
            return False


def _rope_operands(bsym: BoundSymbol, uses: _Uses) -> tuple | None:
    """(x, cos, sin) where bsym is ``x * cos + rotate_half(x) * sin``, operands in any order."""
    if bsym.sym.id != ltorch.add.id or len(bsym.args) != 2 or bsym.kwargs:
        return None
    for first, second in (bsym.args, bsym.args[::-1]):
        plain, rotated = uses.made_by(first, ltorch.mul), uses.made_by(second, ltorch.mul)
        if plain is None or rotated is None or len(plain.args) != 2 or len(rotated.args) != 2:
            continue
        for x, cos in (plain.args, plain.args[::-1]):
            for rot, sin in (rotated.args, rotated.args[::-1]):
                if isinstance(x, TensorProxy) and _is_rotate_half(rot, x, uses):
                    return x, cos, sin
    return None


def fuse_rope(trace: TraceCtx, context) -> TraceCtx:
    """``x * cos + rotate_half(x) * sin`` -> ``rope(x, cos, sin)`` (see the module docstring)."""
    from thunder_liger.executor import rope

    if not context.options.get("fuse_rope", True):
        return trace
    trust_cache = context.options.get("rope_cache_is_duplicated", False)
    uses = _Uses(trace)
    replacements = {}
    for index, bsym in enumerate(trace.bound_symbols):
        operands = _rope_operands(bsym, uses)
        if operands is None or not checkers.rope_checker(*operands):
            continue
        x, cos, sin = operands
        if trust_cache or (_has_equal_halves(cos, uses) and _has_equal_halves(sin, uses)):
            replacements[index] = lambda x=x, cos=cos, sin=sin: rope(x, cos, sin)
    return replace_outputs(trace, replacements, "liger: fuse rotary embedding")


# -- linear + cross-entropy ---------------------------------------------------------------------------------

_CROSS_ENTROPY_SIGNATURE = inspect.signature(ltorch.cross_entropy.meta)


def _linear_cross_entropy_operands(bsym: BoundSymbol, uses: _Uses) -> tuple | None:
    """(x, weight, bias, target, ignore_index, label_smoothing, reduction) where bsym is the cross-entropy of
    a linear's output (optionally flattened to [N, V]) that nothing else reads."""
    bound = _CROSS_ENTROPY_SIGNATURE.bind(*bsym.args, **bsym.kwargs)
    bound.apply_defaults()
    args = bound.arguments
    if any(args[k] is not None for k in ("weight", "size_average", "reduce")):
        return None
    logits = args["input"]
    flatten = uses.made_by(logits, ltorch.view, ltorch.reshape, single_use=True)
    linear = uses.made_by(flatten.args[0] if flatten else logits, ltorch.linear, single_use=True)
    if linear is None or logits.ndim != 2 or logits.shape[1] != linear.output.shape[-1]:
        return None  # not a linear, or a flattening that mixes the classes with the tokens
    x, weight, bias = (_argument(linear, 0, "input"), _argument(linear, 1, "weight"), _argument(linear, 2, "bias"))
    operands = (x, weight, bias, args["target"], args["ignore_index"], args["label_smoothing"], args["reduction"])
    return operands if checkers.fused_linear_cross_entropy_checker(*operands) else None


def fuse_linear_cross_entropy(trace: TraceCtx, context) -> TraceCtx:
    """``cross_entropy(linear(x, w, b)[.view(-1, V)], target)`` -> ``fused_linear_cross_entropy`` (see the
    module docstring)."""
    from thunder_liger.executor import fused_linear_cross_entropy

    if not context.options.get("fuse_linear_cross_entropy", True):
        return trace
    uses = _Uses(trace)
    replacements = {}
    for index, bsym in enumerate(trace.bound_symbols):
        if bsym.sym.id != ltorch.cross_entropy.id:
            continue
        operands = _linear_cross_entropy_operands(bsym, uses)
        if operands is not None:
            replacements[index] = lambda operands=operands: fused_linear_cross_entropy(*operands)
    return replace_outputs(trace, replacements, "liger: fuse linear + cross_entropy")
