"""Shared set-up of the liger plugin's tests (a module name unique in the repository, so that test modules
can import it beside other test suites): the GPU tests' skip marker and dtypes, the comparison against eager of
`thunder.testing` with the `liger` executor first, and a
tiny Hugging Face Llama with its training step against eager."""

from __future__ import annotations

import copy
import functools
import importlib.util

import pytest
import torch

import thunder
from thunder import testing

needs_liger_on_cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("liger_kernel") is None,
    reason="needs CUDA and liger-kernel (Liger's Triton kernels run on CUDA GPUs only)",
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]

#: The comparison against eager with the `liger` executor first (thunder.testing's, for this executor).
check_against_eager = functools.partial(testing.check_against_eager, executors=("liger",))


def hf_llama(device: str = "cpu"):
    """A tiny Hugging Face LlamaForCausalLM (random weights): its RoPE, SwiGLU and loss written by transformers."""
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        attn_implementation="sdpa",
    )  # fmt: skip
    return transformers.LlamaForCausalLM(config).to(device)


def assert_hf_training_step_matches_eager(model, executors, tolerance: float):
    """One training step of `model` under thunder.jit against its eager copy: the loss and every gradient.
    Returns the ids of the operations of the forward execution trace."""
    reference = copy.deepcopy(model)
    ids = torch.randint(3, 64, (2, 8), device=next(model.parameters()).device)
    jmodel = thunder.jit(model, executors=executors)
    loss = jmodel(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    expected = reference(input_ids=ids, labels=ids, use_cache=False).loss
    expected.backward()
    torch.testing.assert_close(loss, expected, atol=tolerance, rtol=tolerance)
    for (name, param), ref in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(param.grad, ref.grad, atol=tolerance, rtol=tolerance,
                                   msg=lambda m, n=name: f"{n}: {m}")  # fmt: skip
    return [b.sym.id for b in thunder.last_traces(jmodel)[-1].bound_symbols]
