"""Neural-network operations (`torch.nn.functional` and friends), decomposed into prims and other
`thunder.torch` operations: activations, the softmax family, normalizations, dropout, embeddings.
Losses and distances live in `nn_losses`, convolution, pooling, padding and attention in `nn_spatial`.

Low-precision inputs (float16, bfloat16) are computed in float32 and rounded once at the end, as
torch's kernels do. A symbol never mutates its inputs, so that the torch executor, which runs a symbol
by calling the torch function it mirrors with the recorded arguments, never writes behind the
tracer's back: `inplace=True` flags and batch norm's running statistics trace as the functional symbol
followed by an in-place `copy_`, which the tracer functionalizes (see `_register_inplace_flag`).
"""

from __future__ import annotations

import functools
import inspect
import math

import torch
import torch.nn.functional as F

from thunder import prims
from thunder.core.dtypes import computation_dtype
from thunder.core.trace import torch_tracing
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES
from thunder.torch import elementwise as ew
from thunder.torch import reductions as red
from thunder.torch import shapes
from thunder.torch.base import as_int64, canonicalize_dim, register_handler, to_dtype, torchsymbol
from thunder.torch.indexing import index_copy, index_select
from thunder.torch.views import INPLACE_SPECIAL

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign",
    "hardtanh", "hardsigmoid", "hardswish", "logsigmoid", "tanhshrink", "threshold", "glu", "softmax",
    "log_softmax", "softmin", "layer_norm", "rms_norm", "group_norm", "batch_norm", "instance_norm", "normalize",
    "dropout", "embedding", "one_hot",
]  # fmt: skip


def _upcast(a):
    return to_dtype(a, computation_dtype(a.dtype))


def _pointwise(a, fn):
    """fn(a), computed in float32 for a low-precision `a` and rounded back to a's dtype once."""
    return to_dtype(fn(_upcast(a)), a.dtype)


def _assign_in_place(target, value) -> None:
    """`target.copy_(value)` through the tracer, which rebinds the tensor the user holds (and writes views
    back to their bases); run by the torch executor, a symbol with a mutating flag would write behind it."""
    with torch_tracing():
        target.copy_(value)


