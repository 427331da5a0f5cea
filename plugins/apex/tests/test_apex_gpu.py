"""GPU tests of the apex executor: every claimed operation against eager (float32 on the same rounded values),
forward and backward, in float32, bfloat16 and float16; and a Llama-style model trained a few steps with
`apex` first in the executor list, against eager.

Each test also asserts that Apex's operators are in the execution traces, so that a checker that declined
would fail the test rather than pass it on PyTorch's kernels. They skip, saying why, without CUDA or Apex's
extensions (on the GPU host: `source .device/build_apex.sh` first).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from apex_testing import DTYPES, check_against_eager, needs_apex_on_cuda

import thunder
from thunder.testing import LlamaStyle, assert_trains_like_eager

pytestmark = needs_apex_on_cuda


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, device="cuda", dtype=dtype)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(1234)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(768,), (4, 96)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(dtype, shape, affine):
    args = (randn(3, 17, *shape, dtype=dtype),)
    args += (randn(*shape, dtype=dtype), randn(*shape, dtype=dtype)) if affine else ()
    ops = check_against_eager(lambda x, w=None, b=None: F.layer_norm(x, shape, w, b, 1e-5), args, dtype, scale=2)
    assert "apex.layer_norm_fwd" in ops and "apex.layer_norm_bwd" in ops


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_weight", [True, False])
def test_rms_norm(dtype, with_weight):
    args = (randn(3, 17, 1024, dtype=dtype),) + ((randn(1024, dtype=dtype),) if with_weight else ())
    ops = check_against_eager(lambda x, w=None: F.rms_norm(x, (1024,), w), args, dtype, scale=2)
    assert "apex.rms_norm_fwd" in ops and "apex.rms_norm_bwd" in ops


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(dtype, reduction, smoothing):
    target = torch.randint(0, 3000, (257,), device="cuda")
    target[::9] = -100

    def loss(logits, target):
        return F.cross_entropy(logits, target, reduction=reduction, label_smoothing=smoothing)

    # bfloat16 keeps the log-sum-exp in bfloat16 (Apex has no float32 mode for it): its softmax in the backward
    # is that much coarser
    scale = 3 if dtype == torch.bfloat16 else 1
    ops = check_against_eager(loss, (randn(257, 3000, dtype=dtype), target), dtype, scale=scale)
    assert "apex.cross_entropy_fwd" in ops and "apex.cross_entropy_bwd" in ops


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_with_an_ignore_index_among_the_classes(dtype):
    target = torch.randint(0, 50, (64,), device="cuda")
    target[:5] = 0
    scale = 3 if dtype == torch.bfloat16 else 1
    ops = check_against_eager(lambda x, t: F.cross_entropy(x, t, ignore_index=0), (randn(64, 50, dtype=dtype), target),
                              dtype, scale=scale)  # fmt: skip
    assert "apex.cross_entropy_fwd" in ops


def test_llama_style_model_trains_with_apex_first_as_in_eager():
    torch.manual_seed(0)
    # without triton: its pass fuses the LM head's linear with the cross-entropy before executors claim operations
    # (executor passes run for every executor in the list), so apex would never see the cross-entropy
    executors = ["apex", *(e.name for e in thunder.get_default_executors() if e.name != "triton")]
    ops = assert_trains_like_eager(LlamaStyle().cuda(), executors, device="cuda")
    assert "apex.rms_norm_fwd" in ops and "apex.cross_entropy_fwd" in ops
