"""The `sdpa` executor: runs `thunder.torch.scaled_dot_product_attention` as one call to
`torch.nn.functional.scaled_dot_product_attention`, which picks PyTorch's fused attention kernels (flash,
memory-efficient, cuDNN, or the CPU flash kernel) instead of the decomposition's matmul-softmax-matmul.

Attention with dropout is left to the decomposition: its dropout mask is drawn by a Thunder random op, one
torch RNG call, so that autodiff's backward sees the same mask as the forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import thunder.torch as ltorch
from thunder.core.proxies import TensorProxy
from thunder.extend.executors import OperatorExecutor

ex = OperatorExecutor("sdpa", version=torch.__version__)
sdpa_ex = ex


def _sdpa_meta(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    return TensorProxy(like=query, shape=(*query.shape[:-1], value.shape[-1]), requires_grad=False)


sdpa_fwd = ex.register_operator("sdpa_fwd", meta=_sdpa_meta, fn=F.scaled_dot_product_attention)


def _checker(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False) -> bool:
    tensors = [t for t in (query, key, value, attn_mask) if t is not None]
    if not all(isinstance(t, TensorProxy) for t in tensors):
        return False
    if dropout_p != 0.0 or query.ndim < 2 or len({t.device for t in tensors}) != 1:
        return False
    return query.dtype.is_floating_point and query.dtype == key.dtype == value.dtype


ex.register_implementation(ltorch.scaled_dot_product_attention, op=sdpa_fwd, checker=_checker)