def _register_inplace_flag(sym) -> None:
    """`F.<op>(x, ..., inplace=True)` traces as the functional symbol followed by `x.copy_(result)`."""
    signature = inspect.signature(sym.meta)
    first = next(iter(signature.parameters))

    def handler(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if not bound.arguments.pop("inplace", False):
            return sym(*args, **kwargs)
        out = sym(*bound.args, **bound.kwargs)
        target = bound.arguments[first]
        _assign_in_place(target, out)
        return target

    handler.__signature__ = signature  # what it accepts (thunder.torch.signatures maps torch's keywords onto it)
    register_handler(sym.torch_fns[0], handler)


# -- activations ---------------------------------------------------------------------------------------
@torchsymbol(F.relu, torch.relu, torch.Tensor.relu, tags=("elementwise",))
def relu(input, inplace=False):
    # `x <= 0` rather than `x > 0` selects the zeros, so that NaN propagates as in torch's clamp_min(x, 0)
    return ew.where(ew.le(input, 0), 0, input)


def _clamp(a, lo, hi, *, nan_grad=True):
    """clamp(a, lo, hi) with torch's hardtanh gradient: 0 at and beyond the bounds, 1 strictly between them,
    and at NaN 1 (hardtanh's scalar and CUDA kernels; its vectorized CPU kernel gives 0) or, with
    nan_grad=False, 0 (hardsigmoid's). The clamped values come from a detached `a`: they carry no gradient."""
    fixed = shapes.detach(a)
    fixed = ew.where(ew.lt(fixed, lo), lo, fixed)
    fixed = ew.where(ew.gt(fixed, hi), hi, fixed)
    if nan_grad:
        out = ew.where(ew.logical_or(ew.le(a, lo), ew.ge(a, hi)), fixed, a)
    else:
        out = ew.where(ew.logical_and(ew.gt(a, lo), ew.lt(a, hi)), a, fixed)
    if ew.isnan_value(lo) or ew.isnan_value(hi):
        # a NaN bound makes every value NaN, as torch's clamp; the gradient stays the comparisons' above, as
        # torch's backward formula (comparisons with NaN are false)
        out = ew.add(out, math.nan)
    return to_dtype(out, a.dtype)


@torchsymbol(F.hardtanh, tags=("elementwise",))
def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if not (input.dtype.is_floating_point or input.dtype.is_complex or input.dtype == torch.bool):
        min_val, max_val = as_int64(min_val), as_int64(max_val)  # eager's integer kernel's checked conversion
    return _clamp(input, min_val, max_val)


@torchsymbol(F.relu6, tags=("elementwise",))
def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


@torchsymbol(F.leaky_relu, tags=("elementwise",))
def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _pointwise(input, lambda x: ew.where(ew.gt(x, 0), x, ew.mul(x, negative_slope)))


def _elu(x, alpha, scale=1.0, input_scale=1.0):
    # torch's elu kernel: x > 0 ? x * scale : expm1(x * input_scale) * alpha * scale; its gradient takes the
    # x * scale side at NaN. expm1 sees only x <= 0: an unselected inf would give an inf * 0 = NaN gradient
    negative_x = ew.where(ew.le(x, 0), x, 0)
    negative = ew.mul(ew.expm1(ew.mul(negative_x, input_scale) if input_scale != 1.0 else negative_x), alpha * scale)
    return ew.where(ew.le(x, 0), negative, ew.mul(x, scale) if scale != 1.0 else x)


@torchsymbol(F.elu, tags=("elementwise",))
def elu(input, alpha=1.0, inplace=False):
    return _pointwise(input, lambda x: _elu(x, alpha))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


@torchsymbol(F.selu, torch.selu, tags=("elementwise",))
def selu(input, inplace=False):
    return _pointwise(input, lambda x: _elu(x, _SELU_ALPHA, _SELU_SCALE))


@torchsymbol(F.celu, torch.celu, tags=("elementwise",))
def celu(input, alpha=1.0, inplace=False):
    return _pointwise(input, lambda x: _elu(x, alpha, 1.0, 1.0 / alpha))


def _gelu(x, approximate):
    if approximate == "none":
        return ew.mul(ew.mul(x, 0.5), ew.add(ew.erf(ew.mul(x, math.sqrt(0.5))), 1))
    if approximate == "tanh":
        inner = ew.mul(ew.add(x, ew.mul(ew.mul(ew.mul(x, x), x), 0.044715)), math.sqrt(2 / math.pi))
        return ew.mul(ew.mul(x, 0.5), ew.add(ew.tanh(inner), 1))
    raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")


@torchsymbol(F.gelu, tags=("elementwise",))
def gelu(input, approximate="none"):
    return _pointwise(input, lambda x: _gelu(x, approximate))


@torchsymbol(F.silu, tags=("elementwise",))
def silu(input, inplace=False):
    return _pointwise(input, lambda x: ew.div(x, ew.add(ew.exp(ew.neg(x)), 1)))


@torchsymbol(F.mish, tags=("elementwise",))
def mish(input, inplace=False):
    return _pointwise(input, lambda x: ew.mul(x, ew.tanh(ew.log1p(ew.exp(x)))))


@torchsymbol(F.softplus, tags=("elementwise",))
def softplus(input, beta=1.0, threshold=20.0):
    def fn(x):
        scaled = ew.mul(x, beta) if beta != 1 else x
        # exp sees only the values it computes: an unselected inf would give an inf * 0 = NaN gradient
        soft = ew.log1p(ew.exp(ew.where(ew.gt(scaled, threshold), 0, scaled)))
        return ew.where(ew.gt(scaled, threshold), x, ew.div(soft, beta) if beta != 1 else soft)

    return _pointwise(input, fn)


@torchsymbol(F.softsign, tags=("elementwise",))
def softsign(input):
    return ew.div(input, ew.add(ew.abs(input), 1))


@torchsymbol(F.hardsigmoid, tags=("elementwise",))
def hardsigmoid(input, inplace=False):
    return _pointwise(input, lambda x: ew.div(_clamp(ew.add(x, 3), 0, 6, nan_grad=False), 6))


@torchsymbol(F.hardswish, tags=("elementwise",))
def hardswish(input, inplace=False):
    # torch's gradient: x < -3 ? 0 : x <= 3 ? x / 3 + 0.5 : 1, which takes the last side at NaN. The middle
    # side sees only the values it computes (an unselected inf would give an inf * 0 gradient), and x * 0
    # keeps the forward's NaN at -inf (x * clamp(x + 3, 0, 6) / 6)
    def fn(x):
        between = ew.logical_and(ew.ge(x, -3), ew.le(x, 3))
        xm = ew.where(between, x, 0)
        return ew.where(ew.lt(x, -3), ew.mul(x, 0), ew.where(between, ew.div(ew.mul(xm, ew.add(xm, 3)), 6), x))

    return _pointwise(input, fn)


@torchsymbol(F.logsigmoid, tags=("elementwise",))
def logsigmoid(input):
    # min(x, 0) - log1p(exp(-|x|)): stable for large |x| of either sign
    return _pointwise(input, lambda x: ew.sub(ew.minimum(x, 0), ew.log1p(ew.exp(ew.neg(ew.abs(x))))))


@torchsymbol(F.tanhshrink, tags=("elementwise",))
def tanhshrink(input):
    if not (input.dtype.is_floating_point or input.dtype.is_complex):  # eager: x - tanh(x), a float tensor
        return ew.sub(input, ew.tanh(input))
    return _pointwise(input, lambda x: ew.sub(x, ew.tanh(x)))


@torchsymbol(F.threshold, torch.threshold, tags=("elementwise",))
def threshold(input, threshold, value, inplace=False):
    return to_dtype(ew.where(ew.le(input, threshold), value, input), input.dtype)


@torchsymbol(F.glu)
def glu(input, dim=-1):
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    dim = canonicalize_dim(input.ndim, dim)
    if input.shape[dim] % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {input.shape[dim]}")
    a, b = shapes.split(input, input.shape[dim] // 2, dim)
    return to_dtype(ew.mul(_upcast(a), ew.sigmoid(_upcast(b))), input.dtype)


for _sym in (relu, hardtanh, relu6, leaky_relu, elu, selu, celu, silu, mish, hardsigmoid, hardswish, threshold):
    _register_inplace_flag(_sym)


# -- softmax family -----------------------------------------------------------------------------------
def _softmax_dim(ndim: int, dim) -> int:
    if dim is None:  # torch's legacy implicit choice (with a deprecation warning in eager)
        dim = 0 if ndim in (0, 1, 3) else 1
    return canonicalize_dim(ndim, dim)


def _softmax_parts(input, dim, dtype):
    a = to_dtype(input, dtype) if dtype is not None else input
    return a, _upcast(a), _softmax_dim(a.ndim, dim)


@torchsymbol(F.softmax)
def softmax(input, dim=None, _stacklevel=3, dtype=None):
    a, x, dim = _softmax_parts(input, dim, dtype)
    if x.ndim and x.shape[dim] == 0:
        return prims.convert_element_type(a, a.dtype)
    exps = ew.exp(ew.sub(x, red.amax(x, dim, True)))  # subtracting the max keeps exp from overflowing
    return to_dtype(ew.div(exps, red.sum(exps, dim, True)), a.dtype)


@torchsymbol(F.log_softmax)
def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    a, x, dim = _softmax_parts(input, dim, dtype)
    if x.ndim and x.shape[dim] == 0:
        return prims.convert_element_type(a, a.dtype)
    shifted = ew.sub(x, red.amax(x, dim, True))
    return to_dtype(ew.sub(shifted, ew.log(red.sum(ew.exp(shifted), dim, True))), a.dtype)


@torchsymbol(F.softmin)
def softmin(input, dim=None, _stacklevel=3, dtype=None):
    return softmax(ew.neg(input), dim, dtype=dtype)


for _sym, _fns in ((softmax, (torch.softmax, torch.Tensor.softmax, torch.special.softmax)),
                   (log_softmax, (torch.log_softmax, torch.Tensor.log_softmax, torch.special.log_softmax))):  # fmt: skip
    for _fn in _fns:  # these take dtype as their third positional argument, F.softmax takes _stacklevel
        register_handler(_fn, lambda input, dim, dtype=None, _sym=_sym: _sym(input, dim, dtype=dtype))


# -- normalization ------------------------------------------------------------------------------------
def _normalize_over(x, dims, eps):
    mean = red.mean(x, dims, True)
    var = red.var(x, dims, keepdim=True, correction=0)
    return ew.mul(ew.sub(x, mean), ew.rsqrt(ew.add(var, eps)))


def _affine(out, weight, bias, shape=None):
    if weight is not None:
        out = ew.mul(out, weight if shape is None else shapes.reshape(weight, shape))
    if bias is not None:
        out = ew.add(out, bias if shape is None else shapes.reshape(bias, shape))
    return out


def _trailing_dims(input, normalized_shape) -> tuple[int, ...]:
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(normalized_shape)
    if n == 0 or n > input.ndim or tuple(input.shape[input.ndim - n :]) != normalized_shape:
        raise RuntimeError(f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
                           f"[*, {', '.join(map(str, normalized_shape))}], but got input of size{list(input.shape)}")  # fmt: skip
    return tuple(range(input.ndim - n, input.ndim))


@torchsymbol(F.layer_norm)
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    dims = _trailing_dims(input, normalized_shape)
    return to_dtype(_affine(_normalize_over(_upcast(input), dims, eps), weight, bias), input.dtype)


@torchsymbol(F.rms_norm)
def rms_norm(input, normalized_shape, weight=None, eps=None):
    dims = _trailing_dims(input, normalized_shape)
    x = _upcast(input)
    eps = torch.finfo(x.dtype).eps if eps is None else eps  # torch's default: epsilon of the computation dtype
    out = to_dtype(ew.mul(x, ew.rsqrt(ew.add(red.mean(ew.mul(x, x), dims, True), eps))), input.dtype)
    return to_dtype(ew.mul(out, weight), input.dtype) if weight is not None else out


def _channel_shape(input) -> tuple[int, ...]:
    return (1, input.shape[1]) + (1,) * (input.ndim - 2)


@torchsymbol(F.group_norm)
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.shape)} and num_groups={num_groups}")  # fmt: skip
    n = input.shape[0]
    grouped = shapes.reshape(_upcast(input), (n, num_groups, input.numel() // max(n * num_groups, 1)))
    out = shapes.reshape(_normalize_over(grouped, (2,), eps), tuple(input.shape))
    return to_dtype(_affine(out, weight, bias, _channel_shape(input)), input.dtype)


register_handler(torch.layer_norm, lambda input, normalized_shape, weight=None, bias=None, eps=1e-5,
                 cudnn_enable=True: layer_norm(input, normalized_shape, weight, bias, eps))  # fmt: skip
register_handler(torch.group_norm, lambda input, num_groups, weight=None, bias=None, eps=1e-5,
                 cudnn_enabled=True: group_norm(input, num_groups, weight, bias, eps))  # fmt: skip
register_handler(torch.rms_norm, lambda input, normalized_shape, weight=None, eps=None:
                 rms_norm(input, normalized_shape, weight, eps))  # fmt: skip


def _normalize_with_stats(input, mean, var, eps):
    shape = _channel_shape(input)
    x = _upcast(input)
    mean, var = (shapes.reshape(to_dtype(s, x.dtype), shape) for s in (mean, var))
    return ew.mul(ew.sub(x, mean), ew.rsqrt(ew.add(var, eps)))


@torchsymbol(F.batch_norm)
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """The normalized output only: F.batch_norm's handler updates the running statistics (in training)."""
    if input.numel() == 0:  # eager: a copy of the input, scaled and shifted by the first weight and bias
        out = prims.convert_element_type(input, input.dtype)
        out = ew.mul(out, shapes.select(weight, 0, 0)) if weight is not None else out
        return ew.add(out, shapes.select(bias, 0, 0)) if bias is not None else out
    if training or running_mean is None or running_var is None:
        out = _normalize_over(_upcast(input), (0, *range(2, input.ndim)), eps)
    else:
        out = _normalize_with_stats(input, running_mean, running_var, eps)
    return to_dtype(_affine(out, weight, bias, _channel_shape(input)), input.dtype)


def _running_average(running, batch_stat, momentum):
    """(1 - momentum) * running + momentum * batch_stat, as eager's kernels compute it."""
    keep = ew.sub(1, momentum) if isinstance(momentum, torch.Tensor) else 1 - momentum
    return ew.add(ew.mul(batch_stat, momentum), ew.mul(running, keep))


def _batch_norm_with_update(input, running_mean, running_var, weight=None, bias=None, training=False,
                            momentum=0.1, eps=1e-5):  # fmt: skip
    if input.numel() == 0:  # eager computes no statistics, and leaves the running ones as they are
        return batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    if training and input.numel() // max(input.shape[1], 1) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    if not training or running_mean is None and running_var is None:
        return batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    # the normalized output does not depend on momentum, which may be a tensor (BatchNorm's cumulative average)
    out = batch_norm(input, None, None, weight, bias, True, 0.0 if isinstance(momentum, torch.Tensor) else momentum, eps)
    dims = (0, *range(2, input.ndim))
    x = _upcast(input)
    if running_mean is not None:
        _assign_in_place(running_mean, _running_average(running_mean, red.mean(x, dims), momentum))
    if running_var is not None:
        _assign_in_place(running_var, _running_average(running_var, red.var(x, dims, correction=1), momentum))
    return out


def _functional_batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
                           momentum=0.1, eps=1e-5):  # fmt: skip
    """F.batch_norm: torch.batch_norm after the eps checks of F.batch_norm's Python code (recent torch versions;
    NaN passes them, as there). A number proxy's comparison guards its outcome."""
    if _functional_batch_norm_checks_eps():
        if training and eps <= 0.0:
            raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
        if eps < 0.0:
            raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")
    return _batch_norm_with_update(input, running_mean, running_var, weight, bias, training, momentum, eps)


@functools.cache
def _functional_batch_norm_checks_eps() -> bool:
    """Whether the installed torch's F.batch_norm refuses a non-positive eps (torch 2.13 does; older ones may not)."""
    try:
        return "batch_norm eps must be" in inspect.getsource(F.batch_norm)
    except (OSError, TypeError):  # no source: eager's own behaviour cannot be read, so check nothing extra
        return False


register_handler(F.batch_norm, _functional_batch_norm)
register_handler(torch.batch_norm, lambda input, weight, bias, running_mean, running_var, training, momentum, eps,
                 cudnn_enabled=True: _batch_norm_with_update(input, running_mean, running_var, weight, bias, training,
                                                             momentum, eps))  # fmt: skip


@torchsymbol(F.instance_norm)
def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):  # fmt: skip
    """The normalized output only: F.instance_norm's handler updates the running statistics."""
    if use_input_stats:
        out = _normalize_over(_upcast(input), tuple(range(2, input.ndim)), eps)
    else:
        out = _normalize_with_stats(input, running_mean, running_var, eps)
    return to_dtype(_affine(out, weight, bias, _channel_shape(input)), input.dtype)


