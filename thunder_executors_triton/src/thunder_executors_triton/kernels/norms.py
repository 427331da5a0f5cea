"""RMSNorm and LayerNorm over the last dimension, forward and backward.

One program normalizes one row, held whole in registers, in float32 whatever the input's dtype; the
forward keeps the row's reciprocal standard deviation (and, for LayerNorm, its mean) for the backward.
The backward's programs each take a strip of rows and accumulate their share of the weight and bias
gradients in float32; the strips' partial sums are then added up (a second, small reduction).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from thunder_executors_triton.kernels.launch import MAX_ROW_BLOCK, check_tensors, row_block, warps_for


@triton.jit
def _norm_forward_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, mean_ptr, rstd_ptr, n_cols, eps,
    CENTER: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    x = tl.load(x_ptr + row * n_cols + offs, mask=mask, other=0.0).to(tl.float32)
    if CENTER:  # LayerNorm: subtract the mean, then divide by the (biased) standard deviation
        mean = tl.sum(x, 0) / n_cols
        x = tl.where(mask, x - mean, 0.0)
        tl.store(mean_ptr + row, mean)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, 0) / n_cols + eps)
    tl.store(rstd_ptr + row, rstd)
    y = x * rstd
    if HAS_WEIGHT:
        y = y * tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        y = y + tl.load(b_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * n_cols + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _norm_backward_kernel(
    dy_ptr, x_ptr, w_ptr, mean_ptr, rstd_ptr, dx_ptr, dw_partial_ptr, db_partial_ptr, n_rows, n_cols,
    CENTER: tl.constexpr, HAS_WEIGHT: tl.constexpr, HAS_BIAS: tl.constexpr, ROWS_PER_PROGRAM: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    program = tl.program_id(0)
    offs = tl.arange(0, BLOCK)
    mask = offs < n_cols
    if HAS_WEIGHT:
        w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK], dtype=tl.float32)
    db = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(ROWS_PER_PROGRAM):
        row = program.to(tl.int64) * ROWS_PER_PROGRAM + i
        row_mask = mask & (row < n_rows)
        x = tl.load(x_ptr + row * n_cols + offs, mask=row_mask, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + row * n_cols + offs, mask=row_mask, other=0.0).to(tl.float32)
        rstd = tl.load(rstd_ptr + row, mask=row < n_rows, other=0.0)
        if CENTER:
            x = tl.where(row_mask, x - tl.load(mean_ptr + row, mask=row < n_rows, other=0.0), 0.0)
        x_hat = x * rstd
        dw += dy * x_hat
        db += dy
        if HAS_WEIGHT:
            wdy = dy * w
        else:
            wdy = dy
        # d(x_hat)/dx: rstd * (g - x_hat * mean(g * x_hat)), and with centering also minus mean(g)
        dx = wdy - x_hat * (tl.sum(wdy * x_hat, 0) / n_cols)
        if CENTER:
            dx = dx - tl.sum(wdy, 0) / n_cols
        tl.store(dx_ptr + row * n_cols + offs, (dx * rstd).to(dx_ptr.dtype.element_ty), mask=row_mask)
    if HAS_WEIGHT:
        tl.store(dw_partial_ptr + program * n_cols + offs, dw, mask=mask)
    if HAS_BIAS:
        tl.store(db_partial_ptr + program * n_cols + offs, db, mask=mask)


def _as_rows(op: str, x: torch.Tensor, weight, bias) -> tuple[torch.Tensor, int]:
    n_cols = x.shape[-1] if x.ndim else 1
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (n_cols,):
            raise ValueError(f"{op}: {name} must have shape [{n_cols}] (the last dimension), got {list(p.shape)}")
    if row_block(n_cols) > MAX_ROW_BLOCK:
        raise ValueError(f"{op}: rows of {n_cols} elements are longer than the kernel holds ({MAX_ROW_BLOCK})")
    check_tensors(op, x, weight, bias)
    if not x.is_contiguous():
        raise ValueError(f"{op}: the Triton kernel needs a contiguous input; call .contiguous() first")
    return x.reshape(-1, n_cols), n_cols


def _norm_forward(op, x, weight, bias, eps, center):
    rows, n_cols = _as_rows(op, x, weight, bias)
    n_rows = rows.shape[0]
    y = torch.empty_like(rows)
    mean = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    rstd = torch.empty(n_rows, dtype=torch.float32, device=x.device)
    if n_rows:
        block = row_block(n_cols)
        _norm_forward_kernel[(n_rows,)](
            rows, weight, bias, y, mean, rstd, n_cols, float(eps), CENTER=center, HAS_WEIGHT=weight is not None,
            HAS_BIAS=bias is not None, BLOCK=block, num_warps=warps_for(block),
        )  # fmt: skip
    return y.view(x.shape), mean, rstd


def _backward_programs(n_rows: int, device) -> int:
    if device.type == "cuda":
        return min(n_rows, 4 * torch.cuda.get_device_properties(device).multi_processor_count)
    return min(n_rows, 4)  # the interpreter: few programs, each looping over its rows


def _norm_backward(op, dy, x, weight, mean, rstd, center, has_bias):
    rows, n_cols = _as_rows(op, x, weight, None)
    n_rows = rows.shape[0]
    dy = dy.contiguous().view(n_rows, n_cols)
    dx = torch.empty_like(rows)
    programs = max(1, _backward_programs(n_rows, x.device))
    rows_per_program = triton.cdiv(n_rows, programs)
    programs = triton.cdiv(n_rows, rows_per_program) if n_rows else 1
    dw_partial = torch.zeros(programs, n_cols, dtype=torch.float32, device=x.device)
    db_partial = torch.zeros(programs, n_cols, dtype=torch.float32, device=x.device)
    if n_rows:
        block = row_block(n_cols)
        _norm_backward_kernel[(programs,)](
            dy, rows, weight, mean, rstd, dx, dw_partial, db_partial, n_rows, n_cols, CENTER=center,
            HAS_WEIGHT=weight is not None, HAS_BIAS=has_bias, ROWS_PER_PROGRAM=rows_per_program, BLOCK=block,
            num_warps=warps_for(block),
        )  # fmt: skip
    dw = dw_partial.sum(0).to(weight.dtype) if weight is not None else None
    db = db_partial.sum(0).to(weight.dtype if weight is not None else x.dtype) if has_bias else None
    return dx.view(x.shape), dw, db


def rms_norm_forward(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`x / sqrt(mean(x^2, -1) + eps) * weight` and each row's reciprocal RMS (float32, one per row)."""
    y, _, rstd = _norm_forward("rms_norm", x, weight, None, eps, center=False)
    return y, rstd


def rms_norm_backward(dy, x, weight, rstd):
    """The gradients to x and to weight (None without a weight)."""
    dx, dw, _ = _norm_backward("rms_norm", dy, x, weight, rstd, rstd, center=False, has_bias=False)
    return dx, dw


def layer_norm_forward(x, weight, bias, eps):
    """LayerNorm over the last dimension, and each row's mean and reciprocal standard deviation (float32)."""
    return _norm_forward("layer_norm", x, weight, bias, eps, center=True)


def layer_norm_backward(dy, x, weight, mean, rstd, has_bias: bool):
    """The gradients to x, weight and bias (None where there is no such parameter)."""
    return _norm_backward("layer_norm", dy, x, weight, mean, rstd, center=True, has_bias=has_bias)
