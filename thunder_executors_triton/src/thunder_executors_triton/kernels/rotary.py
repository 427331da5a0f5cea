"""Rotary position embedding with the half rotation of Llama and GPT-NeoX.

With x's last dimension split in halves (x1, x2), the embedding is ``x * cos + rotate_half(x) * sin`` where
``rotate_half(x) = cat(-x2, x1)``: out1 = x1 cos1 - x2 sin1, out2 = x2 cos2 + x1 sin2. It is linear in x;
its transpose, the backward, is dx1 = dy1 cos1 + dy2 sin2, dx2 = dy2 cos2 - dy1 sin1. cos and sin are
[S, D] (one row per position), shared by every leading index of x [..., S, D].
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from thunder_executors_triton.kernels.launch import MAX_ROW_BLOCK, check_tensors, row_block


@triton.jit
def _rotary_kernel(x_ptr, cos_ptr, sin_ptr, out_ptr, seq_len, half, BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    position = row % seq_len
    offs = tl.arange(0, BLOCK)
    mask = offs < half
    x_row = x_ptr + row * 2 * half
    trig = position * 2 * half
    x1 = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_row + half + offs, mask=mask, other=0.0).to(tl.float32)
    cos1 = tl.load(cos_ptr + trig + offs, mask=mask, other=0.0).to(tl.float32)
    cos2 = tl.load(cos_ptr + trig + half + offs, mask=mask, other=0.0).to(tl.float32)
    sin1 = tl.load(sin_ptr + trig + offs, mask=mask, other=0.0).to(tl.float32)
    sin2 = tl.load(sin_ptr + trig + half + offs, mask=mask, other=0.0).to(tl.float32)
    if BACKWARD:
        out1 = x1 * cos1 + x2 * sin2
        out2 = x2 * cos2 - x1 * sin1
    else:
        out1 = x1 * cos1 - x2 * sin1
        out2 = x2 * cos2 + x1 * sin2
    out_row = out_ptr + row * 2 * half
    tl.store(out_row + offs, out1.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(out_row + half + offs, out2.to(out_ptr.dtype.element_ty), mask=mask)


def check_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """Raises a clear error unless x is [..., S, D] with D even and cos, sin hold S x D values."""
    if x.ndim < 2 or x.shape[-1] % 2:
        raise ValueError(f"rotary embedding: needs x [..., S, D] with an even D, got {list(x.shape)}")
    seq_len, dim = x.shape[-2], x.shape[-1]
    for name, t in (("cos", cos), ("sin", sin)):
        if t.numel() != seq_len * dim or t.shape[-1] != dim:
            raise ValueError(f"rotary embedding: {name} must hold [{seq_len}, {dim}] values (one row per position "
                             f"of x {list(x.shape)}), got {list(t.shape)}")  # fmt: skip
    if row_block(dim // 2) > MAX_ROW_BLOCK:
        raise ValueError(f"rotary embedding: a head dimension of {dim} is larger than the kernel holds")
    check_tensors("rotary embedding", x, cos, sin)
    if not all(t.is_contiguous() for t in (x, cos, sin)):
        raise ValueError("rotary embedding: the Triton kernel needs contiguous tensors; call .contiguous() first")


def _rotate(x, cos, sin, backward: bool) -> torch.Tensor:
    check_rotary(x, cos, sin)
    out = torch.empty_like(x)
    n_rows = x.numel() // x.shape[-1]
    if n_rows:
        half = x.shape[-1] // 2
        _rotary_kernel[(n_rows,)](x, cos, sin, out, x.shape[-2], half, BACKWARD=backward, BLOCK=row_block(half))
    return out


def rotary_forward(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x * cos + rotate_half(x) * sin`` in x's dtype (computed in float32)."""
    return _rotate(x, cos, sin, backward=False)


def rotary_backward(dy: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The gradient to x of rotary_forward, given the gradient dy to its output."""
    return _rotate(dy.contiguous(), cos, sin, backward=True)
