"""When the `apex` executor claims an operation: the checkers, on the proxies of one call.

Apex's kernels take float32, float16 and bfloat16 tensors on a CUDA device. The normalizations take any
trailing `normalized_shape` with a weight (and, for LayerNorm, a bias) of that shape and of the input's
dtype; the cross-entropy takes [N, C] logits and [N] int64 class indices. The implementations lay out
non-contiguous tensors before the launch. Anything else is left to the next executor in the list.
"""

from __future__ import annotations

import torch

from thunder.extend.checks import FLOAT_DTYPES, norm_params_fit, same_device
from thunder.extend.checks import is_real_number as _is_plain_number


def on_kernel_device(t) -> bool:
    """Whether the kernels run on t's device (every check of a device goes through here)."""
    return t.device.type == "cuda"


def is_kernel_tensor(t, dtypes=FLOAT_DTYPES) -> bool:
    """A tensor (a proxy or a real tensor) of a dtype the kernels take, on a CUDA device, with elements."""
    return isinstance(t, torch.Tensor) and t.dtype in dtypes and on_kernel_device(t) and t.numel() > 0


def _norm_fits(input, normalized_shape, *params) -> bool:
    return norm_params_fit(input, normalized_shape, *params, accepts=is_kernel_tensor, last_dim_only=False)


def rms_norm_checker(input, normalized_shape, weight=None, eps=None) -> bool:
    """RMSNorm over trailing dimensions, with an optional weight of the input's dtype."""
    return (
        is_kernel_tensor(input)
        and _norm_fits(input, normalized_shape, weight)
        and same_device(input, weight)
        and (eps is None or _is_plain_number(eps))
    )


def layer_norm_checker(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> bool:
    """LayerNorm over trailing dimensions, with both a weight and a bias of the input's dtype, or neither."""
    return (
        is_kernel_tensor(input)
        and (weight is None) == (bias is None)
        and _norm_fits(input, normalized_shape, weight, bias)
        and same_device(input, weight, bias)
        and _is_plain_number(eps)
    )


def cross_entropy_checker(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                          reduction="mean", label_smoothing=0.0) -> bool:  # fmt: skip
    """[N, C] logits with [N] int64 class indices, no class weights and no legacy reduction flags."""
    return (
        is_kernel_tensor(input)
        and input.ndim == 2
        and isinstance(target, torch.Tensor)
        and target.dtype == torch.int64
        and on_kernel_device(target)
        and tuple(target.shape) == (input.shape[0],)
        and same_device(input, target)
        and weight is None
        and size_average is None
        and reduce is None
        and reduction in ("mean", "sum", "none")
        and isinstance(ignore_index, int)
        and not isinstance(ignore_index, bool)
        and _is_plain_number(label_smoothing)
        and 0.0 <= label_smoothing <= 1.0
    )
