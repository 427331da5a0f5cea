"""Neural-network operations (`torch.nn.functional` and friends), decomposed into prims and other
`thunder.torch` operations: activations, the softmax family, normalizations, dropout, embeddings,
losses, attention, convolutions, pooling and padding.

Low-precision inputs (float16, bfloat16) are computed in float32 and rounded once at the end, as
torch's kernels do. A symbol never mutates its inputs, so that the torch executor, which runs a symbol
by calling the torch function it mirrors with the recorded arguments, never writes behind the
tracer's back: `inplace=True` flags and batch norm's running statistics trace as the functional symbol
followed by an in-place `copy_`, which the tracer functionalizes (see `_register_inplace_flag`).
"""

from __future__ import annotations

import inspect
import itertools
import math

import torch
import torch.nn.functional as F

from thunder import prims
from thunder.core.dtypes import computation_dtype, is_exact_dtype
from thunder.core.trace import torch_tracing
from thunder.torch import elementwise as ew
from thunder.torch import linalg, shapes
from thunder.torch import reductions as red
from thunder.torch.base import broadcast_tensors, canonicalize_dim, register_handler, to_dtype, torchsymbol

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign",
    "hardtanh", "hardsigmoid", "hardswish", "logsigmoid", "tanhshrink", "threshold", "glu", "softmax",
    "log_softmax", "softmin", "layer_norm", "rms_norm", "group_norm", "batch_norm", "instance_norm", "dropout",
    "embedding", "one_hot", "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "cosine_similarity", "normalize", "pad",
    "scaled_dot_product_attention", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
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

    register_handler(sym.torch_fns[0], handler)


# -- activations ---------------------------------------------------------------------------------------
@torchsymbol(F.relu, torch.relu, torch.Tensor.relu, tags=("elementwise",))
def relu(input, inplace=False):
    # `x <= 0` rather than `x > 0` selects the zeros, so that NaN propagates as in torch's clamp_min(x, 0)
    return ew.where(ew.le(input, 0), 0, input)


def _clamp(a, lo, hi):
    out = ew.where(ew.lt(a, lo), lo, a)
    return to_dtype(ew.where(ew.gt(out, hi), hi, out), a.dtype)


@torchsymbol(F.hardtanh, tags=("elementwise",))
def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _clamp(input, min_val, max_val)


@torchsymbol(F.relu6, tags=("elementwise",))
def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0)


@torchsymbol(F.leaky_relu, tags=("elementwise",))
def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _pointwise(input, lambda x: ew.where(ew.gt(x, 0), x, ew.mul(x, negative_slope)))


def _elu(x, alpha, scale=1.0, input_scale=1.0):
    # torch's elu kernel: x > 0 ? x * scale : expm1(x * input_scale) * alpha * scale
    negative = ew.mul(ew.expm1(ew.mul(x, input_scale) if input_scale != 1.0 else x), alpha * scale)
    return ew.where(ew.gt(x, 0), ew.mul(x, scale) if scale != 1.0 else x, negative)


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
        soft = ew.log1p(ew.exp(scaled))
        return ew.where(ew.gt(scaled, threshold), x, ew.div(soft, beta) if beta != 1 else soft)

    return _pointwise(input, fn)


@torchsymbol(F.softsign, tags=("elementwise",))
def softsign(input):
    return ew.div(input, ew.add(ew.abs(input), 1))


@torchsymbol(F.hardsigmoid, tags=("elementwise",))
def hardsigmoid(input, inplace=False):
    return _pointwise(input, lambda x: ew.div(_clamp(ew.add(x, 3), 0, 6), 6))


@torchsymbol(F.hardswish, tags=("elementwise",))
def hardswish(input, inplace=False):
    return _pointwise(input, lambda x: ew.div(ew.mul(x, _clamp(ew.add(x, 3), 0, 6)), 6))


@torchsymbol(F.logsigmoid, tags=("elementwise",))
def logsigmoid(input):
    # min(x, 0) - log1p(exp(-|x|)): stable for large |x| of either sign
    return _pointwise(input, lambda x: ew.sub(ew.minimum(x, 0), ew.log1p(ew.exp(ew.neg(ew.abs(x))))))


@torchsymbol(F.tanhshrink, tags=("elementwise",))
def tanhshrink(input):
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
    if training or running_mean is None or running_var is None:
        out = _normalize_over(_upcast(input), (0, *range(2, input.ndim)), eps)
    else:
        out = _normalize_with_stats(input, running_mean, running_var, eps)
    return to_dtype(_affine(out, weight, bias, _channel_shape(input)), input.dtype)


def _running_average(running, batch_stat, momentum):
    """(1 - momentum) * running + momentum * batch_stat, as eager's kernels compute it."""
    return ew.add(ew.mul(batch_stat, momentum), ew.mul(running, 1 - momentum))


