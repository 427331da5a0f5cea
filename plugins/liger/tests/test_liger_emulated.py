"""CPU tests of the liger executor's wiring: its operators, grad transforms and passes run through
`thunder.jit` on CPU tensors, with the CPU counted as a kernel device and Liger replaced by a PyTorch
stand-in of its functional contract (`emulated_liger.py`, which also writes into its arguments where Liger
does). Results and gradients are compared with eager PyTorch, as the GPU tests compare the real kernels; the
tensors given to the jitted function must come out unchanged.
"""

from __future__ import annotations

import emulated_liger
import pytest
import torch
import torch.nn.functional as F
from liger_testing import (
    assert_hf_training_step_matches_eager,
    check_against_eager,
    hf_llama,
)
from thunder_liger import checkers
from thunder_liger.executor import ex, rotate_half

import thunder
from thunder.testing import LlamaStyle, assert_trains_like_eager

F32 = torch.float32


@pytest.fixture(autouse=True)
def emulated(monkeypatch):
    monkeypatch.setattr(checkers, "on_kernel_device", lambda t: True)
    emulated_liger.install(monkeypatch)
    torch.manual_seed(0)


def check(fn, *args):
    return check_against_eager(fn, args, F32, executors=[ex])


@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm(with_weight):
    args = (torch.randn(2, 5, 16),) + ((torch.randn(16),) if with_weight else ())
    ops = check(lambda x, w=None: F.rms_norm(x, (16,), w, 1e-6), *args)
    assert "liger.rms_norm_fwd" in ops and "liger.rms_norm_bwd" in ops


def test_layer_norm():
    ops = check(lambda x, w, b: F.layer_norm(x, (16,), w, b), torch.randn(2, 5, 16), torch.randn(16), torch.randn(16))
    assert "liger.layer_norm_fwd" in ops and "liger.layer_norm_bwd" in ops


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(reduction):
    target = torch.tensor([1, -100, 4, 9, 0, -100, 3])
    ops = check(lambda x, t: F.cross_entropy(x, t, reduction=reduction, label_smoothing=0.1), torch.randn(7, 10),
                target)  # fmt: skip
    assert "liger.cross_entropy_fwd_with_grad" in ops


def test_swiglu_and_geglu_patterns():
    ops = check(lambda a, b: F.silu(a) * b + b * F.gelu(a, approximate="tanh"), torch.randn(3, 8), torch.randn(3, 8))
    assert {"liger.swiglu", "liger.swiglu_bwd", "liger.geglu", "liger.geglu_bwd"} <= set(ops)


@pytest.mark.parametrize("layout", ["contiguous", "heads-transposed"])
def test_rope_pattern_with_gradients_for_x_and_the_frequencies(layout):
    def rotary(x, freqs):
        emb = torch.cat((freqs, freqs), dim=-1)
        return x * emb.cos() + rotate_half(x) * emb.sin()

    x = torch.randn(2, 3, 5, 8) if layout == "contiguous" else torch.randn(2, 5, 3, 8).transpose(1, 2)
    ops = check(rotary, x, torch.rand(5, 4) * 3)
    assert "liger.rope" in ops and "liger.rope_bwd" in ops


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_pattern(with_bias, reduction):
    def loss(h, w, target, b=None):
        return F.cross_entropy(F.linear(h, w, b).view(-1, w.shape[0]), target, reduction=reduction, ignore_index=2)

    args = (torch.randn(2, 3, 8), torch.randn(11, 8), torch.tensor([0, 2, 5, 10, 2, 1]))
    ops = check(loss, *args, *((torch.randn(11),) if with_bias else ()))
    assert "liger.fused_linear_cross_entropy_with_grads" in ops


def test_llama_style_model_trains_with_liger_first_as_in_eager():
    model = LlamaStyle(vocab=64, dim=32, heads=2, hidden=48, layers=2)
    executors = [ex, *(e.name for e in thunder.get_default_executors())]
    ops = assert_trains_like_eager(model, executors, device="cpu", batch_shape=(2, 8), tolerance=1e-5)
    assert ops.count("liger.rope") == 4 and ops.count("liger.swiglu") == 2 and ops.count("liger.rms_norm_fwd") == 5
    assert ops.count("liger.fused_linear_cross_entropy_with_grads") == 1


@pytest.mark.parametrize("layout", ["contiguous", "heads-transposed"])
def test_rope_result_is_laid_out_as_eager_lays_it_out(layout):
    def rotary(x, freqs):
        emb = torch.cat((freqs, freqs), dim=-1)
        return x * emb.cos() + rotate_half(x) * emb.sin()

    x = torch.randn(2, 3, 5, 8) if layout == "contiguous" else torch.randn(2, 5, 3, 8).transpose(1, 2)
    freqs = torch.rand(5, 4)
    jfn = thunder.jit(rotary, executors=[ex])
    result, expected = jfn(x, freqs), rotary(x, freqs)
    assert "liger.rope" in [b.sym.id for b in thunder.last_traces(jfn)[-1].bound_symbols]
    assert result.stride() == expected.stride()


def test_hugging_face_llama_training_step_with_liger_first_matches_eager():
    ops = assert_hf_training_step_matches_eager(hf_llama(), [ex, *(e.name for e in thunder.get_default_executors())],
                                                tolerance=1e-5)  # fmt: skip
    # transformers' rotary (its cache made from cat((freqs, freqs), -1) in the forward) and MLP are fused
    assert ops.count("liger.rope") == 4 and ops.count("liger.swiglu") == 2
    assert ops.count("liger.cross_entropy_fwd_with_grad") == 1
