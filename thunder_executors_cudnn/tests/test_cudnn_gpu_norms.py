"""cuDNN's LayerNorm and RMSNorm graphs on the GPU (with the `enable_norms` option) against float32 eager."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from attention_cases import operator_ids
from cudnn_testing import assert_close_scaled, float32_leaves, needs_gpu, no_fallback

import thunder

pytestmark = needs_gpu
ENABLED = {"cudnn": {"enable_norms": True}}


def _inputs(dtype, hidden=1024, with_bias=True):
    x = torch.randn(4, 128, hidden, device="cuda", dtype=dtype, requires_grad=True)
    w = (1 + 0.1 * torch.randn(hidden, device="cuda", dtype=dtype)).requires_grad_()
    b = (0.1 * torch.randn(hidden, device="cuda", dtype=dtype)).requires_grad_() if with_bias else None
    return x, w, b


def _check(fn, inputs, dtype, fwd_id, bwd_id):
    from thunder_executors_cudnn.executor import ex

    jfn = thunder.jit(fn, executors=[ex], executor_options=ENABLED)
    with no_fallback():
        out = jfn(*inputs)
        grad = torch.randn_like(out)
        out.backward(grad)
    references = float32_leaves(*inputs)
    expected = fn(*references)
    expected.backward(grad.float())
    tol = 1e-4 if dtype == torch.float32 else 4e-2
    assert_close_scaled(out, expected, tol)
    for actual, reference in zip(inputs, references):
        if actual is not None:
            assert actual.grad.dtype == actual.dtype
            assert_close_scaled(actual.grad, reference.grad, tol)
    assert fwd_id in operator_ids(thunder.last_traces(jfn)[-1])
    assert bwd_id in operator_ids(thunder.last_backward_traces(jfn)[-1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("with_bias", [True, False])
def test_layer_norm(dtype, with_bias):
    def fn(x, w, b):
        return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)

    _check(fn, _inputs(dtype, with_bias=with_bias), dtype, "cudnn.layer_norm_fwd", "cudnn.layer_norm_bwd")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("eps", [1e-6, None])
def test_rms_norm(dtype, eps):
    def fn(x, w):
        return F.rms_norm(x, (x.shape[-1],), w, eps)

    x, w, _ = _inputs(dtype)
    _check(fn, (x, w), dtype, "cudnn.rms_norm_fwd", "cudnn.rms_norm_bwd")
