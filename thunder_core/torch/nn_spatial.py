"""Spatial neural-network operations (`torch.nn.functional`), decomposed into prims and other `thunder.torch`
operations: padding, scaled dot-product attention, convolutions (through `prims.convolution`) and pooling
(as strided slices of the padded input, one per kernel offset).

Low-precision inputs follow `thunder.torch.nn`'s rule: computed in float32, rounded once at the end.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from thunder import prims
from thunder.core.dtypes import is_exact_dtype
from thunder.torch import elementwise as ew
from thunder.torch import linalg, shapes
from thunder.torch import reductions as red
from thunder.torch.base import register_handler, to_dtype, torchsymbol
from thunder.torch.nn import _clamp, _upcast, dropout, softmax

__all__ = [
    "pad", "scaled_dot_product_attention", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
]  # fmt: skip


# -- padding --------------------------------------------------------------------------------------------
def _pad_pairs(input, pad) -> list[tuple[int, int]]:
    """(before, after) for every dim of input, from F.pad's last-dim-first flat list."""
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the input dimension")
    pairs = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        pairs[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return pairs


def _pad_constant(input, pairs, value):
    if any(lo < 0 or hi < 0 for lo, hi in pairs):  # negative padding crops
        starts = [max(-lo, 0) for lo, _ in pairs]
        ends = [length - max(-hi, 0) for length, (_, hi) in zip(input.shape, pairs)]
        input = prims.slice(input, starts, ends)
    config = [(max(lo, 0), max(hi, 0), 0) for lo, hi in pairs]
    return prims.pad(input, 0 if value is None else value, config)


def _pad_index(length, lo, hi, mode, device):
    """For each position of the padded dim, the position of the input it copies."""
    index = prims.iota(lo + length + hi, start=-lo, step=1, dtype=torch.int64, device=device)
    if mode == "replicate":
        return _clamp(index, 0, length - 1)
    if mode == "circular":
        return ew.remainder(index, length)
    return ew.sub(length - 1, ew.abs(ew.sub(length - 1, ew.abs(index))))  # reflect about both edges


@torchsymbol(F.pad)
def pad(input, pad, mode="constant", value=None):
    pairs = _pad_pairs(input, pad)
    if mode == "constant":
        return _pad_constant(input, pairs, value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"F.pad mode {mode!r} is not supported by thunder.jit")
    out = input
    for dim, (lo, hi) in enumerate(pairs):
        if lo == hi == 0:
            continue
        length = input.shape[dim]
        limit = length - 1 if mode == "reflect" else length
        if lo < 0 or hi < 0 or max(lo, hi) > limit:
            raise RuntimeError(f"F.pad(mode={mode!r}): padding ({lo}, {hi}) is invalid for a dimension of size {length}")
        out = prims.take(out, _pad_index(length, lo, hi, mode, input.device), dim)
    return out if out is not input else prims.convert_element_type(input, input.dtype)


# -- attention ------------------------------------------------------------------------------------------
def _causal_mask(length_q, length_k, device):
    rows = prims.iota(length_q, start=0, step=1, dtype=torch.int64, device=device)
    cols = prims.iota(length_k, start=0, step=1, dtype=torch.int64, device=device)
    return ew.le(shapes.unsqueeze(cols, 0), shapes.unsqueeze(rows, 1))


@torchsymbol(F.scaled_dot_product_attention)
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):  # fmt: skip
    if is_causal and attn_mask is not None:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if enable_gqa and key.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        repeats = query.shape[-3] // key.shape[-3]
        key, value = (shapes.repeat_interleave(x, repeats, -3) for x in (key, value))
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    q, k, v = (_upcast(x) for x in (query, key, value))
    logits = ew.mul(linalg.matmul(q, shapes.transpose(k, -2, -1)), scale)
    if is_causal:
        attn_mask = _causal_mask(query.shape[-2], key.shape[-2], query.device)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        logits = ew.where(attn_mask, logits, -math.inf)
    elif attn_mask is not None:
        logits = ew.add(logits, attn_mask)
    # torch's "safe" softmax: a row that is masked entirely attends to nothing (zeros, not NaNs)
    masked_rows = red.all(ew.eq(logits, -math.inf), -1, True)
    weights = ew.where(masked_rows, 0.0, softmax(logits, -1))
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, True)
    return to_dtype(linalg.matmul(weights, v), query.dtype)


# -- convolution ----------------------------------------------------------------------------------------
def _ntuple(x, n: int) -> tuple[int, ...]:
    return tuple(int(v) for v in x) if isinstance(x, (tuple, list, torch.Size)) else (int(x),) * n