def _batch_norm_with_update(input, running_mean, running_var, weight=None, bias=None, training=False,
                            momentum=0.1, eps=1e-5):  # fmt: skip
    if training and input.numel() // max(input.shape[1], 1) == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    if not training or running_mean is None and running_var is None:
        return batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    out = batch_norm(input, None, None, weight, bias, True, momentum, eps)
    dims = (0, *range(2, input.ndim))
    x = _upcast(input)
    if running_mean is not None:
        _assign_in_place(running_mean, _running_average(running_mean, red.mean(x, dims), momentum))
    if running_var is not None:
        _assign_in_place(running_var, _running_average(running_var, red.var(x, dims, correction=1), momentum))
    return out


register_handler(F.batch_norm, _batch_norm_with_update)
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


# -- dropout, embedding, one_hot ------------------------------------------------------------------------
@torchsymbol(F.dropout, tags=("random",))
def dropout(input, p=0.5, training=True, inplace=False):
    if p < 0.0 or p > 1.0:
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
        raise NotImplementedError(
            "F.embedding with max_norm renormalizes rows of the weight in place, which thunder.jit does not support; "
            "renormalize the weight outside the jitted function, or pass max_norm=None"
        )
    if padding_idx is not None:
        if not -weight.shape[0] <= padding_idx < weight.shape[0]:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= weight.shape[0]
    return prims.embedding(input, weight, padding_idx)


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


# -- losses ---------------------------------------------------------------------------------------------
def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    return ("mean" if size_average else "sum") if reduce is None or reduce else "none"


def _reduce_loss(loss, reduction: str):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return red.sum(loss)
    if reduction == "mean":
        return red.mean(loss)
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _pointwise_loss(input, target, reduction, weight, fn, mean_over_weight=True):
    input, target = (to_dtype(x, input.dtype) for x in broadcast_tensors(input, target))
    loss = fn(ew.sub(input, target))
    if weight is None:
        return _reduce_loss(loss, reduction)
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError("Weights and input must have the same size.")
    loss = ew.mul(loss, weight)
    if reduction == "mean" and mean_over_weight:
        return ew.div(red.sum(loss), red.sum(weight))
    return _reduce_loss(loss, reduction)


@torchsymbol(F.mse_loss)
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _pointwise_loss(input, target, reduction, weight, lambda d: ew.mul(d, d))


@torchsymbol(F.l1_loss)
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _pointwise_loss(input, target, reduction, weight, ew.abs)


@torchsymbol(F.smooth_l1_loss)
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta == 0.0:
        return _pointwise_loss(input, target, reduction, None, ew.abs)

    def fn(d):
        z = ew.abs(d)
        return ew.where(ew.lt(z, beta), ew.div(ew.mul(ew.mul(z, z), 0.5), beta), ew.sub(z, 0.5 * beta))

    return _pointwise_loss(input, target, reduction, None, fn)


@torchsymbol(F.huber_loss)
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    def fn(d):
        z = ew.abs(d)
        return ew.where(ew.lt(z, delta), ew.mul(ew.mul(z, z), 0.5), ew.mul(ew.sub(z, 0.5 * delta), delta))

    return _pointwise_loss(input, target, reduction, weight, fn, mean_over_weight=False)


def _class_dim(input) -> int:
    return 0 if input.ndim == 1 else 1


def _gather_classes(input, target, class_dim):
    """input[..., target, ...] along class_dim, with target of input's shape without that dim."""
    picked = prims.take_along_axis(input, shapes.unsqueeze(target, class_dim), class_dim)
    return shapes.squeeze(picked, class_dim)


def _class_weights(weight, target):
    """weight[target], shaped as target."""
    return shapes.reshape(prims.take(weight, shapes.flatten(target), 0), tuple(target.shape))


@torchsymbol(F.nll_loss)
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    class_dim = _class_dim(input)
    expected = tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1 :])
    if tuple(target.shape) != expected:
        raise ValueError(f"Expected target of shape {list(expected)}, got {list(target.shape)}")
    ignored = ew.eq(target, ignore_index)
    safe_target = ew.where(ignored, 0, target)  # a valid index where the entry is ignored
    weights = ew.where(ignored, 0, _class_weights(weight, safe_target)) if weight is not None else None
    picked = ew.neg(_gather_classes(input, safe_target, class_dim))
    loss = ew.where(ignored, 0, ew.mul(picked, weights) if weights is not None else picked)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return red.sum(loss)
    if reduction != "mean":
        raise ValueError(f"{reduction} is not a valid value for reduction")
    total = red.sum(weights) if weights is not None else red.sum(to_dtype(ew.logical_not(ignored), input.dtype))
    return ew.div(red.sum(loss), total)


