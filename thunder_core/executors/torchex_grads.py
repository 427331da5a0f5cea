"""The torch executor's own backward kernels: for the operations where PyTorch has a fused backward
(layer_norm, softmax, log_softmax, nll_loss, dropout and the activations), the torch executor supplies a grad_transform
that runs the same aten forward and backward kernels eager autograd runs, instead of differentiating the
decomposition. Registered on the torch executor when its module is imported."""

from __future__ import annotations

import torch

import thunder.torch as ltorch
from thunder.core.proxies import TensorProxy
from thunder.core.transforms import get_grad, put_grad

aten = torch.ops.aten


# Explicit metas: running these kernels on meta tensors would be correct too, but its first use imports
# torch's meta-kernel registry (about a second), which would land on the first call of every process.
def _stats_dtype(x):
    # CUDA keeps layer_norm's mean/rstd in float32 for half-precision inputs; the CPU in the input's dtype
    return torch.float32 if x.device.type == "cuda" and x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _native_layer_norm_meta(input, normalized_shape, weight, bias, eps):
    stats_shape = tuple(input.shape[: input.ndim - len(normalized_shape)]) + (1,) * len(normalized_shape)
    stats = lambda: TensorProxy(like=input, shape=stats_shape, dtype=_stats_dtype(input), requires_grad=False)
    return TensorProxy(like=input, requires_grad=False), stats(), stats()


def _native_layer_norm_backward_meta(grad, input, normalized_shape, mean, rstd, weight, bias, mask):
    like = lambda t, keep: TensorProxy(like=t, requires_grad=False) if keep and t is not None else None
    return like(input, mask[0]), like(weight, mask[1]), like(bias, mask[2])


def _like_first(grad, *args, **kwargs):
    return TensorProxy(like=grad, requires_grad=False)


def _softmax_backward_meta(grad, output, dim, input_dtype):
    return TensorProxy(like=grad, dtype=input_dtype, requires_grad=False)


def _nll_loss_forward_meta(input, target, weight, reduction, ignore_index):
    shape = tuple(target.shape) if reduction == 0 else ()
    return TensorProxy(like=input, shape=shape, requires_grad=False), TensorProxy(like=input, shape=(), requires_grad=False)


def _nll_loss_backward_meta(grad, input, target, weight, reduction, ignore_index, total_weight):
    return TensorProxy(like=input, requires_grad=False)


def _native_dropout_meta(input, p, train):
    return TensorProxy(like=input, requires_grad=False), TensorProxy(like=input, dtype=torch.bool, requires_grad=False)


def register_torch_backward_kernels(ex) -> None:
    def op(name, fn, meta):
        return ex.register_operator(name, meta=meta, fn=fn)

    native_layer_norm = op("native_layer_norm", aten.native_layer_norm.default, _native_layer_norm_meta)
    native_layer_norm_backward = op("native_layer_norm_backward", aten.native_layer_norm_backward.default,
                                    _native_layer_norm_backward_meta)  # fmt: skip
    softmax_backward = op("softmax_backward", aten._softmax_backward_data.default, _softmax_backward_meta)
    log_softmax_backward = op("log_softmax_backward", aten._log_softmax_backward_data.default,
                              _softmax_backward_meta)  # fmt: skip
    gelu_backward = op("gelu_backward", aten.gelu_backward.default, _like_first)
    silu_backward = op("silu_backward", aten.silu_backward.default, _like_first)
    nll_loss_forward = op("nll_loss_forward", aten.nll_loss_forward.default, _nll_loss_forward_meta)
    nll_loss_backward = op("nll_loss_backward", aten.nll_loss_backward.default, _nll_loss_backward_meta)

    def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
        out, mean, rstd = native_layer_norm(input, list(normalized_shape), weight, bias, eps)
        g = get_grad(out)
        mask = [True, weight is not None, bias is not None]
        grads = native_layer_norm_backward(g, input, list(normalized_shape), mean, rstd, weight, bias, mask)
        for t, grad in zip((input, weight, bias), grads):
            put_grad(t, grad)
        return out

    def softmax_like(symbol, backward):
        def rule(input, dim=None, _stacklevel=3, dtype=None):
            out = symbol(input, dim)
            g = get_grad(out)
            put_grad(input, backward(g, out, dim % max(input.ndim, 1), input.dtype))
            return out

        return rule

    def gelu(input, approximate="none"):
        out = ltorch.gelu(input, approximate=approximate)
        put_grad(input, gelu_backward(get_grad(out), input, approximate=approximate))
        return out

    def silu(input, inplace=False):
        out = ltorch.silu(input)
        put_grad(input, silu_backward(get_grad(out), input))
        return out

    # CUDA eager runs training dropout as one fused kernel, which draws its mask from its own Philox stream: the
    # same kernel here draws eager's mask under the same seed (the decomposition's bernoulli mask would differ)
    native_dropout = ex.register_operator("native_dropout", meta=_native_dropout_meta, fn=aten.native_dropout.default,
                                          tags=("random",))  # fmt: skip
    native_dropout_backward = op("native_dropout_backward", aten.native_dropout_backward.default, _like_first)

    def dropout(input, p=0.5, training=True, inplace=False):
        out, mask = native_dropout(input, p, True)
        put_grad(input, native_dropout_backward(get_grad(out), mask, 1.0 / (1.0 - p)))
        return out

    def fused_dropout(input, p=0.5, training=True, inplace=False):
        # when eager's torch.dropout takes the fused kernel (aten is_fused_kernel_acceptable)
        return input.device.type == "cuda" and training and 0.0 < p < 1.0 and input.numel() > 0

    reductions = {"none": 0, "mean": 1, "sum": 2}

    def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        out, total_weight = nll_loss_forward(input, target, weight, reductions[reduction], ignore_index)
        g = get_grad(out)
        put_grad(input, nll_loss_backward(g, input, target, weight, reductions[reduction], ignore_index, total_weight))
        return out

    def same_dtype_softmax(input, dim=None, _stacklevel=3, dtype=None):
        return dim is not None and (dtype is None or dtype == input.dtype) and input.dtype.is_floating_point

    def plain_nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                       reduction="mean"):  # fmt: skip
        return size_average is None and reduce is None and input.ndim in (1, 2) and reduction in reductions

    def floating(input, *args, **kwargs):
        return input.dtype.is_floating_point

    _register_activation_backwards(ex, floating)
    ex.register_implementation(ltorch.layer_norm, grad_transform=layer_norm, checker=floating)
    ex.register_implementation(ltorch.softmax, grad_transform=softmax_like(ltorch.softmax, softmax_backward),
                               checker=same_dtype_softmax)  # fmt: skip
    ex.register_implementation(ltorch.log_softmax,
                               grad_transform=softmax_like(ltorch.log_softmax, log_softmax_backward),
                               checker=same_dtype_softmax)  # fmt: skip
    ex.register_implementation(ltorch.gelu, grad_transform=gelu, checker=floating)
    ex.register_implementation(ltorch.silu, grad_transform=silu, checker=floating)
    ex.register_implementation(ltorch.nll_loss, grad_transform=nll_loss, checker=plain_nll_loss)
    ex.register_implementation(ltorch.dropout, grad_transform=dropout, checker=fused_dropout)


