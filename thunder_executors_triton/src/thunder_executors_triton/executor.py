"""The `triton` executor: its operators, the Thunder operations it claims, and their gradients.

Claimed existing operations (when their checker, in `checkers.py`, accepts a call): `cross_entropy`,
`softmax`, `log_softmax` (last dimension), `rms_norm`, `layer_norm` (last dimension). Each runs as a forward
operator that also returns what its backward needs (a row's log-sum-exp, a row's mean and reciprocal
standard deviation), and its grad transform pairs it with a backward operator.

New operators, callable in jitted code (and made from `linear` + `cross_entropy` and `silu(a) * b` by the
rewrites in `rewrites.py`): `linear_cross_entropy`, `swiglu`, `apply_rotary_emb`. They are registered
`like=` a reference written with torch operations, so they are differentiable through the reference when
their own grad transform does not apply, and their implementations fall back to that reference (with one
warning) on tensors the kernels cannot take.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F

import thunder.torch as ltorch
from thunder.core.proxies import TensorProxy
from thunder.core.transforms import get_grad, put_grad
from thunder.extend import BEFORE_AUTODIFF, OperatorExecutor
from thunder_executors_triton import __version__, checkers
from thunder_executors_triton.kernels import cross_entropy as ce_kernels
from thunder_executors_triton.kernels import norms, rotary, softmax, swiglu
from thunder_executors_triton.rewrites import fuse_linear_cross_entropy, fuse_swiglu

ex = OperatorExecutor("triton", version=__version__)

_warned: set[str] = set()


def _fall_back_once(op: str, why: str) -> None:
    if op not in _warned:
        _warned.add(op)
        warnings.warn(f"triton executor: {op} runs its PyTorch reference instead of the Triton kernel: {why}",
                      stacklevel=3)  # fmt: skip


def _on_contiguous(fn):
    """fn called with its tensor arguments made contiguous, on the device of its first CUDA tensor (Triton
    launches on the current device). A proxy of a view in a trace may not know its strides, so the checkers'
    layout test is a hint: the real tensors are laid out here (a no-op when they already are)."""

    def run(*args, **kwargs):
        args = tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)
        device = next((a.device for a in args if isinstance(a, torch.Tensor) and a.is_cuda), None)
        with torch.cuda.device(device) if device is not None else contextlib.nullcontext():
            return fn(*args, **kwargs)

    run.__name__ = getattr(fn, "__name__", "run")
    return run


def _float_proxy(shape, like) -> TensorProxy:
    return TensorProxy(shape=tuple(shape), dtype=torch.float32, device=like.device)


def _fresh_like(t) -> TensorProxy:
    """A contiguous proxy of t's shape, dtype and device (what the kernels' torch.empty_like returns)."""
    return TensorProxy(shape=tuple(t.shape), dtype=t.dtype, device=t.device)


# -- cross-entropy -----------------------------------------------------------------------------------------


def _cross_entropy_fwd_meta(logits, target, ignore_index, label_smoothing, reduction):
    loss_shape = (logits.shape[0],) if reduction == "none" else ()
    loss = TensorProxy(shape=loss_shape, dtype=logits.dtype, device=logits.device)
    return loss, _float_proxy((logits.shape[0],), logits)


def _cross_entropy_fwd_impl(logits, target, ignore_index, label_smoothing, reduction):
    return ce_kernels.cross_entropy_forward(logits, target, ignore_index=ignore_index,
                                            label_smoothing=label_smoothing, reduction=reduction)  # fmt: skip


def _cross_entropy_bwd_impl(grad, logits, target, lse, ignore_index, label_smoothing, reduction):
    return ce_kernels.cross_entropy_backward(grad, logits, target, lse, ignore_index=ignore_index,
                                             label_smoothing=label_smoothing, reduction=reduction)  # fmt: skip


cross_entropy_fwd = ex.register_operator("cross_entropy_fwd", meta=_cross_entropy_fwd_meta,
                                         fn=_on_contiguous(_cross_entropy_fwd_impl))  # fmt: skip
cross_entropy_bwd = ex.register_operator("cross_entropy_bwd", meta=lambda grad, logits, *rest: _fresh_like(logits),
                                         fn=_on_contiguous(_cross_entropy_bwd_impl))  # fmt: skip


def _cross_entropy_exec(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                        reduction="mean", label_smoothing=0.0):  # fmt: skip
    loss, _ = cross_entropy_fwd(input, target, ignore_index, label_smoothing, reduction)
    return loss


def _cross_entropy_grad(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                        reduction="mean", label_smoothing=0.0):  # fmt: skip
    loss, lse = cross_entropy_fwd(input, target, ignore_index, label_smoothing, reduction)
    grad = get_grad(loss)
    put_grad(input, cross_entropy_bwd(grad, input, target, lse, ignore_index, label_smoothing, reduction))
    return loss


ex.register_implementation(ltorch.cross_entropy, checker=checkers.cross_entropy_checker,
                           execution_transform=_cross_entropy_exec, grad_transform=_cross_entropy_grad)  # fmt: skip


# -- linear + cross-entropy --------------------------------------------------------------------------------


def linear_cross_entropy_reference(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0,
                                   reduction="mean"):  # fmt: skip
    """What `linear_cross_entropy` computes, with the logits materialized."""
    return F.cross_entropy(F.linear(x, weight, bias), target, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)  # fmt: skip


def _linear_cross_entropy_impl(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    if not checkers.linear_cross_entropy_checker(x, weight, bias, target, ignore_index, label_smoothing, reduction):
        _fall_back_once("linear_cross_entropy", "its tensors are not what the kernel takes (see checkers.py)")
        return linear_cross_entropy_reference(x, weight, bias, target, ignore_index, label_smoothing, reduction)
    return ce_kernels.linear_cross_entropy(x, weight, bias, target, ignore_index=ignore_index,
                                           label_smoothing=label_smoothing, reduction=reduction)  # fmt: skip


def _linear_cross_entropy_with_grads_impl(x, weight, bias, target, ignore_index, label_smoothing, reduction):
    return ce_kernels.linear_cross_entropy(x, weight, bias, target, ignore_index=ignore_index,
                                           label_smoothing=label_smoothing, reduction=reduction,
                                           with_grads=True)  # fmt: skip


def _linear_cross_entropy_with_grads_meta(x, weight, bias, target, ignore_index, label_smoothing, reduction):
    loss = TensorProxy(shape=(), dtype=x.dtype, device=x.device)
    grad_bias = TensorProxy(shape=(weight.shape[0],), dtype=weight.dtype, device=weight.device)
    return loss, _fresh_like(x), _fresh_like(weight), grad_bias


#: ``cross_entropy(linear(x, weight, bias), target, ...)`` for x [N, H], chunked over tokens: the [N, V]
#: logits are never materialized.
linear_cross_entropy = ex.register_operator("linear_cross_entropy", like=linear_cross_entropy_reference,
                                            fn=_on_contiguous(_linear_cross_entropy_impl))  # fmt: skip
linear_cross_entropy_with_grads = ex.register_operator(
    "linear_cross_entropy_with_grads", meta=_linear_cross_entropy_with_grads_meta,
    fn=_on_contiguous(_linear_cross_entropy_with_grads_impl),
)  # fmt: skip


def _linear_cross_entropy_grad(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    # The gradients are computed with the forward, chunk by chunk, while each chunk's logits exist; the
    # incoming gradient of the (scalar) loss only scales them.
    loss, grad_x, grad_w, grad_b = linear_cross_entropy_with_grads(x, weight, bias, target, ignore_index,
                                                                   label_smoothing, reduction)  # fmt: skip
    grad = get_grad(loss)
    put_grad(x, grad_x * grad)
    put_grad(weight, grad_w * grad)
    if bias is not None:
        put_grad(bias, grad_b * grad)
    return loss


ex.register_implementation(linear_cross_entropy, checker=checkers.linear_cross_entropy_checker,
                           grad_transform=_linear_cross_entropy_grad,
                           grad_checker=checkers.linear_cross_entropy_grad_checker)  # fmt: skip


# -- softmax and log-softmax -------------------------------------------------------------------------------


def _register_softmax(symbol, log: bool) -> None:
    name = "log_softmax" if log else "softmax"
    fwd = ex.register_operator(f"{name}_fwd", meta=_fresh_like,
                               fn=_on_contiguous(lambda x: softmax.softmax_forward(x, log=log)))  # fmt: skip
    bwd = ex.register_operator(f"{name}_bwd", meta=lambda dy, y: _fresh_like(y),
                               fn=_on_contiguous(lambda dy, y: softmax.softmax_backward(dy, y, log=log)))  # fmt: skip

    def execution(input, dim=None, _stacklevel=3, dtype=None):
        return fwd(input)

    def grad_rule(input, dim=None, _stacklevel=3, dtype=None):
        out = fwd(input)
        put_grad(input, bwd(get_grad(out), out))
        return out

    ex.register_implementation(symbol, checker=checkers.softmax_checker, execution_transform=execution,
                               grad_transform=grad_rule)  # fmt: skip


_register_softmax(ltorch.softmax, log=False)
_register_softmax(ltorch.log_softmax, log=True)


# -- RMSNorm and LayerNorm ---------------------------------------------------------------------------------


def _rms_eps(eps):
    # torch's default: the machine epsilon of the computation dtype (float32 for every dtype claimed here)
    return torch.finfo(torch.float32).eps if eps is None else float(eps)


rms_norm_fwd = ex.register_operator(
    "rms_norm_fwd", meta=lambda x, weight, eps: (_fresh_like(x), _float_proxy((x.numel() // x.shape[-1],), x)),
    fn=_on_contiguous(norms.rms_norm_forward),
)  # fmt: skip
rms_norm_bwd = ex.register_operator(
    "rms_norm_bwd", meta=lambda dy, x, weight, rstd: tuple(_fresh_like(t) for t in (x, weight) if t is not None),
    fn=_on_contiguous(lambda dy, x, weight, rstd: tuple(t for t in norms.rms_norm_backward(dy, x, weight, rstd)
                                                        if t is not None)),
)  # fmt: skip


def _rms_norm_exec(input, normalized_shape, weight=None, eps=None):
    return rms_norm_fwd(input, weight, _rms_eps(eps))[0]


def _rms_norm_grad(input, normalized_shape, weight=None, eps=None):
    out, rstd = rms_norm_fwd(input, weight, _rms_eps(eps))
    grads = rms_norm_bwd(get_grad(out), input, weight, rstd)
    put_grad(input, grads[0])
    if weight is not None:
        put_grad(weight, grads[1])
    return out


ex.register_implementation(ltorch.rms_norm, checker=checkers.rms_norm_checker, execution_transform=_rms_norm_exec,
                           grad_transform=_rms_norm_grad)  # fmt: skip


def _layer_norm_fwd_meta(x, weight, bias, eps):
    rows = _float_proxy((x.numel() // x.shape[-1],), x)
    return _fresh_like(x), rows, _float_proxy(rows.shape, x)


def _layer_norm_bwd_meta(dy, x, weight, mean, rstd, has_bias):
    grads = [_fresh_like(x)]
    if weight is not None:
        grads.append(_fresh_like(weight))
    if has_bias:
        grads.append(TensorProxy(shape=(x.shape[-1],), dtype=x.dtype, device=x.device))
    return tuple(grads)


def _layer_norm_bwd_impl(dy, x, weight, mean, rstd, has_bias):
    return tuple(t for t in norms.layer_norm_backward(dy, x, weight, mean, rstd, has_bias) if t is not None)


layer_norm_fwd = ex.register_operator("layer_norm_fwd", meta=_layer_norm_fwd_meta,
                                      fn=_on_contiguous(norms.layer_norm_forward))  # fmt: skip
layer_norm_bwd = ex.register_operator("layer_norm_bwd", meta=_layer_norm_bwd_meta,
                                      fn=_on_contiguous(_layer_norm_bwd_impl))  # fmt: skip


def _layer_norm_exec(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return layer_norm_fwd(input, weight, bias, float(eps))[0]


def _layer_norm_grad(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    out, mean, rstd = layer_norm_fwd(input, weight, bias, float(eps))
    grads = list(layer_norm_bwd(get_grad(out), input, weight, mean, rstd, bias is not None))
    for param in (input, weight, bias):
        if param is not None:
            put_grad(param, grads.pop(0))
    return out


ex.register_implementation(ltorch.layer_norm, checker=checkers.layer_norm_checker,
                           execution_transform=_layer_norm_exec, grad_transform=_layer_norm_grad)  # fmt: skip


# -- rotary position embedding -----------------------------------------------------------------------------


def rotary_reference(x, cos, sin):
    """The half rotation of Llama and GPT-NeoX: ``x * cos + cat(-x2, x1) * sin`` with x = cat(x1, x2)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _apply_rotary_emb_impl(x, cos, sin):
    if not checkers.rotary_checker(x, cos, sin):
        _fall_back_once("apply_rotary_emb", "its tensors are not what the kernel takes (see checkers.py)")
        return rotary_reference(x, cos, sin)
    return rotary.rotary_forward(x, cos, sin)


