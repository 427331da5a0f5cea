"""GPT-2-style and Llama-style models (benchmarks/models.py) trained a few steps with
executors=["nvfuser", "sdpa"] on CUDA, against the same training in eager: losses, gradients and parameters.
Also the executor's own report of what ran where (regions on nvFuser, none fallen back)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from nvfuser_test_support import needs_nvfuser

import thunder

pytestmark = needs_nvfuser

STEPS = 3


def make_model(kind: str, dtype: torch.dtype):
    from benchmarks.models import GPT, GPTConfig, Llama, LlamaConfig

    torch.manual_seed(0)
    if kind == "gpt2":
        config = GPTConfig.preset("small", n_layer=2)
        model, vocab, seq = GPT(config), config.vocab_size, config.block_size
    else:
        config = LlamaConfig.preset("small")
        model, vocab, seq = Llama(config), config.vocab_size, config.max_seq_len
    model = model.to(device="cuda", dtype=dtype)
    idx = torch.randint(0, vocab, (2, seq), device="cuda")
    targets = torch.randint(0, vocab, (2, seq), device="cuda")
    return model, idx, targets


def train(model, step_fn, idx, targets):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    losses, grads = [], []
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = step_fn(idx, targets)
        loss.backward()
        losses.append(loss.detach().float())
        grads.append([p.grad.detach().float().clone() for p in model.parameters()])
        optimizer.step()
    return torch.stack(losses), grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_training_matches_eager(kind, dtype):
    from thunder_executors_nvfuser.runtime import NvFuserFallbackWarning

    model, idx, targets = make_model(kind, dtype)
    eager_model = copy.deepcopy(model)
    jmodel = thunder.jit(model, executors=["nvfuser", "sdpa"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses, grads = train(model, jmodel, idx, targets)
    eager_losses, eager_grads = train(eager_model, eager_model, idx, targets)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(losses, eager_losses, **tol)
    for step_grads, step_eager in zip(grads, eager_grads):
        for g, e in zip(step_grads, step_eager):
            # gradients are compared relative to their largest entry: bf16 sums of many terms differ in order
            scale = e.abs().max().clamp_min(1e-6)
            torch.testing.assert_close(g / scale, e / scale, **tol)
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, NvFuserFallbackWarning)]
    assert not fallbacks, fallbacks

    from thunder_executors_nvfuser.report import fusion_report

    report = fusion_report(jmodel)
    assert report and all(r["status"] in ("nvfuser", "torch (no nvFuser work)") for r in report), report
    assert any(r["status"] == "nvfuser" for r in report)
