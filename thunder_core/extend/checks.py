"""Building blocks of checkers: the questions every kernel executor asks of an operation's arguments.

A checker runs on the proxies of one call and answers whether the executor claims it. The arguments are
proxies (or, for numbers, Python values): their dtype, shape, device and layout are known, their values are
not. What a kernel takes (dtypes, devices, row sizes) stays the executor's; these helpers answer the parts
that are the same for every executor, the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Number

import torch

__all__ = ["FLOAT_DTYPES", "is_real_number", "normalized_dims", "norm_params_fit", "same_device"]

#: The floating dtypes most GPU kernels take.
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def same_device(*tensors) -> bool:
    """Whether the given tensors (None entries ignored, as for optional arguments) share one device."""
    return len({t.device for t in tensors if t is not None}) <= 1


def is_real_number(x) -> bool:
    """A Python (or NumPy) real number: not a bool, not complex, not a tensor."""
    return isinstance(x, Number) and not isinstance(x, (bool, complex))


def normalized_dims(normalized_shape) -> tuple:
    """A normalization's ``normalized_shape`` (an int or a sequence of ints) as a tuple."""
    return (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)


def norm_params_fit(input, normalized_shape, *params, accepts: Callable[[object], bool],
                    last_dim_only: bool = True) -> bool:  # fmt: skip
    """Whether ``normalized_shape`` is ``input``'s trailing shape (only its last dimension where
    ``last_dim_only``), and every parameter (weight, bias; None where absent) is a tensor the kernel
    ``accepts``, of ``input``'s dtype and of that shape."""
    shape = normalized_dims(normalized_shape)
    if not shape or (last_dim_only and len(shape) != 1) or len(shape) > input.ndim:
        return False
    if tuple(input.shape[input.ndim - len(shape):]) != shape:
        return False
    return all(p is None or (accepts(p) and p.dtype == input.dtype and tuple(p.shape) == shape) for p in params)
