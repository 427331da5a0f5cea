"""A float32 math stand-in for the cuDNN graphs (`thunder_executors_cudnn.graphs`), for the tests that run
without a GPU: it follows the graphs' contract (arguments, outputs, layouts of the statistics) so that the
executor's own logic (claiming, masks, grouped-query heads, scale, dropout state, saved tensors, gradients, the
norms pass) is checked against eager PyTorch on the CPU. The cuDNN graphs themselves are checked on the GPU.

A plain module: the repository's tests/conftest.py owns the name `conftest`."""

from __future__ import annotations

import torch

calls: list[str] = []


def _dropout_keep(seed, offset, shape, p):
    generator = torch.Generator().manual_seed(int(seed.item()) + int(offset.item()))
    return (torch.rand(shape, generator=generator) >= p).to(torch.float32)


def _probabilities(q, k, v, bias, seed, offset, dropout_p, is_causal, scale):
    """Float32 q, k, v (k and v with their heads repeated for grouped-query attention), the attention
    probabilities after dropout, and the logsumexp statistics."""
    groups = q.shape[1] // k.shape[1]
    q, k, v = q.float(), k.float().repeat_interleave(groups, 1), v.float().repeat_interleave(groups, 1)
    scores = q @ k.transpose(-2, -1) * scale
    if bias is not None:
        scores = scores + bias.float()
    if is_causal:
        hidden = torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1)
        scores = scores.masked_fill(hidden, float("-inf"))
    stats = torch.logsumexp(scores, -1, keepdim=True)
    probs = torch.exp(scores - stats)
    if dropout_p > 0:
        probs = probs * _dropout_keep(seed, offset, probs.shape, dropout_p) / (1 - dropout_p)
    return probs, v, stats


def sdpa_forward(q, k, v, bias, seed, offset, dropout_p, is_causal, scale):
    calls.append("sdpa_forward")
    probs, v32, stats = _probabilities(q, k, v, bias, seed, offset, dropout_p, is_causal, scale)
    return (probs @ v32).to(q.dtype), stats


def sdpa_backward(grad, q, k, v, o, stats, bias, seed, offset, dropout_p, is_causal, scale):
    calls.append("sdpa_backward")
    assert stats.dtype == torch.float32 and tuple(stats.shape) == (*q.shape[:-1], 1)
    leaves = [t.detach().float().requires_grad_() for t in (q, k, v)]
    with torch.enable_grad():
        probs, v32, _ = _probabilities(*leaves, bias, seed, offset, dropout_p, is_causal, scale)
        out = probs @ v32
        grads = torch.autograd.grad(out, leaves, grad.float())
    return tuple(g.to(t.dtype) for g, t in zip(grads, (q, k, v)))


def layer_norm_forward(x, weight, bias, eps):
    calls.append("layer_norm_forward")
    x32 = x.float()
    mean = x32.mean(-1, keepdim=True)
    rstd = torch.rsqrt(x32.var(-1, unbiased=False, keepdim=True) + eps)
    y = (x32 - mean) * rstd
    y = y * weight.float() if weight is not None else y
    y = y + bias.float() if bias is not None else y
    return y.to(x.dtype), mean.reshape(-1, 1, 1, 1), rstd.reshape(-1, 1, 1, 1)


def layer_norm_backward(grad, x, weight, mean, rstd):
    calls.append("layer_norm_backward")
    n = x.shape[-1]
    xhat = (x.float() - mean.reshape(*x.shape[:-1], 1)) * rstd.reshape(*x.shape[:-1], 1)
    g = grad.float()
    gw = g * weight.float() if weight is not None else g
    dx = rstd.reshape(*x.shape[:-1], 1) * (gw - gw.mean(-1, keepdim=True) - xhat * (gw * xhat).mean(-1, keepdim=True))
    return dx.to(x.dtype), (g * xhat).reshape(-1, n).sum(0), g.reshape(-1, n).sum(0)


def rms_norm_forward(x, weight, eps):
    calls.append("rms_norm_forward")
    x32 = x.float()
    rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    y = x32 * rstd
    y = y * weight.float() if weight is not None else y
    return y.to(x.dtype), rstd.reshape(-1, 1, 1, 1)


def rms_norm_backward(grad, x, weight, rstd):
    calls.append("rms_norm_backward")
    n = x.shape[-1]
    r = rstd.reshape(*x.shape[:-1], 1)
    xhat = x.float() * r
    g = grad.float()
    gw = g * weight.float() if weight is not None else g
    dx = r * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
    return dx.to(x.dtype), (g * xhat).reshape(-1, n).sum(0).to(x.dtype)


STAND_INS = ("sdpa_forward", "sdpa_backward", "layer_norm_forward", "layer_norm_backward", "rms_norm_forward",
             "rms_norm_backward")