#: Rotary position embedding of x [..., S, D] with cos, sin [S, D] (half rotation, as Llama and GPT-NeoX).
apply_rotary_emb = ex.register_operator("apply_rotary_emb", like=rotary_reference,
                                        fn=_on_contiguous(_apply_rotary_emb_impl))  # fmt: skip
rotary_bwd = ex.register_operator("rotary_bwd", meta=lambda dy, cos, sin: _fresh_like(dy),
                                  fn=_on_contiguous(rotary.rotary_backward))  # fmt: skip


def _sum_to_trig(t, trig):
    return t.reshape(-1, *trig.shape[-2:]).sum(0).reshape(trig.shape)


def _apply_rotary_emb_grad(x, cos, sin):
    out = apply_rotary_emb(x, cos, sin)
    grad = get_grad(out)
    put_grad(x, rotary_bwd(grad, cos, sin))
    # cos and sin seldom require grad (they are made from fixed frequencies); when they do, their gradients
    # are reductions over the leading dimensions, which autodiff drops when nothing needs them
    half = x.shape[-1] // 2
    put_grad(cos, _sum_to_trig(grad * x, cos))
    put_grad(sin, _sum_to_trig(grad * torch.cat((-x[..., half:], x[..., :half]), dim=-1), sin))
    return out


