"""The `apex` executor: the Thunder operations it claims, the operators that run them, and their gradients.

Claimed (when their checker, in `checkers.py`, accepts a call): `layer_norm`, `rms_norm` (any trailing
`normalized_shape`) and `cross_entropy` ([N, C] logits, class indices). Each runs as a forward operator
that also returns what Apex's backward reads (a row's mean and inverse standard deviation, a row's
log-sum-exp), and its grad transform pairs it with a backward operator. Apex's cross-entropy returns float32
per-row losses; the reduction (mean over the rows not ignored, or sum) and the cast to the logits' dtype are
recorded as ordinary operations around it, so that they match `torch.nn.functional.cross_entropy`.
"""

from __future__ import annotations

import torch

import thunder.torch as ltorch
from thunder.extend import OperatorExecutor, TensorProxy, get_grad, put_grad
from thunder.extend.checks import normalized_dims
from thunder_apex import __version__, checkers, kernels

ex = OperatorExecutor("apex", version=__version__)


def _like(t, dtype=None, shape=None) -> TensorProxy:
    """A contiguous proxy of t's device, and of t's shape and dtype unless given."""
    return TensorProxy(shape=tuple(t.shape if shape is None else shape), dtype=dtype or t.dtype, device=t.device)


def _row_stats(x, normalized_shape) -> TensorProxy:
    # float32 statistics for half inputs, the input's dtype otherwise (Apex's rule)
    rows = x.numel() // max(1, _numel(normalized_dims(normalized_shape)))
    dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    return _like(x, dtype, (rows,))


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _params_like(*params) -> tuple:
    return tuple(_like(p) for p in params if p is not None)


# -- LayerNorm ----------------------------------------------------------------------------------------------

layer_norm_fwd = ex.register_operator(
    "layer_norm_fwd",
    meta=lambda x, shape, weight, bias, eps: (_like(x), _row_stats(x, shape), _row_stats(x, shape)),
    fn=kernels.layer_norm_forward,
)
layer_norm_bwd = ex.register_operator(
    "layer_norm_bwd",
    meta=lambda dy, x, shape, weight, bias, mean, invvar, eps: (_like(x), *_params_like(weight, bias)),
    fn=kernels.layer_norm_backward,
)


def _layer_norm_exec(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = normalized_dims(normalized_shape)
    return layer_norm_fwd(input, shape, weight, bias, float(eps))[0]


def _layer_norm_grad(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    shape = normalized_dims(normalized_shape)
    out, mean, invvar = layer_norm_fwd(input, shape, weight, bias, float(eps))
    grads = layer_norm_bwd(get_grad(out), input, shape, weight, bias, mean, invvar, float(eps))
    for tensor, grad in zip((t for t in (input, weight, bias) if t is not None), grads):
        put_grad(tensor, grad)
    return out


ex.register_implementation(ltorch.layer_norm, checker=checkers.layer_norm_checker,
                           execution_transform=_layer_norm_exec, grad_transform=_layer_norm_grad)  # fmt: skip


# -- RMSNorm ------------------------------------------------------------------------------------------------


def _rms_eps(eps) -> float:
    # torch's default: the machine epsilon of the computation dtype, float32 for every dtype claimed here
    return torch.finfo(torch.float32).eps if eps is None else float(eps)


rms_norm_fwd = ex.register_operator(
    "rms_norm_fwd", meta=lambda x, shape, weight, eps: (_like(x), _row_stats(x, shape)), fn=kernels.rms_norm_forward
)
rms_norm_bwd = ex.register_operator(
    "rms_norm_bwd", meta=lambda dy, x, shape, weight, invvar, eps: (_like(x), *_params_like(weight)),
    fn=kernels.rms_norm_backward,
)


def _rms_norm_exec(input, normalized_shape, weight=None, eps=None):
    return rms_norm_fwd(input, normalized_dims(normalized_shape), weight, _rms_eps(eps))[0]


def _rms_norm_grad(input, normalized_shape, weight=None, eps=None):
    shape, eps = normalized_dims(normalized_shape), _rms_eps(eps)
    out, invvar = rms_norm_fwd(input, shape, weight, eps)
    grads = rms_norm_bwd(get_grad(out), input, shape, weight, invvar, eps)
    put_grad(input, grads[0])
    if weight is not None:
        put_grad(weight, grads[1])
    return out


ex.register_implementation(ltorch.rms_norm, checker=checkers.rms_norm_checker, execution_transform=_rms_norm_exec,
                           grad_transform=_rms_norm_grad)  # fmt: skip


# -- softmax cross-entropy ----------------------------------------------------------------------------------


def _cross_entropy_fwd_meta(logits, target, smoothing, ignore_index):
    rows = (logits.shape[0],)
    lse_dtype = torch.float32 if kernels.keeps_float_statistics(logits.dtype) else logits.dtype
    return _like(logits, torch.float32, rows), _like(logits, lse_dtype, rows)


cross_entropy_fwd = ex.register_operator("cross_entropy_fwd", meta=_cross_entropy_fwd_meta,
                                         fn=kernels.cross_entropy_forward)  # fmt: skip
cross_entropy_bwd = ex.register_operator(
    "cross_entropy_bwd", meta=lambda grad_losses, logits, lse, target, smoothing, ignore_index: _like(logits),
    fn=kernels.cross_entropy_backward,
)


def _reduced(losses, logits, target, ignore_index, reduction):
    """The per-row float32 losses reduced as torch reduces them, in the logits' dtype."""
    if reduction == "sum":
        losses = losses.sum()
    elif reduction == "mean":
        losses = losses.sum() / (target != ignore_index).sum()
    return losses.to(logits.dtype)


def _cross_entropy_exec(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                        reduction="mean", label_smoothing=0.0):  # fmt: skip
    losses, _ = cross_entropy_fwd(input, target, float(label_smoothing), ignore_index)
    return _reduced(losses, input, target, ignore_index, reduction)


def _cross_entropy_grad(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                        reduction="mean", label_smoothing=0.0):  # fmt: skip
    losses, lse = cross_entropy_fwd(input, target, float(label_smoothing), ignore_index)
    loss = _reduced(losses, input, target, ignore_index, reduction)
    grad = get_grad(loss).float()
    if reduction == "mean":
        grad = grad / (target != ignore_index).sum()
    grad_losses = grad if reduction == "none" else grad.expand(input.shape[0])
    put_grad(input, cross_entropy_bwd(grad_losses, input, lse, target, float(label_smoothing), ignore_index))
    return loss


ex.register_implementation(ltorch.cross_entropy, checker=checkers.cross_entropy_checker,
                           execution_transform=_cross_entropy_exec, grad_transform=_cross_entropy_grad)  # fmt: skip
