"""A PyTorch stand-in for the parts of `liger_kernel.ops` the executor calls, for the CPU tests of its wiring.

It follows Liger 0.8.5's functional contract, including what the executor must defend against: the
SwiGLU/GeGLU backwards store the gradients in their inputs, RoPE rotates in place in [B, S, H, D] memory and
reads only the first half of cos and sin, cross-entropy writes the gradient (or zeros, on ignored rows) into
its logits. `install(monkeypatch)` puts it in `sys.modules` in place of Liger.
"""

from __future__ import annotations

import sys
from types import ModuleType

import torch
import torch.nn.functional as F

CASTING_MODES = {"llama": 0, "gemma": 1, "none": -1}


def calculate_settings(n):
    return 1 << max(n - 1, 0).bit_length(), 4


def rms_norm_forward(X, W, eps, offset, casting_mode, row_mode):
    assert casting_mode == "gemma" and offset == 0.0, "the executor asks for torch's rounding (gemma mode)"
    shape, X = X.shape, X.view(-1, X.shape[-1])
    rstd = torch.rsqrt(X.float().pow(2).mean(1) + eps)
    Y = X.float() * rstd[:, None] * (1.0 if W is None else W.float())
    return Y.to(X.dtype).view(shape), X, rstd, *calculate_settings(X.shape[1]), CASTING_MODES[casting_mode]


def rms_norm_backward(dY, X, W, RSTD, offset, casting_mode, BLOCK_SIZE, num_warps, in_place, row_mode,
                      needs_dw=None):  # fmt: skip
    shape, dy = dY.shape, dY.view(-1, dY.shape[-1]).float()
    xhat = X.float() * RSTD[:, None]
    m = dy * (1.0 if W is None else W.float())
    dX = (RSTD[:, None] * (m - xhat * (m * xhat).mean(1, keepdim=True))).to(X.dtype).view(shape)
    dW = None if W is None or not needs_dw else (dy * xhat).sum(0).to(W.dtype)
    if in_place:
        dY.copy_(dX)
        dX = dY
    return dX, dW


def layer_norm_forward(X, W, B, eps):
    shape, X = X.shape, X.view(-1, X.shape[-1])
    mean = X.float().mean(1)
    rstd = torch.rsqrt(X.float().var(1, unbiased=False) + eps)
    Y = ((X.float() - mean[:, None]) * rstd[:, None] * W.float() + B.float()).to(X.dtype)
    return Y.view(shape), X, mean, rstd, *calculate_settings(X.shape[1])


def layer_norm_backward(dY, X, W, B, Mean, RSTD, needs_dw=None, needs_db=None):
    shape, dy = dY.shape, dY.view(-1, dY.shape[-1]).float()
    xhat = (X.float() - Mean[:, None]) * RSTD[:, None]
    m = dy * W.float()
    dX = RSTD[:, None] * (m - m.mean(1, keepdim=True) - xhat * (m * xhat).mean(1, keepdim=True))
    return dX.to(X.dtype).view(shape), (dy * xhat).sum(0).to(W.dtype), dy.sum(0).to(B.dtype)


def _gated_module(name, activation):
    def forward(a, b):
        shape = a.shape
        a, b = a.view(-1, shape[-1]), b.view(-1, shape[-1])
        return a, b, (activation(a.float()).to(b.dtype) * b).view(shape)

    def backward(a, b, dc):
        with torch.enable_grad():
            af = a.detach().float().requires_grad_()
            da = torch.autograd.grad(activation(af), af, dc.float() * b.float())[0]
        db = dc.float() * activation(a.float())
        a.copy_(da.to(a.dtype))  # Liger stores the gradients in its inputs
        b.copy_(db.to(b.dtype))
        return a, b

    module = ModuleType(f"liger_kernel.ops.{name}")
    setattr(module, f"{name}_forward", forward)
    setattr(module, f"{name}_backward", backward)
    return module


def _rotate_in_place(t, cos, sin, sign):
    physical = t.transpose(1, 2).contiguous()  # a no-op where t is a transposed view of [B, S, H, D] memory
    half = physical.shape[-1] // 2
    c, s = cos[..., :half].unsqueeze(2), sign * sin[..., :half].unsqueeze(2)  # [1 or B, S, 1, D/2]
    x1, x2 = physical[..., :half].clone(), physical[..., half:].clone()
    physical[..., :half] = x1 * c - x2 * s
    physical[..., half:] = x2 * c + x1 * s
    return physical.transpose(1, 2)


