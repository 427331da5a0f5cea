"""The `sdpa` executor: runs `thunder.torch.scaled_dot_product_attention` on PyTorch's fused attention kernels
(flash, memory-efficient, or the CPU flash kernel) instead of the decomposition's matmul-softmax-matmul.

It claims a call only when one of those kernels supports it on the inputs' device; everything else is left to
the next executor (usually the decomposition on the torch executor), as Core-7 asks of every checker. On CUDA:

- flash attention: float16/bfloat16, no mask, head size a multiple of 8 and at most 256, compute capability
  8.0 or higher;
- memory-efficient attention: float16, bfloat16 (compute capability 8.0+) or float32, head size a multiple of
  8 (float16/bfloat16) or 4 (float32), at most 256, an additive or boolean mask of at most 4 dimensions;
- never float64 (or any other dtype), grouped-query attention with differing head counts, or query/key/value
  of different head sizes: those run on the decomposition.

On the CPU, the CPU flash kernel takes every floating dtype. Attention with dropout is left to the
decomposition: its dropout mask is drawn by a Thunder random op, one torch RNG call, so that autodiff's
backward sees the same mask as the forward. Written against the public extension API only (thunder.extend,
thunder.torch), as an executor package would be.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

import thunder.torch as ltorch
from thunder.extend import OperatorExecutor, TensorProxy, get_grad, meta_from_torch, put_grad

ex = OperatorExecutor("sdpa", version=torch.__version__)
sdpa_ex = ex
_aten = torch.ops.aten
_HALF = (torch.float16, torch.bfloat16)
_MAX_CUDA_HEAD_SIZE = 256


def _sdpa_meta(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return TensorProxy(like=query, shape=(*query.shape[:-1], value.shape[-1]), requires_grad=False)


sdpa_fwd = ex.register_operator("sdpa_fwd", meta=_sdpa_meta, fn=F.scaled_dot_product_attention)


def _op(name, fn):
    return ex.register_operator(name, meta=meta_from_torch(fn), fn=fn)


def _rng_state_on_the_cpu(fn, rng_positions: tuple[int, ...]):
    """The meta of a CUDA attention forward whose dropout seed and offset (outputs at `rng_positions`) the kernel
    makes on the CPU when it runs without dropout, as here (torch's own meta leaves their device open: on the
    device only for dropout under CUDA-graph capture). A proxy on the CUDA device would mislead every pass that
    reads devices, CUDA graphs first (a graph replays only the device's work)."""
    meta = meta_from_torch(fn)

    def rng_on_cpu_meta(*args, **kwargs):
        outs = list(meta(*args, **kwargs))
        for i in rng_positions:
            outs[i] = TensorProxy(like=outs[i], device=torch.device("cpu"))
        return tuple(outs)

    return rng_on_cpu_meta


_flash_fwd = ex.register_operator("sdpa_flash_fwd", fn=_aten._scaled_dot_product_flash_attention.default,
                                  meta=_rng_state_on_the_cpu(_aten._scaled_dot_product_flash_attention.default, (6, 7)))
_flash_bwd = _op("sdpa_flash_bwd", _aten._scaled_dot_product_flash_attention_backward.default)
_efficient_fwd = ex.register_operator(
    "sdpa_efficient_fwd", fn=_aten._scaled_dot_product_efficient_attention.default,
    meta=_rng_state_on_the_cpu(_aten._scaled_dot_product_efficient_attention.default, (2, 3)),
)
_efficient_bwd = _op("sdpa_efficient_bwd", _aten._scaled_dot_product_efficient_attention_backward.default)


def _cpu_fwd_meta(query, key, value, dropout_p=0.0, is_causal=False, *, attn_mask=None, scale=None):
    # explicit (not run on meta tensors): see executors/torchex_grads.py; the CPU kernel keeps the logsumexp
    # in float32, or float64 for float64 inputs
    out = TensorProxy(like=query, shape=(*query.shape[:-1], value.shape[-1]), requires_grad=False)
    lse_dtype = torch.float64 if query.dtype == torch.float64 else torch.float32
    return out, TensorProxy(like=query, shape=tuple(query.shape[:-1]), dtype=lse_dtype, requires_grad=False)


def _cpu_bwd_meta(grad, query, key, value, out, lse, dropout_p, is_causal, *, attn_mask=None, scale=None):
    return tuple(TensorProxy(like=t, requires_grad=False) for t in (query, key, value))


_cpu_fwd = ex.register_operator("sdpa_cpu_flash_fwd", meta=_cpu_fwd_meta,
                                fn=_aten._scaled_dot_product_flash_attention_for_cpu.default)  # fmt: skip
_cpu_bwd = ex.register_operator("sdpa_cpu_flash_bwd", meta=_cpu_bwd_meta,
                                fn=_aten._scaled_dot_product_flash_attention_for_cpu_backward.default)  # fmt: skip


@functools.cache
def _capability(device: torch.device) -> tuple[int, int]:
    """The CUDA device's compute capability ((0, 0) when CUDA cannot tell: no kernel is then assumed to run)."""
    try:
        return torch.cuda.get_device_capability(device)
    except (AssertionError, RuntimeError):
        return (0, 0)


def _cuda_kernel(query, key, value, attn_mask) -> str | None:
    """The fused CUDA kernel that runs this attention, or None when none supports it (see the module docstring)."""
    head = query.shape[-1]
    if key.shape[-1] != head or value.shape[-1] != head or head > _MAX_CUDA_HEAD_SIZE or query.ndim != 4:
        return None
    if key.shape[1] != query.shape[1] or value.shape[1] != query.shape[1]:
        return None  # grouped-query attention: the decomposition repeats the heads
    capability = _capability(query.device)
    dtype = query.dtype
    if dtype in _HALF and attn_mask is None and head % 8 == 0 and capability >= (8, 0):
        return "flash"
    if attn_mask is not None and attn_mask.ndim > 4:
        return None
    if dtype == torch.float32 and head % 4 == 0 and capability >= (5, 0):
        return "efficient"
    if dtype in _HALF and head % 8 == 0 and capability >= ((8, 0) if dtype == torch.bfloat16 else (5, 0)):
        return "efficient"
    return None


def _kernel(query, key, value, attn_mask) -> str | None:
    if query.device.type == "cpu":
        return "cpu" if query.dtype.is_floating_point else None
    if query.device.type == "cuda":
        return _cuda_kernel(query, key, value, attn_mask)
    return None


def _checker(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False) -> bool:
    tensors = [t for t in (query, key, value, attn_mask) if t is not None]
    if not all(isinstance(t, TensorProxy) for t in tensors):
        return False
    if dropout_p != 0.0 or query.ndim < 2 or len({t.device for t in tensors}) != 1:
        return False
    if not (query.dtype.is_floating_point and query.dtype == key.dtype == value.dtype):
        return False
    return _kernel(query, key, value, attn_mask) is not None


# -- backward through PyTorch's fused attention kernels ------------------------------------------------
# The forward runs the kernel that returns the softmax statistics (logsumexp) the matching backward kernel
# needs, as eager autograd does: flash attention on CUDA for half precision without a mask, memory-efficient
# attention on CUDA otherwise, and the CPU flash kernel on the CPU.


def _grad_checker(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    if not _checker(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
        return False
    same_heads = query.ndim == 4 and key.shape[1] == query.shape[1] and value.shape[1] == query.shape[1]
    # the flash kernels take one head size for q, k and v
    same_head_size = query.shape[-1] == key.shape[-1] == value.shape[-1]
    kernel = _kernel(query, key, value, attn_mask)
    return same_heads and same_head_size and kernel is not None and _mask_supported(attn_mask, kernel, key)


def _mask_supported(attn_mask, kernel: str, key) -> bool:
    """Whether the backward kernels take this mask. A mask that requires grad is left to torch autograd, which
    differentiates it as eager does; so is a mask on CUDA whose key length is not a multiple of 16 (the
    memory-efficient kernel wants its rows aligned; eager pads them, which a fused copy could undo)."""
    if attn_mask is None:
        return True
    if attn_mask.requires_grad or attn_mask.ndim > 4:
        return False
    return kernel == "cpu" or key.shape[-2] % 16 == 0


def _kernel_mask(attn_mask, query, key):
    """The mask as the kernels take it: additive, of the query's dtype, 4-d and broadcast (as eager prepares it)."""
    if attn_mask is None:
        return None
    if attn_mask.dtype == torch.bool:
        attn_mask = ltorch.where(attn_mask, 0.0, float("-inf"))
    attn_mask = ltorch.to(attn_mask, query.dtype)
    if attn_mask.ndim < 4:
        attn_mask = ltorch.reshape(attn_mask, (1,) * (4 - attn_mask.ndim) + tuple(attn_mask.shape))
    shape = (query.shape[0], query.shape[1], query.shape[2], key.shape[2])
    return ltorch.expand(attn_mask, shape) if query.device.type == "cuda" else attn_mask


def _sdpa_grad(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    kernel = _kernel(query, key, value, attn_mask)
    attn_mask = _kernel_mask(attn_mask, query, key)
    if kernel == "flash":
        out, lse, cum_q, cum_k, max_q, max_k, seed, offset, _ = _flash_fwd(query, key, value, 0.0, is_causal, False,
                                                                         scale=scale)  # fmt: skip
        g = get_grad(out)
        gq, gk, gv = _flash_bwd(g, query, key, value, out, lse, cum_q, cum_k, max_q, max_k, 0.0, is_causal, seed,
                                offset, scale=scale)  # fmt: skip
    elif kernel == "efficient":
        out, lse, seed, offset = _efficient_fwd(query, key, value, attn_mask, True, 0.0, is_causal, scale=scale)
        g = get_grad(out)
        mask = [True, True, True, False]
        gq, gk, gv, _ = _efficient_bwd(g, query, key, value, attn_mask, out, lse, seed, offset, 0.0, mask, is_causal,
                                       scale=scale)  # fmt: skip
    else:
        out, lse = _cpu_fwd(query, key, value, 0.0, is_causal, attn_mask=attn_mask, scale=scale)
        g = get_grad(out)
        gq, gk, gv = _cpu_bwd(g, query, key, value, out, lse, 0.0, is_causal, attn_mask=attn_mask, scale=scale)
    put_grad(query, gq)
    put_grad(key, gk)
    put_grad(value, gv)
    return out


ex.register_implementation(ltorch.scaled_dot_product_attention, op=sdpa_fwd, checker=_checker,
                           grad_transform=_sdpa_grad, grad_checker=_grad_checker)  # fmt: skip
