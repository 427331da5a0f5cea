"""Autodiff: one joint forward+backward trace, split into a forward and a backward trace.

Expects: an acquired trace (after dce) whose inputs may require grad. Guarantees: a forward trace
returning `(outputs, saved)` and a backward trace taking `saved` and one cotangent per output and
returning one gradient per forward input (None where none flows).

Each bound symbol is differentiated by, in order: an executor's grad_transform, the symbol's own grad
rule (GRAD_RULES, beside the ops), its decomposition (subsymbols), or, for fallback operators and
symbols listed in TORCH_VJP, torch's autograd at run time. Rules run forward in program order; their
backward parts are placed in reverse order with gradients accumulated across uses. Then cheap
recomputable values are recomputed in the backward instead of saved (rematerialization).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch

from thunder import prims
from thunder.core.proxies import Proxy, TensorProxy, proxy_like_tensor
from thunder.core.pytree import tree_flatten, tree_unflatten
from thunder.core.symbol import BoundSymbol, OpTag, Symbol, flat_proxies, proxies_read
from thunder.core.trace import TraceCtx, get_tracectx, tracectx
from thunder.core.transforms import GradRuleContext, get_grad, mark_non_differentiable, put_grad
from thunder.prims.grads import GRAD_RULES, NONDIFFERENTIABLE, sum_to
from thunder.transforms.dce import dce
from thunder.transforms.remat import choose_recomputation


def _no_dropout(bsym) -> bool:
    # re-running a random op in the backward would draw a different mask
    p = bsym.kwargs.get("dropout_p", bsym.args[4] if len(bsym.args) > 4 else 0.0)
    return not p


# thunder.torch symbols whose backward runs through torch's autograd (the op is re-run under autograd in
# the backward, from its saved inputs): the forward stays one fast torch call instead of its
# decomposition. Maps symbol id -> predicate on the bound symbol.
TORCH_VJP: dict[str, Callable] = {
    **{
        f"ltorch.{name}": lambda bsym: True
        for name in ("rms_norm", "group_norm", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
                     "adaptive_avg_pool2d", "mse_loss", "binary_cross_entropy_with_logits", "mish",
                     "softplus", "logsigmoid", "glu", "normalize", "cosine_similarity",
                     "binary_cross_entropy")
    },  # fmt: skip
    "ltorch.scaled_dot_product_attention": _no_dropout,
}


class _Chunk:
    __slots__ = ("outputs", "placeholders", "bsyms", "puts")

    def __init__(self, outputs, placeholders, bsyms, puts):
        self.outputs, self.placeholders, self.bsyms, self.puts = outputs, placeholders, bsyms, puts


def _is_differentiable(t) -> bool:
    return isinstance(t, TensorProxy) and (t.dtype.is_floating_point or t.dtype.is_complex)


def _no_gradient_message(bsym: BoundSymbol, executors: Sequence) -> str:
    message = (
        f"Thunder has no gradient for {bsym.sym.id}; it is used with inputs that require grad. Wrap the call "
        "in torch.no_grad() or detach its inputs, or register a grad_transform for it."
    )
    owner = getattr(getattr(bsym.sym, "executor", None), "name", None)
    if owner is not None and owner not in {getattr(ex, "name", None) for ex in executors}:
        # A plugin operator's grad_transform is registered on its executor, and only listed executors are asked.
        message += (
            f" It is an operator of the {owner!r} executor, whose grad_transform is used only when that executor "
            f"is in the executor list: thunder.jit(fn, executors=[{owner!r}, ...])."
        )
    return message


# what _rule_for answers for an operation differentiated by torch's autograd that connects no input to its outputs
_NOT_CONNECTED = object()


class _JointBuilder:
    """torch_vjp: whether symbols listed in TORCH_VJP are differentiated through torch's autograd at run time; the
    functional transforms turn it off, since that backward can be neither batched (vmap) nor differentiated again
    (grad of grad): those symbols then go through their decomposition into prims, which have rules for both."""

    def __init__(self, trace: TraceCtx, executors: Sequence = (), *, torch_vjp: bool = True):
        self.trace = trace
        self.executors = executors
        self.torch_vjp = torch_vjp
        self.new = trace.from_trace("autodiff forward", [])
        if "checkpointed" in trace.tags:  # grown below; the acquired trace's set stays as it was
            self.new.tags["checkpointed"] = set(trace.tags["checkpointed"])
        self.requires_grad: set[str] = {a.name for a in trace.args if isinstance(a, TensorProxy) and a.requires_grad}
        self.chunks: list[_Chunk] = []

    def process(self, bsym: BoundSymbol) -> None:
        if not any(a.name in self.requires_grad for a in bsym.flat_args) or bsym.sym.id in NONDIFFERENTIABLE:
            self.new.bound_symbols.append(bsym)
            return
        rule = self._rule_for(bsym)
        if rule is _NOT_CONNECTED:  # torch's autograd gives no input a gradient: eager's outputs do not require grad
            self.new.bound_symbols.append(bsym)
            return
        nondifferentiable: set[str] = set()
        if rule is not None:
            nondifferentiable = self._apply(rule, bsym)
        elif bsym.subsymbols:
            for sub in bsym.subsymbols:
                self.process(sub)
            if OpTag.GRAD_FROM_DECOMPOSITION in bsym.sym.tags:
                return  # like eager: zeros_like(x) does not require grad, whatever x does

        elif bsym.sym.id == "ltorch.detach":
            self.new.bound_symbols.append(bsym)
            return
        else:
            raise NotImplementedError(_no_gradient_message(bsym, self.executors))
        for o in bsym.flat_outs:
            if _is_differentiable(o) and o.name not in nondifferentiable:
                self.requires_grad.add(o.name)

    def _rule_for(self, bsym: BoundSymbol) -> Callable | None:
        for ex in self.executors:
            info = getattr(ex, "implmap", {}).get(bsym.sym.id)
            if info is None or info.grad_transform is None:
                continue
            check = info.grad_checker or info.checker
            if check is None or check(*bsym.args, **bsym.kwargs):
                return ex.grad_transform(bsym)
        rule = GRAD_RULES.get(bsym.sym.id)
        if rule is not None:
            return rule
        predicate = TORCH_VJP.get(bsym.sym.id) if self.torch_vjp else None
        if "fallback" in bsym.sym.tags or (predicate is not None and bsym.sym.torch_fns and predicate(bsym)):
            connections = torch_autograd_connections(bsym.sym.torch_fns[0], bsym, self.requires_grad)
            return torch_autograd_rule(bsym, *connections) if connections is not None else _NOT_CONNECTED
        return None

    def _apply(self, rule: Callable, bsym: BoundSymbol) -> set[str]:
        """Records the rule's forward part and keeps its backward part; returns the names of the outputs the rule
        marked non-differentiable."""
        with tracectx(self.new), self.new.collecting() as forward_part, GradRuleContext() as ctx:
            out = rule(*bsym.args, **bsym.kwargs)
            if ctx.in_backward:
                self.new._scopes[-1] = forward_part  # the scope get_grad swapped out
        new_outs, old_outs = flat_proxies(out), bsym.flat_outs
        if len(new_outs) != len(old_outs):
            raise RuntimeError(f"the grad rule of {bsym.sym.id} returned {len(new_outs)} tensors, expected {len(old_outs)}")
        mapping = {nw.name: old for nw, old in zip(new_outs, old_outs) if nw is not old}
        self.new.bound_symbols.extend(b.swap_proxies(mapping) for b in forward_part)
        checkpointed = self.new.tags.get("checkpointed")
        if checkpointed and all(o.name in checkpointed for o in old_outs):  # the rule's intermediates too
            checkpointed.update(o.name for b in forward_part for o in b.flat_outs)
        backward = [b.swap_proxies(mapping) for b in ctx.backward_bsyms]
        placeholders = {mapping.get(name, None).name if name in mapping else name: ph for name, ph in ctx.placeholders.items()}
        puts = [(mapping.get(t.name, t), mapping.get(g.name, g) if isinstance(g, TensorProxy) else g) for t, g in ctx.puts]
        puts = [(t, g) for t, g in puts if t.name in self.requires_grad]
        self.chunks.append(_Chunk(old_outs, placeholders, backward, puts))
        return {mapping.get(t.name, t).name for t in ctx.nondifferentiable}


def torch_autograd_rule(bsym: BoundSymbol, requires_grad: set[str], differentiable_outputs: tuple[bool, ...]) -> Callable:
    """A rule whose backward re-runs the operation under torch.autograd and asks it for the vjp of the inputs
    named in `requires_grad`, and only those: torch refuses some arguments that require grad (the weight of
    binary_cross_entropy_with_logits, batch_norm's running statistics), and gives None for inputs it does not
    differentiate. `differentiable_outputs` (one flag per proxy of the output) says which outputs eager's autograd
    differentiates: the others (lu_unpack's permutation, native_layer_norm's mean and rstd) are marked
    non-differentiable, as eager leaves them (see torch_autograd_connections)."""
    fn = bsym.sym.torch_fns[0]
    # A fallback call is tagged random when torch tags one of the aten kernels it runs as random (see
    # thunder.torch.fallback); Thunder's own symbols (TORCH_VJP) are vetted where they are listed. Its forward also
    # returns the generator's state from just before it drew, and its backward re-runs it from that state.
    random_device = _draw_device(bsym) if OpTag.FALLBACK in bsym.sym.tags and OpTag.RANDOM in bsym.sym.tags else None

    def rule(*args, **kwargs):
        state = ()
        if random_device is not None:
            out, state = _record_with_rng_state(bsym, args, kwargs, random_device)
            state = (state,)
        else:
            out = bsym.sym(*args, **kwargs) if bsym.sym.is_prim else _record_same(bsym, args, kwargs)
        out_mask = tuple(differentiable_outputs)
        mark_non_differentiable(*(o for o, keep in zip(flat_proxies(out), out_mask) if not keep))
        outs = [o for o, keep in zip(flat_proxies(out), out_mask) if keep]
        grads = [get_grad(o) for o in outs]
        differentiable = [a for a in flat_proxies((args, kwargs)) if _is_differentiable(a)]
        grad_mask = tuple(a.name in requires_grad for a in differentiable)
        inputs = [a for a, keep in zip(differentiable, grad_mask) if keep]
        if not inputs:  # torch defines no gradient for any input (a norm of order 0): every gradient is None
            return out
        vjp = _vjp_symbol(fn, bsym.sym.id, random_device)
        results = vjp(args, kwargs, grads, out_mask, grad_mask, *state)
        for t, g in zip(inputs, results):
            put_grad(t, g)
        return out

    return rule


def torch_autograd_connections(
    fn: Callable, bsym: BoundSymbol, requires_grad: set[str]
) -> tuple[set[str], tuple[bool, ...]] | None:
    """What torch's autograd connects in `fn`, found by running it on meta tensors under autograd: the names of the
    inputs (among `requires_grad`) it gives a gradient for, and for each proxy of the output whether eager's
    output requires grad. Eager's gradient is None for an input used only through non-differentiable operations
    (a loss's target, compared with 1) or whose derivative torch leaves undefined (a norm of order 0), and
    Thunder's must be None there too, not zeros; an output torch declares non-differentiable (an index, a
    statistic) does not require grad. None where no output requires grad (eager's outputs do not either). Where
    the meta run fails, every input counts as connected and every floating output as differentiable."""
    leaves, spec = tree_flatten((bsym.args, bsym.kwargs))
    names = {a.name for a in flat_proxies((bsym.args, bsym.kwargs)) if _is_differentiable(a) and a.name in requires_grad}
    out_proxies = flat_proxies(bsym.output)
    try:
        inputs, meta_leaves = {}, []
        with torch._C.DisableTorchFunction(), torch.enable_grad():
            for x in leaves:
                if isinstance(x, TensorProxy):
                    m = torch.empty_strided(tuple(x.shape), tuple(x.stride()), dtype=x.dtype, device="meta")
                    if x.name in names:
                        inputs[x.name] = m = m.requires_grad_(True)
                    x = m
                meta_leaves.append(x)
            args, kwargs = tree_unflatten(meta_leaves, spec)
            meta_outs = [o for o in tree_flatten(fn(*args, **kwargs))[0] if isinstance(o, torch.Tensor)]
            outs = [o for o in meta_outs if o.requires_grad]
            if not outs:
                return None
            grads = torch.autograd.grad(outs, list(inputs.values()), [torch.ones_like(o) for o in outs],
                                        allow_unused=True)  # fmt: skip
    except Exception:  # noqa: BLE001 (an op without meta kernels for its backward: assume every input is used)
        return names, tuple(_is_differentiable(o) for o in out_proxies)
    out_flags = iter([o.requires_grad for o in meta_outs])
    differentiable_outputs = tuple(
        next(out_flags, True) and _is_differentiable(o) if isinstance(o, TensorProxy) else False for o in out_proxies
    )
    return {name for name, g in zip(inputs, grads) if g is not None}, differentiable_outputs


def _record_same(bsym, args, kwargs):
    """Records bsym's symbol as one call (not its decomposition): the forward stays a single torch call."""
    out = _fresh_outputs(bsym.output)
    get_tracectx().record(BoundSymbol(bsym.sym, args, kwargs, out, ()))
    return out


def _fresh_outputs(out):
    if isinstance(out, TensorProxy):
        return TensorProxy(like=out, strides=out.stride())
    if isinstance(out, (tuple, list)):
        return type(out)(_fresh_outputs(o) for o in out) if type(out) in (tuple, list) else type(out)(
            [_fresh_outputs(o) for o in out])  # fmt: skip
    return out


def _out_mask(out) -> tuple[bool, ...]:
    return tuple(_is_differentiable(o) for o in flat_proxies(out))


_vjp_symbols: dict[tuple, Symbol] = {}


def _draw_device(bsym: BoundSymbol) -> torch.device:
    """The device whose generator a random fallback call draws from: that of its (first) tensor output."""
    outs = [o for o in flat_proxies(bsym.output) if isinstance(o, TensorProxy)]
    return outs[0].device if outs else torch.device("cpu")


def _rng_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


@contextmanager
def _drawing_from(state: torch.Tensor | None, device: torch.device):
    """Runs the body with the generator of `device` set to `state`, restoring the generator afterwards (None: as is)."""
    if state is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        if device.type == "cuda":
            torch.cuda.set_rng_state(state, device)
        else:
            torch.set_rng_state(state)
        yield


def _record_with_rng_state(bsym: BoundSymbol, args, kwargs, device: torch.device):
    """Records the random fallback `bsym` as one call that also returns its generator's state from just before it
    drew (one call: nothing can draw in between), so that the backward re-runs it drawing the same values."""
    fn = bsym.sym.torch_fns[0]

    def with_state(args, kwargs):
        state = _rng_state(device)
        return fn(*args, **kwargs), state

    out, state = _fresh_outputs(bsym.output), proxy_like_tensor(_rng_state(device))
    sym = Symbol(f"{bsym.sym.name}_with_rng_state", lambda args, kwargs: (out, state), is_prim=True,
                 id=f"autodiff.with_rng_state.{bsym.sym.id}", python_impl=with_state, tags=(OpTag.RANDOM,))  # fmt: skip
    get_tracectx().record(BoundSymbol(sym, (args, kwargs), {}, (out, state), ()))
    return out, state


def _vjp_symbol(fn: Callable, sym_id: str, random_device: torch.device | None = None) -> Symbol:
    key = (sym_id, random_device)
    sym = _vjp_symbols.get(key)
    if sym is not None:
        return sym

    def meta(args, kwargs, grads, out_mask, grad_mask, state=None):
        differentiable = [a for a in flat_proxies((args, kwargs)) if _is_differentiable(a)]
        return [TensorProxy(like=a, requires_grad=False) for a, keep in zip(differentiable, grad_mask) if keep]

    def impl(args, kwargs, grads, out_mask, grad_mask, state=None):
        leaves, spec = tree_flatten((args, kwargs))
        inputs = []
        keep = iter(grad_mask)  # one flag per floating tensor, in the order flat_proxies gave them
        with torch.enable_grad(), _drawing_from(state, random_device):
            for i, x in enumerate(leaves):
                if isinstance(x, torch.Tensor) and (x.dtype.is_floating_point or x.dtype.is_complex) and next(keep):
                    leaves[i] = x.detach().requires_grad_(True)
                    inputs.append(leaves[i])
            a, k = tree_unflatten(leaves, spec)
            out = fn(*a, **k)
            outs = [o for o, keep in zip(tree_flatten(out)[0], out_mask) if keep] if out_mask else []
            results = torch.autograd.grad(outs, inputs, grads, allow_unused=True)
        return [torch.zeros_like(x) if r is None else r for x, r in zip(inputs, results)]

    name = "vjp_" + sym_id.replace(".", "_")
    # python_impl: claimed as is (it already is an implementation), run by the torch-autograd machinery. A replay
    # of a random call sets a generator's state: random too, so never recomputed, fused or captured in a graph.
    sym = Symbol(name, meta, id=f"autodiff.vjp.{sym_id}" + (f".{random_device}" if random_device else ""),
                 is_prim=True, python_impl=impl, tags=(OpTag.RANDOM,) if random_device else ())  # fmt: skip
    # setdefault: two threads making the same symbol at once both get the one registered first
    return _vjp_symbols.setdefault(key, sym)


def forward_and_backward(trace: TraceCtx, executors: Sequence = ()) -> tuple[TraceCtx, TraceCtx]:
    builder = _JointBuilder(trace, executors)
    with tracectx(builder.new):
        for bsym in trace.bound_symbols:
            builder.process(bsym)
    fwd = builder.new
    outputs = list(trace.output)
    bwd = dce(_build_backward(trace, fwd, builder, outputs))
    fwd, bwd = rematerialize(fwd, bwd, fusing=any(hasattr(ex, "can_fuse") for ex in executors))
    # outputs that depend on no input requiring grad are marked non-differentiable, as eager leaves them
    fwd.tags["differentiable_outputs"] = [isinstance(o, TensorProxy) and o.name in builder.requires_grad
                                          and _is_differentiable(o) for o in outputs]  # fmt: skip
    return fwd, bwd


def _build_backward(trace: TraceCtx, fwd: TraceCtx, builder: _JointBuilder, outputs: list) -> TraceCtx:
    bwd = fwd.from_trace("autodiff backward", [])
    bwd.fn_name = "backward"
    grads: dict[str, TensorProxy] = {}
    cotangents = []
    with tracectx(bwd):
        for o in outputs:
            if isinstance(o, TensorProxy) and _is_differentiable(o) and o.name in builder.requires_grad:
                ct = TensorProxy(like=o, requires_grad=False, prefix="cotangent")
                cotangents.append(ct)
                grads[o.name] = _accumulate(grads.get(o.name), ct)
            else:
                cotangents.append(None)
        for chunk in reversed(builder.chunks):
            if not any(o.name in grads for o in chunk.outputs):
                continue
            mapping = {}
            for out_name, ph in chunk.placeholders.items():
                g = grads.get(out_name)
                if g is None:
                    g = prims.full(tuple(ph.shape), 0, dtype=ph.dtype, device=ph.device)
                mapping[ph.name] = g
            for b in chunk.bsyms:
                bwd.bound_symbols.append(b.swap_proxies(mapping))
            for t, g in chunk.puts:
                if isinstance(g, TensorProxy):
                    g = mapping.get(g.name, g)
                if t.name in builder.requires_grad:
                    grads[t.name] = _accumulate(grads.get(t.name), g)
        input_grads = []
        for a in trace.args:
            g = grads.get(a.name) if isinstance(a, TensorProxy) and a.requires_grad else None
            if g is not None and (tuple(g.shape) != tuple(a.shape) or g.dtype != a.dtype):
                g = _match(g, a)
            input_grads.append(g)
    bwd.output = input_grads
    bwd.tags["cotangents"] = cotangents
    return bwd


def _match(g, a):
    if tuple(g.shape) != tuple(a.shape):
        g = sum_to(g, a.shape)
    return prims.convert_element_type(g, a.dtype) if g.dtype != a.dtype else g


def _accumulate(current, g):
    if current is None:
        return g
    if tuple(current.shape) != tuple(g.shape):
        g = sum_to(g, current.shape) if g.numel() > current.numel() else g
    return prims.add(current, g)


# -- split and rematerialization -----------------------------------------------------------------------
def _defined_in(bsyms) -> dict[str, BoundSymbol]:
    return {o.name: b for b in bsyms for o in b.flat_outs}


def _used_in(bsyms) -> set[str]:
    return {a.name for b in bsyms for a in proxies_read(b)}


def rematerialize(fwd: TraceCtx, bwd: TraceCtx, *, fusing: bool = True) -> tuple[TraceCtx, TraceCtx]:
    """Decides what the backward recomputes instead of saving (a min-cut, transforms/remat.py), then wires
    the saved values. Random ops are never recomputed, so a dropout mask is drawn once."""
    fwd_defined = _defined_in(fwd.bound_symbols)
    fwd_inputs = {a.name: a for a in fwd.args if isinstance(a, Proxy)}
    bwd_bsyms = list(bwd.bound_symbols)
    needed = (_used_in(bwd_bsyms) - set(_defined_in(bwd_bsyms))) & (set(fwd_defined) | set(fwd_inputs))
    checkpointed = frozenset(fwd.tags.get("checkpointed", ()))  # values computed in torch.utils.checkpoint regions
    bwd_bsyms = choose_recomputation(fwd.bound_symbols, set(fwd_inputs), needed, fusing=fusing,
                                     checkpointed=checkpointed) + bwd_bsyms
    bwd_bsyms = _topological(bwd_bsyms)
    needed = [n for n in _ordered_needed(bwd_bsyms) if n in fwd_defined or n in fwd_inputs]
    saved = [fwd_defined[n].flat_outs[[o.name for o in fwd_defined[n].flat_outs].index(n)] if n in fwd_defined
             else fwd_inputs[n] for n in needed]  # fmt: skip
    fwd_out = fwd.from_trace("autodiff forward (split)")
    fwd_out.output = (list(fwd.output), saved)
    fwd_out.tags["saves_for_backward"] = True  # output[1] is what the backward reads (see schedule_writes)
    bwd_out = bwd.from_trace("autodiff backward (split)", bwd_bsyms)
    cotangents = [c for c in bwd.tags["cotangents"]]
    bwd_out.args = [*saved, *[c if c is not None else _unused_cotangent(i) for i, c in enumerate(cotangents)]]
    bwd_out.tags["unpack_args"] = True
    return fwd_out, bwd_out


def _unused_cotangent(i: int):
    return f"_unused_cotangent{i}"


def _ordered_needed(bsyms) -> list[str]:
    defined: set[str] = set()
    needed: list[str] = []
    seen: set[str] = set()
    for b in bsyms:
        for a in proxies_read(b):
            if a.name not in defined and a.name not in seen:
                seen.add(a.name)
                needed.append(a.name)
        defined.update(o.name for o in b.flat_outs)
    return needed


def _topological(bsyms: list[BoundSymbol]) -> list[BoundSymbol]:
    """Orders bsyms so every value is defined before use (recomputed producers were prepended)."""
    defined_by = {o.name: i for i, b in enumerate(bsyms) for o in b.flat_outs}
    order, state = [], {}

    def visit(i):
        if state.get(i) == 2:
            return
        state[i] = 1
        for a in proxies_read(bsyms[i]):
            j = defined_by.get(a.name)
            if j is not None and j != i and state.get(j) != 2:
                visit(j)
        state[i] = 2
        order.append(bsyms[i])

    for i in range(len(bsyms)):
        visit(i)
    return order


# -- a backward inside the program (Tensor.backward called while tracing) ----------------------------------
def backward_in_program(
    trace: TraceCtx, differentiate: set[int], wrt: Sequence[TensorProxy], outputs: Sequence[TensorProxy],
    cotangents: Sequence[TensorProxy], executors: Sequence = (),
) -> tuple[list[BoundSymbol], list[BoundSymbol], list[TensorProxy | None]]:
    """The gradients of `outputs` (seeded with `cotangents`) with respect to the values `wrt`, as operations of
    the same program (`Tensor.backward` called while a function is traced).

    Expects: `trace`, the program recorded so far, and `differentiate`, the ids of its bound symbols that
    `outputs` depend on (the others, an earlier backward among them, are kept as they are). Returns
    `(forward, backward, grads)`: `forward` replaces the program (each differentiated symbol by its rule's
    forward part; values keep their names), `backward` follows it and computes `grads`, one per `wrt` (None
    where no gradient flows). Nothing is saved or recomputed: both parts are one program.
    """
    builder = _JointBuilder(trace, executors)
    builder.requires_grad = {t.name for t in wrt}
    with tracectx(builder.new):
        for bsym in trace.bound_symbols:
            if id(bsym) in differentiate:
                builder.process(bsym)
            else:
                builder.new.bound_symbols.append(bsym)
    grads: dict[str, TensorProxy] = {}
    backward = builder.new.from_trace("backward in the program", [])
    with tracectx(backward):
        for o, ct in zip(outputs, cotangents):
            if o.name in builder.requires_grad and _is_differentiable(o):
                grads[o.name] = _accumulate(grads.get(o.name), ct)
        for chunk in reversed(builder.chunks):
            if not any(o.name in grads for o in chunk.outputs):
                continue
            mapping = {}
            for out_name, ph in chunk.placeholders.items():
                g = grads.get(out_name)
                mapping[ph.name] = g if g is not None else prims.full(tuple(ph.shape), 0, dtype=ph.dtype, device=ph.device)
            backward.bound_symbols.extend(b.swap_proxies(mapping) for b in chunk.bsyms)
            for t, g in chunk.puts:
                if isinstance(g, TensorProxy):
                    g = mapping.get(g.name, g)
                if t.name in builder.requires_grad:
                    grads[t.name] = _accumulate(grads.get(t.name), g)
        result = []
        for t in wrt:
            g = grads.get(t.name)
            result.append(_match(g, t) if g is not None and (tuple(g.shape) != tuple(t.shape) or g.dtype != t.dtype)
                          else g)  # fmt: skip
    trace.names |= builder.new.names | backward.names
    return list(builder.new.bound_symbols), list(backward.bound_symbols), result