def rope_forward(q, k, cos, sin, position_ids=None, unsqueeze_dim=1, rotary_dim=None):
    assert cos.ndim == 3, "the executor hands Liger cos and sin as [1 or B, S, D]"
    return _rotate_in_place(q, cos, sin, 1.0), _rotate_in_place(k, cos, sin, 1.0), cos, sin


def rope_backward(dq, dk, cos, sin, position_ids=None, unsqueeze_dim=1, rotary_dim=None):
    return _rotate_in_place(dq, cos, sin, -1.0), _rotate_in_place(dk, cos, sin, -1.0)


def cross_entropy_forward(_input, target, weight, ignore_index, lse_square_scale, label_smoothing, reduction,
                          softcap, return_z_loss, return_token_accuracy=False, return_predicted_tokens=False):  # fmt: skip
    with torch.enable_grad():
        logits = _input.detach().float().requires_grad_()
        loss = F.cross_entropy(logits, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
                               reduction=reduction)  # fmt: skip
        grad = torch.autograd.grad(loss.sum(), logits)[0] if _input.requires_grad else None
    if grad is not None:
        _input.detach().copy_(grad)  # the gradient replaces the logits
    _input.detach()[target == ignore_index] = 0  # on every call
    return loss.detach().to(_input.dtype), None, None, None, _input


def fused_linear_cross_entropy_forward(_input, weight, target, ce_weight=None, bias=None, ignore_index=-100,
                                       lse_square_scale=0.0, label_smoothing=0.0, reduction="mean", softcap=None,
                                       return_z_loss=False, accum_dtype=None, compute_gradients=None,
                                       weight_requires_grad=None, **unused):  # fmt: skip
    with torch.enable_grad():
        leaves = [t.detach().float().requires_grad_() for t in (_input, weight) + ((bias,) if bias is not None else ())]
        logits = F.linear(leaves[0], leaves[1], leaves[2] if bias is not None else None)
        loss = F.cross_entropy(logits, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
                               reduction=reduction)  # fmt: skip
        grads = torch.autograd.grad(loss, leaves) if compute_gradients else (None,) * len(leaves)
    cast = [None if g is None else g.to(t.dtype) for g, t in zip(grads, (_input, weight, bias))]
    grad_bias = cast[2] if bias is not None else None
    return loss.detach(), None, None, None, cast[0], cast[1], grad_bias


def install(monkeypatch) -> None:
    """Liger's modules, as far as the executor uses them, replaced by this stand-in."""
    modules = {name: ModuleType(name) for name in ("liger_kernel", "liger_kernel.ops", "liger_kernel.ops.utils",
                                                   "liger_kernel.ops.rms_norm", "liger_kernel.ops.layer_norm",
                                                   "liger_kernel.ops.rope", "liger_kernel.ops.cross_entropy",
                                                   "liger_kernel.ops.fused_linear_cross_entropy")}  # fmt: skip
    modules["liger_kernel.ops.swiglu"] = _gated_module("swiglu", F.silu)
    modules["liger_kernel.ops.geglu"] = _gated_module("geglu", lambda a: F.gelu(a, approximate="tanh"))
    modules["liger_kernel.ops.utils"].calculate_settings = calculate_settings
    norms = modules["liger_kernel.ops.rms_norm"]
    norms.rms_norm_forward, norms.rms_norm_backward = rms_norm_forward, rms_norm_backward
    norms._str_to_casting_mode = CASTING_MODES
    ln = modules["liger_kernel.ops.layer_norm"]
    ln.layer_norm_forward, ln.layer_norm_backward = layer_norm_forward, layer_norm_backward
    modules["liger_kernel.ops.rope"].rope_forward = rope_forward
    modules["liger_kernel.ops.rope"].rope_backward = rope_backward
    modules["liger_kernel.ops.cross_entropy"].cross_entropy_forward = cross_entropy_forward
    flce = modules["liger_kernel.ops.fused_linear_cross_entropy"]
    flce.fused_linear_cross_entropy_forward = fused_linear_cross_entropy_forward
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