def _instance_norm_with_update(input, running_mean=None, running_var=None, weight=None, bias=None,
                               use_input_stats=True, momentum=0.1, eps=1e-5):  # fmt: skip
    if use_input_stats and input.numel() // max(input.shape[0] * input.shape[1], 1) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {input.shape}")
    if not use_input_stats or running_mean is None and running_var is None:
        return instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)
    out = instance_norm(input, None, None, weight, bias, True, momentum, eps)
    dims = tuple(range(2, input.ndim))
    x = _upcast(input)
    # eager updates one copy of the statistics per instance, then averages the copies over the batch
    for running, stat in ((running_mean, red.mean(x, dims)), (running_var, red.var(x, dims, correction=1))):
        if running is not None:
            _assign_in_place(running, red.mean(_running_average(running, stat, momentum), 0))
    return out


register_handler(F.instance_norm, _instance_norm_with_update)


@torchsymbol(F.normalize)
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    if out is not None:
        raise NotImplementedError("F.normalize(out=...) is not supported inside thunder.jit; use the returned tensor")
    norm = ew.clamp(red.norm(_upcast(input), p, dim, True), min=eps)
    return to_dtype(ew.div(_upcast(input), norm), input.dtype)


# -- dropout, embedding, one_hot ------------------------------------------------------------------------
@torchsymbol(F.dropout, tags=("random",))
def dropout(input, p=0.5, training=True, inplace=False):
    if not 0.0 <= p <= 1.0:  # NaN too, as eager's check
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return ew.mul(input, 0)  # as eager: input * 0, which keeps NaNs
    # eager's CPU order of operations and RNG draws: bernoulli(1 - p) mask, scaled, times the input
    mask = prims.bernoulli(tuple(input.shape), 1 - p, dtype=input.dtype, device=input.device)
    return ew.mul(input, ew.div(mask, 1 - p))


