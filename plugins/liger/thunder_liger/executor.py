"""The `liger` executor: its operators, the Thunder operations it claims, their gradients and its passes.

Claimed existing operations (when their checker, in `checkers.py`, accepts a call): `rms_norm`,
`layer_norm` (last dimension) and `cross_entropy` ([N, C] logits, class indices). Each runs as a forward
operator that also returns what Liger's backward reads (a row's rstd, a row's mean and rstd, the logits'
gradient), and its grad transform pairs it with a backward operator.

New operators, callable in jitted code and made by the executor's passes (`patterns.py`) from the patterns
they fuse: `swiglu` (`silu(a) * b`), `geglu` (`gelu(a, approximate="tanh") * b`), `rope`
(`x * cos + rotate_half(x) * sin`) and `fused_linear_cross_entropy` (`cross_entropy(linear(x, w, b), t)`).
They are registered `like=` a reference written with torch operations, so they are differentiable through
it where their grad transform does not apply, and they run that reference (with one warning) on tensors
Liger cannot take.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

import thunder.torch as ltorch
from thunder.extend import BEFORE_AUTODIFF, ExecutorOption, OperatorExecutor, TensorProxy, get_grad, put_grad
from thunder_liger import __version__, checkers, kernels, patterns

OPTIONS = [
    ExecutorOption("fuse_swiglu", bool, True, "rewrite silu(a) * b into Liger's SwiGLU"),
    ExecutorOption("fuse_geglu", bool, True, "rewrite gelu(a, approximate='tanh') * b into Liger's GeGLU"),
    ExecutorOption("fuse_rope", bool, True, "rewrite x * cos + rotate_half(x) * sin into Liger's RoPE"),
    ExecutorOption("fuse_linear_cross_entropy", bool, True,
                   "rewrite cross_entropy(linear(x, w)) into Liger's fused linear cross-entropy"),
    ExecutorOption("rope_cache_is_duplicated", bool, False,
                   "promise that every cos/sin of a rotary pattern is cat((f, f), -1)-shaped (e.g. a buffer), "
                   "so that RoPE is rewritten where the program cannot show it"),
]  # fmt: skip

ex = OperatorExecutor("liger", version=__version__, options=OPTIONS)

_warned: set[str] = set()


def _fall_back_once(op: str) -> None:
    if op not in _warned:
        _warned.add(op)
        warnings.warn(f"liger executor: {op} runs its PyTorch reference: Liger's kernels take float32, float16 or "
                      "bfloat16 CUDA tensors (see thunder_liger/checkers.py)", stacklevel=3)  # fmt: skip


def _like(t, dtype=None, shape=None) -> TensorProxy:
    """A contiguous proxy of t's device, and of t's shape and dtype unless given."""
    return TensorProxy(shape=tuple(t.shape if shape is None else shape), dtype=dtype or t.dtype, device=t.device)


def _row_stats(x) -> TensorProxy:
    return _like(x, torch.float32, (x.numel() // x.shape[-1],))


# -- RMSNorm ------------------------------------------------------------------------------------------------


def _rms_eps(eps) -> float:
    # torch's default: the machine epsilon of the computation dtype, float32 for every dtype claimed here
    return torch.finfo(torch.float32).eps if eps is None else float(eps)


rms_norm_fwd = ex.register_operator("rms_norm_fwd", meta=lambda x, weight, eps: (_like(x), _row_stats(x)),
                                    fn=kernels.rms_norm_forward)  # fmt: skip
rms_norm_bwd = ex.register_operator(
    "rms_norm_bwd", meta=lambda dy, x, weight, rstd: tuple(_like(t) for t in (x, weight) if t is not None),
    fn=kernels.rms_norm_backward,
)


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


# -- LayerNorm ----------------------------------------------------------------------------------------------

layer_norm_fwd = ex.register_operator(
    "layer_norm_fwd", meta=lambda x, weight, bias, eps: (_like(x), _row_stats(x), _row_stats(x)),
    fn=kernels.layer_norm_forward,
)
layer_norm_bwd = ex.register_operator(
    "layer_norm_bwd", meta=lambda dy, x, weight, bias, mean, rstd: (_like(x), _like(weight), _like(bias)),
    fn=kernels.layer_norm_backward,
)


def _layer_norm_exec(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return layer_norm_fwd(input, weight, bias, float(eps))[0]


def _layer_norm_grad(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    out, mean, rstd = layer_norm_fwd(input, weight, bias, float(eps))
    grad_input, grad_weight, grad_bias = layer_norm_bwd(get_grad(out), input, weight, bias, mean, rstd)
    put_grad(input, grad_input)
    put_grad(weight, grad_weight)
    put_grad(bias, grad_bias)
    return out


ex.register_implementation(ltorch.layer_norm, checker=checkers.layer_norm_checker,
                           execution_transform=_layer_norm_exec, grad_transform=_layer_norm_grad)  # fmt: skip


# -- cross-entropy ------------------------------------------------------------------------------------------


def _loss_like(logits, reduction) -> TensorProxy:
    return _like(logits, shape=(logits.shape[0],) if reduction == "none" else ())


cross_entropy_fwd = ex.register_operator(
    "cross_entropy_fwd", meta=lambda logits, target, ignore_index, smoothing, reduction: _loss_like(logits, reduction),
    fn=kernels.cross_entropy_forward,
)
cross_entropy_fwd_with_grad = ex.register_operator(
    "cross_entropy_fwd_with_grad",
    meta=lambda logits, target, ignore_index, smoothing, reduction: (_loss_like(logits, reduction), _like(logits)),
    fn=kernels.cross_entropy_forward_with_grad,
)


def _cross_entropy_exec(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                        reduction="mean", label_smoothing=0.0):  # fmt: skip
    return cross_entropy_fwd(input, target, ignore_index, float(label_smoothing), reduction)


def _cross_entropy_grad(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                        reduction="mean", label_smoothing=0.0):  # fmt: skip
    # Liger's gradient is that of the loss itself (an incoming gradient of 1): the real one scales it, per row
    # for an unreduced loss.
    loss, grad_logits = cross_entropy_fwd_with_grad(input, target, ignore_index, float(label_smoothing), reduction)
    grad = get_grad(loss)
    put_grad(input, grad_logits * (grad.unsqueeze(1) if reduction == "none" else grad))
    return loss


ex.register_implementation(ltorch.cross_entropy, checker=checkers.cross_entropy_checker,
                           execution_transform=_cross_entropy_exec, grad_transform=_cross_entropy_grad)  # fmt: skip


# -- SwiGLU and GeGLU ---------------------------------------------------------------------------------------


def swiglu_reference(a, b):
    """SwiGLU's gating: ``silu(a) * b``."""
    return F.silu(a) * b


