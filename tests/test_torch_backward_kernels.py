"""The torch executor differentiates activations, norms and losses as eager does: one forward call and torch's
own backward kernel (saving what eager saves), with results equal to eager's, NaN and ties included."""

import pytest
import torch
import torch.nn.functional as F

import thunder

ACTIVATIONS = {
    "relu": (torch.relu, "threshold_backward"),
    "sigmoid": (torch.sigmoid, "sigmoid_backward"),
    "tanh": (torch.tanh, "tanh_backward"),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), "leaky_relu_backward"),
    "hardtanh": (lambda x: F.hardtanh(x, -0.5, 0.7), "hardtanh_backward"),
    "relu6": (F.relu6, "hardtanh_backward"),
    "elu": (lambda x: F.elu(x, 0.7), "elu_backward"),
    "threshold": (lambda x: F.threshold(x, 0.1, 2.0), "threshold_backward"),
    "gelu": (F.gelu, "gelu_backward"),
    "silu": (F.silu, "silu_backward"),
}


def _input(dtype):
    x = torch.randn(64, 33).to(dtype)
    # the points where the kernels' tie-breaking shows: exactly at the kink, at the threshold, NaN
    x[0, :5] = torch.tensor([0.0, float("nan"), 0.1, -0.5, 0.7]).to(dtype)
    return x


def _called(trace) -> list[str]:
    return [b.sym.name for b in trace.bound_symbols if b.sym.name not in ("unpack_sequence", "return", "python_del")]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_gradient_is_eagers_backward_kernel(name, dtype):
    fn, kernel = ACTIVATIONS[name]
    x, g = _input(dtype).requires_grad_(), torch.randn(64, 33).to(dtype)
    jfn = thunder.jit(fn, executors=["torch"])
    out = jfn(x)
    (grad,) = torch.autograd.grad(out, x, g)
    ref_x = x.detach().clone().requires_grad_()
    ref = fn(ref_x)
    (ref_grad,) = torch.autograd.grad(ref, ref_x, g)
    # the same kernels as eager: equal bit for bit, NaN where eager's is NaN
    torch.testing.assert_close(out, ref, equal_nan=True, atol=0, rtol=0)
    torch.testing.assert_close(grad, ref_grad, equal_nan=True, atol=0, rtol=0)
    backward = _called(thunder.last_backward_traces(jfn)[-1])
    assert kernel in backward, f"{name}: backward ran {backward}, not torch's {kernel}"
    forward = _called(thunder.last_traces(jfn)[-1])
    assert len(forward) == 1, f"{name}: the forward should be one torch call, got {forward}"


def test_relu_saves_its_output_not_a_mask():
    x = torch.randn(8, 8, requires_grad=True)
    jfn = thunder.jit(lambda x: torch.relu(x) * 2, executors=["torch"])
    jfn(x).sum().backward()
    saved = thunder.last_traces(jfn)[-1].output[1]
    assert all(s.dtype != torch.bool for s in saved), "the backward should need relu's output, not a boolean mask"
    torch.testing.assert_close(x.grad, (x > 0).float() * 2)


def test_second_derivatives_still_come_from_the_decomposition():
    # the backward kernels have no gradient of their own; thunder.grad of thunder.grad differentiates the ops' rules
    f = lambda x: torch.tanh(torch.relu(x) + torch.sigmoid(x)).sum()
    x = torch.randn(7, dtype=torch.float64)
    expected = torch.func.grad(lambda x: torch.func.grad(f)(x).sum())(x)
    torch.testing.assert_close(thunder.grad(lambda x: thunder.grad(f)(x).sum())(x), expected)
