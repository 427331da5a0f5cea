"""Hugging Face transformers models under `thunder.jit`: forward, one training step, greedy generation with a KV
cache, and `examine`, each compared with eager.

Tiny float32 configs built in code (hidden size 32, 2 layers, vocabulary 100, batch 2, sequence 8), random
weights, dropout off. The attention is `attn_implementation="eager"` (explicit matmul/softmax, every op visible
to Thunder) unless a test says otherwise; "sdpa" (transformers' default) has its own tests. Decoder inputs are
left-padded, as batched generation pads them, so the attention mask matters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
import transformers
from transformers import DynamicCache, StaticCache

try:  # transformers 5: the registration torch.export uses for caches
    from transformers.exporters.exporter_dynamo import register_pytree_node
except ImportError:  # transformers 4.5x registers DynamicCache itself; StaticCache is not a pytree node there
    register_pytree_node = None

import thunder

from .harness import (
    EXECUTORS,
    assert_examine_finds_every_op_supported,
    assert_forward_matches_eager,
    assert_training_step_matches_eager,
    jit,
    seeded,
)

VOCAB, BATCH, SEQ = 100, 2, 8
# every op these models use is native: no fallback is expected
GRAD_MODE_SWITCH: dict[str, str] = {}



def _decoder_config(config_class, attn: str, **extra):
    return config_class(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        attn_implementation=attn, **extra,
    )  # fmt: skip


def gpt2(attn: str):
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, attn_implementation=attn,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


def llama(attn: str):
    return transformers.LlamaForCausalLM(_decoder_config(transformers.LlamaConfig, attn))


def mistral(attn: str):
    # a window shorter than the sequence: the sliding-window mask is exercised
    return transformers.MistralForCausalLM(_decoder_config(transformers.MistralConfig, attn, sliding_window=4))


def qwen2(attn: str):
    return transformers.Qwen2ForCausalLM(_decoder_config(transformers.Qwen2Config, attn))


def phi3(attn: str):
    return transformers.Phi3ForCausalLM(_decoder_config(transformers.Phi3Config, attn))


def gemma(attn: str):
    return transformers.GemmaForCausalLM(_decoder_config(transformers.GemmaConfig, attn, head_dim=8))


def _encoder_config(config_class, attn: str, **extra):
    return config_class(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation=attn, **extra,
    )  # fmt: skip


def bert(attn: str):
    return transformers.BertModel(_encoder_config(transformers.BertConfig, attn))


def roberta(attn: str):
    return transformers.RobertaModel(_encoder_config(transformers.RobertaConfig, attn, pad_token_id=1))


def t5(attn: str):
    config = transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0, attn_implementation=attn,
    )  # fmt: skip
    return transformers.T5ForConditionalGeneration(config)


def vit(attn: str):
    config = transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=16,
        patch_size=4, num_channels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation=attn,
    )  # fmt: skip
    return transformers.ViTModel(config)


def token_ids(*shape, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, VOCAB, shape, generator=torch.Generator(torch.get_default_device()).manual_seed(seed))


def causal_lm_inputs() -> dict:
    input_ids = token_ids(BATCH, SEQ)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, :2] = 0  # the second prompt is left-padded
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "use_cache": False}


def encoder_inputs() -> dict:
    # No attention mask: with one, transformers inspects its values while building the mask (see
    # test_encoder_with_a_padding_mask_matches_eager).
    return {"input_ids": token_ids(BATCH, SEQ)}


def seq2seq_inputs() -> dict:
    return {"input_ids": token_ids(BATCH, SEQ), "labels": token_ids(BATCH, 6, seed=2), "use_cache": False}


def image_inputs() -> dict:
    generator = torch.Generator(torch.get_default_device()).manual_seed(1)
    return {"pixel_values": torch.randn(BATCH, 3, 16, 16, generator=generator)}


def lm_loss(output):
    return output.loss


def hidden_state_loss(output):
    return output.last_hidden_state.pow(2).mean() + output.pooler_output.mean()


@dataclass(frozen=True)
class Case:
    build: Callable[[str], torch.nn.Module]  # attn_implementation -> model
    inputs: Callable[[], dict]
    loss: Callable
    fallbacks: dict[str, str] = field(default_factory=dict)  # expected fallback operations, with the reason


CASES = {
    "gpt2": Case(gpt2, causal_lm_inputs, lm_loss),
    "llama": Case(llama, causal_lm_inputs, lm_loss, GRAD_MODE_SWITCH),
    "mistral": Case(mistral, causal_lm_inputs, lm_loss, GRAD_MODE_SWITCH),
    "qwen2": Case(qwen2, causal_lm_inputs, lm_loss, GRAD_MODE_SWITCH),
    "phi3": Case(phi3, causal_lm_inputs, lm_loss, GRAD_MODE_SWITCH),
    "gemma": Case(gemma, causal_lm_inputs, lm_loss, GRAD_MODE_SWITCH),
    "bert": Case(bert, encoder_inputs, hidden_state_loss),
    "roberta": Case(roberta, encoder_inputs, hidden_state_loss),
    "t5": Case(t5, seq2seq_inputs, lm_loss),
    "vit": Case(vit, image_inputs, hidden_state_loss),
}


def build(name: str, attn: str = "eager") -> torch.nn.Module:
    return seeded(lambda: CASES[name].build(attn))


@pytest.mark.parametrize("executors", EXECUTORS)
@pytest.mark.parametrize("name", CASES)
def test_forward_matches_eager(name, executors):
    assert_forward_matches_eager(build(name), CASES[name].inputs(), executors)


@pytest.mark.parametrize("executors", ["default", pytest.param("torchcompile", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", CASES)
def test_training_step_matches_eager(name, executors):
    case = CASES[name]
    assert_training_step_matches_eager(build(name), case.inputs(), case.loss, executors)


@pytest.mark.parametrize("name", CASES)
def test_examine_finds_every_op_supported(name):
    case = CASES[name]
    assert_examine_finds_every_op_supported(build(name), case.inputs(), case.fallbacks)


# -- models built on the CPU and moved to the test device ------------------------------------------------------
# What a user does: build on the CPU, then `.to("cuda")`. Tensors such models make in forward without device=
# stay on the CPU (Hugging Face's mask helpers: `torch.tensor(1.0, dtype=dtype) - mask`), and attributes that are
# not buffers stay behind (GPT-J's and CodeGen's rotary tables, moved with `.to(position_ids.device)` in forward).
# On CUDA each of these failed under jit; on the CPU they run the same path.
def distilbert(attn: str):
    config = transformers.DistilBertConfig(
        vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=32, dropout=0.0,
        attention_dropout=0.0, attn_implementation=attn,
    )  # fmt: skip
    return transformers.DistilBertModel(config)


def albert(attn: str):
    config = transformers.AlbertConfig(
        vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation=attn,
    )  # fmt: skip
    return transformers.AlbertModel(config)


def bart(attn: str):
    config = transformers.BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=32, dropout=0.0,
        attention_dropout=0.0, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=2,
        attn_implementation=attn,
    )  # fmt: skip
    return transformers.BartForConditionalGeneration(config)


def clip_text(attn: str):
    config = transformers.CLIPTextConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, attn_implementation=attn,
    )  # fmt: skip
    return transformers.CLIPTextModel(config)


def gptj(attn: str):
    config = transformers.GPTJConfig(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=32, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, attn_implementation=attn,
    )  # fmt: skip
    return transformers.GPTJForCausalLM(config)


def codegen(attn: str):
    config = transformers.CodeGenConfig(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=32, n_ctx=32, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, attn_implementation=attn,
    )  # fmt: skip
    return transformers.CodeGenForCausalLM(config)


def padded_encoder_inputs() -> dict:
    inputs = encoder_inputs()
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["attention_mask"][1, -3:] = 0
    return inputs


def last_hidden_state_loss(output):
    return output.last_hidden_state.pow(2).mean()


MOVED_CASES = {
    "distilbert": Case(distilbert, padded_encoder_inputs, last_hidden_state_loss),
    "albert": Case(albert, padded_encoder_inputs, hidden_state_loss),
    "bart": Case(bart, seq2seq_inputs, lm_loss),
    "clip_text": Case(clip_text, encoder_inputs, hidden_state_loss),
    "gptj": Case(gptj, causal_lm_inputs, lm_loss),
    "codegen": Case(codegen, causal_lm_inputs, lm_loss),
}


# transformers 4.5x's BART without a decoder mask builds a (q, q + 1) causal mask when is_torchdynamo_compiling()
# and adds it to (q, q) scores (under torch.compile too): thunder.jit traces that library's eager path instead
@pytest.mark.parametrize("name", MOVED_CASES)
def test_model_built_on_the_cpu_and_moved_to_the_test_device_matches_eager(name):
    case, target = MOVED_CASES[name], torch.get_default_device()
    with torch.device("cpu"):  # the user's default device, whatever --device the suite runs on
        model = seeded(lambda: case.build("eager")).to(target)
        inputs = {k: v.to(target) if isinstance(v, torch.Tensor) else v for k, v in case.inputs().items()}
        assert_training_step_matches_eager(model, inputs, case.loss, "default")


# -- attention and cache settings --------------------------------------------------------------------------------
@pytest.mark.parametrize("executors", EXECUTORS)
def test_causal_lm_without_an_attention_mask_matches_eager(executors):
    # Without a mask, transformers looks for packed sequences in the position ids (`bool(...all())`).
    inputs = causal_lm_inputs()
    del inputs["attention_mask"]
    assert_training_step_matches_eager(build("llama"), inputs, lm_loss, executors)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_causal_lm_with_sdpa_attention_matches_eager(executors):
    assert_training_step_matches_eager(build("llama", "sdpa"), causal_lm_inputs(), lm_loss, executors)


def test_examine_of_sdpa_attention_finds_every_op_supported():
    assert_examine_finds_every_op_supported(build("llama", "sdpa"), causal_lm_inputs(), GRAD_MODE_SWITCH)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_encoder_with_sdpa_attention_matches_eager(executors):
    assert_training_step_matches_eager(build("bert", "sdpa"), encoder_inputs(), hidden_state_loss, executors)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_encoder_with_a_padding_mask_matches_eager(executors):
    inputs = encoder_inputs()
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["attention_mask"][1, -3:] = 0
    assert_training_step_matches_eager(build("bert"), inputs, hidden_state_loss, executors)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_training_step_with_the_default_use_cache_matches_eager(executors):
    # What a user writes: the config's use_cache=True makes the forward build a DynamicCache even in training.
    inputs = causal_lm_inputs()
    del inputs["use_cache"]
    assert_training_step_matches_eager(build("llama"), inputs, lm_loss, executors)


# -- generation with a KV cache ----------------------------------------------------------------------------------
# A cache is a Python object holding tensors, updated by the forward. Registered as a torch pytree node
# (what torch.export asks of such inputs, with transformers' own flattening), its tensors become inputs and
# outputs of the trace; Thunder's pytree honors the registration.
if register_pytree_node is not None:
    register_pytree_node(DynamicCache)
    register_pytree_node(StaticCache)
NEW_TOKENS = 4


def new_dynamic_cache(config) -> DynamicCache:
    # transformers 5 sizes its layers from the config; 4.5x takes no config (it would pass it to each layer)
    return DynamicCache() if register_pytree_node is None else DynamicCache(config=config)


def greedy_tokens(model, prompt: torch.Tensor, attention_mask: torch.Tensor, config) -> torch.Tensor:
    """Greedy decoding, one token per call, through a DynamicCache (the prompt first, then each new token)."""
    cache = new_dynamic_cache(config)
    input_ids, tokens = prompt, []
    for _ in range(NEW_TOKENS):
        output = model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True)
        cache = output.past_key_values
        input_ids = output.logits[:, -1].argmax(-1, keepdim=True)
        tokens.append(input_ids)
        attention_mask = torch.cat([attention_mask, torch.ones_like(input_ids)], dim=1)
    return torch.cat(tokens, dim=1)


@pytest.mark.parametrize("executors", EXECUTORS)
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_greedy_generation_with_a_kv_cache_matches_eager(name, executors):
    model = build(name).eval()
    inputs = causal_lm_inputs()
    prompt, mask = inputs["input_ids"], inputs["attention_mask"]
    with torch.no_grad():
        expected = greedy_tokens(copy.deepcopy(model), prompt, mask, model.config)
        actual = greedy_tokens(jit(model, executors), prompt, mask, model.config)
    assert torch.equal(actual, expected), f"jitted {actual.tolist()} != eager {expected.tolist()}"


def static_cache_tokens(model, prompt: torch.Tensor, cache: StaticCache) -> torch.Tensor:
    """Greedy decoding into a preallocated cache, updated in place (`index_copy_`): the same shapes every step."""
    cache_position, input_ids, tokens = torch.arange(prompt.shape[1]), prompt, []
    for _ in range(NEW_TOKENS):
        output = model(input_ids=input_ids, past_key_values=cache, cache_position=cache_position, use_cache=True)
        input_ids = output.logits[:, -1].argmax(-1, keepdim=True)
        tokens.append(input_ids)
        cache_position = cache_position[-1:] + 1
    return torch.cat(tokens, dim=1)


def new_static_cache(config) -> StaticCache:
    """A StaticCache as a user makes one: transformers 5 allocates its tensors at first use; 4.5x allocates them
    here, from the batch size, device and dtype (and is no torch pytree node: Thunder meets its tensors as
    attributes of an object, and writes into them reach them as in eager)."""
    if register_pytree_node is not None:
        return StaticCache(config=config, max_cache_len=16)
    return StaticCache(config=config, max_batch_size=BATCH, max_cache_len=16, device=torch.get_default_device(),
                       dtype=torch.float32)  # fmt: skip


def static_cache(model) -> StaticCache:
    """A StaticCache with its tensors allocated (as torch.export needs it), so that decoding only writes into them."""
    config = model.config
    cache = new_static_cache(config)
    if register_pytree_node is not None:
        head_dim = config.hidden_size // config.num_attention_heads
        device = torch.get_default_device()
        cache.early_initialization(BATCH, config.num_key_value_heads, head_dim, torch.float32, device)
    return cache


@pytest.mark.parametrize("executors", EXECUTORS)
def test_greedy_generation_with_a_static_cache_matches_eager(executors):
    model = build("llama").eval()
    prompt = token_ids(BATCH, 5)
    with torch.no_grad():
        expected = static_cache_tokens(copy.deepcopy(model), prompt, static_cache(model))
        jitted = jit(model, executors)
        actual = static_cache_tokens(jitted, prompt, static_cache(model))
    assert torch.equal(actual, expected), f"jitted {actual.tolist()} != eager {expected.tolist()}"
    assert thunder.cache_misses(jitted) == 2, "the prompt and the decoding steps: one compilation each"


def test_a_cache_object_passed_in_is_updated_in_place_like_eager():
    # transformers 5's StaticCache allocates its tensors on first use (attributes the forward rebinds): they must
    # reach the caller's object, and the caller's layer objects keep their identity, as in eager
    model = build("llama").eval()
    prompt = token_ids(BATCH, 5)
    expected_cache, cache = (new_static_cache(model.config) for _ in range(2))
    layers = list(cache.layers)
    reference, jitted = copy.deepcopy(model), jit(model, "default")
    with torch.no_grad():
        for step, ids in enumerate((prompt, prompt[:, -1:])):  # the prompt, then one decoding step
            position = torch.arange(5) if step == 0 else torch.tensor([5])
            reference(input_ids=ids, past_key_values=expected_cache, cache_position=position, use_cache=True)
            jitted(input_ids=ids, past_key_values=cache, cache_position=position, use_cache=True)
            if register_pytree_node is not None:  # 4.5x allocated the tensors before the first call
                assert cache.is_initialized == expected_cache.is_initialized, "the cache passed in was not allocated"
            assert all(a is b for a, b in zip(cache.layers, layers, strict=True)), "the caller's layers were replaced"
            for layer, expected_layer in zip(cache.layers, expected_cache.layers, strict=True):
                torch.testing.assert_close((layer.keys, layer.values), (expected_layer.keys, expected_layer.values))


def test_a_dynamic_cache_passed_in_grows_like_eager():
    model = build("llama").eval()
    inputs = causal_lm_inputs()
    expected_cache, cache = new_dynamic_cache(model.config), new_dynamic_cache(model.config)
    with torch.no_grad():
        copy.deepcopy(model)(input_ids=inputs["input_ids"], past_key_values=expected_cache, use_cache=True)
        jit(model, "default")(input_ids=inputs["input_ids"], past_key_values=cache, use_cache=True)
    assert cache.get_seq_length() == expected_cache.get_seq_length() > 0
    for layer, expected_layer in zip(cache.layers, expected_cache.layers, strict=True):
        torch.testing.assert_close((layer.keys, layer.values), (expected_layer.keys, expected_layer.values))


@pytest.mark.parametrize("executors", EXECUTORS)
def test_generate_with_a_jitted_forward_matches_eager(executors):
    model = build("llama").eval()
    inputs = causal_lm_inputs()
    settings = {"attention_mask": inputs["attention_mask"], "max_new_tokens": NEW_TOKENS, "do_sample": False}
    with torch.no_grad():
        expected = copy.deepcopy(model).generate(inputs["input_ids"], **settings)
        # generate calls `model(...)`, which calls `model.forward`: make that the jitted module of a shallow copy
        # (same submodules and weights), whose own `forward` is still the class's. Set through `vars`, since
        # nn.Module.__setattr__ would register a module-valued attribute as a submodule instead.
        jitted = jit(copy.copy(model), executors)
        vars(model)["forward"] = jitted
        actual = model.generate(inputs["input_ids"], **settings)
    assert thunder.cache_misses(jitted) > 0, "generate did not call the jitted forward"
    assert torch.equal(actual, expected), f"jitted {actual.tolist()} != eager {expected.tolist()}"