def _weight_along(weight, input, class_dim):
    shape = [1] * input.ndim
    shape[class_dim] = weight.shape[0]
    return shapes.reshape(weight, tuple(shape))


def _smoothing_term(logp, target, weight, ignore_index, reduction, class_dim):
    """The label-smoothing part of cross entropy for class-index targets (as eager computes it)."""
    weighted = ew.mul(logp, _weight_along(weight, logp, class_dim)) if weight is not None else logp
    ignored = ew.eq(target, ignore_index)
    smooth = ew.where(ignored, 0, ew.neg(red.sum(weighted, class_dim)))
    if reduction != "mean":
        return _reduce_loss(smooth, reduction)
    if weight is not None:
        total = red.sum(ew.where(ignored, 0, _class_weights(weight, ew.where(ignored, 0, target))))
    else:
        total = red.sum(to_dtype(ew.logical_not(ignored), logp.dtype))
    return ew.div(red.sum(smooth), total)


@torchsymbol(F.cross_entropy)
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):  # fmt: skip
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    class_dim = _class_dim(input)
    n_classes = input.shape[class_dim]
    logp = log_softmax(input, class_dim)
    if target.dtype.is_floating_point:  # class probabilities
        if label_smoothing > 0:
            target = ew.add(ew.mul(target, 1 - label_smoothing), label_smoothing / n_classes)
        product = ew.mul(logp, target)
        if weight is not None:
            product = ew.mul(product, _weight_along(weight, input, class_dim))
        if reduction == "mean":
            return ew.neg(ew.div(red.sum(product), input.numel() // max(n_classes, 1)))
        return ew.neg(_reduce_loss(red.sum(product, class_dim), reduction))
    loss = nll_loss(logp, target, weight, None, ignore_index, None, reduction)
    if label_smoothing == 0:
        return loss
    smooth = _smoothing_term(logp, target, weight, ignore_index, reduction, class_dim)
    return ew.add(ew.mul(loss, 1 - label_smoothing), ew.mul(smooth, label_smoothing / n_classes))


@torchsymbol(F.binary_cross_entropy)
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.shape}) that is different to the input size ({input.shape}) "
                         "is deprecated. Please ensure they have the same size.")  # fmt: skip
    # eager's kernel: (t - 1) * max(log1p(-x), -100) - t * max(log(x), -100); the clamp keeps log(0) finite
    log_x = ew.maximum(ew.log(input), -100)
    log_1mx = ew.maximum(ew.log1p(ew.neg(input)), -100)
    loss = ew.sub(ew.mul(ew.sub(target, 1), log_1mx), ew.mul(target, log_x))
    if weight is not None:
        loss = ew.mul(loss, weight)
    return _reduce_loss(loss, reduction)


@torchsymbol(F.binary_cross_entropy_with_logits)
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):  # fmt: skip
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    log_sigmoid = logsigmoid(input)
    if pos_weight is not None:
        log_sigmoid = ew.mul(log_sigmoid, ew.add(ew.mul(ew.sub(pos_weight, 1), target), 1))
    loss = ew.sub(ew.mul(ew.sub(1, target), input), log_sigmoid)
    if weight is not None:
        loss = ew.mul(loss, weight)
    return _reduce_loss(loss, reduction)


@torchsymbol(F.kl_div)
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if log_target:
        loss = ew.mul(ew.exp(target), ew.sub(target, input))
    else:
        loss = ew.sub(ew.xlogy(target, target), ew.mul(target, input))
    if reduction == "batchmean":
        total = red.sum(loss)
        return ew.div(total, input.shape[0]) if input.ndim else total
    return _reduce_loss(loss, reduction)


@torchsymbol(F.cosine_similarity)
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    x1, x2 = broadcast_tensors(x1, x2)
    dtype = x1.dtype
    x1, x2 = _upcast(x1), _upcast(x2)
    # each operand divided by its (clamped) norm first, as eager does, keeps the result within [-1, 1]
    n1, n2 = (ew.clamp(red.norm(x, 2, dim, True), min=eps) for x in (x1, x2))
    return to_dtype(red.sum(ew.mul(ew.div(x1, n1), ew.div(x2, n2)), dim), dtype)


@torchsymbol(F.normalize)
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    if out is not None:
        raise NotImplementedError("F.normalize(out=...) is not supported inside thunder.jit; use the returned tensor")
    norm = ew.clamp(red.norm(_upcast(input), p, dim, True), min=eps)
    return to_dtype(ew.div(_upcast(input), norm), input.dtype)


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
        end = ew.minimum(ew.add(start, k), length + p)
        if not count_include_pad:
            start, end = ew.maximum(start, 0), ew.minimum(end, length)
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