_register_inplace_flag(dropout)
register_handler(torch.dropout, lambda input, p, train: dropout(input, p, train))


@torchsymbol(F.embedding)
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    if max_norm is not None:
        # (F.embedding with max_norm renormalizes the weight in place first: the tracer records that write and
        # calls this symbol with max_norm=None; a functional symbol cannot change its argument)
        raise NotImplementedError(
            "ltorch.embedding is the lookup alone: renormalize the weight first (torch.embedding_renorm_, as "
            "F.embedding with max_norm does under thunder.jit), then call it with max_norm=None"
        )
    if padding_idx is not None:
        if not -weight.shape[0] <= padding_idx < weight.shape[0]:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= weight.shape[0]
    return prims.embedding(input, weight, padding_idx)


def _embedding_grad(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                    sparse=False):  # fmt: skip
    """The gradient of the weight, scaled by the inverse frequency of each index in the call when asked (the
    primitive's own rule cannot see scale_grad_by_freq)."""
    out = embedding(input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse)
    padding = None if padding_idx is None else padding_idx % weight.shape[0]
    put_grad(weight, prims.embedding_backward(get_grad(out), input, weight.shape[0], padding,
                                              bool(scale_grad_by_freq), False))  # fmt: skip
    return out


GRAD_RULES[embedding.id] = _embedding_grad


