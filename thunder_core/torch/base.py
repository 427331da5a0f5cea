"""The machinery every `thunder.torch` family uses: the `torchsymbol` decorator, the table from torch
callables to the callables that trace them, and helpers shared by decompositions (broadcasting, dims)."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence

import torch

from thunder import prims
from thunder.core.proxies import FloatProxy, guarded_predicate
from thunder.core.symbol import Symbol

# torch callable (function, Tensor method, operator dunder, property getter) -> callable that traces it
TORCH_HANDLERS: dict[Callable, Callable] = {}


def _ltorch_module():
    return sys.modules["thunder.torch"]


def register_handler(torch_fn: Callable, handler: Callable) -> None:
    TORCH_HANDLERS[torch_fn] = handler


def torch_handler(torch_fn: Callable) -> Callable | None:
    return TORCH_HANDLERS.get(torch_fn)


def torchsymbol(*torch_fns: Callable, name: str | None = None, tags: Sequence[str] = ()):
    """Makes `fn` (the decomposition, with torch's signature) a `thunder.torch` symbol standing for `torch_fns`.

    The first torch callable is the one an executor may call directly to run the whole operation.
    """

    def decorator(fn: Callable) -> Symbol:
        sym = Symbol(name or fn.__name__, fn, namespace=("ltorch", _ltorch_module()), tags=tags)
        sym.torch_fns = tuple(torch_fns)
        sym.__doc__ = fn.__doc__
        for torch_fn in torch_fns:
            register_handler(torch_fn, sym)
        return sym

    return decorator


def is_inplace_name(name: str) -> bool:
    return name.endswith("_") and not name.endswith("__") and not name.startswith("_")


# -- helpers for decompositions ----------------------------------------------------------------------
def canonicalize_dim(ndim: int, dim: int) -> int:
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], but got {dim})")
    return dim % rank


def canonicalize_dims(ndim: int, dims) -> tuple[int, ...]:
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, int):
        dims = (dims,)
    return tuple(canonicalize_dim(ndim, d) for d in dims)


def broadcast_shapes(*shapes) -> tuple[int, ...]:
    ndim = max((len(s) for s in shapes), default=0)
    result = [1] * ndim
    for shape in shapes:
        for i, length in enumerate(shape):
            pos = ndim - len(shape) + i
            if length != 1:
                if result[pos] != 1 and result[pos] != length:
                    raise RuntimeError(f"shapes {[tuple(s) for s in shapes]} cannot be broadcast together")
                result[pos] = length
    return tuple(result)


def expand_to(a: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """`a` broadcast to `shape` (numpy rules), through prims.broadcast_in_dim when needed."""
    shape = tuple(shape)
    if tuple(a.shape) == shape:
        return a
    offset = len(shape) - a.ndim
    return prims.broadcast_in_dim(a, shape, tuple(range(offset, len(shape))))


def on_common_device(*args):
    """args with each 0-d CPU tensor moved to the device of the other tensors, where those share one device.

    Eager treats a 0-d CPU tensor among CUDA tensors like a Python scalar (Hugging Face's mask helpers compute
    `torch.tensor(1.0) - mask`); the result is on the CUDA device. Any other mix is left for the primitive to
    report, as eager reports it.
    """
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if len(tensors) < 2 or all(t.device == tensors[0].device for t in tensors):
        return args
    others = {t.device for t in tensors if not (t.device.type == "cpu" and t.ndim == 0)}
    if len(others) != 1:
        return args
    (target,) = others
    return tuple(
        prims.to_device(a, target) if isinstance(a, torch.Tensor) and a.device != target else a for a in args
    )


def broadcast_tensors(*args):
    """Tensors among args broadcast to their common shape (and device, see `on_common_device`); numbers stay
    numbers."""
    args = on_common_device(*args)
    shapes = [a.shape for a in args if isinstance(a, torch.Tensor)]
    if not shapes:
        return args
    shape = broadcast_shapes(*shapes)
    return tuple(expand_to(a, shape) if isinstance(a, torch.Tensor) else a for a in args)


def to_dtype(a, dtype: torch.dtype):
    """A tensor converted to dtype (no-op when equal); numbers pass through."""
    if isinstance(a, torch.Tensor) and a.dtype != dtype:
        return prims.convert_element_type(a, dtype)
    return a



def as_int64(x):
    """A float converted to int64 as eager's integer kernels convert their scalar arguments: NaN, infinities and
    values beyond int64 are refused, others truncated (a number proxy's value is read, and guarded, by the
    truncation). Anything but a float is returned as it is."""
    if not isinstance(x, (float, FloatProxy)):
        return x
    if not (guarded_predicate(math.isfinite, x) and -(2.0**63) <= x < 2.0**63):
        raise RuntimeError("value cannot be converted to type int64_t without overflow")
    return math.trunc(x)


def integer_scalar(x, dtype: torch.dtype):
    """A scalar argument (alpha, beta, value) as eager's kernels for a `dtype` tensor take it: converted to int64 for
    an integer dtype (`as_int64`: 2.7 multiplies by 2, NaN is refused), as it is otherwise."""
    if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        return x
    return as_int64(x)


def number_in(value, dtype: torch.dtype):
    """A Python float as a float16 / bfloat16 tensor holds it (0.6 in float16 is 0.60009765625): eager's CPU
    kernels of some ops (addr, huber_loss) convert their scalar arguments to the tensors' dtype first."""
    if dtype not in (torch.float16, torch.bfloat16) or not isinstance(value, float):
        return value
    return torch.tensor(value, dtype=dtype).item()