def geglu_reference(a, b):
    """GeGLU's gating with the tanh approximation of GELU (the one Liger implements)."""
    return F.gelu(a, approximate="tanh") * b


def _register_gated(name: str, reference, forward, backward):
    def run(a, b):
        if not checkers.gated_checker(a, b):
            _fall_back_once(name)
            return reference(a, b)
        return forward(a, b)

    op = ex.register_operator(name, like=reference, fn=run)
    bwd = ex.register_operator(f"{name}_bwd", meta=lambda dc, a, b: (_like(a), _like(b)), fn=backward)

    def grad_rule(a, b):
        out = op(a, b)
        grad_a, grad_b = bwd(get_grad(out), a, b)
        put_grad(a, grad_a)
        put_grad(b, grad_b)
        return out

    ex.register_implementation(op, checker=checkers.gated_checker, grad_transform=grad_rule)
    return op


#: ``silu(a) * b`` in one kernel, and one in the backward.
swiglu = _register_gated("swiglu", swiglu_reference, kernels.swiglu_forward, kernels.swiglu_backward)
#: ``gelu(a, approximate="tanh") * b`` in one kernel, and one in the backward.
geglu = _register_gated("geglu", geglu_reference, kernels.geglu_forward, kernels.geglu_backward)


# -- rotary position embedding ------------------------------------------------------------------------------


