"""Shared helpers of the liger plugin's GPU tests (a module name unique in the repository, so that test
modules can import it beside other test suites): the comparison against eager, and a small Llama-style model
written the way models write these patterns (F.rms_norm, the rotary half-rotation with a cache made from
duplicated frequencies, silu(gate) * up, an LM head followed by cross-entropy)."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import thunder

needs_liger_on_cuda = pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("liger_kernel") is None,
    reason="needs CUDA and liger-kernel (Liger's Triton kernels run on CUDA GPUs only)",
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]

#: Tolerances against a float32 eager reference, for results rounded to each dtype (relative to the
#: reference's largest magnitude for the absolute part: a mean's gradients are all tiny).
TOLERANCES = {
    torch.float32: {"atol": 1e-4, "rtol": 1e-4},
    torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2},
    torch.float16: {"atol": 4e-3, "rtol": 4e-3},
}


def assert_close_to_reference(actual, expected, dtype, scale: float = 1.0, what: str = ""):
    tol = TOLERANCES[dtype]
    assert actual.shape == expected.shape, f"{what}: expected shape {list(expected.shape)}, got {list(actual.shape)}"
    magnitude = max(expected.abs().max().item(), 1e-6) if expected.numel() else 1.0
    torch.testing.assert_close(actual.float(), expected.float(), atol=tol["atol"] * scale * magnitude,
                               rtol=tol["rtol"] * scale, msg=lambda m: f"{what}: {m}")  # fmt: skip


def check_against_eager(fn, args, dtype, *, executors=("liger",), scale: float = 1.0):
    """fn under thunder.jit on args (dtype tensors, grads for the floating ones) against fn in eager float32
    on the same (rounded) values: the outputs, and the gradients for a random incoming gradient. Returns the
    ids of the operations in the forward and backward execution traces."""
    leaves = [a.detach().clone().requires_grad_(a.is_floating_point()) for a in args]
    reference = [a.detach().clone().float().requires_grad_() if a.is_floating_point() else a for a in args]
    jfn = thunder.jit(fn, executors=list(executors))
    out, expected = jfn(*leaves), fn(*reference)
    assert out.dtype == (dtype if expected.is_floating_point() else expected.dtype), f"output dtype {out.dtype}"
    assert_close_to_reference(out, expected, dtype, scale, "output")
    seed = torch.randn_like(expected)
    grads = torch.autograd.grad(out, [a for a in leaves if a.requires_grad], seed.to(out.dtype))
    ref_grads = torch.autograd.grad(expected, [a for a in reference if a.requires_grad], seed)
    for i, (got, want) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close_to_reference(got, want, dtype, scale, f"gradient {i}")
    for i, (leaf, original) in enumerate(zip(leaves, args, strict=True)):
        assert torch.equal(leaf.detach(), original), f"argument {i} was changed in place"
    traces = (thunder.last_traces(jfn)[-1], thunder.last_backward_traces(jfn)[-1])
    return [b.sym.id for trace in traces for b in trace.bound_symbols]


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.attn_norm, self.mlp_norm = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.gate, self.up = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x, cos, sin):
        batch, seq, dim = x.shape
        h = F.rms_norm(x, (dim,), self.attn_norm, 1e-6)
        q, k, v = self.qkv(h).view(batch, seq, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attn.transpose(1, 2).reshape(batch, seq, dim))
        h = F.rms_norm(x, (dim,), self.mlp_norm, 1e-6)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class LlamaStyle(nn.Module):
    """A small decoder: embeddings, pre-norm blocks (RMSNorm, RoPE attention, SwiGLU MLP), an LM head and the
    cross-entropy of the next tokens."""

    def __init__(self, vocab: int = 256, dim: int = 128, heads: int = 4, hidden: int = 352, layers: int = 2):
        super().__init__()
        self.head_dim = dim // heads
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(layers))
        self.norm = nn.Parameter(torch.ones(dim))
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, tokens, targets):
        x = self.embed(tokens)
        positions = torch.arange(tokens.shape[1], device=tokens.device, dtype=torch.float32)
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, self.head_dim, 2, device=tokens.device) / self.head_dim))
        emb = torch.cat((positions[:, None] * inv_freq[None, :],) * 2, dim=-1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.lm_head(F.rms_norm(x, (x.shape[-1],), self.norm, 1e-6))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def train_steps(model, batches, executors=None, steps: int = 3, lr: float = 0.05):
    """The losses of `steps` SGD steps (thunder.jit with `executors`, or eager when None)."""
    run = model if executors is None else thunder.jit(model, executors=executors)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for tokens, targets in batches[:steps]:
        optimizer.zero_grad()
        loss = run(tokens, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return losses, run


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