def _same_padding(input, weight, stride, dilation, n):
    """Symmetric padding for padding='same', and the input padded on the right where that cannot be."""
    if any(s != 1 for s in stride):
        raise ValueError("padding='same' is not supported for strided convolutions")
    total = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    extra = [t - 2 * (t // 2) for t in total]
    if any(extra):
        flat = [v for e in reversed(extra) for v in (0, e)]
        input = _pad_constant(input, _pad_pairs(input, flat), 0)
    return input, tuple(t // 2 for t in total)


def _convolution(input, weight, bias, stride, padding, dilation, groups, n, transposed=False, output_padding=0):
    unbatched = input.ndim == n + 1
    if unbatched:
        input = shapes.unsqueeze(input, 0)
    stride, dilation = _ntuple(stride, n), _ntuple(dilation, n)
    if padding == "valid":
        padding = 0
    elif padding == "same" and not transposed:
        input, padding = _same_padding(input, weight, stride, dilation, n)
    elif isinstance(padding, str):
        raise ValueError(f"Invalid padding string {padding!r}, should be one of ['valid', 'same']")
    out = prims.convolution(input, weight, bias, stride, _ntuple(padding, n), dilation, transposed,
                            _ntuple(output_padding, n), groups)  # fmt: skip
    return shapes.squeeze(out, 0) if unbatched else out


@torchsymbol(F.conv1d, tags=("matmul",))
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _convolution(input, weight, bias, stride, padding, dilation, groups, 1)


@torchsymbol(F.conv2d, tags=("matmul",))
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _convolution(input, weight, bias, stride, padding, dilation, groups, 2)


@torchsymbol(F.conv3d, tags=("matmul",))
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _convolution(input, weight, bias, stride, padding, dilation, groups, 3)


@torchsymbol(F.conv_transpose1d, tags=("matmul",))
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _convolution(input, weight, bias, stride, padding, dilation, groups, 1, True, output_padding)


@torchsymbol(F.conv_transpose2d, tags=("matmul",))
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _convolution(input, weight, bias, stride, padding, dilation, groups, 2, True, output_padding)


@torchsymbol(F.conv_transpose3d, tags=("matmul",))
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _convolution(input, weight, bias, stride, padding, dilation, groups, 3, True, output_padding)


# -- pooling ----------------------------------------------------------------------------------------------
def _pool_args(input, n, kernel_size, stride, padding, dilation):
    if input.ndim not in (n + 1, n + 2):
        raise RuntimeError(f"expected {n + 1}D or {n + 2}D input to a {n}d pooling, got {input.ndim}D")
    kernel = _ntuple(kernel_size, n)
    stride = kernel if stride is None or stride == [] or stride == () else _ntuple(stride, n)
    padding, dilation = _ntuple(padding, n), _ntuple(dilation, n)
    for k, p, d in zip(kernel, padding, dilation):
        if p > (d * (k - 1) + 1) // 2:
            raise RuntimeError("pad should be at most half of effective kernel size")
    return kernel, stride, padding, dilation


def _pool_output_length(length, k, s, p, d, ceil_mode) -> int:
    # torch's pooling_output_shape: the last window must start inside the input or its left padding
    out = (length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= length + p:
        out -= 1
    if out < 1:
        raise RuntimeError(f"pooling: output size is too small for input length {length}")
    return out


def _pool_windows(a, kernel, stride, padding, dilation, ceil_mode, fill):
    """One strided slice of the padded input per kernel offset: element j of each window, for every window."""
    lead = a.ndim - len(kernel)
    lengths = a.shape[lead:]
    outs = [_pool_output_length(*args, ceil_mode) for args in zip(lengths, kernel, stride, padding, dilation)]
    reach = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip(outs, stride, dilation, kernel)]
    config = [(0, 0, 0)] * lead + [(p, max(r - length - p, 0), 0) for p, r, length in zip(padding, reach, lengths)]
    padded = prims.pad(a, fill, config) if any(lo or hi for lo, hi, _ in config) else a
    windows = []
    for offsets in itertools.product(*(range(k) for k in kernel)):
        starts = [0] * lead + [j * d for j, d in zip(offsets, dilation)]
        ends = list(a.shape[:lead]) + [j * d + (o - 1) * s + 1 for j, d, o, s in zip(offsets, dilation, outs, stride)]
        windows.append(prims.slice(padded, starts, ends, [1] * lead + list(stride)))
    return windows, outs


def _max_pool(input, n, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    if return_indices:
        raise NotImplementedError("max pooling with return_indices=True is not supported natively by thunder.jit")
    kernel, stride, padding, dilation = _pool_args(input, n, kernel_size, stride, padding, dilation)
    fill = -math.inf if not is_exact_dtype(input.dtype) else torch.iinfo(input.dtype).min
    windows, _ = _pool_windows(input, kernel, stride, padding, dilation, ceil_mode, fill)
    out = windows[0]
    for w in windows[1:]:
        out = ew.maximum(out, w)  # propagates NaN, as torch's max pooling does
    return out if out is not input else prims.convert_element_type(input, input.dtype)


@torchsymbol(F.max_pool1d)
def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@torchsymbol(F.max_pool2d)
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


@torchsymbol(F.max_pool3d)
def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


for _sym, _fn in ((max_pool1d, torch.max_pool1d), (max_pool2d, torch.max_pool2d), (max_pool3d, torch.max_pool3d)):
    register_handler(_fn, lambda input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False, _sym=_sym:
                     _sym(input, kernel_size, stride or None, padding, dilation, ceil_mode))  # fmt: skip


def _window_counts(length, k, s, p, o, count_include_pad) -> list[int]:
    """How many elements each window along one dim divides by (torch's avg_pool divisor, per dim)."""
    counts = []
    for i in range(o):
        start = i * s - p
        end = min(start + k, length + p)
        if not count_include_pad:
            start, end = max(start, 0), min(end, length)
        counts.append(end - start)
    return counts


def _avg_divisor(input, kernel, stride, padding, outs, count_include_pad, divisor_override, dtype):
    if divisor_override:
        return divisor_override
    n = len(kernel)
    lengths = input.shape[input.ndim - n :]
    per_dim = [_window_counts(*args, count_include_pad) for args in zip(lengths, kernel, stride, padding, outs)]
    if all(len(set(c)) == 1 for c in per_dim):
        return math.prod(c[0] for c in per_dim)
    divisor = None
    for axis, (length, k, s, p, o) in enumerate(zip(lengths, kernel, stride, padding, outs)):
        # the counts as tensor ops (the trace has no literal tensors): clipped window ends minus starts
        start = prims.iota(o, start=-p, step=s, dtype=torch.int64, device=input.device)
        # clamp, not minimum/maximum: torch.minimum takes no Python number, and autodiff, which decomposes the
        # pooling, leaves these integer operations whole for the torch executor to call
        end = ew.clamp(ew.add(start, k), max=length + p)
        if not count_include_pad:
            start, end = ew.clamp(start, min=0), ew.clamp(end, max=length)
        count = shapes.reshape(ew.sub(end, start), tuple(o if i == axis else 1 for i in range(n)))
        divisor = count if divisor is None else ew.mul(divisor, count)
    return to_dtype(divisor, dtype)


def _avg_pool(input, n, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    kernel, stride, padding, _ = _pool_args(input, n, kernel_size, stride, padding, 1)
    x = _upcast(input)
    windows, outs = _pool_windows(x, kernel, stride, padding, (1,) * n, ceil_mode, 0)
    total = windows[0]
    for w in windows[1:]:
        total = ew.add(total, w)
    divisor = _avg_divisor(input, kernel, stride, padding, outs, count_include_pad, divisor_override, x.dtype)
    return to_dtype(ew.div(total, divisor), input.dtype)


@torchsymbol(F.avg_pool1d)
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad)


@torchsymbol(F.avg_pool2d)
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):  # fmt: skip
    return _avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


@torchsymbol(F.avg_pool3d)
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):  # fmt: skip
    return _avg_pool(input, 3, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def _adaptive_average_matrix(length, out, dtype, device):
    """(out, length) weights averaging input window i = [floor(i*L/out), ceil((i+1)*L/out)) into output i."""
    rows = prims.iota(out, start=0, step=1, dtype=torch.int64, device=device)
    starts = shapes.unsqueeze(ew.floor_divide(ew.mul(rows, length), out), 1)
    ends = shapes.unsqueeze(ew.floor_divide(ew.add(ew.mul(rows, length), length + out - 1), out), 1)
    cols = shapes.unsqueeze(prims.iota(length, start=0, step=1, dtype=torch.int64, device=device), 0)
    inside = to_dtype(ew.logical_and(ew.ge(cols, starts), ew.lt(cols, ends)), dtype)
    return ew.div(inside, to_dtype(ew.sub(ends, starts), dtype))


def _adaptive_avg_pool(input, output_size, n):
    if input.ndim not in (n + 1, n + 2):
        raise RuntimeError(f"adaptive_avg_pool{n}d(): Expected {n + 1}D or {n + 2}D tensor, but got {input.ndim}D")
    lead = input.ndim - n
    sizes = tuple(output_size) if isinstance(output_size, (tuple, list, torch.Size)) else (output_size,) * n
    x = _upcast(input)
    for axis, o in enumerate(sizes):
        dim, length = lead + axis, input.shape[lead + axis]
        o = length if o is None else int(o)
        if o == length:
            continue
        if length % o == 0:  # equal windows: a reshape and a mean, as eager's common case
            split = tuple(x.shape[:dim]) + (o, length // o) + tuple(x.shape[dim + 1 :])
            x = red.mean(shapes.reshape(x, split), dim + 1)
        else:  # overlapping windows of unequal lengths: a matmul with an averaging matrix
            weights = _adaptive_average_matrix(length, o, x.dtype, x.device)
            moved = shapes.movedim(x, dim, -1)
            x = shapes.movedim(linalg.matmul(moved, shapes.transpose(weights, 0, 1)), -1, dim)
    return to_dtype(x, input.dtype) if x is not input else prims.convert_element_type(input, input.dtype)


@torchsymbol(F.adaptive_avg_pool1d)
def adaptive_avg_pool1d(input, output_size):
    return _adaptive_avg_pool(input, output_size, 1)


@torchsymbol(F.adaptive_avg_pool2d)
def adaptive_avg_pool2d(input, output_size):
    return _adaptive_avg_pool(input, output_size, 2)


@torchsymbol(F.adaptive_avg_pool3d)
def adaptive_avg_pool3d(input, output_size):
    return _adaptive_avg_pool(input, output_size, 3)
