"""Autocast while tracing: under `torch.autocast`, the traced program casts the inputs of the ops autocast
covers, as eager's dispatcher would (the cache key includes the autocast state, so a trace is only reused
under the same state). Eager autocast acts below `__torch_function__`, where the tracer never reaches,
so the policy is applied here by symbol name."""

from __future__ import annotations

import torch

from thunder.torch.base import to_dtype

# ops autocast runs in the lower-precision dtype (both CPU and CUDA lists)
LOWER_PRECISION = {
    "linear", "matmul", "mm", "bmm", "mv", "addmm", "baddbmm", "addbmm", "addmv", "addr", "conv1d", "conv2d",
    "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "prelu", "scaled_dot_product_attention",
    "einsum", "chain_matmul", "multi_dot", "vecdot",
}  # fmt: skip
# ops autocast runs in float32
FLOAT32 = {
    "cuda": {
        "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal", "rsqrt",
        "sinh", "tan", "pow", "softplus", "layer_norm", "group_norm", "norm", "cosine_similarity", "nll_loss",
        "kl_div", "l1_loss", "smooth_l1_loss", "huber_loss", "mse_loss", "binary_cross_entropy_with_logits",
        "logsumexp", "softmax", "log_softmax", "cross_entropy", "cumsum", "cumprod", "prod", "sum", "rms_norm",
    },
    "cpu": {
        "mse_loss", "nll_loss", "smooth_l1_loss", "cross_entropy", "l1_loss", "huber_loss", "kl_div",
        "binary_cross_entropy_with_logits", "prod",
    },
}  # fmt: skip


def autocast_state() -> dict[str, torch.dtype]:
    """{device type: autocast dtype} for the device types where autocast is on."""
    if not torch._C._is_any_autocast_enabled():
        return {}
    return {d: torch.get_autocast_dtype(d) for d in ("cpu", "cuda") if torch.is_autocast_enabled(d)}


def _device_type(args) -> str | None:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device.type
        if isinstance(a, (list, tuple)):
            found = _device_type(a)
            if found:
                return found
    return None


def _cast(x, dtype):
    if isinstance(x, torch.Tensor) and x.dtype.is_floating_point and x.dtype != dtype:
        return to_dtype(x, dtype)
    if type(x) in (list, tuple):
        return type(x)(_cast(v, dtype) for v in x)
    return x


def apply_autocast(name: str, state: dict[str, torch.dtype], args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    device = _device_type(args)
    if device not in state:
        return args, kwargs
    if name in LOWER_PRECISION:
        dtype = state[device]
    elif name in FLOAT32.get(device, ()):
        dtype = torch.float32
    else:
        return args, kwargs
    return tuple(_cast(a, dtype) for a in args), {k: _cast(v, dtype) for k, v in kwargs.items()}
