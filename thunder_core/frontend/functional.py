"""Functional transforms with torch.func's signatures: `grad`, `vjp`, `jvp` and `vmap`.

Each transform works on the operations `fn` records while it is traced. Called inside a trace (under
`thunder.jit`, or inside another transform) it traces `fn` on the caller's proxies into a separate
list, transforms that list (reverse-mode autodiff, or batching) and records the result into the
caller's trace, so transforms compose (`vmap(grad(f))`, `grad(grad(f))`, `jvp(grad(f))`) and the
whole composition is one trace. Called on real tensors, the transformed function compiles itself with
`thunder.jit` (cached on the transformed function) and runs; `thunder.last_traces(g)` shows the program.

`jvp` is forward mode by transposition: the vector-Jacobian product `u -> J^T u` is linear in `u`, so
its own vector-Jacobian product with `t` is `J t`. It needs the backward operations to be
differentiable, as `grad(grad(f))` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch

from thunder import prims
from thunder.core.proxies import TensorProxy
from thunder.core.trace import TraceCtx, get_tracectx, tracectx
from thunder.frontend.jit import ThunderFunction
from thunder.frontend.tracer import _tracers
from thunder.transforms.autodiff import _build_backward, _JointBuilder
from thunder.transforms.vmap import Batcher, canonical_dim, move_dim, per_example_like


class _Transformed:
    """A transformed function: records into the current trace when traced, compiles itself otherwise."""

    def __init__(self, name: str, fn: Callable, traced: Callable):
        self.fn = fn
        self._traced = traced
        self._jitted = None
        self.__name__ = f"{name}_{getattr(fn, '__name__', 'fn')}"
        functools.update_wrapper(self, fn, assigned=("__doc__", "__module__"), updated=())

    def __call__(self, *args, **kwargs):
        if get_tracectx() is not None:
            return self._traced(*args, **kwargs)
        if self._jitted is None:
            self._jitted = ThunderFunction(self)  # what thunder.jit makes of a function, default executors
        return self._jitted(*args, **kwargs)


def _resolve(x):
    return _tracers[-1].resolve(x) if _tracers else x


@contextmanager
def _no_mutation(transform: str):
    """Fails clearly where `fn` writes to a tensor in place: the transformed program has no such write."""
    tracer = _tracers[-1] if _tracers else None
    before = dict(tracer.current) if tracer is not None else {}
    yield
    if tracer is not None and any(before.get(k) is not v for k, v in tracer.current.items()):
        raise NotImplementedError(
            f"{transform}: the function writes to a tensor in place (e.g. Tensor.add_, out=, or batch_norm's "
            "running statistics in training mode), which this transform does not support; use the out-of-place "
            "form (or eval mode for batch_norm)"
        )


def _flatten(out) -> tuple[list, Callable]:
    if isinstance(out, torch.Tensor):
        return [out], lambda leaves: leaves[0]
    if isinstance(out, (tuple, list)) and all(isinstance(o, torch.Tensor) for o in out):
        kind = type(out)
        return list(out), lambda leaves: kind(leaves)
    raise TypeError(f"functional transforms need a function returning a tensor or a tuple of tensors, got {type(out)}")


def _swap(x, mapping: dict):
    if isinstance(x, TensorProxy):
        return mapping.get(x.name, x)
    if isinstance(x, (tuple, list)):
        return type(x)(_swap(v, mapping) for v in x)
    return x


def _record_into(trace: TraceCtx, bsyms, mapping: dict) -> None:
    for b in bsyms:
        new = b.swap_proxies(mapping)
        new.tag = None
        trace.record(new)


def _absorb_names(trace: TraceCtx, *others: TraceCtx) -> None:
    # names made in the helper traces must stay unique when their programs join the caller's trace
    for other in others:
        trace.names |= other.names
        for prefix, counter in other._counters.items():
            trace._counters.setdefault(prefix, counter)


def vjp_traced(fn: Callable, primals: Sequence, kwargs: dict | None = None):
    """Inside a trace: records `fn(*primals)` and returns `(output, vjp_fn)` as torch.func.vjp does."""
    trace = get_tracectx()
    kwargs = kwargs or {}
    primals = [_resolve(p) for p in primals]
    for i, p in enumerate(primals):
        if not isinstance(p, TensorProxy) or not (p.dtype.is_floating_point or p.dtype.is_complex):
            raise TypeError(f"vjp/grad: argument {i} must be a floating point tensor, got {type(p).__name__}")
    fresh = [TensorProxy(like=p, requires_grad=True, prefix="primal") for p in primals]
    with trace.collecting() as bsyms, _no_mutation("vjp/grad/jvp"):
        out = fn(*fresh, **kwargs)
    leaves, rebuild = _flatten(out)
    leaves = [_resolve(o) for o in leaves]
    sub = trace.from_trace("functional vjp", bsyms)
    sub.args, sub.output = fresh, leaves
    builder = _JointBuilder(sub, torch_vjp=False)
    with tracectx(builder.new):
        for bsym in sub.bound_symbols:
            builder.process(bsym)
    bwd = _build_backward(sub, builder.new, builder, leaves)
    _absorb_names(trace, builder.new, bwd)
    back = {f.name: p for f, p in zip(fresh, primals)}
    _record_into(trace, builder.new.bound_symbols, back)
    outputs = [_swap(o, back) for o in leaves]
    cotangent_slots = bwd.tags["cotangents"]

    def vjp_fn(*cotangents):
        if len(cotangents) == 1 and len(outputs) > 1 and isinstance(cotangents[0], (tuple, list)):
            cotangents = tuple(cotangents[0])
        if len(cotangents) != len(outputs):
            raise ValueError(f"vjp_fn expects {len(outputs)} cotangent(s), one per output, got {len(cotangents)}")
        mapping = dict(back)
        for slot, ct in zip(cotangent_slots, cotangents):
            if slot is not None:
                mapping[slot.name] = _resolve(ct)
        current = get_tracectx()
        _record_into(current, bwd.bound_symbols, mapping)
        grads = []
        for g, p in zip(bwd.output, primals):
            if g is None:
                g = prims.full(tuple(p.shape), 0, dtype=p.dtype, device=p.device)
            grads.append(_swap(g, mapping))
        return tuple(grads)

    return rebuild(outputs), vjp_fn


def _argnums_tuple(argnums) -> tuple[int, ...]:
    return (argnums,) if isinstance(argnums, int) else tuple(argnums)


def grad(fn: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The gradient of `fn` (which returns one scalar tensor) with respect to the arguments `argnums`.

    As torch.func.grad: returns one gradient for an int `argnums`, a tuple of them for a tuple.
    """
    nums = _argnums_tuple(argnums)

    def traced(*args, **kwargs):
        for n in nums:
            if n >= len(args):
                raise ValueError(f"grad: argnums {n} is out of range for {len(args)} positional argument(s)")

        def of_selected(*selected):
            full = list(args)
            for n, s in zip(nums, selected):
                full[n] = s
            return fn(*full, **kwargs)

        out, vjp_fn = vjp_traced(of_selected, [args[n] for n in nums])
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            raise RuntimeError("grad: the function must return a tensor with a single element (e.g. a loss)")
        one = prims.full(tuple(out.shape), 1.0, dtype=out.dtype, device=out.device)
        grads = vjp_fn(one)
        return grads[0] if isinstance(argnums, int) else grads

    return _Transformed("grad", fn, traced)


