"""What eager PyTorch would return for an operation, as far as aliasing is concerned.

A trace is functional, but the program it was acquired from is not: whether `x.reshape(-1)` is a view of
`x` or a copy, whether `a.float()` returns `a` itself, and whether `x.t().contiguous()` copies decide
whether a later in-place operation is seen through the other name. Eager decides from the strides of
its operands. The tracer keeps the strides eager would give each value (proxies made by operations are
contiguous; inputs carry their real strides) and asks torch's own meta kernels, which compute strides
and aliasing without data: `run_on_meta` replays one call on meta tensors with those strides.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from thunder.core.proxies import NumberProxy, TensorProxy, concrete_shape, contiguous_strides

# Calls that may return their operand itself in eager (besides the view operations, see torch/shapes.py).
MAYBE_SELF = frozenset({
    torch.Tensor.to, torch.Tensor.type, torch.Tensor.type_as, torch.Tensor.float, torch.Tensor.double,
    torch.Tensor.half, torch.Tensor.bfloat16, torch.Tensor.int, torch.Tensor.long, torch.Tensor.short,
    torch.Tensor.bool, torch.Tensor.byte, torch.Tensor.char, torch.Tensor.cpu, torch.Tensor.cuda,
    torch.Tensor.contiguous, torch.real, torch.Tensor.conj, torch.conj, torch.resolve_conj, torch.resolve_neg,
    torch.Tensor.resolve_conj, torch.Tensor.resolve_neg,
})  # fmt: skip


def is_contiguous_layout(shape, strides) -> bool:
    return all(length <= 1 or s == c for length, s, c in zip(shape, strides, contiguous_strides(shape)))


def has_internal_overlap(shape, strides) -> bool:
    """Several elements share one memory location (an expanded tensor): eager refuses to write into it."""
    return any(length > 1 and s == 0 for length, s in zip(shape, strides))


class _Transfer(Exception):
    """A device argument other than the operand's: eager copies, so there is no layout to replay."""


def _is_device(arg) -> bool:
    try:
        torch.device(arg)
    except (RuntimeError, TypeError):
        return False
    return True


def _same_device(arg, device: torch.device) -> bool:
    try:
        other = torch.device(arg)
    except (RuntimeError, TypeError):
        return False
    if other.type != device.type:
        return False
    if other.index is None or device.index is None:
        current = torch.cuda.current_device() if other.type == "cuda" and torch.cuda.is_available() else 0
        return (other.index if other.index is not None else current) == (
            device.index if device.index is not None else current
        )
    return other.index == device.index


def run_on_meta(func: Callable, args, kwargs, strides_of: Callable[[TensorProxy], tuple]):
    """(meta tensor standing for args[0], meta result) of `func(*args, **kwargs)`, or None if meta cannot run it.

    Every tensor becomes a meta tensor with the strides eager gives it (`strides_of`); a device equal to the
    first tensor's becomes "meta", so `x.to(x.device)` returns `x` there as in eager.
    """
    if not args or not isinstance(args[0], torch.Tensor):
        return None
    self_device = args[0].device
    if func is torch.Tensor.cpu:
        func, args, kwargs = torch.Tensor.to, (args[0], "cpu"), {}
    elif func is torch.Tensor.cuda:
        device = args[1] if len(args) > 1 else kwargs.get("device")
        device = "cuda" if device is None else (f"cuda:{device}" if isinstance(device, int) else device)
        func, args, kwargs = torch.Tensor.to, (args[0], device), {}
    memo: dict[int, torch.Tensor] = {}

    def to_meta(x):
        if isinstance(x, torch.Tensor):
            meta = memo.get(id(x))
            if meta is None:
                strides = strides_of(x) if isinstance(x, TensorProxy) else tuple(x.stride())
                shape = concrete_shape(x)  # a layout question: the sizes seen while tracing, unguarded
                meta = memo[id(x)] = torch.empty_strided(shape, strides, dtype=x.dtype, device="meta")
            return meta
        if isinstance(x, NumberProxy):
            return x.value
        if isinstance(x, (torch.device, str)) and _same_device(x, self_device):
            return "meta"
        if isinstance(x, (torch.device, str)) and _is_device(x):
            raise _Transfer  # to another device (meta included): a copy, which the traced symbol already is
        if type(x) is tuple or type(x) is list:
            return type(x)(to_meta(v) for v in x)
        if type(x) is dict:
            return {k: to_meta(v) for k, v in x.items()}
        if isinstance(x, slice):
            return slice(to_meta(x.start), to_meta(x.stop), to_meta(x.step))
        return x

    try:  # (a _Transfer raised by to_meta ends here too)
        meta_args, meta_kwargs = to_meta(args), to_meta(kwargs)
        if "device" in meta_kwargs and meta_kwargs["device"] != "meta":
            return None  # a transfer to another device: a copy, which the traced symbol already is
        with torch.no_grad():
            out = func(*meta_args, **meta_kwargs)
    except Exception:  # a transfer, no meta kernel, or a call meta cannot express: the layout stays unknown
        return None
    return meta_args[0], out


def aliases(meta_out, meta_self: torch.Tensor) -> bool:
    """Whether eager's result shares memory with its first operand."""
    # the same storage: detach() shares memory without being a view (its _base is None)
    return isinstance(meta_out, torch.Tensor) and (
        meta_out is meta_self or meta_out.untyped_storage()._cdata == meta_self.untyped_storage()._cdata
    )
