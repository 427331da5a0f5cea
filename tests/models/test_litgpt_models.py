"""LitGPT's `GPT` under `thunder.jit`: forward, one training step, KV-cache generation and `examine`, each compared
with eager; and one training step through `thunder.dynamo.thunderfx`.

Configs are LitGPT's own (`Config.from_name`), shrunk to 2 layers, width 32, vocabulary 100 (padded to 128) and
a block size of 16, so each keeps its family's architecture: GPT-NeoX (pythia), Llama 3 (RoPE scaling, grouped
queries), Mistral, Phi-2 (partial rotary, parallel residual), Phi-3 (fused QKV), Gemma (multi-query, scaled
embeddings) and Gemma 2 (soft-capping, sliding-window layers). Float32, random weights.
"""

from __future__ import annotations

import copy

import pytest
import torch
from litgpt.config import Config
from litgpt.model import GPT

from .harness import (
    EXECUTORS,
    assert_examine_finds_every_op_supported,
    assert_forward_matches_eager,
    assert_thunderfx_training_step_matches_eager,
    assert_training_step_matches_eager,
    jit,
    seeded,
)

VOCAB, BATCH, SEQ = 100, 2, 8
SHRINK = {"n_layer": 2, "n_embd": 32, "block_size": 16, "vocab_size": VOCAB, "padded_vocab_size": 128,
          "intermediate_size": 64}  # fmt: skip
CONFIGS = {
    "pythia-14m": {"n_head": 4},
    "Llama-3.2-1B": {"n_head": 4, "n_query_groups": 2, "head_size": 8},
    "Mistral-7B-v0.1": {"n_head": 4, "n_query_groups": 2, "head_size": 8},
    "phi-2": {"n_head": 2, "head_size": 16},  # a rotary fraction of 0.4 needs an even number of rotated dims
    "Phi-3-mini-4k-instruct": {"n_head": 4, "head_size": 8},
    "Gemma-2b": {"n_head": 4, "n_query_groups": 1, "head_size": 8},
    "Gemma-2-2b": {"n_head": 4, "n_query_groups": 2, "head_size": 8, "sliding_window_size": 4},
}


def build(name: str) -> GPT:
    return seeded(lambda: GPT(Config.from_name(name, **SHRINK, **CONFIGS[name])))


class NextTokenLoss(torch.nn.Module):
    """The model and its loss in one module, so that the loss is part of the jitted program."""

    def __init__(self, gpt: GPT):
        super().__init__()
        self.gpt = gpt

    def forward(self, idx, targets):
        logits = self.gpt(idx)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def token_ids(*shape, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator(torch.get_default_device()).manual_seed(seed))


def training_inputs() -> dict:
    return {"idx": token_ids(BATCH, SEQ), "targets": token_ids(BATCH, SEQ, seed=2)}


@pytest.mark.parametrize("executors", EXECUTORS)
@pytest.mark.parametrize("name", CONFIGS)
def test_forward_matches_eager(name, executors):
    assert_forward_matches_eager(build(name), {"idx": token_ids(BATCH, SEQ)}, executors)


@pytest.mark.parametrize("executors", ["default", pytest.param("torchcompile", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", CONFIGS)
def test_training_step_matches_eager(name, executors):
    assert_training_step_matches_eager(NextTokenLoss(build(name)), training_inputs(), lambda loss: loss, executors)


@pytest.mark.parametrize("name", CONFIGS)
def test_training_step_under_thunderfx_matches_eager(name):
    model = NextTokenLoss(build(name))
    assert_thunderfx_training_step_matches_eager(model, training_inputs(), lambda loss: loss)


@pytest.mark.parametrize("name", CONFIGS)
def test_examine_finds_every_op_supported(name):
    assert_examine_finds_every_op_supported(NextTokenLoss(build(name)), training_inputs(), expected_fallbacks={})


# -- generation with LitGPT's KV cache: buffers updated in place (index_copy_ into a view of each buffer) -----------
NEW_TOKENS = 4


def greedy_tokens(model, gpt: GPT, prompt: torch.Tensor) -> torch.Tensor:
    """Greedy decoding through `gpt`'s KV cache: the prompt at positions 0..n-1, then one token per call."""
    gpt.set_kv_cache(batch_size=prompt.shape[0])
    input_pos = torch.arange(prompt.shape[1])
    idx, tokens = prompt, []
    for _ in range(NEW_TOKENS):
        idx = model(idx, input_pos=input_pos)[:, -1].argmax(-1, keepdim=True)
        tokens.append(idx)
        input_pos = input_pos[-1:] + 1
    return torch.cat(tokens, dim=1)


@pytest.mark.parametrize("executors", EXECUTORS)
@pytest.mark.parametrize("name", ["Llama-3.2-1B", "pythia-14m"])
def test_greedy_generation_with_a_kv_cache_matches_eager(name, executors):
    gpt = build(name).eval()
    reference = copy.deepcopy(gpt)
    prompt = token_ids(BATCH, 5)
    with torch.no_grad():
        expected = greedy_tokens(reference, reference, prompt)
        actual = greedy_tokens(jit(gpt, executors), gpt, prompt)
    assert torch.equal(actual, expected), f"jitted {actual.tolist()} != eager {expected.tolist()}"


def test_kv_cache_rebuilt_after_jit_receives_the_writes():
    gpt = build("Llama-3.2-1B").eval()
    reference = copy.deepcopy(gpt)
    jitted = jit(gpt, "default")
    prompt, input_pos = token_ids(BATCH, 5), torch.arange(5)
    with torch.no_grad():
        for attempt in range(2):  # the second cache is new tensors of the same shapes: a cache hit
            for model in (gpt, reference):
                model.set_kv_cache(batch_size=BATCH)
            jitted(prompt, input_pos=input_pos)
            reference(prompt, input_pos=input_pos)
            for block, ref_block in zip(gpt.transformer.h, reference.transformer.h, strict=True):
                assert torch.equal(block.attn.kv_cache.k, ref_block.attn.kv_cache.k), f"cache {attempt}: keys differ"
                assert torch.equal(block.attn.kv_cache.v, ref_block.attn.kv_cache.v), f"cache {attempt}: values differ"
            for model in (gpt, reference):
                model.clear_kv_cache()
