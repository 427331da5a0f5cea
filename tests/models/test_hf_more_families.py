"""More Hugging Face families through both frontends, `thunder.jit` and `thunder.dynamo.thunderfx`: mixture of
experts (Mixtral, Qwen2-MoE), a speech encoder (Wav2Vec2) and a speech encoder-decoder (Whisper). One training
step each (the loss and every parameter's gradient) against an eager copy; tiny random-weight configs as in
test_hf_models.py.

transformers 4.5x routes MoE tokens with `torch.where(mask)` (a data-dependent shape): `thunder.jit` stops there
with its data-dependent error, which names thunderfx as the way out; thunderfx runs it across graph breaks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import transformers

from thunder.frontend.tracer import DataDependentError

from .harness import assert_thunderfx_training_step_matches_eager, assert_training_step_matches_eager, seeded

VOCAB, BATCH, SEQ = 100, 2, 8
TRANSFORMERS_4 = int(transformers.__version__.split(".")[0]) < 5


def mixtral():
    config = transformers.MixtralConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32, num_local_experts=4, num_experts_per_tok=2,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, attn_implementation="eager",
    )  # fmt: skip
    return transformers.MixtralForCausalLM(config)


def qwen2_moe():
    config = transformers.Qwen2MoeConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
        shared_expert_intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=32, num_experts=4, num_experts_per_tok=2, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, attn_implementation="eager",
    )  # fmt: skip
    return transformers.Qwen2MoeForCausalLM(config)


def wav2vec2():
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_dim=(16, 16),
        conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
        mask_time_prob=0.0, attn_implementation="eager",
    )  # fmt: skip
    return transformers.Wav2Vec2Model(config)


def whisper():
    config = transformers.WhisperConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8, max_source_positions=16,
        max_target_positions=16, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, attn_implementation="eager",
    )  # fmt: skip
    return transformers.WhisperForConditionalGeneration(config)


def _generator():
    return torch.Generator(torch.get_default_device()).manual_seed(1)


def causal_lm_inputs() -> dict:
    input_ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=_generator())
    return {"input_ids": input_ids, "labels": input_ids, "use_cache": False}


def audio_inputs() -> dict:
    return {"input_values": torch.randn(BATCH, 400, generator=_generator())}


def speech_seq2seq_inputs() -> dict:
    generator = _generator()
    features = torch.randn(BATCH, 8, 32, generator=generator)  # (batch, mel bins, frames = 2 * source positions)
    labels = torch.randint(3, VOCAB, (BATCH, 5), generator=generator)
    return {"input_features": features, "labels": labels, "use_cache": False}


@dataclass(frozen=True)
class Family:
    build: Callable[[], torch.nn.Module]
    inputs: Callable[[], dict]
    loss: Callable
    data_dependent_in_4x: bool = False  # transformers 4.5x routes tokens with a data-dependent shape


FAMILIES = {
    "mixtral": Family(mixtral, causal_lm_inputs, lambda o: o.loss, data_dependent_in_4x=True),
    "qwen2_moe": Family(qwen2_moe, causal_lm_inputs, lambda o: o.loss, data_dependent_in_4x=True),
    "wav2vec2": Family(wav2vec2, audio_inputs, lambda o: o.last_hidden_state.square().mean()),
    "whisper": Family(whisper, speech_seq2seq_inputs, lambda o: o.loss),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_training_step_under_thunder_jit_matches_eager(name):
    family = FAMILIES[name]
    model = seeded(family.build)
    if TRANSFORMERS_4 and family.data_dependent_in_4x:
        with pytest.raises(DataDependentError, match="thunderfx"):
            assert_training_step_matches_eager(model, family.inputs(), family.loss, "default")
        return
    assert_training_step_matches_eager(model, family.inputs(), family.loss, "default")


@pytest.mark.parametrize("name", FAMILIES)
def test_training_step_under_thunderfx_matches_eager(name):
    family = FAMILIES[name]
    assert_thunderfx_training_step_matches_eager(seeded(family.build), family.inputs(), family.loss)
