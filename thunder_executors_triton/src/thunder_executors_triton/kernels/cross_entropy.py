"""Cross-entropy over large vocabularies, and linear + cross-entropy fused and chunked over tokens.

The forward sweeps each row of logits once with an online softmax (running max and rescaled sum, in
float32) and keeps only the row's log-sum-exp, one float per token. The backward recomputes the softmax
from the logits and that log-sum-exp and writes the gradient straight into its output (which may be the
logits buffer itself), so no second logits-sized tensor (no saved log-softmax, no one-hot) ever exists.

With class-index targets, label smoothing eps and C classes, the loss of a row with target t is
``(1 - eps) * (lse - x_t) + eps * (lse - mean(x))`` and its gradient ``softmax(x) - (1 - eps) * onehot(t) -
eps / C``; a row whose target is ``ignore_index`` has loss 0 and gradient 0, and the mean divides by the
number of rows that are not ignored (as torch does).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from thunder_executors_triton.kernels.launch import check_tensors, loop_block, warps_for

REDUCTIONS = ("mean", "sum", "none")


@triton.jit
def _write_row_gradient(x_row, g_row, n_cols, target, lse, scale, smoothing, BLOCK: tl.constexpr,
                        N_BLOCKS: tl.constexpr):
    # (softmax - (1 - eps) onehot - eps / C) * scale, swept in blocks; every block is read before it is
    # written, so g_row may be x_row (the gradient then replaces the logits in place).
    for block in range(N_BLOCKS):
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_cols
        x = tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.exp(x - lse) - smoothing / n_cols
        g = g - tl.where(offs == target, 1.0 - smoothing, 0.0)
        tl.store(g_row + offs, (g * scale).to(g_row.dtype.element_ty), mask=mask)


@triton.jit
def _ce_forward_kernel(
    logits_ptr, logits_row_stride, target_ptr, loss_ptr, lse_ptr, grad_ptr, grad_row_stride, scale_ptr,
    scale_stride, n_cols, ignore_index, smoothing, WRITE_GRAD: tl.constexpr, BLOCK: tl.constexpr,
    N_BLOCKS: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    x_row = logits_ptr + row * logits_row_stride
    target = tl.load(target_ptr + row).to(tl.int64)
    running_max = tl.zeros([], dtype=tl.float32) - float("inf")
    running_sum = tl.zeros([], dtype=tl.float32)
    total = tl.zeros([], dtype=tl.float32)
    for block in range(N_BLOCKS):
        offs = block * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_cols
        x = tl.load(x_row + offs, mask=mask, other=-float("inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(x, 0))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(x - new_max), 0)
        running_max = new_max
        total += tl.sum(tl.where(mask, x, 0.0), 0)
    lse = running_max + tl.log(running_sum)
    ignored = target == ignore_index
    x_target = tl.load(x_row + tl.where(ignored, 0, target)).to(tl.float32)
    loss = (1.0 - smoothing) * (lse - x_target) + smoothing * (lse - total / n_cols)
    tl.store(loss_ptr + row, tl.where(ignored, 0.0, loss))
    tl.store(lse_ptr + row, lse)
    if WRITE_GRAD:
        scale = tl.where(ignored, 0.0, tl.load(scale_ptr + row * scale_stride).to(tl.float32))
        g_row = grad_ptr + row * grad_row_stride
        _write_row_gradient(x_row, g_row, n_cols, target, lse, scale, smoothing, BLOCK, N_BLOCKS)


@triton.jit
def _ce_backward_kernel(
    logits_ptr, logits_row_stride, target_ptr, lse_ptr, grad_ptr, grad_row_stride, scale_ptr, scale_stride,
    n_cols, ignore_index, smoothing, BLOCK: tl.constexpr, N_BLOCKS: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    target = tl.load(target_ptr + row).to(tl.int64)
    ignored = target == ignore_index
    scale = tl.where(ignored, 0.0, tl.load(scale_ptr + row * scale_stride).to(tl.float32))
    lse = tl.load(lse_ptr + row)
    x_row = logits_ptr + row * logits_row_stride
    _write_row_gradient(x_row, grad_ptr + row * grad_row_stride, n_cols, target, lse, scale, smoothing, BLOCK, N_BLOCKS)


def _check(logits: torch.Tensor, target: torch.Tensor, reduction: str, label_smoothing: float) -> None:
    if logits.ndim != 2 or target.ndim != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(f"cross_entropy: needs logits [N, C] and targets [N], got {list(logits.shape)} and "
                         f"{list(target.shape)}; flatten the leading dimensions first")  # fmt: skip
    if reduction not in REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    check_tensors("cross_entropy", logits, target)


def valid_count(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """The number of targets that are not `ignore_index`, as a float32 0-d tensor (no host synchronization)."""
    return (target != ignore_index).sum(dtype=torch.float32)


def _reduce(loss_rows: torch.Tensor, target, ignore_index: int, reduction: str, dtype) -> torch.Tensor:
    if reduction == "none":
        return loss_rows.to(dtype)
    total = loss_rows.sum()
    if reduction == "mean":
        total = total / valid_count(target, ignore_index)
    return total.to(dtype)


def _row_scale(grad_loss: torch.Tensor, target, ignore_index: int, reduction: str) -> tuple[torch.Tensor, int]:
    """d(loss)/d(row loss) times the incoming gradient, as a float32 tensor and the stride to read it per row."""
    g = grad_loss.to(torch.float32)
    if reduction == "none":
        return g.contiguous(), 1
    if reduction == "mean":
        g = g / valid_count(target, ignore_index)
    return g.reshape(1), 0


def _launch_forward(logits, target, loss_rows, lse, ignore_index, label_smoothing, grad=None, scale=None):
    n_rows, n_cols = logits.shape
    block = loop_block(n_cols)
    write_grad = grad is not None
    scale, scale_stride = scale if write_grad else (lse, 0)
    _ce_forward_kernel[(n_rows,)](
        logits, logits.stride(0), target, loss_rows, lse, grad if write_grad else logits,
        grad.stride(0) if write_grad else 0, scale, scale_stride, n_cols, int(ignore_index), float(label_smoothing),
        WRITE_GRAD=write_grad, BLOCK=block, N_BLOCKS=triton.cdiv(n_cols, block), num_warps=warps_for(block),
    )  # fmt: skip


def cross_entropy_forward(
    logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = -100, label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The loss (in the logits' dtype) and each row's log-sum-exp (float32 [N], what the backward needs)."""
    _check(logits, target, reduction, label_smoothing)
    n_rows = logits.shape[0]
    loss_rows = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
    lse = torch.empty(n_rows, dtype=torch.float32, device=logits.device)
    if n_rows:
        _launch_forward(logits, target, loss_rows, lse, ignore_index, label_smoothing)
    return _reduce(loss_rows, target, ignore_index, reduction, logits.dtype), lse


