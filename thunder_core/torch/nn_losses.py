"""Losses (`F.mse_loss`, `F.cross_entropy`, ...) and distances (`F.cosine_similarity`), decomposed into prims
and other `thunder.torch` operations. The legacy `size_average`/`reduce` flags are folded into `reduction` as
torch does; low-precision inputs follow `thunder.torch.nn`'s rule (computed in float32, rounded once).
"""

from __future__ import annotations

import torch.nn.functional as F

from thunder import prims
from thunder.core.dtypes import computation_dtype
from thunder.torch import elementwise as ew
from thunder.torch import reductions as red
from thunder.torch import shapes
from thunder.torch.base import broadcast_tensors, number_in, to_dtype, torchsymbol
from thunder.torch.nn import _upcast, log_softmax, logsigmoid

__all__ = [
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div", "cosine_similarity",
]  # fmt: skip


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


def _pointwise_loss(input, target, reduction, weight, fn, mean_over_weight=True, in_input_dtype=False):
    """fn(input - target), weighted and reduced. The difference promotes as eager's l1 / mse / smooth_l1 losses do
    (a complex64 input and a float64 target give complex128); `in_input_dtype` (huber) computes in the input's
    dtype instead."""
    input, target = broadcast_tensors(input, target)
    if in_input_dtype:  # and in float32 for float16 / bfloat16 inputs, rounded once, as eager's huber kernel
        dtype = input.dtype
        input, target = (to_dtype(x, computation_dtype(dtype)) for x in (input, target))
        loss = to_dtype(fn(ew.sub(input, target)), dtype)
    else:
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
    if not beta >= 0:  # NaN too, as eager's check (a number proxy: the comparison guards its outcome)
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0.0:
        return _pointwise_loss(input, target, reduction, None, ew.abs)

    def fn(d):
        z = ew.abs(d)
        return ew.where(ew.lt(z, beta), ew.div(ew.mul(ew.mul(z, z), 0.5), beta), ew.sub(z, 0.5 * beta))

    return _pointwise_loss(input, target, reduction, None, fn)


@torchsymbol(F.huber_loss)
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    if not delta > 0:  # a number proxy: guards the outcome
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    delta = number_in(delta, input.dtype)  # as eager's kernel, which computes in the input's dtype

    def fn(d):
        z = ew.abs(d)
        return ew.where(ew.lt(z, delta), ew.mul(ew.mul(z, z), 0.5), ew.mul(ew.sub(z, 0.5 * delta), delta))

    return _pointwise_loss(input, target, reduction, weight, fn, mean_over_weight=False, in_input_dtype=True)


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
    # eager's kernel: (t - 1) * max(log1p(-x), -100) - t * max(log(x), -100); the clamp keeps log(0) finite.
    # The gradient to x is eager's too, (x - t) / max(x (1 - x), 1e-12), which is not the clamped forward's
    # derivative where x is 0 or 1 (that would be 0 * inf): the loss is computed from a detached x, and
    # (x - detach(x)) * detach(gradient), which is 0, carries the gradient. (Eager's gradient to the target
    # there, log1p(-x) - log(x), is infinite; this gives the clamped logs' finite difference.)
    x = shapes.detach(input)
    log_x = ew.clamp(ew.log(x), min=-100)
    log_1mx = ew.clamp(ew.log1p(ew.neg(x)), min=-100)
    loss = ew.sub(ew.mul(ew.sub(target, 1), log_1mx), ew.mul(target, log_x))
    grad = ew.div(ew.sub(x, target), ew.clamp(ew.mul(x, ew.sub(1, x)), min=1e-12))
    loss = ew.add(loss, ew.mul(ew.sub(input, x), shapes.detach(grad)))
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



# -- distances ----------------------------------------------------------------------------------------------
@torchsymbol(F.cosine_similarity)
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    if not eps >= 0:  # NaN too, as eager's check
        raise RuntimeError(f"eps must be non-negative, got: {eps}")
    x1, x2 = broadcast_tensors(x1, x2)
    dtype = x1.dtype
    x1, x2 = _upcast(x1), _upcast(x2)
    # each operand divided by its (clamped) norm first, as eager does, keeps the result within [-1, 1]
    n1, n2 = (ew.clamp(red.norm(x, 2, dim, True), min=eps) for x in (x1, x2))
    return to_dtype(red.sum(ew.mul(ew.div(x1, n1), ew.div(x2, n2)), dim), dtype)
