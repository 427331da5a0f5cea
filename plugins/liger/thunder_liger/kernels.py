"""Liger's kernels on real tensors: the functions the `liger` executor's operators run.

Each wraps Liger's functional forward/backward helpers (`liger_kernel.ops.*`), imported on first call. Two
properties of those helpers shape the wrappers:

* Several kernels write into their arguments: the SwiGLU/GeGLU backwards store the gradients in the saved
  inputs, RoPE rotates its inputs in place, cross-entropy overwrites the logits (with their gradient, or with
  zeros on ignored rows). In a Thunder program those tensors may be read again (a saved activation, a
  cotangent shared by two branches, the user's own tensor), so the wrappers hand the kernels fresh copies.
* Liger launches on the current CUDA device; the wrappers make the input's device current.

Everything runs under `torch.no_grad()`: Liger's helpers consult `requires_grad` and grad mode to decide
whether to compute gradients, which here is the operator's decision, not the caller's.
"""

from __future__ import annotations

import contextlib
import functools

import torch

#: Liger's casting mode that matches torch.nn.functional.rms_norm: the whole row in float32, one rounding.
_RMS_CASTING_MODE = "gemma"


def on_input_device(fn):
    """fn under no_grad, with the device of its first CUDA tensor argument current."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        device = next((a.device for a in args if isinstance(a, torch.Tensor) and a.is_cuda), None)
        with torch.no_grad(), (torch.cuda.device(device) if device is not None
                                 else contextlib.nullcontext()):
            return fn(*args, **kwargs)

    return run


def _fresh(t: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of t that no one else holds (a kernel may write into it)."""
    return t.detach().clone(memory_format=torch.contiguous_format)


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(-1, t.shape[-1])


# -- RMSNorm and LayerNorm ----------------------------------------------------------------------------------


@on_input_device
def rms_norm_forward(x, weight, eps):
    """(y, rstd): y = x / rms(x) * weight over the last dimension, rstd the float32 1/rms of each row."""
    from liger_kernel.ops.rms_norm import rms_norm_forward as liger_forward

    y, _, rstd, _, _, _ = liger_forward(x.contiguous(), None if weight is None else weight.contiguous(), eps, 0.0,
                                        _RMS_CASTING_MODE, None)  # fmt: skip
    return y, rstd


@on_input_device
def rms_norm_backward(dy, x, weight, rstd):
    """(dx,) or (dx, dweight), from the forward's input and rstd."""
    from liger_kernel.ops.rms_norm import _str_to_casting_mode
    from liger_kernel.ops.rms_norm import rms_norm_backward as liger_backward
    from liger_kernel.ops.utils import calculate_settings

    block, warps = calculate_settings(x.shape[-1])
    # in_place=False: dy is a cotangent other operations of the backward may read
    dx, dw = liger_backward(dy.contiguous(), _rows(x), None if weight is None else weight.contiguous(), rstd, 0.0,
                            _str_to_casting_mode[_RMS_CASTING_MODE], block, warps, False, None,
                            needs_dw=weight is not None)  # fmt: skip
    return (dx,) if weight is None else (dx, dw)


@on_input_device
def layer_norm_forward(x, weight, bias, eps):
    """(y, mean, rstd), the statistics in float32, one per row."""
    from liger_kernel.ops.layer_norm import layer_norm_forward as liger_forward

    y, _, mean, rstd, _, _ = liger_forward(x.contiguous(), weight.contiguous(), bias.contiguous(), eps)
    return y, mean, rstd


@on_input_device
def layer_norm_backward(dy, x, weight, bias, mean, rstd):
    """(dx, dweight, dbias)."""
    from liger_kernel.ops.layer_norm import layer_norm_backward as liger_backward

    return tuple(liger_backward(dy.contiguous(), _rows(x), weight.contiguous(), bias.contiguous(), mean, rstd,
                                needs_dw=True, needs_db=True))  # fmt: skip


# -- SwiGLU and GeGLU ---------------------------------------------------------------------------------------


@on_input_device
def swiglu_forward(a, b):
    from liger_kernel.ops.swiglu import swiglu_forward as liger_forward

    return liger_forward(a.contiguous(), b.contiguous())[2]


@on_input_device
def swiglu_backward(dc, a, b):
    """(da, db). Liger stores them in its a and b arguments: it gets copies."""
    from liger_kernel.ops.swiglu import swiglu_backward as liger_backward

    return tuple(liger_backward(_fresh(a), _fresh(b), dc.contiguous()))


@on_input_device
def geglu_forward(a, b):
    from liger_kernel.ops.geglu import geglu_forward as liger_forward

    return liger_forward(a.contiguous(), b.contiguous())[2]


@on_input_device
def geglu_backward(dc, a, b):
    """(da, db). Liger stores them in its a and b arguments: it gets copies."""
    from liger_kernel.ops.geglu import geglu_backward as liger_backward

    return tuple(liger_backward(_fresh(a), _fresh(b), dc.contiguous()))