def cross_entropy_backward(
    grad_loss: torch.Tensor, logits: torch.Tensor, target: torch.Tensor, lse: torch.Tensor, *,
    ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean", out: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """The gradient to the logits; `out` (which may be `logits` itself, for in-place) receives it if given."""
    _check(logits, target, reduction, label_smoothing)
    grad = torch.empty_like(logits, memory_format=torch.contiguous_format) if out is None else out
    if logits.shape[0]:
        scale, scale_stride = _row_scale(grad_loss, target, ignore_index, reduction)
        block = loop_block(logits.shape[1])
        _ce_backward_kernel[(logits.shape[0],)](
            logits, logits.stride(0), target, lse, grad, grad.stride(0), scale, scale_stride, logits.shape[1],
            int(ignore_index), float(label_smoothing), BLOCK=block,
            N_BLOCKS=triton.cdiv(logits.shape[1], block), num_warps=warps_for(block),
        )  # fmt: skip
    return grad


# -- linear + cross-entropy, chunked over tokens -------------------------------------------------------------


def token_chunk(n_tokens: int) -> int:
    """Tokens per chunk: a quarter of the tokens, so that a chunk's logits are a quarter of the full logits,
    but at least 256 tokens so that each matmul keeps the GPU busy. (Fewer, larger chunks also mean fewer
    read-modify-writes of the float32 weight gradient, one per chunk.)"""
    return max(1, min(n_tokens, max(256, -(-n_tokens // 4))))


_mm_out_dtype_works: bool | None = None  # whether torch.mm(..., out_dtype=float32) runs here (CUDA, torch >= 2.9)


def _mm_float32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in float32; for half-precision operands, straight from the matmul's float32 accumulator where torch
    supports it, without a half-precision product and a conversion."""
    global _mm_out_dtype_works
    if a.dtype != torch.float32 and a.is_cuda and _mm_out_dtype_works is not False:
        try:
            result = torch.mm(a, b, out_dtype=torch.float32)
            _mm_out_dtype_works = True
            return result
        except (RuntimeError, TypeError, NotImplementedError):
            _mm_out_dtype_works = False
    return (a @ b).to(torch.float32)


def _check_linear(x, weight, bias, target, reduction, label_smoothing):
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear_cross_entropy: needs x [N, H] and weight [V, H], got {list(x.shape)} and "
                         f"{list(weight.shape)}")  # fmt: skip
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear_cross_entropy: bias must have shape [{weight.shape[0]}], got {list(bias.shape)}")
    if target.ndim != 1 or target.shape[0] != x.shape[0]:
        raise ValueError(f"linear_cross_entropy: needs targets [{x.shape[0]}], got {list(target.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"linear_cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"linear_cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    check_tensors("linear_cross_entropy", x, weight, bias, target)


def linear_cross_entropy(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, target: torch.Tensor, *,
    ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean", with_grads: bool = False,
    chunk_tokens: int | None = None,
):  # fmt: skip
    """`cross_entropy(x @ weight.T + bias, target)` without materializing the [N, V] logits.

    with_grads: also return the gradients to x, weight and bias for an incoming gradient of 1 (reductions
    "mean" and "sum" only: the gradient then scales them), computed chunk by chunk while each chunk's logits
    are at hand; the chunk's logits buffer receives its own gradient in place. chunk_tokens: tokens per chunk
    (default: `token_chunk`). Returns the loss, or
    (loss, grad_x, grad_weight, grad_bias) where grad_bias is zeros if bias is None.
    """
    _check_linear(x, weight, bias, target, reduction, label_smoothing)
    if with_grads and reduction == "none":
        raise ValueError("linear_cross_entropy: with_grads needs reduction 'mean' or 'sum' (with 'none', each "
                         "token's incoming gradient weighs the weight gradient differently)")  # fmt: skip
    n_tokens, vocab = x.shape[0], weight.shape[0]
    loss_rows = torch.empty(n_tokens, dtype=torch.float32, device=x.device)
    lse = torch.empty(n_tokens, dtype=torch.float32, device=x.device)
    if with_grads:
        grad_x = torch.empty_like(x, memory_format=torch.contiguous_format)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=x.device)  # accumulated in float32
        grad_b = torch.zeros(vocab, dtype=torch.float32, device=x.device)
        scale = (1.0 / valid_count(target, ignore_index) if reduction == "mean" else torch.ones((), device=x.device))
        scale = scale.to(torch.float32).reshape(1)
        # The chunk's gradient is written unscaled (softmax minus target, within [-1, 1]) and the mean's 1/count
        # applied in float32 after the matmuls: scaled in float16, a mean over 8192 tokens of a 50257-way softmax
        # (about 2e-9 an element) would fall below float16's smallest subnormal (6e-8) and flush to zero.
        unscaled = (torch.ones(1, dtype=torch.float32, device=x.device), 0)
    chunk = chunk_tokens or token_chunk(n_tokens)
    for start in range(0, n_tokens, chunk):
        stop = min(start + chunk, n_tokens)
        x_chunk = x[start:stop]
        logits = torch.nn.functional.linear(x_chunk, weight, bias)
        grad = logits if with_grads else None
        _launch_forward(logits, target[start:stop], loss_rows[start:stop], lse[start:stop], ignore_index,
                        label_smoothing, grad=grad, scale=unscaled if with_grads else None)  # fmt: skip
        if with_grads:
            grad_x[start:stop] = _mm_float32(grad, weight).mul_(scale)
            grad_w += _mm_float32(grad.t(), x_chunk)
            if bias is not None:
                grad_b += grad.sum(0, dtype=torch.float32)
    loss = _reduce(loss_rows, target, ignore_index, reduction, x.dtype)
    if not with_grads:
        return loss
    grad_w.mul_(scale)
    grad_b.mul_(scale)
    return loss, grad_x, grad_w.to(weight.dtype), grad_b.to(bias.dtype if bias is not None else weight.dtype)
