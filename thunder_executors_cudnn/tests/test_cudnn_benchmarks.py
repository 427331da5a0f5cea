"""The attention micro-benchmark: its FLOP count, its table, its autograd wrapper of the graphs (on the CPU
stand-in), and, with a GPU, one small run reporting every implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cudnn_testing import assert_close_scaled, float32_leaves, needs_gpu

from thunder_executors_cudnn import benchmarks


def test_causal_forward_flops_are_half_of_the_two_matmuls_and_backward_adds_two_and_a_half():
    forward = benchmarks.attention_flops(8, 16, 1024, 64, causal=True, backward=False)
    assert forward == 2 * 8 * 16 * 1024 * 1024 * 64
    assert benchmarks.attention_flops(8, 16, 1024, 64, causal=True, backward=True) == 3.5 * forward
    assert benchmarks.attention_flops(8, 16, 1024, 64, causal=False, backward=False) == 2 * forward


def test_the_table_shows_failures_and_ratios():
    rows = [{"case": "D=64 S=1024 fwd", "impl": "torch flash", "ms": 1.0, "tflops": 100.0, "vs_fastest_torch": 1.0},
            {"case": "D=64 S=1024 fwd", "impl": "torch cudnn", "ms": None, "tflops": None, "error": "RuntimeError: no",
             "vs_fastest_torch": None}]  # fmt: skip
    table = benchmarks.markdown(rows)
    assert "| D=64 S=1024 fwd | torch flash | 1.000 | 100 | 1.00 |" in table
    assert "failed: RuntimeError: no" in table


def test_the_graphs_wrapper_matches_eager(stand_in):
    q, k, v = (torch.randn(2, 4, 16, 16, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    out = benchmarks._CudnnGraphs.apply(q, k, v)
    grad = torch.randn_like(out)
    out.backward(grad)
    rq, rk, rv = float32_leaves(q, k, v)
    expected = F.scaled_dot_product_attention(rq, rk, rv, is_causal=True)
    expected.backward(grad.float())
    assert_close_scaled(out, expected, 4e-2)
    for actual, reference in ((q.grad, rq.grad), (k.grad, rk.grad), (v.grad, rv.grad)):
        assert_close_scaled(actual, reference, 4e-2)


@needs_gpu
@pytest.mark.parametrize("backward", [False, True])
def test_a_small_run_reports_every_implementation(backward):
    rows = benchmarks.run_case(1, 2, 64, 256, reps=2, backward=backward)
    assert [r["impl"] for r in rows] == [*benchmarks.TORCH_BACKENDS, "cudnn graphs", "thunder+cudnn"]
    ours = {r["impl"]: r for r in rows if r["impl"] in ("cudnn graphs", "thunder+cudnn")}
    assert all(r["ms"] > 0 for r in ours.values()), ours
