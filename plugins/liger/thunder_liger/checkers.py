"""When the `liger` executor claims an operation: the checkers, on the proxies of one call.

Liger's kernels take float32, float16 and bfloat16 tensors on a CUDA device; a row (the last dimension) of
a normalization or gated activation must fit one Triton block (at most 65536 elements). Non-contiguous
tensors are accepted: the implementations lay them out before the launch. Anything else is left to the
next executor in the list.
"""

from __future__ import annotations

import torch

from thunder.extend.checks import FLOAT_DTYPES, norm_params_fit, same_device
from thunder.extend.checks import is_real_number as _is_plain_number

#: Liger sizes a row's block as the next power of two of its length, and refuses more than this.
MAX_ROW = 65536


def on_kernel_device(t) -> bool:
    """Whether the kernels run on t's device (every check of a device goes through here)."""
    return t.device.type == "cuda"


def is_kernel_tensor(t, dtypes=FLOAT_DTYPES) -> bool:
    """A tensor (a proxy or a real tensor) of a dtype the kernels take, on a CUDA device, with elements."""
    return isinstance(t, torch.Tensor) and t.dtype in dtypes and on_kernel_device(t) and t.numel() > 0


def _row_fits(t) -> bool:
    return t.ndim >= 1 and 0 < t.shape[-1] <= MAX_ROW


def _last_dim_params_fit(input, normalized_shape, *params) -> bool:
    """normalized_shape is input's last dimension, and every param (if given) is [H] of input's dtype."""
    return _row_fits(input) and norm_params_fit(input, normalized_shape, *params, accepts=is_kernel_tensor)


def rms_norm_checker(input, normalized_shape, weight=None, eps=None) -> bool:
    """RMSNorm over the last dimension, with an optional weight of the input's dtype."""
    return (
        is_kernel_tensor(input)
        and _last_dim_params_fit(input, normalized_shape, weight)
        and same_device(input, weight)
        and (eps is None or _is_plain_number(eps))
    )


def layer_norm_checker(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> bool:
    """LayerNorm over the last dimension with both a weight and a bias (Liger's kernel reads both)."""
    return (
        is_kernel_tensor(input)
        and weight is not None
        and bias is not None
        and _last_dim_params_fit(input, normalized_shape, weight, bias)
        and same_device(input, weight, bias)
        and _is_plain_number(eps)
    )


def gated_checker(a, b) -> bool:
    """SwiGLU / GeGLU: the gate a and the value b of one shape, dtype and device."""
    return (
        is_kernel_tensor(a)
        and is_kernel_tensor(b)
        and tuple(a.shape) == tuple(b.shape)
        and a.dtype == b.dtype
        and same_device(a, b)
        and _row_fits(a)
    )


def _index_tensor(t) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype == torch.int64 and on_kernel_device(t)


def _cross_entropy_options_fit(ignore_index, label_smoothing, reduction, reductions) -> bool:
    return (
        isinstance(ignore_index, int)
        and not isinstance(ignore_index, bool)
        and _is_plain_number(label_smoothing)
        and 0.0 <= label_smoothing <= 1.0
        and reduction in reductions
    )


def cross_entropy_checker(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                          reduction="mean", label_smoothing=0.0) -> bool:  # fmt: skip
    """[N, C] logits with [N] int64 class indices, no class weights and no legacy reduction flags."""
    return (
        is_kernel_tensor(input)
        and input.ndim == 2
        and _index_tensor(target)
        and tuple(target.shape) == (input.shape[0],)
        and same_device(input, target)
        and weight is None
        and size_average is None
        and reduce is None
        and _cross_entropy_options_fit(ignore_index, label_smoothing, reduction, ("mean", "sum", "none"))
    )


def fused_linear_cross_entropy_checker(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0,
                                       reduction="mean") -> bool:  # fmt: skip
    """x [..., H] tokens, a [V, H] weight and an optional [V] bias of x's dtype, [N] int64 targets for the
    N = x.numel() / H tokens; a mean or summed loss (Liger computes the gradients in the forward)."""
    return (
        is_kernel_tensor(x)
        and is_kernel_tensor(weight)
        and x.ndim >= 2
        and weight.ndim == 2
        and x.shape[-1] == weight.shape[1]
        and x.dtype == weight.dtype
        and (bias is None or (is_kernel_tensor(bias) and bias.dtype == x.dtype
                              and tuple(bias.shape) == (weight.shape[0],)))
        and _index_tensor(target)
        and tuple(target.shape) == (x.numel() // x.shape[-1],)
        and same_device(x, weight, bias, target)
        and _cross_entropy_options_fit(ignore_index, label_smoothing, reduction, ("mean", "sum"))
    )  # fmt: skip


def rope_checker(x, cos, sin) -> bool:
    """x [B, H, S, D] with an even D; cos and sin of x's dtype, [S, D], [1, S, D], or [B or 1, 1, S, D]
    (the shapes that broadcast against x the way Liger reads them: one row per position, per batch entry or
    shared)."""
    if not (is_kernel_tensor(x) and is_kernel_tensor(cos) and is_kernel_tensor(sin)):
        return False
    if x.ndim != 4 or x.shape[-1] % 2 or not same_device(x, cos, sin) or not (x.dtype == cos.dtype == sin.dtype):
        return False
    batch, _, seq_len, dim = x.shape
    return tuple(cos.shape) == tuple(sin.shape) and _trig_shape_fits(tuple(cos.shape), batch, seq_len, dim)


def _trig_shape_fits(shape: tuple, batch: int, seq_len: int, dim: int) -> bool:
    if shape[-2:] != (seq_len, dim):
        return False
    if len(shape) == 2:
        return True
    if len(shape) == 3:
        return shape[0] == 1  # a 3-d [B, S, D] would broadcast B against the heads, not the batch
    return len(shape) == 4 and shape[1] == 1 and shape[0] in (1, batch)