def _register_activation_backwards(ex, floating) -> None:
    """Activations as eager differentiates them: one forward kernel, one backward kernel, and the tensor eager
    saves (relu, sigmoid and tanh save their output, so the input can be freed), instead of the decomposition's
    comparisons, masks and products."""
    op = lambda name, fn: ex.register_operator(name, meta=_like_first, fn=fn)
    threshold_backward = op("threshold_backward", aten.threshold_backward.default)
    sigmoid_backward = op("sigmoid_backward", aten.sigmoid_backward.default)
    tanh_backward = op("tanh_backward", aten.tanh_backward.default)
    leaky_relu_backward = op("leaky_relu_backward", aten.leaky_relu_backward.default)
    hardtanh_backward = op("hardtanh_backward", aten.hardtanh_backward.default)
    elu_backward = op("elu_backward", aten.elu_backward.default)

    def relu(input, inplace=False):
        out = ltorch.relu(input)
        put_grad(input, threshold_backward(get_grad(out), out, 0))
        return out

    def threshold(input, threshold, value, inplace=False):
        out = ltorch.threshold(input, threshold, value)
        put_grad(input, threshold_backward(get_grad(out), input, threshold))
        return out

    def sigmoid(a):
        out = ltorch.sigmoid(a)
        put_grad(a, sigmoid_backward(get_grad(out), out))
        return out

    def tanh(a):
        out = ltorch.tanh(a)
        put_grad(a, tanh_backward(get_grad(out), out))
        return out

    def leaky_relu(input, negative_slope=0.01, inplace=False):
        out = ltorch.leaky_relu(input, negative_slope)
        put_grad(input, leaky_relu_backward(get_grad(out), input, negative_slope, False))
        return out

    def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
        out = ltorch.hardtanh(input, min_val, max_val)
        put_grad(input, hardtanh_backward(get_grad(out), input, min_val, max_val))
        return out

    def elu(input, alpha=1.0, inplace=False):
        out = ltorch.elu(input, alpha)
        put_grad(input, elu_backward(get_grad(out), alpha, 1, 1, False, input))
        return out

    def plain_threshold(input, threshold, value, inplace=False):
        # threshold_backward passes the gradient where input > threshold, which is where the output is the input
        return input.dtype.is_floating_point and isinstance(threshold, (int, float)) and isinstance(value, (int, float))

    for symbol, rule in ((ltorch.relu, relu), (ltorch.sigmoid, sigmoid), (ltorch.tanh, tanh),
                         (ltorch.leaky_relu, leaky_relu), (ltorch.hardtanh, hardtanh), (ltorch.elu, elu)):
        ex.register_implementation(symbol, grad_transform=rule, checker=floating)  # fmt: skip
    ex.register_implementation(ltorch.threshold, grad_transform=threshold, checker=plain_threshold)