# -- rotary position embedding ------------------------------------------------------------------------------


def _trig_rows(t: torch.Tensor) -> torch.Tensor:
    """cos or sin as Liger reads it: [1 or B, S, D], contiguous (see checkers.rope_checker for the shapes)."""
    if t.ndim == 4:
        t = t.squeeze(1)
    elif t.ndim == 2:
        t = t.unsqueeze(0)
    return t.contiguous()


def _rope(x, cos, sin, backward: bool):
    """Liger's kernel rotates a query and a key tensor in place, in [B, S, H, D] memory: x goes in as a fresh
    buffer of that layout, the key as a one-head scratch tensor (the kernel has no single-tensor form)."""
    from liger_kernel.ops.rope import rope_backward, rope_forward

    batch, _, seq_len, dim = x.shape
    rotated = x.transpose(1, 2).clone(memory_format=torch.contiguous_format).transpose(1, 2)
    scratch = torch.empty((batch, seq_len, 1, dim), dtype=x.dtype, device=x.device).transpose(1, 2)
    run = rope_backward if backward else rope_forward
    return run(rotated, scratch, _trig_rows(cos), _trig_rows(sin))[0]


@on_input_device
def rope_forward(x, cos, sin):
    """x * cos + rotate_half(x) * sin, for cos and sin whose two halves are equal (Liger reads the first).

    The result is laid out as eager's would be: like x where x is a [B, S, H, D] tensor seen as [B, H, S, D]
    (a projection's output, transposed: no copy), contiguous where x is (one copy: a later `view` may rely
    on it)."""
    rotated = _rope(x, cos, sin, backward=False)
    return rotated.contiguous() if x.is_contiguous() else rotated


@on_input_device
def rope_backward(dy, cos, sin):
    """The gradient of rope_forward with respect to x: the rotation by the opposite angle."""
    return _rope(dy, cos, sin, backward=True)


# -- cross-entropy ------------------------------------------------------------------------------------------


def _cross_entropy(logits, target, ignore_index, label_smoothing, reduction, with_grad: bool):
    from liger_kernel.ops.cross_entropy import cross_entropy_forward

    # The kernel overwrites its logits argument (with their gradient, and with zeros on ignored rows).
    work = _fresh(logits).requires_grad_(with_grad)
    loss, _, _, _, grad = cross_entropy_forward(work, target.contiguous(), None, ignore_index, 0.0, label_smoothing,
                                                reduction, None, False)  # fmt: skip
    return loss, grad.detach()


@on_input_device
def cross_entropy_forward(logits, target, ignore_index, label_smoothing, reduction):
    return _cross_entropy(logits, target, ignore_index, label_smoothing, reduction, with_grad=False)[0]


@on_input_device
def cross_entropy_forward_with_grad(logits, target, ignore_index, label_smoothing, reduction):
    """(loss, dloss/dlogits): Liger computes the gradient in the forward, for an incoming gradient of 1."""
    return _cross_entropy(logits, target, ignore_index, label_smoothing, reduction, with_grad=True)


# -- linear + cross-entropy ---------------------------------------------------------------------------------


def _fused_linear_cross_entropy(x, weight, bias, target, ignore_index, label_smoothing, reduction, with_grads):
    from liger_kernel.ops.fused_linear_cross_entropy import fused_linear_cross_entropy_forward

    loss, _, _, _, grad_x, grad_weight, grad_bias = fused_linear_cross_entropy_forward(
        _rows(x), weight.contiguous(), target.contiguous(), bias=None if bias is None else bias.contiguous(),
        ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction,
        # float32 accumulation of the weight's gradient over token chunks (Liger's default is weight's dtype)
        accum_dtype=torch.float32 if with_grads else None, compute_gradients=with_grads,
        weight_requires_grad=with_grads,
    )  # fmt: skip
    loss = loss.to(x.dtype)  # Liger accumulates the loss in float32; cross_entropy returns the logits' dtype
    if not with_grads:
        return loss
    grads = (grad_x.view(x.shape), grad_weight) + (() if bias is None else (grad_bias,))
    return (loss, *grads)


@on_input_device
def fused_linear_cross_entropy_forward(x, weight, bias, target, ignore_index, label_smoothing, reduction):
    return _fused_linear_cross_entropy(x, weight, bias, target, ignore_index, label_smoothing, reduction, False)


@on_input_device
def fused_linear_cross_entropy_with_grads(x, weight, bias, target, ignore_index, label_smoothing, reduction):
    """(loss, dx, dweight[, dbias]) for an incoming gradient of 1, chunk by chunk over the tokens."""
    return _fused_linear_cross_entropy(x, weight, bias, target, ignore_index, label_smoothing, reduction, True)