def vjp(fn: Callable, *primals):
    """As torch.func.vjp: `(fn(*primals), vjp_fn)`; `vjp_fn(*cotangents)` returns one gradient per primal.

    On real tensors the forward and each `vjp_fn` call are compiled programs; `vjp_fn` recomputes the
    forward rather than keeping the forward's intermediates alive between the two calls.
    """
    if get_tracectx() is not None:
        return vjp_traced(fn, primals)
    forward = _Transformed("vjp_forward", fn, lambda *a: fn(*a))
    n = len(primals)

    def backward(*args):
        _, vjp_fn = vjp_traced(fn, args[:n])
        return vjp_fn(*args[n:])

    backward_fn = _Transformed("vjp_backward", fn, backward)
    return forward(*primals), lambda *cotangents: backward_fn(*primals, *cotangents)


def jvp_traced(fn: Callable, primals: Sequence, tangents: Sequence):
    out, vjp_fn = vjp_traced(fn, primals)
    leaves, rebuild = _flatten(out)
    dummies = [prims.full(tuple(o.shape), 0.0, dtype=o.dtype, device=o.device) for o in leaves]

    def transposed(*u):
        return tuple(vjp_traced(fn, primals)[1](*u))

    _, transpose_fn = vjp_traced(transposed, dummies)
    tangent_out = transpose_fn(*[_resolve(t) for t in tangents])
    return out, rebuild(list(tangent_out))


