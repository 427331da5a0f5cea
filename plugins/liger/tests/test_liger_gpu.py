"""GPU tests of the liger executor: every claimed operation and every fused pattern against eager (float32
on the same rounded values), forward and backward, in float32, bfloat16 and float16; and a Llama-style model
trained a few steps with `liger` first in the executor list, against eager.

Each test also asserts that Liger's operator is in the execution trace, so that a checker that declined
would fail the test rather than pass it on PyTorch's kernels. They skip, saying why, without CUDA or Liger.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from liger_testing import (
    DTYPES,
    assert_hf_training_step_matches_eager,
    check_against_eager,
    hf_llama,
    needs_liger_on_cuda,
)
from thunder_liger.executor import rotate_half

import thunder
from thunder.testing import LlamaStyle, assert_trains_like_eager

pytestmark = needs_liger_on_cuda


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, device="cuda", dtype=dtype)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(1234)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm(dtype, with_weight):
    args = (randn(4, 33, 512, dtype=dtype),) + ((randn(512, dtype=dtype),) if with_weight else ())
    ops = check_against_eager(lambda x, w=None: F.rms_norm(x, (512,), w, 1e-6), args, dtype, scale=2)
    assert "liger.rms_norm_fwd" in ops and "liger.rms_norm_bwd" in ops


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm(dtype):
    args = (randn(4, 33, 768, dtype=dtype), randn(768, dtype=dtype), randn(768, dtype=dtype))
    ops = check_against_eager(lambda x, w, b: F.layer_norm(x, (768,), w, b, 1e-5), args, dtype, scale=2)
    assert "liger.layer_norm_fwd" in ops and "liger.layer_norm_bwd" in ops


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(dtype, reduction):
    target = torch.randint(0, 1000, (130,), device="cuda")
    target[::7] = -100

    def loss(logits, target):
        return F.cross_entropy(logits, target, reduction=reduction, label_smoothing=0.1)

    ops = check_against_eager(loss, (randn(130, 1000, dtype=dtype), target), dtype)
    assert "liger.cross_entropy_fwd_with_grad" in ops


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_does_not_change_its_logits(dtype):
    # Liger's kernel overwrites its logits argument; the executor must hand it a copy
    logits, target = randn(64, 300, dtype=dtype), torch.randint(0, 300, (64,), device="cuda")
    target[:8] = -100
    before = logits.clone()
    thunder.jit(lambda x, t: F.cross_entropy(x, t), executors=["liger"])(logits, target)
    assert torch.equal(logits, before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_swiglu_pattern(dtype):
    args = (randn(4, 33, 1024, dtype=dtype), randn(4, 33, 1024, dtype=dtype))
    ops = check_against_eager(lambda a, b: F.silu(a) * b, args, dtype)
    assert "liger.swiglu" in ops and "liger.swiglu_bwd" in ops


@pytest.mark.parametrize("dtype", DTYPES)
def test_geglu_pattern(dtype):
    args = (randn(4, 33, 1024, dtype=dtype), randn(4, 33, 1024, dtype=dtype))
    ops = check_against_eager(lambda a, b: b * F.gelu(a, approximate="tanh"), args, dtype, scale=2)
    assert "liger.geglu" in ops and "liger.geglu_bwd" in ops


def test_swiglu_backward_leaves_its_saved_inputs_intact():
    # Liger's backward stores the gradients in the tensors it is given: the executor must give it copies
    a, b = randn(8, 256, dtype=torch.bfloat16).requires_grad_(), randn(8, 256, dtype=torch.bfloat16).requires_grad_()
    before = (a.detach().clone(), b.detach().clone())
    thunder.jit(lambda a, b: F.silu(a) * b, executors=["liger"])(a, b).sum().backward()
    assert torch.equal(a.detach(), before[0]) and torch.equal(b.detach(), before[1])


def _llama_rotary(x, freqs):
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos().to(x.dtype) + rotate_half(x) * emb.sin().to(x.dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "heads-transposed"])
def test_rope_pattern(dtype, layout):
    x = randn(2, 8, 48, 64, dtype=dtype) if layout == "contiguous" else randn(2, 48, 8, 64, dtype=dtype).transpose(1, 2)
    freqs = torch.rand(48, 32, device="cuda") * 3
    ops = check_against_eager(_llama_rotary, (x, freqs), dtype, scale=2)
    assert "liger.rope" in ops and "liger.rope_bwd" in ops


@pytest.mark.parametrize("dtype", DTYPES)
def test_rope_pattern_with_a_per_batch_cache(dtype):
    def rotary(x, freqs):  # freqs [B, S, D/2], cos and sin [B, 1, S, D], as Hugging Face's Llama makes them
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype).unsqueeze(1), emb.sin().to(x.dtype).unsqueeze(1)
        return x * cos + rotate_half(x) * sin

    ops = check_against_eager(rotary, (randn(3, 4, 40, 32, dtype=dtype), torch.rand(3, 40, 16, device="cuda")),
                              dtype, scale=2)  # fmt: skip
    assert "liger.rope" in ops


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_pattern(dtype, with_bias, reduction):
    target = torch.randint(0, 2000, (4 * 65,), device="cuda")
    target[::5] = -100

    def loss(h, w, target, b=None):
        logits = F.linear(h, w, b)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), target, reduction=reduction)

    args = (randn(4, 65, 256, dtype=dtype), randn(2000, 256, dtype=dtype) * 0.05, target)
    args += (randn(2000, dtype=dtype),) if with_bias else ()
    ops = check_against_eager(loss, args, dtype, scale=2)
    assert "liger.fused_linear_cross_entropy_with_grads" in ops


def test_llama_style_model_trains_with_liger_first_as_in_eager():
    torch.manual_seed(0)
    executors = ["liger", *(e.name for e in thunder.get_default_executors())]
    ops = assert_trains_like_eager(LlamaStyle().cuda(), executors, device="cuda")
    for name in ("liger.rms_norm_fwd", "liger.rope", "liger.swiglu", "liger.fused_linear_cross_entropy_with_grads"):
        assert name in ops, f"{name} is not in the execution trace"


def test_hugging_face_llama_training_step_with_liger_first_matches_eager():
    torch.manual_seed(0)
    executors = ["liger", *(e.name for e in thunder.get_default_executors())]
    ops = assert_hf_training_step_matches_eager(hf_llama("cuda"), executors, tolerance=1e-4)
    assert ops.count("liger.rope") == 4 and ops.count("liger.swiglu") == 2