ex.register_implementation(apply_rotary_emb, checker=checkers.rotary_checker, grad_transform=_apply_rotary_emb_grad)


# -- SwiGLU ------------------------------------------------------------------------------------------------


def swiglu_reference(a, b):
    """SwiGLU's gating: ``silu(a) * b``."""
    return F.silu(a) * b


def _swiglu_impl(a, b):
    if not checkers.swiglu_checker(a, b):
        _fall_back_once("swiglu", "its tensors are not what the kernel takes (see checkers.py)")
        return swiglu_reference(a, b)
    return swiglu.swiglu_forward(a, b)


#: ``silu(a) * b`` in one kernel (and one in the backward).
swiglu_op = ex.register_operator("swiglu", like=swiglu_reference, fn=_on_contiguous(_swiglu_impl))
swiglu_bwd = ex.register_operator("swiglu_bwd", meta=lambda dy, a, b: (_fresh_like(a), _fresh_like(b)),
                                  fn=_on_contiguous(swiglu.swiglu_backward))  # fmt: skip


def _swiglu_grad(a, b):
    out = swiglu_op(a, b)
    grad_a, grad_b = swiglu_bwd(get_grad(out), a, b)
    put_grad(a, grad_a)
    put_grad(b, grad_b)
    return out


ex.register_implementation(swiglu_op, checker=checkers.swiglu_checker, grad_transform=_swiglu_grad)



# Pattern rewrites run before autodiff whenever `triton` is in the executor list, so that
# `cross_entropy(linear(x, w))` and `silu(a) * b` reach the fused operators above without the user's help.
ex.register_pass(lambda trace, context: fuse_linear_cross_entropy(trace), stage=BEFORE_AUTODIFF,
                 name="fuse linear + cross_entropy")  # fmt: skip
ex.register_pass(lambda trace, context: fuse_swiglu(trace), stage=BEFORE_AUTODIFF, name="fuse silu(a) * b")
