"""`torch.vmap` and `torch.func` transforms called by the traced program run as Thunder's own transforms.

torch's functorch transforms wrap tensors in C++ batched/dual tensors and call the dispatcher directly, which
Thunder's proxies cannot take ("aten.expand.default reached a Thunder proxy outside the tracer"). Model code
calls them by attribute (transformers 4.5x builds its attention masks with nested `torch.vmap` over index
ranges), so while a trace is recorded `torch.vmap` and `torch.func.{vmap, grad, grad_and_value, vjp, jvp}`
are wrappers: a transform applied to Thunder proxies, in the thread that traces, runs as the transform of the
same name in `thunder.frontend.functional` (recorded into the trace, batched or differentiated there); any
other call (another thread, real tensors, the transformed function kept and called after tracing) runs
torch's own. The names are put back when tracing ends.

Differences from torch.func, each refused with a message rather than run differently: `randomness` other
than "error", `has_aux`, and nested (pytree) `in_dims`; `chunk_size` only bounds torch's memory use and
is accepted and ignored.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager

import torch
import torch.func

from thunder.core.proxies import TensorProxy
from thunder.core.pytree import tree_flatten
from thunder.frontend import functional
from thunder.frontend.tracer import _tracers

_lock = threading.Lock()
_depth = 0  # tracers (in any thread) inside the block; the names are swapped while it is positive
_ORIGINALS = {
    "vmap": torch.func.vmap,
    "grad": torch.func.grad,
    "grad_and_value": torch.func.grad_and_value,
    "vjp": torch.func.vjp,
    "jvp": torch.func.jvp,
}


def _traces_proxies(*values) -> bool:
    """Whether this thread is recording a trace and `values` hold Thunder proxies."""
    return bool(_tracers) and any(isinstance(x, TensorProxy) for x in tree_flatten(values)[0])


def _refuse(transform: str, what: str):
    raise NotImplementedError(
        f"torch.func.{transform} with {what} inside a function traced by thunder.jit is not supported; call the "
        f"transform outside the jitted function, or use thunder.dynamo.thunderfx, which runs it as a graph break"
    )


def _check_dims(dims, name: str) -> None:
    leaves = dims if isinstance(dims, (tuple, list)) else (dims,)
    if not all(d is None or isinstance(d, int) for d in leaves):
        _refuse("vmap", f"nested {name} ({dims!r}); pass one int or None per argument")


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """torch.func.vmap: Thunder's vmap for a call on proxies while tracing, torch's otherwise."""
    original = _ORIGINALS["vmap"](func, in_dims, out_dims, randomness, chunk_size=chunk_size)

    @functools.wraps(func)
    def mapped(*args, **kwargs):
        if not _traces_proxies(args, kwargs):
            return original(*args, **kwargs)
        if randomness != "error":
            _refuse("vmap", f"randomness={randomness!r}")
        _check_dims(in_dims, "in_dims")
        _check_dims(out_dims, "out_dims")
        return functional.vmap(func, in_dims, out_dims)(*args, **kwargs)

    return mapped


def grad(func, argnums=0, has_aux=False):
    """torch.func.grad: Thunder's grad for a call on proxies while tracing, torch's otherwise."""
    original = _ORIGINALS["grad"](func, argnums, has_aux)

    @functools.wraps(func)
    def gradient(*args, **kwargs):
        if not _traces_proxies(args, kwargs):
            return original(*args, **kwargs)
        if has_aux:
            _refuse("grad", "has_aux=True")
        return functional.grad(func, argnums)(*args, **kwargs)

    return gradient


def grad_and_value(func, argnums=0, has_aux=False):
    """torch.func.grad_and_value: (gradient, value), through Thunder's vjp for a call on proxies while tracing."""
    original = _ORIGINALS["grad_and_value"](func, argnums, has_aux)

    @functools.wraps(func)
    def gradient_and_value(*args, **kwargs):
        if not _traces_proxies(args, kwargs):
            return original(*args, **kwargs)
        if has_aux:
            _refuse("grad_and_value", "has_aux=True")
        value = func(*args, **kwargs)  # recorded once more inside grad's own trace; dce keeps one copy's use
        return functional.grad(func, argnums)(*args, **kwargs), value

    return gradient_and_value


def vjp(func, *primals, has_aux=False):
    """torch.func.vjp: Thunder's vjp for primals that are proxies while tracing, torch's otherwise."""
    if not _traces_proxies(primals):
        return _ORIGINALS["vjp"](func, *primals, has_aux=has_aux)
    if has_aux:
        _refuse("vjp", "has_aux=True")
    return functional.vjp(func, *primals)


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """torch.func.jvp: Thunder's jvp for primals or tangents that are proxies while tracing, torch's otherwise."""
    if not _traces_proxies(primals, tangents):
        return _ORIGINALS["jvp"](func, primals, tangents, strict=strict, has_aux=has_aux)
    if has_aux:
        _refuse("jvp", "has_aux=True")
    return functional.jvp(func, primals, tangents)


_REPLACEMENTS = {"vmap": vmap, "grad": grad, "grad_and_value": grad_and_value, "vjp": vjp, "jvp": jvp}


def _swap(to_thunder: bool) -> None:
    for name, replacement in _REPLACEMENTS.items():
        setattr(torch.func, name, replacement if to_thunder else _ORIGINALS[name])
    torch.vmap = vmap if to_thunder else _ORIGINALS["vmap"]


@contextmanager
def thunder_torch_func_transforms():
    """Within the block, `torch.vmap` and `torch.func`'s transforms are the wrappers above (see the module
    docstring); restored when the last tracer leaves. The wrappers defer to torch's own transforms for every
    call that is not on this thread's proxies, so other threads see torch's behaviour throughout."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _swap(True)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _swap(False)