def rotate_half(x):
    """``cat(-x2, x1)`` for x = cat(x1, x2) along the last dimension."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_reference(x, cos, sin):
    """The half rotation of Llama and GPT-NeoX: ``x * cos + rotate_half(x) * sin``."""
    return x * cos + rotate_half(x) * sin


def _rope_impl(x, cos, sin):
    if not checkers.rope_checker(x, cos, sin):
        _fall_back_once("rope")
        return rope_reference(x, cos, sin)
    return kernels.rope_forward(x, cos, sin)


#: RoPE of x [B, H, S, D] with cos, sin [S, D] (or [1, S, D], [B or 1, 1, S, D]) whose two halves along D are
#: equal, as `cat((freqs, freqs), -1)` makes them: Liger reads only the first half.
rope = ex.register_operator("rope", like=rope_reference, fn=_rope_impl)
rope_bwd = ex.register_operator("rope_bwd", meta=lambda dy, cos, sin: _like(dy), fn=kernels.rope_backward)


def _sum_to(t, shape):
    """t summed over the dimensions that broadcasting added or expanded, to `shape`."""
    t = t.sum(tuple(range(t.ndim - len(shape)))) if t.ndim > len(shape) else t
    expanded = tuple(i for i, n in enumerate(shape) if n == 1 and t.shape[i] != 1)
    return t.sum(expanded, keepdim=True) if expanded else t


def _rope_grad(x, cos, sin):
    out = rope(x, cos, sin)
    grad = get_grad(out)
    put_grad(x, rope_bwd(grad, cos, sin))
    # cos and sin seldom require grad (they come from fixed frequencies); when nothing needs these, autodiff
    # drops them
    put_grad(cos, _sum_to(grad * x, cos.shape))
    put_grad(sin, _sum_to(grad * rotate_half(x), sin.shape))
    return out


ex.register_implementation(rope, checker=checkers.rope_checker, grad_transform=_rope_grad)


# -- linear + cross-entropy ---------------------------------------------------------------------------------


def fused_linear_cross_entropy_reference(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0,
                                         reduction="mean"):  # fmt: skip
    """What `fused_linear_cross_entropy` computes, with the [N, V] logits materialized."""
    logits = F.linear(x, weight, bias)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target, ignore_index=ignore_index,
                           reduction=reduction, label_smoothing=label_smoothing)  # fmt: skip


def _fused_linear_cross_entropy_impl(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0,
                                     reduction="mean"):  # fmt: skip
    args = (x, weight, bias, target, ignore_index, label_smoothing, reduction)
    if not checkers.fused_linear_cross_entropy_checker(*args):
        _fall_back_once("fused_linear_cross_entropy")
        return fused_linear_cross_entropy_reference(*args)
    return kernels.fused_linear_cross_entropy_forward(*args)


def _fused_linear_cross_entropy_with_grads_meta(x, weight, bias, target, ignore_index, label_smoothing, reduction):
    grads = (_like(x), _like(weight)) + (() if bias is None else (_like(bias),))
    return (_like(x, shape=()), *grads)


#: ``cross_entropy(linear(x, weight, bias).reshape(-1, V), target)`` for tokens x [..., H], chunked over the
#: tokens so that the [N, V] logits are never materialized.
fused_linear_cross_entropy = ex.register_operator("fused_linear_cross_entropy", like=fused_linear_cross_entropy_reference,
                                                  fn=_fused_linear_cross_entropy_impl)  # fmt: skip
fused_linear_cross_entropy_with_grads = ex.register_operator(
    "fused_linear_cross_entropy_with_grads", meta=_fused_linear_cross_entropy_with_grads_meta,
    fn=kernels.fused_linear_cross_entropy_with_grads,
)


def _fused_linear_cross_entropy_grad(x, weight, bias, target, ignore_index=-100, label_smoothing=0.0,
                                     reduction="mean"):  # fmt: skip
    # Liger computes the gradients with the forward, while each chunk's logits exist; the incoming gradient of
    # the (scalar) loss only scales them.
    loss, grad_x, grad_weight, *grad_bias = fused_linear_cross_entropy_with_grads(
        x, weight, bias, target, ignore_index, label_smoothing, reduction)
    grad = get_grad(loss)
    put_grad(x, grad_x * grad)
    put_grad(weight, grad_weight * grad)
    if bias is not None:
        put_grad(bias, grad_bias[0] * grad)
    return loss


ex.register_implementation(fused_linear_cross_entropy, checker=checkers.fused_linear_cross_entropy_checker,
                           grad_transform=_fused_linear_cross_entropy_grad)  # fmt: skip


# -- the passes: pattern rewrites before autodiff, whenever `liger` is in the executor list -------------------

ex.register_pass(patterns.fuse_linear_cross_entropy, stage=BEFORE_AUTODIFF, name="fuse linear + cross_entropy")
ex.register_pass(patterns.fuse_swiglu, stage=BEFORE_AUTODIFF, name="fuse silu(a) * b")
ex.register_pass(patterns.fuse_geglu, stage=BEFORE_AUTODIFF, name="fuse gelu(a) * b")
ex.register_pass(patterns.fuse_rope, stage=BEFORE_AUTODIFF, name="fuse rotary embedding")
