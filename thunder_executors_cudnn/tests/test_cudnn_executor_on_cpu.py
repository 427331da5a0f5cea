"""The executor's own logic on a machine without a GPU: claiming, the mask's translation into a bias, rows a mask
hides entirely, grouped-query heads, the scale, the dropout state shared by forward and backward, what the
forward saves, the `enable_norms` option and its pass. The cuDNN graphs are replaced by the float32 stand-in of
`cudnn_reference` (the `stand_in` fixture); GPU tests check the graphs themselves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from attention_cases import (
    GRID,
    check_case,
    check_dropout_is_reproducible,
    check_dropout_mask_is_shared_by_forward_and_backward,
    operator_ids,
)
from cudnn_testing import assert_close_scaled, float32_leaves
from thunder_executors_cudnn.executor import ex
from tiny_llama import check_training_matches_eager

import thunder
from thunder.extend import ExecutorOptionError


@pytest.mark.parametrize("case", GRID, ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_attention_matches_float32_eager(stand_in, case, dtype):
    check_case(case, [ex], dtype=dtype, device="cpu", s=16, d=16)
    assert stand_in.calls == ["sdpa_forward", "sdpa_backward"]


def test_dropout_forward_and_backward_use_one_mask(stand_in):
    check_dropout_mask_is_shared_by_forward_and_backward([ex], dtype=torch.bfloat16, device="cpu", s=32)


def test_dropout_is_reproducible_under_manual_seed(stand_in):
    check_dropout_is_reproducible([ex], dtype=torch.bfloat16, device="cpu", s=32)


def test_the_forward_saves_inputs_output_and_statistics_never_the_attention_matrix(stand_in):
    q, k, v = (torch.randn(2, 4, 32, 16, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    jfn = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), executors=[ex])
    jfn(q, k, v).sum().backward()
    forward = thunder.last_traces(jfn)[-1]
    saved = forward.output[1]
    shapes = sorted(tuple(t.shape) for t in saved)
    assert shapes == sorted([(2, 4, 32, 16)] * 4 + [(2, 4, 32, 1)]), shapes  # q, k, v, O and the statistics


def test_full_precision_attention_is_left_to_sdpa(stand_in):
    q, k, v = (torch.randn(2, 4, 16, 16, requires_grad=True) for _ in range(3))
    jfn = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), executors=[ex, "sdpa"])
    out = jfn(q, k, v)
    out.sum().backward()
    assert not any(i.startswith("cudnn.") for i in operator_ids(thunder.last_traces(jfn)[-1]))
    rq, rk, rv = float32_leaves(q, k, v)
    expected = F.scaled_dot_product_attention(rq, rk, rv)
    expected.sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(q.grad, rq.grad)
    assert stand_in.calls == []


def test_inference_runs_the_forward_graph_only(stand_in):
    q, k, v = (torch.randn(2, 4, 16, 16, dtype=torch.bfloat16) for _ in range(3))
    jfn = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), executors=[ex])
    out = jfn(q, k, v)
    expected = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    assert_close_scaled(out, expected, 4e-2)
    assert stand_in.calls == ["sdpa_forward"]


# -- LayerNorm and RMSNorm behind the enable_norms option ------------------------------------------------------------


def norms(x, w, b):
    y = F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)
    return F.rms_norm(y, (x.shape[-1],), w, 1e-6)


def _norm_inputs(dtype):
    x = torch.randn(4, 8, 64, dtype=dtype, requires_grad=True)
    w = (1 + 0.1 * torch.randn(64, dtype=dtype)).requires_grad_()
    b = (0.1 * torch.randn(64, dtype=dtype)).requires_grad_()
    return x, w, b


def test_norms_stay_off_cudnn_by_default(stand_in):
    jfn = thunder.jit(norms, executors=[ex])
    jfn(*_norm_inputs(torch.bfloat16)).sum().backward()
    assert not any(i.startswith("cudnn.") for i in operator_ids(thunder.last_traces(jfn)[-1]))
    assert stand_in.calls == []


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=str)
def test_enable_norms_runs_layer_norm_and_rms_norm_on_cudnn(stand_in, dtype):
    x, w, b = _norm_inputs(dtype)
    jfn = thunder.jit(norms, executors=[ex], executor_options={"cudnn": {"enable_norms": True}})
    out = jfn(x, w, b)
    grad = torch.randn_like(out)
    out.backward(grad)
    rx, rw, rb = float32_leaves(x, w, b)
    expected = norms(rx, rw, rb)
    expected.backward(grad.float())
    tol = 1e-5 if dtype == torch.float32 else 4e-2
    assert_close_scaled(out, expected, tol)
    for actual, reference in ((x.grad, rx.grad), (w.grad, rw.grad), (b.grad, rb.grad)):
        assert actual.dtype == dtype
        assert_close_scaled(actual, reference, tol)
    assert {"cudnn.layer_norm_fwd", "cudnn.rms_norm_fwd"} <= operator_ids(thunder.last_traces(jfn)[-1])
    assert {"cudnn.layer_norm_bwd", "cudnn.rms_norm_bwd"} <= operator_ids(thunder.last_backward_traces(jfn)[-1])
    assert sorted(stand_in.calls) == sorted(["layer_norm_forward", "rms_norm_forward", "layer_norm_backward",
                                             "rms_norm_backward"])  # fmt: skip


def test_enable_norms_leaves_what_its_checkers_decline(stand_in):
    x = torch.randn(4, 8, 64, dtype=torch.float64)
    jfn = thunder.jit(lambda x: F.layer_norm(x, (64,)), executors=[ex], executor_options={"cudnn": {"enable_norms": True}})
    torch.testing.assert_close(jfn(x), F.layer_norm(x, (64,)))
    assert stand_in.calls == []


def test_a_mistyped_option_is_an_error_naming_it():
    with pytest.raises(ExecutorOptionError, match="enable_norms"):
        thunder.jit(norms, executors=[ex], executor_options={"cudnn": {"enable_norms": "yes"}})
    with pytest.raises(ExecutorOptionError, match="enable_norms"):
        thunder.jit(norms, executors=[ex], executor_options={"cudnn": {"enable_norm": True}})


def test_the_option_is_declared_off_by_default():
    assert dict(ex.validate_options(None)) == {"enable_norms": False}


@pytest.mark.slow
@pytest.mark.parametrize("enable_norms", [False, True], ids=["norms-off", "norms-on"])
def test_a_llama_style_model_trains_as_in_eager(stand_in, enable_norms):
    check_training_matches_eager([ex, "sdpa"], device="cpu", enable_norms=enable_norms, seq=32)
