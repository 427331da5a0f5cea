"""cuDNN's attention graphs on the GPU: the option grid against PyTorch's math attention in float32 (outputs and
gradients), head sizes, dropout, the graph cache, and what the checkers leave to `sdpa`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from attention_cases import (
    GRID,
    Case,
    check_case,
    check_dropout_is_reproducible,
    check_dropout_mask_is_shared_by_forward_and_backward,
    operator_ids,
)
from cudnn_testing import needs_gpu

import thunder

pytestmark = needs_gpu
HALF = [torch.bfloat16, torch.float16]


@pytest.fixture
def ex():
    from thunder_executors_cudnn.executor import ex

    return ex


@pytest.mark.parametrize("case", GRID, ids=str)
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_attention_matches_float32_math_attention(ex, case, dtype):
    check_case(case, [ex], dtype=dtype, device="cuda", s=128, d=64)


@pytest.mark.parametrize("head", [32, 64, 128])
@pytest.mark.parametrize("causal", [False, True])
def test_head_sizes(ex, head, causal):
    check_case(Case(causal=causal), [ex], dtype=torch.bfloat16, device="cuda", s=256, d=head)


def test_long_sequences_with_grouped_query_heads(ex):
    check_case(Case(causal=True, h_kv=2, bshd=True), [ex], dtype=torch.bfloat16, device="cuda", b=1, h=8, s=1024,
               d=128)  # fmt: skip


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_dropout_forward_and_backward_use_one_mask(ex, dtype):
    check_dropout_mask_is_shared_by_forward_and_backward([ex], dtype=dtype, device="cuda", s=64)


def test_dropout_is_reproducible_under_manual_seed(ex):
    check_dropout_is_reproducible([ex], dtype=torch.bfloat16, device="cuda", s=64)


def test_a_graph_is_built_once_per_signature_and_reused(ex):
    from thunder_executors_cudnn import graphs

    def two_layers(q, k, v):
        first = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.scaled_dot_product_attention(first, k, v, is_causal=True)

    graphs.graph_cache.clear()
    jfn = thunder.jit(two_layers, executors=[ex])
    q, k, v = (torch.randn(2, 4, 128, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    jfn(q, k, v).sum().backward()
    # both layers have one signature: one forward graph, one backward graph
    assert (graphs.graph_cache.misses, graphs.graph_cache.hits) == (2, 2)
    jfn(q, k, v).sum().backward()
    assert (graphs.graph_cache.misses, graphs.graph_cache.hits) == (2, 6)
    q2, k2, v2 = (torch.randn(2, 4, 256, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                  for _ in range(3))  # fmt: skip
    jfn(q2, k2, v2).sum().backward()
    assert graphs.graph_cache.misses == 4


def test_options_are_part_of_the_graph_signature(ex):
    from thunder_executors_cudnn import graphs

    graphs.graph_cache.clear()
    q, k, v = (torch.randn(2, 4, 128, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    causal = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), executors=[ex])
    plain = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), executors=[ex])
    out_causal, out_plain = causal(q, k, v), plain(q, k, v)
    assert graphs.graph_cache.misses == 2
    assert not torch.allclose(out_causal, out_plain)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_full_precision_is_left_to_sdpa(ex, dtype):
    q, k, v = (torch.randn(2, 4, 128, 64, device="cuda", dtype=dtype) for _ in range(3))
    jfn = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), executors=[ex, "sdpa"])
    out = jfn(q, k, v)
    assert not any(i.startswith("cudnn.") for i in operator_ids(thunder.last_traces(jfn)[-1]))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_an_unsupported_head_size_is_left_to_sdpa(ex):
    q, k, v = (torch.randn(2, 4, 128, 72 + 4, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    jfn = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), executors=[ex, "sdpa"])
    jfn(q, k, v)
    assert not any(i.startswith("cudnn.") for i in operator_ids(thunder.last_traces(jfn)[-1]))
