"""Softmax and log-softmax along the last dimension, forward and backward.

Rows of any length are swept in blocks: the forward's first sweep finds the row's max and the sum of
exp(x - max) online (the running sum is rescaled whenever the max grows), in float32; the second writes the
outputs. The backward needs only the output: for softmax y, dx = y * (dy - sum(dy * y)); for log-softmax
z, dx = dy - exp(z) * sum(dy).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from thunder_executors_triton.kernels.launch import check_tensors, loop_block, warps_for


@triton.jit
def _softmax_forward_kernel(x_ptr, y_ptr, n_cols, LOG: tl.constexpr, BLOCK: tl.constexpr, N_BLOCKS: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    running_max = tl.zeros([], dtype=tl.float32) - float("inf")
    running_sum = tl.zeros([], dtype=tl.float32)
    for block in range(N_BLOCKS):
        offs = block * BLOCK + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + row * n_cols + offs, mask=offs < n_cols, other=-float("inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(x, 0))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(x - new_max), 0)
        running_max = new_max
    log_sum = tl.log(running_sum)
    for block in range(N_BLOCKS):
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_cols
        x = tl.load(x_ptr + row * n_cols + offs, mask=mask, other=0.0).to(tl.float32)
        if LOG:
            y = x - running_max - log_sum
        else:
            y = tl.exp(x - running_max) / running_sum
        tl.store(y_ptr + row * n_cols + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_backward_kernel(
    dy_ptr, y_ptr, dx_ptr, n_cols, LOG: tl.constexpr, BLOCK: tl.constexpr, N_BLOCKS: tl.constexpr
):
    row = tl.program_id(0).to(tl.int64)
    total = tl.zeros([], dtype=tl.float32)
    for block in range(N_BLOCKS):
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_cols
        dy = tl.load(dy_ptr + row * n_cols + offs, mask=mask, other=0.0).to(tl.float32)
        if LOG:
            total += tl.sum(dy, 0)
        else:
            total += tl.sum(dy * tl.load(y_ptr + row * n_cols + offs, mask=mask, other=0.0).to(tl.float32), 0)
    for block in range(N_BLOCKS):
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_cols
        dy = tl.load(dy_ptr + row * n_cols + offs, mask=mask, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + row * n_cols + offs, mask=mask, other=0.0).to(tl.float32)
        if LOG:
            dx = dy - tl.exp(y) * total
        else:
            dx = y * (dy - total)
        tl.store(dx_ptr + row * n_cols + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _rows(op: str, *tensors: torch.Tensor) -> tuple[int, int]:
    check_tensors(op, *tensors)
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError(f"{op}: the Triton kernel needs contiguous tensors; call .contiguous() first")
    n_cols = tensors[0].shape[-1] if tensors[0].ndim else 1
    return (tensors[0].numel() // n_cols if n_cols else 0), n_cols


def softmax_forward(x: torch.Tensor, *, log: bool = False) -> torch.Tensor:
    """softmax(x, -1), or log_softmax(x, -1) with log=True, in x's dtype (computed in float32)."""
    n_rows, n_cols = _rows("softmax", x)
    y = torch.empty_like(x)
    if n_rows and n_cols:
        block = loop_block(n_cols)
        _softmax_forward_kernel[(n_rows,)](
            x, y, n_cols, LOG=log, BLOCK=block, N_BLOCKS=triton.cdiv(n_cols, block), num_warps=warps_for(block)
        )
    return y


def softmax_backward(dy: torch.Tensor, y: torch.Tensor, *, log: bool = False) -> torch.Tensor:
    """The gradient to softmax's input from its output y (log-softmax's with log=True)."""
    dy = dy.contiguous()
    n_rows, n_cols = _rows("softmax", dy, y)
    dx = torch.empty_like(y)
    if n_rows and n_cols:
        block = loop_block(n_cols)
        _softmax_backward_kernel[(n_rows,)](
            dy, y, dx, n_cols, LOG=log, BLOCK=block, N_BLOCKS=triton.cdiv(n_cols, block), num_warps=warps_for(block)
        )
    return dx