def jvp(fn: Callable, primals: Sequence, tangents: Sequence):
    """As torch.func.jvp: `(fn(*primals), J @ tangents)`, the Jacobian-vector product of `fn` at `primals`."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primal(s) but {len(tangents)} tangent(s)")
    for p, t in zip(primals, tangents):
        if tuple(p.shape) != tuple(t.shape):
            raise ValueError(f"jvp: a tangent of shape {tuple(t.shape)} for a primal of shape {tuple(p.shape)}")
    if get_tracectx() is not None:
        return jvp_traced(fn, primals, tangents)
    n = len(primals)
    compiled = _Transformed("jvp", fn, lambda *a: jvp_traced(fn, a[:n], a[n:]))
    return compiled(*primals, *tangents)


def _dims_per_arg(dims, n: int, what: str) -> list:
    if isinstance(dims, int) or dims is None:
        return [dims] * n
    dims = list(dims)
    if len(dims) != n:
        raise ValueError(f"vmap: {what} has {len(dims)} entries but there are {n}")
    return dims


def vmap_traced(fn: Callable, in_dims, out_dims, args, kwargs):
    trace = get_tracectx()
    args = [_resolve(a) for a in args]
    dims = _dims_per_arg(in_dims, len(args), "in_dims")
    examples, batched, sizes = [], {}, set()
    for i, (a, d) in enumerate(zip(args, dims)):
        if d is None:
            examples.append(a)
            continue
        if not isinstance(a, torch.Tensor):
            raise TypeError(f"vmap: argument {i} has in_dim {d} but is a {type(a).__name__}, not a tensor")
        d = canonical_dim(d, a.ndim, f"in_dim of argument {i}")
        sizes.add(a.shape[d])
        example = per_example_like(a, d)
        batched[example.name] = move_dim(a, d, 0)
        examples.append(example)
    if len(sizes) != 1:
        raise ValueError(f"vmap: the mapped dimensions must have one size, got {sorted(sizes) or 'no mapped input'}")
    batch = sizes.pop()
    with trace.collecting() as bsyms, _no_mutation("vmap"):
        out = fn(*examples, **kwargs)
    leaves, rebuild = _flatten(out)
    leaves = [_resolve(o) for o in leaves]
    batcher = Batcher(batch, batched)
    batcher.run(bsyms)
    results = []
    for o, d in zip(leaves, _dims_per_arg(out_dims, len(leaves), "out_dims")):
        value = batcher.value(o)
        if value is o or not batcher.is_batched(o):  # the output does not depend on the batch
            value = prims.broadcast_in_dim(value, (batch, *value.shape), tuple(range(1, value.ndim + 1)))
        results.append(move_dim(value, 0, canonical_dim(d, value.ndim, "out_dim")))
    return rebuild(results)


def vmap(fn: Callable, in_dims=0, out_dims=0) -> Callable:
    """As torch.func.vmap: `fn` mapped over dimension `in_dims` of its arguments (None: not mapped).

    `in_dims` is one int/None for every positional argument or one per argument; `out_dims` likewise per
    output. Each operation runs once on the whole batch through its batching rule.
    """
    return _Transformed("vmap", fn, lambda *args, **kwargs: vmap_traced(fn, in_dims, out_dims, args, kwargs))
