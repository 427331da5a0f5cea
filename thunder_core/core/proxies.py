"""Proxies: the values a trace computes with.

A `TensorProxy` *is* a `torch.Tensor` to Python code (a storage-less wrapper subclass, in the manner of
FakeTensor): library code that checks `isinstance(x, torch.Tensor)`, reads `.shape`, `.is_cuda`,
`.ndim`, or stores it in an `nn.Module` slot keeps working while we trace. It holds metadata only
(shape, dtype, device, strides, requires_grad) and a name in its trace. Any attempt to reach its data
ends in `__torch_dispatch__`, which raises: the tracer records operations before they get there.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from thunder.core.trace import get_tracectx

_fallback_names = itertools.count()


def _new_name(prefix: str) -> str:
    trace = get_tracectx()
    if trace is not None:
        return trace.make_name(prefix)
    return f"_{prefix}{next(_fallback_names)}"


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides = []
    running = 1
    for length in reversed(shape):
        strides.append(running)
        running *= max(length, 1)
    return tuple(reversed(strides))


class TensorProxy(torch.Tensor):
    """A tensor's metadata and its name in a trace.

    `TensorProxy(like=t)` makes a proxy with `t`'s metadata (shape, dtype, device, requires_grad);
    keyword arguments override individual fields. Used by metas: `TensorProxy(like=a, dtype=torch.bool)`.
    """

    # Operations on proxies are intercepted by the tracer's TorchFunctionMode, never by the subclass.
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(
        cls,
        name: str | None = None,
        *,
        like: torch.Tensor | None = None,
        shape: Sequence[int] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        requires_grad: bool | None = None,
        strides: Sequence[int] | None = None,
        prefix: str = "t",
    ):
        if like is not None:
            shape = tuple(like.shape) if shape is None else shape
            dtype = like.dtype if dtype is None else dtype
            device = like.device if device is None else device
            requires_grad = like.requires_grad if requires_grad is None else requires_grad
        if shape is None or dtype is None or device is None:
            raise TypeError("TensorProxy needs `like=` or all of shape, dtype and device")
        shape = tuple(int(s) for s in shape)
        if strides is None:
            strides = contiguous_strides(shape)
        requires_grad = bool(requires_grad) and (dtype.is_floating_point or dtype.is_complex)
        proxy = torch.Tensor._make_wrapper_subclass(
            cls, shape, strides=tuple(strides), dtype=dtype, device=torch.device(device), requires_grad=requires_grad
        )
        proxy._thunder_name = name if name is not None else _new_name(prefix)
        return proxy

    # torch.Tensor.name is a read-only C attribute; a trace value's name shadows it.
    @property
    def name(self) -> str:
        return self._thunder_name

    def replace_name(self, name: str) -> TensorProxy:
        """A proxy with the same metadata and another name."""
        return TensorProxy(name, like=self, strides=self.stride())

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(
            f"{func} reached a Thunder proxy outside the tracer: a proxy holds no data. "
            "This is a bug in Thunder or an operation executed outside `thunder.jit`'s tracing."
        )

    def __repr__(self, *args, **kwargs) -> str:
        return f'<TensorProxy {self.name}: "{type_string(self)}">'

    def __format__(self, spec) -> str:
        return repr(self)

    def __reduce_ex__(self, protocol):
        raise TypeError("a TensorProxy cannot be pickled or deep-copied: it stands for a tensor during tracing")

    def __deepcopy__(self, memo):
        raise TypeError("a TensorProxy cannot be pickled or deep-copied: it stands for a tensor during tracing")


_short_dtype = {
    torch.float32: "f32",
    torch.float64: "f64",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "b8",
    torch.complex64: "c64",
    torch.complex128: "c128",
}


def type_string(t: torch.Tensor) -> str:
    """`cpu f32[2, 3]`: the comment printed beside a tensor in a trace."""
    dtype = _short_dtype.get(t.dtype, str(t.dtype).removeprefix("torch."))
    return f"{t.device} {dtype}{list(t.shape)}"



def proxy_like_tensor(t: torch.Tensor, name: str | None = None) -> TensorProxy:
    """A proxy for a real tensor: same shape, strides, dtype, device and requires_grad."""
    return TensorProxy(name, like=t, strides=t.stride())

