"""What runs when cuDNN refuses a graph the checkers accepted: the same computation in PyTorch, with the same
outputs (the attention statistics included, so that either backward can follow either forward), after one
`CudnnFallbackWarning` per kind of graph and reason. Attention with dropout has no fallback: PyTorch cannot draw
cuDNN's mask, so its error is raised, naming the way out.

The fallbacks compute in float32 and materialize the attention matrix: they are for correctness, not speed.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


class CudnnFallbackWarning(UserWarning):
    """cuDNN refused a graph; PyTorch ran the operation instead (once per kind of graph and reason)."""


_warned: set[tuple[str, str]] = set()


def warn_once(what: str, error: Exception) -> None:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    if (what, reason) not in _warned:
        _warned.add((what, reason))
        warnings.warn(f"cudnn executor: {what} runs in PyTorch instead of cuDNN: {reason}", CudnnFallbackWarning,
                      stacklevel=3)  # fmt: skip


def _scores(q, k, bias, is_causal, scale):
    """Float32 scaled (biased, masked) scores [B, H, S_q, S_kv], with k's heads repeated for grouped queries."""
    k = k.float().repeat_interleave(q.shape[1] // k.shape[1], 1)
    scores = q.float() @ k.transpose(-2, -1) * scale
    if bias is not None:
        scores = scores + bias.float()
    if is_causal:
        hidden = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(hidden, float("-inf"))
    return scores


def _sum_groups(t, heads: int):
    """[B, H, ...] summed over the query heads sharing each of `heads` key/value heads."""
    return t.unflatten(1, (heads, t.shape[1] // heads)).sum(2)


def sdpa_forward(q, k, v, bias, is_causal, scale):
    scores = _scores(q, k, bias, is_causal, scale)
    stats = torch.logsumexp(scores, -1, keepdim=True)
    values = v.float().repeat_interleave(q.shape[1] // v.shape[1], 1)
    return (torch.exp(scores - stats) @ values).to(q.dtype), stats


def sdpa_backward(grad, q, k, v, out, stats, bias, is_causal, scale):
    """The gradients from the statistics, as cuDNN computes them: P = exp(scores - stats), dS = P * (dP - D)."""
    probs = torch.exp(_scores(q, k, bias, is_causal, scale) - stats)
    groups = q.shape[1] // k.shape[1]
    g, values = grad.float(), v.float().repeat_interleave(groups, 1)
    keys = k.float().repeat_interleave(groups, 1)
    delta = (g * out.float()).sum(-1, keepdim=True)
    dscores = probs * (g @ values.transpose(-2, -1) - delta)
    dq = dscores @ keys * scale
    dk = _sum_groups(dscores.transpose(-2, -1) @ q.float(), k.shape[1]) * scale
    dv = _sum_groups(probs.transpose(-2, -1) @ g, v.shape[1])
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


def layer_norm_forward(x, weight, bias, eps):
    x32 = x.float()
    mean = x32.mean(-1, keepdim=True)
    rstd = torch.rsqrt(x32.var(-1, unbiased=False, keepdim=True) + eps)
    y = F.layer_norm(x32, (x.shape[-1],), None if weight is None else weight.float(),
                     None if bias is None else bias.float(), eps)  # fmt: skip
    return y.to(x.dtype), mean.reshape(-1, 1, 1, 1), rstd.reshape(-1, 1, 1, 1)


def layer_norm_backward(grad, x, weight, mean, rstd):
    n = x.shape[-1]
    r = rstd.reshape(*x.shape[:-1], 1)
    xhat = (x.float() - mean.reshape(*x.shape[:-1], 1)) * r
    g = grad.float()
    gw = g * weight.float() if weight is not None else g
    dx = r * (gw - gw.mean(-1, keepdim=True) - xhat * (gw * xhat).mean(-1, keepdim=True))
    return dx.to(x.dtype), (g * xhat).reshape(-1, n).sum(0), g.reshape(-1, n).sum(0)


def rms_norm_forward(x, weight, eps):
    x32 = x.float()
    rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    y = x32 * rstd * (weight.float() if weight is not None else 1.0)
    return y.to(x.dtype), rstd.reshape(-1, 1, 1, 1)


def rms_norm_backward(grad, x, weight, rstd):
    n = x.shape[-1]
    r = rstd.reshape(*x.shape[:-1], 1)
    xhat = x.float() * r
    g = grad.float()
    gw = g * weight.float() if weight is not None else g
    dx = r * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
    return dx.to(x.dtype), (g * xhat).reshape(-1, n).sum(0).to(x.dtype)
