"""Apex's kernels on real tensors: the functions the `apex` executor's operators run.

They call Apex's compiled extensions directly (`fused_layer_norm_cuda`, `xentropy_cuda`, the modules
`apex.normalization` and `apex.contrib.xentropy` wrap), imported on first call, with contiguous tensors (the
extensions check for it) and the input's device current. Everything runs under `torch.no_grad()`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib

import torch


def _extension(name: str):
    return importlib.import_module(name)


def on_input_device(fn):
    """fn under no_grad, with the device of its first CUDA tensor argument current."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        device = next((a.device for a in args if isinstance(a, torch.Tensor) and a.is_cuda), None)
        with torch.no_grad(), (torch.cuda.device(device) if device is not None
                                 else contextlib.nullcontext()):  # fmt: skip
            return fn(*args, **kwargs)

    return run


def _contiguous(*tensors):
    return [None if t is None else t.contiguous() for t in tensors]


# -- LayerNorm and RMSNorm (memory_efficient=False: the backward reads the input, as saved by Thunder) ------


@on_input_device
def layer_norm_forward(x, normalized_shape, weight, bias, eps):
    """(y, mean, invvar); the statistics are float32 for half inputs, one per normalized row."""
    ext = _extension("fused_layer_norm_cuda")
    x, weight, bias = _contiguous(x, weight, bias)
    if weight is None:
        return tuple(ext.forward(x, list(normalized_shape), eps))
    return tuple(ext.forward_affine(x, list(normalized_shape), weight, bias, eps))


@on_input_device
def layer_norm_backward(dy, x, normalized_shape, weight, bias, mean, invvar, eps):
    """(dx,) or (dx, dweight, dbias)."""
    ext = _extension("fused_layer_norm_cuda")
    dy, x, weight, bias = _contiguous(dy, x, weight, bias)
    if weight is None:
        return (ext.backward(dy, mean, invvar, x, list(normalized_shape), eps, False),)
    return tuple(ext.backward_affine(dy, mean, invvar, x, list(normalized_shape), weight, bias, eps, False))


@on_input_device
def rms_norm_forward(x, normalized_shape, weight, eps):
    """(y, invvar)."""
    ext = _extension("fused_layer_norm_cuda")
    x, weight = _contiguous(x, weight)
    if weight is None:
        return tuple(ext.rms_forward(x, list(normalized_shape), eps))
    return tuple(ext.rms_forward_affine(x, list(normalized_shape), weight, eps))


@on_input_device
def rms_norm_backward(dy, x, normalized_shape, weight, invvar, eps):
    """(dx,) or (dx, dweight)."""
    ext = _extension("fused_layer_norm_cuda")
    dy, x, weight = _contiguous(dy, x, weight)
    if weight is None:
        return (ext.rms_backward(dy, invvar, x, list(normalized_shape), eps, False),)
    return tuple(ext.rms_backward_affine(dy, invvar, x, list(normalized_shape), weight, eps, False))


# -- softmax cross-entropy ----------------------------------------------------------------------------------


def keeps_float_statistics(dtype: torch.dtype) -> bool:
    """Whether Apex keeps the log-sum-exp in float32: always for float32, and for float16 with
    half_to_float (bfloat16 has no such mode: its log-sum-exp is stored in bfloat16)."""
    return dtype in (torch.float32, torch.float16)


def _safe_labels(target, ignore_index):
    # Apex's forward reads logits[row, label] even on an ignored row (and masks the loss afterwards): an ignored
    # label such as -100 would read outside the row, so it reads class 0 instead.
    return torch.where(target == ignore_index, torch.zeros_like(target), target).contiguous()


@on_input_device
def cross_entropy_forward(logits, target, smoothing, ignore_index):
    """(per-row float32 losses, zero on ignored rows; per-row log-sum-exp for the backward)."""
    ext = _extension("xentropy_cuda")
    losses, lse = ext.forward(logits.contiguous(), _safe_labels(target, ignore_index), smoothing,
                              logits.dtype == torch.float16)  # fmt: skip
    return losses.masked_fill_(target == ignore_index, 0), lse


@on_input_device
def cross_entropy_backward(grad_losses, logits, lse, target, smoothing, ignore_index):
    """dloss/dlogits for the per-row incoming gradients grad_losses (zeroed on ignored rows here)."""
    ext = _extension("xentropy_cuda")
    grad_dtype = torch.float32 if logits.dtype == torch.float16 else logits.dtype
    grad = grad_losses.to(grad_dtype).masked_fill(target == ignore_index, 0).contiguous()
    return ext.backward(grad, logits.contiguous(), lse, _safe_labels(target, ignore_index), smoothing)