def _embedding_renorm(weight, indices, max_norm, norm_type=2.0):
    """The functional form of `torch.embedding_renorm_` (which F.embedding with max_norm calls first, without
    autograd): each row of `weight` that `indices` names, scaled by max_norm / (norm + 1e-7) where its norm is
    larger than max_norm. Eager computes the scale in double and the product in the opmath type (float for
    reduced precision); here both in float32 (float64 for a float64 weight). A row named several times is
    scaled once, as eager's."""
    if weight.ndim != 2:
        raise RuntimeError(f"embedding_renorm_: weight must be 2-D, got {weight.ndim}-D")
    flat = shapes.reshape(indices, (-1,))
    rows = index_select(weight, 0, flat)
    acc = torch.float64 if weight.dtype == torch.float64 else torch.float32
    norms = to_dtype(red.vector_norm(rows, norm_type, dim=1, keepdim=True), acc)
    scale = ew.where(ew.gt(norms, max_norm), ew.true_divide(max_norm, ew.add(norms, 1e-7)), 1.0)
    return index_copy(weight, 0, flat, to_dtype(ew.mul(to_dtype(rows, acc), scale), weight.dtype))


INPLACE_SPECIAL["embedding_renorm_"] = _embedding_renorm


@torchsymbol(F.one_hot)
def one_hot(tensor, num_classes=-1):
    if num_classes == -1:
        raise NotImplementedError(
            "F.one_hot with num_classes=-1 takes the class count from the data (max + 1), a data-dependent shape "
            "that thunder.jit cannot trace; pass num_classes explicitly"
        )
    if tensor.dtype != torch.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    classes = prims.iota(num_classes, start=0, step=1, dtype=torch.int64, device=tensor.device)
    return to_dtype(ew.eq(shapes.unsqueeze(tensor, -1), classes), torch.int64)
