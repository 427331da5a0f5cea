"""Grad rules written in primitives for the operations whose backward the torch executor runs as one opaque aten
kernel (layer_norm, softmax, log_softmax, gelu, silu): with nvFuser in the list, autodiff uses these instead,
so that the forward and the backward of normalizations and activations join the surrounding fusions.

Each rule computes the forward with traced torch operations, then (after `get_grad`) the backward, in float32
for bfloat16/float16 inputs as eager's kernels do. A rule applies only when its checker accepts the call (a
CUDA floating-point input nvFuser takes); otherwise the next executor's rule (the torch executor's) applies.
"""

from __future__ import annotations

import math

import torch

from thunder.core.transforms import get_grad, put_grad
from thunder_executors_nvfuser._thunder import ImplInfo, TensorProxy
from thunder_executors_nvfuser.translation import supported_tensor


def _float32(t):
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _softmax_dim(input, dim) -> int:
    return dim % max(input.ndim, 1)


def softmax_rule(input, dim=None, _stacklevel=3, dtype=None):
    out = torch.softmax(input, dim)
    g = get_grad(out)
    o, g = _float32(out), _float32(g)
    put_grad(input, (o * (g - (g * o).sum(_softmax_dim(input, dim), keepdim=True))).to(input.dtype))
    return out


def log_softmax_rule(input, dim=None, _stacklevel=3, dtype=None):
    out = torch.log_softmax(input, dim)
    g = get_grad(out)
    o, g = _float32(out), _float32(g)
    put_grad(input, (g - torch.exp(o) * g.sum(_softmax_dim(input, dim), keepdim=True)).to(input.dtype))
    return out


def gelu_rule(input, approximate="none"):
    out = torch.nn.functional.gelu(input, approximate=approximate)
    g = get_grad(out)
    x, g = _float32(input), _float32(g)
    if approximate == "tanh":
        k = math.sqrt(2 / math.pi)
        t = torch.tanh(k * (x + 0.044715 * x * x * x))
        derivative = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
    else:
        cdf = 0.5 * (1 + torch.erf(x * math.sqrt(0.5)))
        derivative = cdf + x * torch.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
    put_grad(input, (g * derivative).to(input.dtype))
    return out


def silu_rule(input, inplace=False):
    out = torch.nn.functional.silu(input)
    g = get_grad(out)
    x, g = _float32(input), _float32(g)
    s = torch.sigmoid(x)
    put_grad(input, (g * s * (1 + x * (1 - s))).to(input.dtype))
    return out


def layer_norm_rule(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    x = _float32(input)
    mean = x.mean(dims, keepdim=True)
    rstd = torch.rsqrt(x.var(dims, correction=0, keepdim=True) + eps)
    xhat = (x - mean) * rstd
    out = xhat
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    out = out.to(input.dtype)
    g = _float32(get_grad(out))
    leading = tuple(range(input.ndim - len(normalized_shape)))
    gy = g * _float32(weight) if weight is not None else g
    grad_input = rstd * (gy - gy.mean(dims, keepdim=True) - xhat * (gy * xhat).mean(dims, keepdim=True))
    put_grad(input, grad_input.to(input.dtype))
    if weight is not None:
        put_grad(weight, (g * xhat).sum(leading).to(weight.dtype) if leading else (g * xhat).to(weight.dtype))
    if bias is not None:
        put_grad(bias, g.sum(leading).to(bias.dtype) if leading else g.to(bias.dtype))
    return out


def _checker(device_types):
    def floating_input(input, *args, **kwargs) -> bool:
        if not isinstance(input, TensorProxy) or not input.dtype.is_floating_point:
            return False
        tensors = [input] + [a for a in (*args, *kwargs.values()) if isinstance(a, TensorProxy)]
        return all(supported_tensor(t, device_types) and t.dtype == input.dtype for t in tensors)

    return floating_input


def _softmax_checker(device_types):
    floating = _checker(device_types)

    def check(input, dim=None, _stacklevel=3, dtype=None):
        return dim is not None and (dtype is None or dtype == input.dtype) and floating(input)

    return check


def _layer_norm_checker(device_types):
    floating = _checker(device_types)

    def check(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        n = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
        return 0 < n <= input.ndim and floating(input, weight, bias)

    return check


def register_grad_rules(implmap: dict, device_types) -> None:
    """Adds the rules to an executor's implmap (autodiff asks each executor in priority order)."""
    import thunder.torch as ltorch

    for symbol, rule, checker in (
        (ltorch.softmax, softmax_rule, _softmax_checker(device_types)),
        (ltorch.log_softmax, log_softmax_rule, _softmax_checker(device_types)),
        (ltorch.gelu, gelu_rule, _checker(device_types)),
        (ltorch.silu, silu_rule, _checker(device_types)),
        (ltorch.layer_norm, layer_norm_rule, _layer_norm_checker(device_types)),
    ):
        implmap[symbol.id] = ImplInfo(checker=checker, grad_transform=rule)
