"""When the `triton` executor claims an operation: the checkers, on the proxies of one call.

Every kernel takes float32, float16 and bfloat16 tensors on a CUDA device (or, under Triton's interpreter,
``TRITON_INTERPRET=1``, on the CPU: that is how the tests run without a GPU), contiguous where the kernel
reads rows as flat memory. Anything else is left to the next executor.
"""

from __future__ import annotations

import torch

from thunder.extend.checks import FLOAT_DTYPES, norm_params_fit, same_device
from thunder.extend.checks import is_real_number as _is_plain_number
from thunder_executors_triton.kernels.launch import MAX_ROW_BLOCK, row_block, runs_here

INDEX_DTYPES = (torch.int64, torch.int32)


def is_kernel_tensor(t, *, dtypes=FLOAT_DTYPES, contiguous: bool = True) -> bool:
    """A tensor (a proxy, or a real tensor) of a dtype the kernels take, on a device where they run, laid out
    as they read it."""
    return (
        isinstance(t, torch.Tensor)
        and t.dtype in dtypes
        and runs_here(t.device)
        and (t.is_contiguous() if contiguous else (t.ndim == 0 or t.stride(-1) == 1))
    )


def _is_last_dim(t, dim) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool) and t.ndim >= 1 and dim in (-1, t.ndim - 1)


def cross_entropy_checker(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                          reduction="mean", label_smoothing=0.0) -> bool:  # fmt: skip
    """Class-index targets for [N, C] logits, without class weights or legacy reduction flags."""
    return (
        is_kernel_tensor(input, contiguous=False)
        and input.ndim == 2
        and input.shape[0] > 0
        and input.shape[1] > 0
        and is_kernel_tensor(target, dtypes=INDEX_DTYPES)
        and tuple(target.shape) == (input.shape[0],)
        and same_device(input, target)
        and weight is None
        and size_average is None
        and reduce is None
        and reduction in ("mean", "sum", "none")
        and isinstance(ignore_index, int)
        and _is_plain_number(label_smoothing)
        and 0.0 <= label_smoothing <= 1.0
    )


def linear_cross_entropy_checker(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0,
                                 reduction="mean") -> bool:  # fmt: skip
    """[N, H] tokens, a [V, H] weight, an optional [V] bias, one dtype, and [N] class-index targets."""
    return isinstance(x, torch.Tensor) and x.ndim == 2 and linear_cross_entropy_operands_fit(
        x, weight, bias, target, ignore_index, label_smoothing, reduction
    )


def linear_cross_entropy_operands_fit(x, weight, bias, target, ignore_index, label_smoothing, reduction) -> bool:
    """As `linear_cross_entropy_checker`, for tokens x [..., H] that flatten to [N, H] as a view."""
    return (
        is_kernel_tensor(x)
        and is_kernel_tensor(weight)
        and x.ndim >= 2
        and weight.ndim == 2
        and x.shape[-1] == weight.shape[1]
        and x.dtype == weight.dtype
        and (bias is None or (is_kernel_tensor(bias) and bias.dtype == x.dtype
                              and tuple(bias.shape) == (weight.shape[0],)))
        and is_kernel_tensor(target, dtypes=INDEX_DTYPES)
        and tuple(target.shape) == (x.numel() // max(x.shape[-1], 1),)
        and same_device(x, weight, bias, target)
        and reduction in ("mean", "sum", "none")
        and isinstance(ignore_index, int)
        and _is_plain_number(label_smoothing)
        and 0.0 <= label_smoothing <= 1.0
    )  # fmt: skip


def linear_cross_entropy_grad_checker(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0,
                                      reduction="mean") -> bool:  # fmt: skip
    """The gradients are computed with the forward, for an incoming gradient that only scales them."""
    return reduction != "none" and linear_cross_entropy_checker(x, weight, bias, target, ignore_index,
                                                                label_smoothing, reduction)  # fmt: skip


def softmax_checker(input, dim=None, _stacklevel=3, dtype=None) -> bool:
    """Along the last dimension, explicitly named, without a dtype conversion."""
    return is_kernel_tensor(input) and dtype is None and _is_last_dim(input, dim) and input.numel() > 0


def _norm_params_fit(input, normalized_shape, *params) -> bool:
    return (norm_params_fit(input, normalized_shape, *params, accepts=is_kernel_tensor)
            and row_block(input.shape[-1]) <= MAX_ROW_BLOCK)  # fmt: skip


def rms_norm_checker(input, normalized_shape, weight=None, eps=None) -> bool:
    """Over the last dimension only, with a weight (if any) of the input's dtype."""
    return (
        is_kernel_tensor(input)
        and _norm_params_fit(input, normalized_shape, weight)
        and same_device(input, weight)
        and (eps is None or _is_plain_number(eps))
    )


def layer_norm_checker(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> bool:
    """Over the last dimension only, with weight and bias (if any) of the input's dtype."""
    return (
        is_kernel_tensor(input)
        and _norm_params_fit(input, normalized_shape, weight, bias)
        and same_device(input, weight, bias)
        and _is_plain_number(eps)
    )


def rotary_checker(x, cos, sin) -> bool:
    """x [..., S, D] with an even D, cos and sin [S, D] (any leading ones), all of one dtype."""
    if not (is_kernel_tensor(x) and is_kernel_tensor(cos) and is_kernel_tensor(sin)):
        return False
    if x.ndim < 2 or x.shape[-1] % 2 or not same_device(x, cos, sin) or not (x.dtype == cos.dtype == sin.dtype):
        return False
    seq_len, dim = x.shape[-2], x.shape[-1]
    trig_ok = all(t.ndim >= 2 and tuple(t.shape[-2:]) == (seq_len, dim) and t.numel() == seq_len * dim
                  for t in (cos, sin))  # fmt: skip
    return trig_ok and row_block(dim // 2) <= MAX_ROW_BLOCK


def swiglu_checker(a, b) -> bool:
    """Two contiguous tensors of one shape, dtype and device."""
    return (
        is_kernel_tensor(a)
        and is_kernel_tensor(b)
        and tuple(a.shape) == tuple(b.shape)
        and a.dtype == b.dtype
        and same_device(a, b)
    )
