"""When the `cudnn` executor claims an operation: the checkers, on the proxies of one call (metadata only).

Attention (`scaled_dot_product_attention`) is claimed where cuDNN's fused attention runs it (cuDNN 9 on compute
capability 8.0 or higher):

- query, key and value 4-d ``[B, H, S, D]`` on one CUDA device, all float16 or all bfloat16 (float32, float64
  and the CPU are left to `sdpa` and the decomposition);
- head sizes multiples of 8 up to 128, and 192 or 256 on compute capability 9.0 with cuDNN 9.5 or newer (the
  sizes cuDNN's own tests cover there);
- grouped-query attention: fewer key/value heads (``enable_gqa=True``) dividing the query heads;
- no mask, or a boolean or additive mask (of the query's dtype) of at most 4 dimensions that broadcasts to
  ``[B, H, S_q, S_kv]``, with S_kv a multiple of 8 (the bias cuDNN reads is made of rows of S_kv values, which it
  wants 16-byte aligned); never a mask together with ``is_causal`` (an error in eager, left to raise there);
- dropout with ``0 <= dropout_p < 1``; any ``scale``.

Its gradient is claimed under the same conditions, unless the mask requires a gradient (left to autograd
through the decomposition). LayerNorm and RMSNorm over the last dimension are claimed only when the executor
option ``enable_norms`` is on (see `executor.py`).

Everything here reads metadata only: no cuDNN import, so the decisions are tested on a machine without a GPU.
`CLAIMED_DEVICE_TYPES` and `device_capability` are module attributes so that such tests can widen them.
"""

from __future__ import annotations

import functools
from numbers import Number

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)
#: Device types whose tensors are claimed. Tests on a CPU-only machine add "cpu" (with a stand-in for the graphs).
CLAIMED_DEVICE_TYPES = ("cuda",)
#: Head sizes cuDNN's attention takes everywhere it runs (multiples of 8 up to this), and the larger ones it takes
#: on Hopper from cuDNN 9.5 (`head_size_supported`).
MAX_HEAD_SIZE = 128
LARGE_HEAD_SIZES_HOPPER = (192, 256)
MIN_CAPABILITY = (8, 0)


@functools.cache
def _cuda_capability(index: int) -> tuple[int, int]:
    try:
        return torch.cuda.get_device_capability(index)
    except (AssertionError, RuntimeError):
        return (0, 0)


def device_capability(device: torch.device) -> tuple[int, int]:
    """The compute capability of a CUDA device ((0, 0) where CUDA cannot tell, so that nothing is claimed)."""
    if device.type != "cuda":
        return (0, 0)
    return _cuda_capability(device.index if device.index is not None else 0)


@functools.cache
def cudnn_backend_version() -> int:
    """cuDNN's version as one number (9.5.0 is 90500); 0 where cudnn-frontend cannot say."""
    try:
        import cudnn

        return int(cudnn.backend_version())
    except Exception:  # noqa: BLE001 - any failure means "unknown": the conservative limits apply
        return 0


def head_size_supported(size: int, device: torch.device) -> bool:
    """Whether attention with this head size is claimed on this device."""
    if size % 8 == 0 and 0 < size <= MAX_HEAD_SIZE:
        return True
    return size in LARGE_HEAD_SIZES_HOPPER and device_capability(device) >= (9, 0) and cudnn_backend_version() >= 90500


def _is_tensor(t) -> bool:
    return isinstance(t, torch.Tensor)


def _is_number(x) -> bool:
    return isinstance(x, Number) and not isinstance(x, bool)


def _on_claimed_device(*tensors) -> bool:
    devices = {t.device for t in tensors if t is not None}
    if len(devices) != 1:
        return False
    (device,) = devices
    if device.type not in CLAIMED_DEVICE_TYPES:
        return False
    return device.type != "cuda" or device_capability(device) >= MIN_CAPABILITY


def _mask_fits(attn_mask, query, key) -> bool:
    """A boolean mask, or an additive one of the query's dtype, that broadcasts to [B, H, S_q, S_kv]."""
    if attn_mask is None:
        return True
    if not _is_tensor(attn_mask) or attn_mask.ndim > 4 or attn_mask.numel() == 0:
        return False
    if attn_mask.dtype != torch.bool and attn_mask.dtype != query.dtype:
        return False
    full = (query.shape[0], query.shape[1], query.shape[2], key.shape[2])
    if key.shape[2] % 8:
        return False
    padded = (1,) * (4 - attn_mask.ndim) + tuple(attn_mask.shape)
    return all(m in (1, f) for m, f in zip(padded, full))


def _heads_fit(query, key, value, enable_gqa) -> bool:
    if key.shape[1] != value.shape[1]:
        return False
    if key.shape[1] == query.shape[1]:
        return True
    return bool(enable_gqa) and query.shape[1] % key.shape[1] == 0


def sdpa_checker(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                 enable_gqa=False) -> bool:  # fmt: skip
    """Whether cuDNN's attention runs this call (see the module docstring)."""
    if not (_is_tensor(query) and _is_tensor(key) and _is_tensor(value)):
        return False
    if not (query.ndim == key.ndim == value.ndim == 4) or not _on_claimed_device(query, key, value, attn_mask):
        return False
    if query.dtype not in HALF_DTYPES or not (query.dtype == key.dtype == value.dtype):
        return False
    if any(n == 0 for t in (query, key, value) for n in t.shape):
        return False
    batch, _, _, head_qk = query.shape
    if key.shape[0] != batch or value.shape[0] != batch or key.shape[3] != head_qk or key.shape[2] != value.shape[2]:
        return False
    if not (head_size_supported(head_qk, query.device) and head_size_supported(value.shape[3], query.device)):
        return False
    if not _heads_fit(query, key, value, enable_gqa):
        return False
    if is_causal and attn_mask is not None:
        return False
    if not (_is_number(dropout_p) and 0.0 <= dropout_p < 1.0) or not (scale is None or _is_number(scale)):
        return False
    return _mask_fits(attn_mask, query, key)


def sdpa_grad_checker(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                      enable_gqa=False) -> bool:  # fmt: skip
    """The forward's conditions, and a mask (if any) that needs no gradient: cuDNN's dBias is not used."""
    if attn_mask is not None and getattr(attn_mask, "requires_grad", False):
        return False
    return sdpa_checker(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def _norm_shape_fits(input, normalized_shape, *params) -> bool:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) != 1 or input.ndim < 1 or shape[0] != input.shape[-1] or input.numel() == 0:
        return False
    return all(p is None or (_is_tensor(p) and p.dtype == input.dtype and tuple(p.shape) == shape) for p in params)


def layer_norm_checker(input, normalized_shape, weight=None, bias=None, eps=1e-5) -> bool:
    """Over the last dimension, float16/bfloat16/float32, weight and bias (if any) of the input's dtype."""
    return (
        _is_tensor(input)
        and input.dtype in (*HALF_DTYPES, torch.float32)
        and _on_claimed_device(input, weight, bias)
        and _norm_shape_fits(input, normalized_shape, weight, bias)
        and _is_number(eps)
    )


def rms_norm_checker(input, normalized_shape, weight=None, eps=None) -> bool:
    """Over the last dimension, float16/bfloat16/float32, a weight (if any) of the input's dtype."""
    return (
        _is_tensor(input)
        and input.dtype in (*HALF_DTYPES, torch.float32)
        and _on_claimed_device(input, weight)
        and _norm_shape_fits(input, normalized_shape, weight)
        and (eps is None or _is_number(eps))
    )
