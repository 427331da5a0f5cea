"""`thunder_executors_cudnn.graphs` itself on a machine without a GPU, against the recording stand-in of
cudnn-frontend in `fake_cudnn` (the `fake_cudnn` fixture): every tensor is declared with the dims, strides and
dtype of the buffer later bound to its uid, the graph steps run in order, graphs are cached by signature, and the
whole executor (through these graphs) matches float32 eager on the attention grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from attention_cases import (
    GRID,
    check_case,
    check_dropout_is_reproducible,
    check_dropout_mask_is_shared_by_forward_and_backward,
)
from cudnn_testing import assert_close_scaled, float32_leaves, math_attention
from thunder_executors_cudnn.executor import ex

from thunder_executors_cudnn import graphs

BF16 = torch.bfloat16


@pytest.mark.parametrize("case", GRID, ids=str)
def test_the_executor_through_the_graphs_matches_float32_eager(fake_cudnn, case):
    check_case(case, [ex], dtype=BF16, device="cpu", s=16, d=16)
    assert [g.op for g in fake_cudnn.built] == ["sdpa", "sdpa_backward"]


def test_dropout_through_the_graphs(fake_cudnn):
    check_dropout_mask_is_shared_by_forward_and_backward([ex], dtype=BF16, device="cpu", s=32)
    check_dropout_is_reproducible([ex], dtype=BF16, device="cpu", s=32)


def test_the_output_and_gradients_take_their_inputs_layouts(fake_cudnn):
    q, k, v = (torch.randn(2, 16, 4, 8, dtype=BF16).transpose(1, 2) for _ in range(3))  # [B, H, S, D] views
    out, stats = graphs.sdpa_forward(q, k, v, None, None, None, 0.0, True, 0.3)
    assert out.stride() == q.stride() and stats.shape == (2, 4, 16, 1) and stats.dtype == torch.float32
    grad = torch.randn(1, 1, 1, 8, dtype=BF16).expand(2, 4, 16, 8)  # broadcast: copied into O's layout
    dq, dk, dv = graphs.sdpa_backward(grad, q, k, v, out, stats, None, None, None, 0.0, True, 0.3)
    assert (dq.stride(), dk.stride(), dv.stride()) == (q.stride(), k.stride(), v.stride())
    rq, rk, rv = (t.float().requires_grad_() for t in (q, k, v))
    expected = math_attention(rq, rk, rv, is_causal=True, scale=0.3)
    expected.backward(grad.float())
    assert_close_scaled(out, expected, 4e-2)
    for actual, reference in zip((dq, dk, dv), (rq, rk, rv)):
        assert_close_scaled(actual, reference.grad, 4e-2)


def test_one_graph_per_signature(fake_cudnn):
    q, k, v = (torch.randn(2, 4, 16, 8, dtype=BF16) for _ in range(3))
    for _ in range(3):
        graphs.sdpa_forward(q, k, v, None, None, None, 0.0, False, 0.3)
    assert (graphs.graph_cache.misses, graphs.graph_cache.hits) == (1, 2)
    graphs.sdpa_forward(q, k, v, None, None, None, 0.0, True, 0.3)  # causal: another graph
    graphs.sdpa_forward(q, k, v, None, None, None, 0.0, False, 0.5)  # another scale: another graph
    graphs.sdpa_forward(q.transpose(1, 2).contiguous().transpose(1, 2), k, v, None, None, None, 0.0, False, 0.3)
    assert graphs.graph_cache.misses == 4  # q's strides are part of the signature
    # a strided last dimension is copied to a dense layout first: the first graph again
    graphs.sdpa_forward(q.transpose(2, 3).contiguous().transpose(2, 3), k, v, None, None, None, 0.0, False, 0.3)
    assert graphs.graph_cache.misses == 4


@pytest.mark.parametrize("dtype", [BF16, torch.float32], ids=str)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_graphs(fake_cudnn, dtype, affine):
    x = torch.randn(3, 5, 32, dtype=dtype)
    w, b = (torch.randn(32, dtype=dtype), torch.randn(32, dtype=dtype)) if affine else (None, None)
    y, mean, rstd = graphs.layer_norm_forward(x, w, b, 1e-5)
    assert y.shape == x.shape and mean.shape == rstd.shape == (15, 1, 1, 1)
    grad = torch.randn_like(x)
    dx, dw, db = graphs.layer_norm_backward(grad, x, w, mean, rstd)
    rx, rw, rb = float32_leaves(x, *(t.requires_grad_() if t is not None else None for t in (w, b)))
    rx.requires_grad_()
    expected = F.layer_norm(rx, (32,), rw, rb, 1e-5)
    expected.backward(grad.float())
    assert_close_scaled(y, expected, 2e-2)
    assert_close_scaled(dx, rx.grad, 2e-2)
    if affine:
        assert_close_scaled(dw, rw.grad, 2e-2)
        assert_close_scaled(db, rb.grad, 2e-2)


@pytest.mark.parametrize("dtype", [BF16, torch.float32], ids=str)
def test_rms_norm_graphs(fake_cudnn, dtype):
    x, w = torch.randn(3, 5, 32, dtype=dtype, requires_grad=True), torch.randn(32, dtype=dtype, requires_grad=True)
    y, rstd = graphs.rms_norm_forward(x.detach(), w.detach(), 1e-6)
    grad = torch.randn_like(y)
    dx, dw = graphs.rms_norm_backward(grad, x.detach(), w.detach(), rstd)
    rx, rw = float32_leaves(x, w)
    expected = F.rms_norm(rx, (32,), rw, 1e-6)
    expected.backward(grad.float())
    assert dw.dtype == dtype
    assert_close_scaled(y, expected, 2e-2)
    assert_close_scaled(dx, rx.grad, 2e-2)
    assert_close_scaled(dw, rw.grad, 2e-2)


def test_dropout_state_is_two_int64_scalars_on_the_query_device(fake_cudnn):
    seed, offset = graphs.draw_dropout_seed(torch.randn(1, 1, 4, 4), 16)
    assert seed.shape == offset.shape == (1, 1, 1, 1) and seed.dtype == offset.dtype == torch.int64


# -- graphs cuDNN refuses ----------------------------------------------------------------------------------------------


@pytest.fixture
def refusing_cudnn(fake_cudnn, monkeypatch):
    """The stand-in refusing every graph at check_support, as cuDNN does for a configuration it cannot run."""
    from thunder_executors_cudnn import fallback

    def refuse(graph):
        raise RuntimeError("[cudnn_frontend] Error: No execution plans support the graph.")

    monkeypatch.setattr(fake_cudnn.pygraph, "check_support", refuse)
    monkeypatch.setattr(fallback, "_warned", set())
    return fake_cudnn


@pytest.mark.parametrize("case", [GRID[1], GRID[5], GRID[7], GRID[11]], ids=str)
def test_a_refused_attention_graph_runs_in_pytorch_after_a_warning(refusing_cudnn, case):
    check_case(case, [ex], dtype=BF16, device="cpu", s=16, d=16, expect_fallback=True)


def test_a_refused_graph_is_remembered_not_rebuilt(refusing_cudnn):
    from thunder_executors_cudnn.fallback import CudnnFallbackWarning

    q, k, v = (torch.randn(2, 4, 16, 8, dtype=BF16) for _ in range(3))
    with pytest.warns(CudnnFallbackWarning, match="attention forward runs in PyTorch instead of cuDNN"):
        graphs.sdpa_forward(q, k, v, None, None, None, 0.0, False, 0.3)
    graphs.sdpa_forward(q, k, v, None, None, None, 0.0, False, 0.3)
    assert (graphs.graph_cache.misses, graphs.graph_cache.hits, len(refusing_cudnn.built)) == (1, 1, 1)


def test_refused_attention_with_dropout_raises_naming_the_way_out(refusing_cudnn):
    q, k, v = (torch.randn(2, 4, 16, 8, dtype=BF16) for _ in range(3))
    seed, offset = graphs.draw_dropout_seed(q, 16)
    with pytest.raises(graphs.CudnnGraphError, match="Leave 'cudnn' out of"):
        graphs.sdpa_forward(q, k, v, None, seed, offset, 0.1, False, 0.3)


def test_refused_norm_graphs_run_in_pytorch(refusing_cudnn):
    from thunder_executors_cudnn.fallback import CudnnFallbackWarning

    x, w, b = torch.randn(3, 5, 32, dtype=BF16), torch.randn(32, dtype=BF16), torch.randn(32, dtype=BF16)
    grad = torch.randn_like(x)
    with pytest.warns(CudnnFallbackWarning):
        y, mean, rstd = graphs.layer_norm_forward(x, w, b, 1e-5)
        dx, dw, db = graphs.layer_norm_backward(grad, x, w, mean, rstd)
        ry, rrstd = graphs.rms_norm_forward(x, w, 1e-6)
        rdx, rdw = graphs.rms_norm_backward(grad, x, w, rrstd)
    rx, rw, rb = (t.float().requires_grad_() for t in (x, w, b))
    expected = F.layer_norm(rx, (32,), rw, rb, 1e-5)
    expected.backward(grad.float())
    for actual, reference in ((y, expected), (dx, rx.grad), (dw, rw.grad), (db, rb.grad)):
        assert_close_scaled(actual, reference, 2e-2)
    rx, rw = (t.float().requires_grad_() for t in (x, w))
    expected = F.rms_norm(rx, (32,), rw, 1e-6)
    expected.backward(grad.float())
    for actual, reference in ((ry, expected), (rdx, rx.grad), (rdw, rw.grad)):
        assert_close_scaled(actual, reference, 2e-2)
