"""Dtype categories and PyTorch's elementwise type promotion, computed on dtypes alone.

Thunder uses torch's own dtype objects (a proxy *is* a tensor to Python code, so its `.dtype` must be a
`torch.dtype`); this module adds the classification and promotion logic that metas need without
running any torch operator.
"""

from __future__ import annotations

import enum
from numbers import Number

import torch

from thunder.core.proxies import NumberProxy

bool_dtypes = frozenset({torch.bool})
integer_dtypes = frozenset({torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64})
float_dtypes = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
low_precision_dtypes = frozenset({torch.float16, torch.bfloat16})
complex_dtypes = frozenset({torch.complex64, torch.complex128})


def is_boolean_dtype(dtype: torch.dtype) -> bool:
    return dtype == torch.bool


def is_integer_dtype(dtype: torch.dtype) -> bool:
    """True for integer dtypes, bool excluded (torch's `isIntegralType(includeBool=False)`)."""
    return dtype in integer_dtypes or (not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool)


def is_exact_dtype(dtype: torch.dtype) -> bool:
    """Bool or integer."""
    return not dtype.is_floating_point and not dtype.is_complex


def is_float_dtype(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point


def is_complex_dtype(dtype: torch.dtype) -> bool:
    return dtype.is_complex


def to_complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return {torch.float64: torch.complex128}.get(dtype, torch.complex64)


def corresponding_real_dtype(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex128: torch.float64, torch.complex64: torch.float32}.get(dtype, dtype)


def python_scalar_dtype(x: Number) -> torch.dtype:
    """The dtype torch gives a Python scalar taking part in an operation with tensors."""
    if isinstance(x, NumberProxy):
        x = x.value  # its type is fixed by the cache key; its value may vary
    if isinstance(x, bool):
        return torch.bool
    if isinstance(x, int):
        return torch.int64
    if isinstance(x, float):
        return torch.get_default_dtype()
    if isinstance(x, complex):
        return to_complex_dtype(torch.get_default_dtype())
    raise TypeError(f"expected a Python number, got {type(x).__name__}")


def _promote(a: torch.dtype | None, b: torch.dtype | None) -> torch.dtype | None:
    if a is None:
        return b
    if b is None:
        return a
    return torch.promote_types(a, b)


def _combine_categories(higher: torch.dtype | None, lower: torch.dtype | None) -> torch.dtype | None:
    # Mirrors c10's combine_categories: a lower-priority group only matters if it is of a higher category.
    if higher is None:
        return lower
    if higher.is_complex:
        return higher
    if lower is not None and lower.is_complex:
        return to_complex_dtype(higher) if higher.is_floating_point else lower
    if higher.is_floating_point:
        return higher
    if higher == torch.bool or (lower is not None and lower.is_floating_point):
        return _promote(higher, lower)
    return higher


def result_dtype(*args) -> torch.dtype:
    """PyTorch's `torch.result_type` over any mix of tensors (or proxies) and Python numbers."""
    dim_result = zero_dim_result = scalar_result = None
    for a in args:
        if isinstance(a, torch.Tensor):
            if a.ndim > 0:
                dim_result = _promote(dim_result, a.dtype)
            else:
                zero_dim_result = _promote(zero_dim_result, a.dtype)
        elif isinstance(a, Number):
            scalar_result = _promote(scalar_result, python_scalar_dtype(a))
        elif a is None:
            continue
        else:
            raise TypeError(f"cannot compute a result dtype for {type(a).__name__}")
    result = _combine_categories(dim_result, _combine_categories(zero_dim_result, scalar_result))
    if result is None:
        raise ValueError("result_dtype needs at least one tensor or number")
    return result


class Promotion(enum.Enum):
    """How an elementwise op computes its result dtype from the promoted dtype of its inputs."""

    DEFAULT = "default"  # the promoted dtype
    INT_TO_FLOAT = "int_to_float"  # exact dtypes become the default float (sin, div, sqrt...)
    ALWAYS_BOOL = "always_bool"  # comparisons
    NO_OPMATH = "no_opmath"
    COMPLEX_TO_FLOAT = "complex_to_float"  # abs


def elementwise_result_dtype(promotion: Promotion, *args) -> torch.dtype:
    dtype = result_dtype(*args)
    if promotion is Promotion.INT_TO_FLOAT and is_exact_dtype(dtype):
        return torch.get_default_dtype()
    if promotion is Promotion.ALWAYS_BOOL:
        return torch.bool
    if promotion is Promotion.COMPLEX_TO_FLOAT:
        return corresponding_real_dtype(dtype)
    return dtype


def computation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a decomposition computes in: low precision floats are upcast to float32."""
    return torch.float32 if dtype in low_precision_dtypes else dtype
