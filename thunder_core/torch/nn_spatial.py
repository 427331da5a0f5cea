"""Spatial neural-network operations (`torch.nn.functional`), decomposed into prims and other `thunder.torch`
operations: padding, scaled dot-product attention, convolutions (through `prims.convolution`) and pooling
(as strided slices of the padded input, one per kernel offset).

Low-precision inputs follow `thunder.torch.nn`'s rule: computed in float32, rounded once at the end.
"""

from __future__ import annotations

import itertools
import math
import struct

import torch
import torch.nn.functional as F

from thunder import prims
from thunder.core.dtypes import is_exact_dtype
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES
from thunder.torch import elementwise as ew
from thunder.torch import linalg, shapes
from thunder.torch import reductions as red
from thunder.torch.base import register_handler, to_dtype, torchsymbol
from thunder.torch.fallback import fallback_symbol
from thunder.torch.nn import _clamp, _upcast, dropout, softmax

__all__ = [
    "pad", "scaled_dot_product_attention", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d", "interpolate",
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
        if mode == "circular" and (lo < 0 or hi < 0):  # eager crops first, then wraps around what is left
            starts = [max(-lo, 0) if d == dim else 0 for d in range(out.ndim)]
            ends = [length - max(-hi, 0) if d == dim else n for d, n in enumerate(out.shape)]
            out = prims.slice(out, starts, ends)
            length, lo, hi = ends[dim] - starts[dim], max(lo, 0), max(hi, 0)
            if lo == hi == 0:
                continue
        # (negative padding crops: reflect and replicate read the positions of the uncropped input)
        limit = {"reflect": length - 1, "circular": length}.get(mode, math.inf)
        if lo + length + hi < 0 or max(lo, hi) > limit or length < 1:
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
    """An int[n] argument as torch reads it: a number, or a sequence of n numbers or of one (repeated n times)."""
    if isinstance(x, (tuple, list, torch.Size)):
        return tuple(int(x[0]) for _ in range(n)) if len(x) == 1 else tuple(int(v) for v in x)
    return (int(x),) * n


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
    config = (stride, _ntuple(padding, n), dilation, transposed, _ntuple(output_padding, n), groups)
    if input.dtype.is_complex:
        out = _complex_convolution(input, weight, bias, config)
    else:
        out = prims.convolution(input, weight, bias, *config)
    return shapes.squeeze(out, 0) if unbatched else out


def _complex_convolution(input, weight, bias, config):
    """A complex convolution from three real ones, as eager's functional convolutions compute it (torch's kernels
    of some, the transposed 1-d and 3-d ones on the CPU, have no complex version): with a = conv(xr, wr, br),
    b = conv(xi, wi) and c = conv(xr + xi, wr + wi, br + bi), the result is (a - b) + i (c - a - b)."""
    (xr, xi), (wr, wi) = (prims.real(input), prims.imag(input)), (prims.real(weight), prims.imag(weight))
    br, bi = (None, None) if bias is None else (prims.real(bias), prims.imag(bias))
    a = prims.convolution(xr, wr, br, *config)
    b = prims.convolution(xi, wi, None, *config)
    c = prims.convolution(ew.add(xr, xi), ew.add(wr, wi), None if bias is None else ew.add(br, bi), *config)
    real, imaginary = ew.sub(a, b), ew.sub(ew.sub(c, a), b)
    return ew.add(to_dtype(real, input.dtype), ew.mul(to_dtype(imaginary, input.dtype), 1j))


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
        return _max_pool_with_indices(input, n, kernel_size, stride, padding, dilation, ceil_mode)
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


def _plane_index(positions, lengths):
    """Flat indices within a spatial plane (torch's index convention for pooling) of the grid of per-dim
    positions (1-d tensors), broadcast over the output's spatial dims."""
    n = len(lengths)
    flat, plane = None, 1
    for axis in reversed(range(n)):
        shape = tuple(positions[axis].shape[0] if i == axis else 1 for i in range(n))
        term = shapes.reshape(ew.mul(positions[axis], plane) if plane != 1 else positions[axis], shape)
        flat = term if flat is None else ew.add(term, flat)
        plane *= lengths[axis]
    return flat


def _first_inside(start, dilation):
    """Each window's first position inside the input: start + ceil(max(-start, 0) / dilation) * dilation."""
    skipped = ew.floor_divide(ew.add(ew.clamp(ew.neg(start), min=0), dilation - 1), dilation)
    return ew.add(start, ew.mul(skipped, dilation))


def _max_pool_with_indices(input, n, kernel_size, stride, padding, dilation, ceil_mode):
    kernel, stride, padding, dilation = _pool_args(input, n, kernel_size, stride, padding, dilation)
    exact = is_exact_dtype(input.dtype)
    fill = torch.iinfo(input.dtype).min if exact else -math.inf
    windows, outs = _pool_windows(input, kernel, stride, padding, dilation, ceil_mode, fill)
    lengths, device = tuple(input.shape[input.ndim - n :]), input.device
    starts = [prims.iota(o, start=-p, step=s, dtype=torch.int64, device=device)
              for o, p, s in zip(outs, padding, stride)]  # fmt: skip
    # As torch's kernel: the search starts at each window's first element inside the input with -inf as the best
    # value so far, and takes an element that is larger or NaN (the first maximum wins, or the last NaN). The
    # padding holds the fill, which is never larger, so it is never taken.
    best_index = _plane_index([_first_inside(st, d) for st, d in zip(starts, dilation)], lengths)
    best = prims.full(tuple(windows[0].shape), fill, dtype=input.dtype, device=device)
    for offsets, window in zip(itertools.product(*(range(k) for k in kernel)), windows):
        positions = [ew.add(st, j * d) if j else st for st, j, d in zip(starts, offsets, dilation)]
        better = ew.gt(window, best) if exact else ew.logical_or(ew.gt(window, best), ew.isnan(window))
        best = ew.where(better, window, best)
        best_index = ew.where(better, _plane_index(positions, lengths), best_index)
    return best, best_index


@torchsymbol(F.max_pool1d_with_indices)
def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):  # fmt: skip
    return _max_pool_with_indices(input, 1, kernel_size, stride, padding, dilation, ceil_mode)


