"""The sdpa executor: claims thunder.torch.scaled_dot_product_attention and runs it with
torch.nn.functional.scaled_dot_product_attention (forward; its backward comes with its grad rule)."""

from __future__ import annotations

import pytest
import torch
import torch._inductor.config
import torch.nn.functional as F

import thunder
from thunder.extend import get_executor


def claimed_by_sdpa(jfn) -> bool:
    return any(b.sym.id.startswith("sdpa.") for b in thunder.last_traces(jfn)[-1].bound_symbols)


def qkv(kv_heads=2):
    return torch.randn(1, 2, 5, 8), torch.randn(1, kv_heads, 6, 8), torch.randn(1, kv_heads, 6, 4)


def test_sdpa_is_a_default_executor_ahead_of_torch():
    names = [ex.name for ex in thunder.get_default_executors()]
    assert "sdpa" in names
    assert get_executor("sdpa").name == "sdpa"


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"is_causal": True}, {"scale": 0.3}, {"attn_mask": "bool"}, {"attn_mask": "float"}],
    ids=["plain", "causal", "scale", "bool_mask", "float_mask"],
)
def test_sdpa_runs_attention_as_eager_does(kwargs):
    q, k, v = qkv()
    if kwargs.get("attn_mask") == "bool":
        kwargs = {"attn_mask": torch.rand(5, 6) > 0.3}
    elif kwargs.get("attn_mask") == "float":
        kwargs = {"attn_mask": torch.randn(5, 6)}

    def attention(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, **kwargs)

    jf = thunder.jit(attention, executors=["sdpa"])
    torch.testing.assert_close(jf(q, k, v), attention(q, k, v))
    assert claimed_by_sdpa(jf)


def test_sdpa_runs_grouped_query_attention():
    q, k, v = qkv(kv_heads=1)

    def attention(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    jf = thunder.jit(attention, executors=["sdpa"])
    torch.testing.assert_close(jf(q, k, v), attention(q, k, v))
    assert claimed_by_sdpa(jf)


def test_attention_with_dropout_is_left_to_the_decomposition():
    q, k, v = qkv()
    jf = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.5), executors=["sdpa"])
    assert jf(q, k, v).shape == (1, 2, 5, 4)
    assert not claimed_by_sdpa(jf)


def test_attention_stays_with_sdpa_when_a_fusion_executor_comes_after_it():
    q, k, v = qkv()

    def attention(q, k, v):
        return F.scaled_dot_product_attention(q * 2, k, v) + 1

    jf = thunder.jit(attention, executors=["sdpa", "torchcompile"])
    with torch._inductor.config.patch(compile_threads=1):
        torch.testing.assert_close(jf(q, k, v), attention(q, k, v))
    assert claimed_by_sdpa(jf)
    assert sum("fusion" in b.sym.tags for b in thunder.last_traces(jf)[-1].bound_symbols) == 2


def _backward_uses_kernel(jfn) -> bool:
    """Whether the backward runs one of sdpa's attention backward kernels (CPU flash, CUDA flash or efficient)."""
    backward = thunder.last_backward_traces(jfn)[-1]
    return any(b.sym.id.startswith("sdpa.") and b.sym.id.endswith("_bwd") for b in backward.bound_symbols)


@pytest.mark.parametrize(
    "mask",
    [None, "bool_2d", "float_2d", "float_4d", "bool_3d"],
)
def test_sdpa_backward_runs_the_attention_kernel_with_masks(mask):
    torch.manual_seed(0)
    # CUDA's attention kernels take no float64: there the kernels' float32 is compared, at float32's tolerance for
    # a reduction over a few hundred products
    on_cpu = torch.get_default_device().type == "cpu"
    dtype, tol = (torch.float64, {}) if on_cpu else (torch.float32, {"atol": 1e-4, "rtol": 1e-4})
    q, k, v = (torch.randn(2, 3, 5, 8, dtype=dtype) for _ in range(3))
    masks = {
        None: None,
        "bool_2d": torch.rand(5, 5) > 0.3,
        "float_2d": torch.randn(5, 5, dtype=dtype),
        "float_4d": torch.randn(2, 1, 5, 5, dtype=dtype),
        "bool_3d": torch.rand(3, 5, 5) > 0.3,
    }
    attn_mask = masks[mask]
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        attn_mask[..., 0] = True  # no fully masked row: eager's result there is NaN

    def attention(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask).sum()

    jf = thunder.jit(attention, executors=["sdpa"])
    inputs = [t.clone().requires_grad_(True) for t in (q, k, v)]
    ref_inputs = [t.clone().requires_grad_(True) for t in (q, k, v)]
    torch.testing.assert_close(jf(*inputs), attention(*ref_inputs), **tol)
    grads = torch.autograd.grad(jf(*inputs), inputs)
    ref_grads = torch.autograd.grad(attention(*ref_inputs), ref_inputs)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, **tol)
    assert _backward_uses_kernel(jf)  # not torch autograd re-running the forward


def test_sdpa_backward_with_a_mask_that_requires_grad_matches_eager():
    q, k, v = (torch.randn(1, 2, 4, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    mask = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)

    def attention(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum()

    grads = torch.autograd.grad(thunder.jit(attention, executors=["sdpa"])(q, k, v, mask), (q, k, v, mask))
    ref_grads = torch.autograd.grad(attention(q, k, v, mask), (q, k, v, mask))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("kernel", ["flash", "efficient"])
def test_cuda_kernels_dropout_state_is_on_the_cpu_as_the_kernels_make_it(kernel):
    # Without dropout the CUDA attention kernels make their seed and offset on the CPU; a proxy on the CUDA
    # device made CUDA graphs capture a region that returned CPU tensors (found on the H100).
    from thunder.executors import sdpaex
    from thunder.extend import TensorProxy

    q = TensorProxy(shape=(2, 4, 16, 64), dtype=torch.bfloat16, device=torch.device("cuda", 0))
    if kernel == "flash":
        outs, rng = sdpaex._flash_fwd.meta(q, q, q, 0.0, True, False, scale=None), (6, 7)
    else:
        outs, rng = sdpaex._efficient_fwd.meta(q, q, q, None, True, 0.0, True, scale=None), (2, 3)
    assert [outs[i].device.type for i in rng] == ["cpu", "cpu"]
    assert outs[0].device == q.device and outs[1].device == q.device
