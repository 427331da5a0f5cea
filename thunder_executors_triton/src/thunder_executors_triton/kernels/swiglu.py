"""SwiGLU's gating, ``silu(a) * b``, forward and backward, elementwise in float32.

With s = sigmoid(a): out = a s b; d/da = dy b s (1 + a (1 - s)); d/db = dy a s.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from thunder_executors_triton.kernels.launch import check_tensors

_BLOCK = 1024


@triton.jit
def _swiglu_forward_kernel(a_ptr, b_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    out = a * tl.sigmoid(a) * b
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_backward_kernel(dy_ptr, a_ptr, b_ptr, da_ptr, db_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.sigmoid(a)
    tl.store(da_ptr + offs, (dy * b * s * (1.0 + a * (1.0 - s))).to(da_ptr.dtype.element_ty), mask=mask)
    tl.store(db_ptr + offs, (dy * a * s).to(db_ptr.dtype.element_ty), mask=mask)


def check_swiglu(a: torch.Tensor, b: torch.Tensor) -> None:
    """Raises a clear error unless a and b are contiguous tensors of one shape and dtype the kernel can take."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"swiglu: needs a and b of one shape and dtype, got {a.dtype}{list(a.shape)} and "
                         f"{b.dtype}{list(b.shape)}")  # fmt: skip
    check_tensors("swiglu", a, b)
    if not (a.is_contiguous() and b.is_contiguous()):
        raise ValueError("swiglu: the Triton kernel needs contiguous tensors; call .contiguous() first")


def swiglu_forward(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``silu(a) * b``."""
    check_swiglu(a, b)
    out = torch.empty_like(a)
    if a.numel():
        _swiglu_forward_kernel[(triton.cdiv(a.numel(), _BLOCK),)](a, b, out, a.numel(), BLOCK=_BLOCK)
    return out


def swiglu_backward(dy: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients to a and b of ``silu(a) * b``."""
    check_swiglu(a, b)
    dy = dy.contiguous()
    da, db = torch.empty_like(a), torch.empty_like(b)
    if a.numel():
        _swiglu_backward_kernel[(triton.cdiv(a.numel(), _BLOCK),)](dy, a, b, da, db, a.numel(), BLOCK=_BLOCK)
    return da, db