@torchsymbol(F.max_pool2d_with_indices)
def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):  # fmt: skip
    return _max_pool_with_indices(input, 2, kernel_size, stride, padding, dilation, ceil_mode)


@torchsymbol(F.max_pool3d_with_indices)
def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=False):  # fmt: skip
    return _max_pool_with_indices(input, 3, kernel_size, stride, padding, dilation, ceil_mode)


_WITH_INDICES = {1: max_pool1d_with_indices, 2: max_pool2d_with_indices, 3: max_pool3d_with_indices}


def _aten_signature(symbol):
    # the torch.* and torch._C._nn forms take stride=() for "the kernel size" and no return_indices
    def handler(input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
        return symbol(input, kernel_size, stride or None, padding, dilation, ceil_mode)

    return handler


for _n, _fn in ((1, torch.max_pool1d_with_indices), (2, torch._C._nn.max_pool2d_with_indices),
                (3, torch._C._nn.max_pool3d_with_indices)):  # fmt: skip
    register_handler(_fn, _aten_signature(_WITH_INDICES[_n]))


def _max_pool_backward(input, n, grad, indices):
    """The gradient of max pooling: each output's cotangent added at the input element its index names (as
    eager's max_pool*_with_indices_backward)."""
    lead = tuple(input.shape[: input.ndim - n])
    flat_shape = lead + (math.prod(grad.shape[input.ndim - n :]),)
    zeros = prims.full(lead + (math.prod(input.shape[input.ndim - n :]),), 0, dtype=grad.dtype, device=grad.device)
    flat = prims.scatter_add(zeros, prims.reshape(indices, flat_shape), prims.reshape(grad, flat_shape), len(lead))
    return prims.reshape(flat, tuple(input.shape))


def _max_pool_with_indices_grad(n):
    symbol = _WITH_INDICES[n]

    def rule(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        values, indices = symbol(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        put_grad(input, _max_pool_backward(input, n, get_grad(values), indices))
        return values, indices

    return rule


for _n, _sym in _WITH_INDICES.items():
    GRAD_RULES[_sym.id] = _max_pool_with_indices_grad(_n)


def _max_pool_grad(n):
    """max_pool's gradient as eager's: all of a window's cotangent to its first maximum (the index the kernel
    returns). The forward's chain of maximums would split a tie evenly, and ties are common (zeros after a ReLU,
    or any repeated value in float16 / bfloat16). The forward is the pooling with indices (one kernel on the
    torch executor), whose values are max_pool's."""
    symbol = _WITH_INDICES[n]

    def rule(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        values, indices = symbol(input, kernel_size, stride, padding, dilation, ceil_mode)
        put_grad(input, _max_pool_backward(input, n, get_grad(values), indices))
        return (values, indices) if return_indices else values

    return rule


for _n, _sym in ((1, max_pool1d), (2, max_pool2d), (3, max_pool3d)):
    GRAD_RULES[_sym.id] = _max_pool_grad(_n)


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
    if len(sizes) != n:
        raise RuntimeError(f"adaptive_avg_pool{n}d: output_size must be {n}")
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


# -- interpolation ------------------------------------------------------------------------------------------
# Each spatial dim is resampled in turn (the last first, as torch's kernels nest them): gathers of the input
# (prims.take) blended by weights. Indices and weights depend only on shapes; they are computed in the trace from
# iota with the arithmetic of torch's CPU kernels (UpSample.h), in their precision (float64 for float64 inputs,
# float32 otherwise), so that the chosen neighbours and the weights are eager's.

# mode -> the number of spatial dims it works on (None: 1, 2 or 3)
_INTERPOLATE_MODES = {"nearest": None, "nearest-exact": None, "area": None, "linear": 1, "bilinear": 2,
                      "trilinear": 3, "bicubic": 2}  # fmt: skip
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _interpolate_sizes(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias):
    """(output lengths, scale factors torch's kernel receives) of the spatial dims when thunder.jit decomposes this
    call; None where torch runs it (the fallback): other modes, antialiasing, and arguments eager rejects, whose
    errors torch then reports."""
    n = input.ndim - 2
    if antialias or mode not in _INTERPOLATE_MODES or not 1 <= n <= 3 or _INTERPOLATE_MODES[mode] not in (None, n):
        return None
    if mode in ("nearest", "nearest-exact", "area") and align_corners is not None:
        return None
    if input.dtype not in ((torch.uint8, *_FLOATS) if mode.startswith("nearest") else _FLOATS):
        return None
    if (size is None) == (scale_factor is None) or min(input.shape[1:]) < 1:
        return None
    if size is not None:
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * n
        if recompute_scale_factor or len(sizes) != n or not all(_is_int(s) for s in sizes):
            return None
        scales = [None] * n
    else:
        factors = list(scale_factor) if isinstance(scale_factor, (list, tuple)) else [scale_factor] * n
        if len(factors) != n or not all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in factors):
            return None
        sizes = [int(length * float(f)) for length, f in zip(input.shape[2:], factors)]
        scales = [None] * n if recompute_scale_factor or mode == "area" else [float(f) for f in factors]
    return (sizes, scales) if min(sizes) >= 1 else None


def _to_float32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def _kernel_scale(length, out, scale, align_corners, opmath) -> float:
    """Input steps per output step, as torch's area_pixel_compute_scale computes it, rounded to opmath."""
    rounded = _to_float32 if opmath != torch.float64 else float
    if align_corners:
        return rounded((length - 1) / (out - 1)) if out > 1 else 0.0
    if scale is not None and scale > 0:
        return rounded(1.0 / scale)
    return rounded(length / out)


def _output_positions(out, opmath, device):
    return to_dtype(prims.iota(out, start=0, step=1, dtype=torch.int64, device=device), opmath)


def _source_coordinates(length, out, scale, align_corners, opmath, device, *, cubic=False):
    """Each output position's real-valued position in the input (torch's area_pixel_compute_source_index)."""
    step = _kernel_scale(length, out, scale, align_corners, opmath)
    x = _output_positions(out, opmath, device)
    if align_corners:
        return ew.mul(x, step)
    real = ew.sub(ew.mul(ew.add(x, 0.5), step), 0.5)
    return real if cubic else ew.clamp(real, min=0.0)


def _floor_index(real, length):
    # torch's kernels take floorf of the coordinate: rounded to float32 first, whatever its precision
    return ew.clamp(to_dtype(ew.floor(to_dtype(real, torch.float32)), torch.int64), max=length - 1)


def _nearest_taps(length, out, scale, exact, opmath, device, vectorized):
    """The input position each output copies. `vectorized`: as torch's vectorized CPU kernel (nearest_idx and
    nearest_exact_idx), which computes in float32 and copies exactly for 1x and 2x; otherwise as its generic kernel
    (HelperInterpNearest). They differ only for scale factors whose output length is truncated to 1x or 2x."""
    if vectorized:
        step = _kernel_scale(length, out, scale, False, torch.float32)
        if not exact and out in (length, 2 * length):
            positions = prims.iota(out, start=0, step=1, dtype=torch.int64, device=device)
            return None if out == length else [(ew.floor_divide(positions, 2), None)]
        if exact:  # (i + 0.5) * scale in double precision, as the kernel's int64 + 0.5 promotes it
            real = ew.mul(ew.add(_output_positions(out, torch.float64, device), 0.5), step)
        else:
            real = ew.mul(_output_positions(out, torch.float32, device), step)
        return [(_floor_index(real, length), None)]
    step = _kernel_scale(length, out, scale, False, opmath)
    if step == 1.0 and out == length:
        return None  # the identity
    if exact:  # the coordinate of the output's centre, rounded to the nearest input position
        real = ew.add(_source_coordinates(length, out, scale, False, opmath, device), 0.5)
    else:
        real = ew.mul(_output_positions(out, opmath, device), step)
    return [(_floor_index(real, length), None)]


def _linear_taps(length, out, scale, align_corners, opmath, device):
    if out == length:
        return None  # torch copies the input along this dim
    real = _source_coordinates(length, out, scale, align_corners, opmath, device)
    left = _floor_index(real, length)
    weight = ew.clamp(ew.sub(real, to_dtype(left, opmath)), 0.0, 1.0)
    right = ew.add(left, to_dtype(ew.lt(left, length - 1), torch.int64))
    return [(left, ew.sub(1.0, weight)), (right, weight)]


def _cubic_convolution1(x, a=-0.75):
    return ew.add(ew.mul(ew.mul(ew.sub(ew.mul(x, a + 2), a + 3), x), x), 1.0)


def _cubic_convolution2(x, a=-0.75):
    return ew.sub(ew.mul(ew.add(ew.mul(ew.sub(ew.mul(x, a), 5 * a), x), 8 * a), x), 4 * a)


def _cubic_taps(length, out, scale, align_corners, opmath, device):
    real = _source_coordinates(length, out, scale, align_corners, opmath, device, cubic=True)
    base = _floor_index(real, length)
    t = ew.clamp(ew.sub(real, to_dtype(base, opmath)), 0.0, 1.0)
    rest = ew.sub(1.0, t)
    weights = [_cubic_convolution2(ew.add(t, 1.0)), _cubic_convolution1(t), _cubic_convolution1(rest),
               _cubic_convolution2(ew.add(rest, 1.0))]  # fmt: skip
    indices = [ew.clamp(ew.add(base, j - 1) if j != 1 else base, 0, length - 1) for j in range(4)]
    return list(zip(indices, weights))


def _interpolation_steps(input, sizes, scales, mode, align_corners):
    """(dim, taps) for every spatial dim that changes, in the order the resampling applies them; each tap is
    (input indices, weights or None) along its dim."""
    opmath = torch.float64 if input.dtype == torch.float64 else torch.float32
    # torch's CPU kernel for 2-d nearest modes switches to its vectorized form for small outputs (and for
    # channels-last inputs of more than 3 channels, which this does not follow: a trace is not specialized on
    # memory formats, and the two forms differ only for scale factors truncated to 1x or 2x); CUDA's kernel is
    # the generic form
    vectorized = input.device.type == "cpu" and len(sizes) == 2 and sum(sizes) <= 128
    steps = []
    for axis in reversed(range(len(sizes))):
        length, out, scale = input.shape[2 + axis], sizes[axis], scales[axis]
        if mode.startswith("nearest"):
            taps = _nearest_taps(length, out, scale, mode == "nearest-exact", opmath, input.device, vectorized)
        elif mode == "bicubic":
            taps = _cubic_taps(length, out, scale, bool(align_corners), opmath, input.device)
        else:
            taps = _linear_taps(length, out, scale, bool(align_corners), opmath, input.device)
        if taps is not None:
            steps.append((2 + axis, taps))
    return steps


def _weight_along(weight, dim, ndim):
    return shapes.reshape(weight, tuple(-1 if i == dim else 1 for i in range(ndim)))


def _resample(x, dim, taps):
    """The sum over taps of x gathered at the tap's indices along dim, times its weights."""
    out = None
    for index, weight in taps:
        term = prims.take(x, index, dim)
        if weight is not None:
            term = ew.mul(term, _weight_along(weight, dim, x.ndim))
        out = term if out is None else ew.add(out, term)
    return out


# The most entries (16 MiB of float32) of a dense resampling matrix the gradient builds; beyond, it adds the
# weighted cotangents at the taps' indices (index_add), which is several times slower on CPUs.
_DENSE_RESAMPLING_LIMIT = 1 << 22


def _resampling_matrix(taps, length, dtype, device):
    """(output length, length): each output's weights at its taps' input positions."""
    columns = shapes.unsqueeze(prims.iota(length, start=0, step=1, dtype=torch.int64, device=device), 0)
    matrix = None
    for index, weight in taps:
        term = to_dtype(ew.eq(shapes.unsqueeze(index, 1), columns), dtype)
        term = term if weight is None else ew.mul(term, shapes.unsqueeze(to_dtype(weight, dtype), 1))
        matrix = term if matrix is None else ew.add(matrix, term)
    return matrix


def _resample_transposed(g, dim, taps, length):
    """The gradient of `_resample` along dim: each output's cotangent, times its weights, added at its taps'
    input positions (as a product with the resampling matrix where that matrix is small)."""
    out_length, lead, trail = g.shape[dim], tuple(g.shape[:dim]), tuple(g.shape[dim + 1 :])
    if out_length * length <= _DENSE_RESAMPLING_LIMIT:
        matrix = _resampling_matrix(taps, length, g.dtype, g.device)
        if not trail:
            return linalg.matmul(g, matrix)
        # the resampled dim last, so that the product is one matrix multiplication (a broadcast batch of them
        # is slow on CPUs, very slow for the expanded cotangent of a sum)
        flat = shapes.transpose(shapes.reshape(g, lead + (out_length, math.prod(trail))), -1, -2)
        return shapes.reshape(shapes.transpose(linalg.matmul(flat, matrix), -1, -2), lead + (length,) + trail)
    out = prims.full(lead + (length,) + trail, 0, dtype=g.dtype, device=g.device)
    for index, weight in taps:
        out = prims.index_add(out, index, g if weight is None else ew.mul(g, _weight_along(weight, dim, g.ndim)), dim)
    return out


def _interpolation_dtype(input, mode):
    # nearest modes copy elements; the others blend in torch's opmath precision, rounded once at the end
    if mode.startswith("nearest"):
        return input.dtype
    return torch.float64 if input.dtype == torch.float64 else torch.float32


def _decomposable_plan(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias):
    plan = _interpolate_sizes(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    if plan is None or mode == "area":
        raise NotImplementedError(
            f"thunder.torch.interpolate decomposes the nearest, linear and cubic modes; mode={mode!r} with these "
            "arguments is for torch.nn.functional.interpolate, which traces it (as adaptive average pooling for "
            "'area', else as torch's own operator)"
        )
    return plan


@torchsymbol(F.interpolate)
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):  # fmt: skip
    arguments = (size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    sizes, scales = _decomposable_plan(input, *arguments)
    x = to_dtype(input, _interpolation_dtype(input, mode))
    for dim, taps in _interpolation_steps(input, sizes, scales, mode, align_corners):
        x = _resample(x, dim, taps)
    return to_dtype(x, input.dtype) if x is not input else prims.convert_element_type(input, input.dtype)


def _interpolate_grad(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                      recompute_scale_factor=None, antialias=False):  # fmt: skip
    """The transposed resampling, dim by dim in reverse (eager's upsample backward kernels compute the same sums):
    the forward stays one operation for an executor to run whole or fuse, and is not recomputed."""
    arguments = (size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    out = interpolate(input, *arguments)
    sizes, scales = _decomposable_plan(input, *arguments)
    steps = _interpolation_steps(input, sizes, scales, mode, align_corners)
    grad = to_dtype(get_grad(out), _interpolation_dtype(input, mode))
    for dim, taps in reversed(steps):
        grad = _resample_transposed(grad, dim, taps, input.shape[dim])
    put_grad(input, to_dtype(grad, input.dtype))
    return out


GRAD_RULES[interpolate.id] = _interpolate_grad


def _trace_interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                       recompute_scale_factor=None, antialias=False):  # fmt: skip
    """What traces F.interpolate: the symbol where it decomposes, adaptive average pooling for mode='area' (what
    F.interpolate calls), else torch's own operator through the fallback (which reports what eager rejects)."""
    arguments = (size, scale_factor, mode, align_corners, recompute_scale_factor, antialias)
    plan = _interpolate_sizes(input, *arguments)
    if plan is None:
        keywords = dict(zip(("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias"),
                            arguments))  # fmt: skip
        return fallback_symbol(F.interpolate)(input, **keywords)
    if mode == "area":
        return (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d)[len(plan[0]) - 1](input, plan[0])
    return interpolate(input, *arguments)


register_handler(F.interpolate, _trace_interpolate)
