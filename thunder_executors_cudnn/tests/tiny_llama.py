"""A small Llama-style model (grouped-query causal attention, RMSNorm, SwiGLU) and the training loop the model
tests compare: a few SGD steps, jitted against eager (a plain module, shared by the CPU and GPU tests)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from attention_cases import operator_ids
from cudnn_testing import no_fallback

import thunder

STEPS = 3


class Attention(nn.Module):
    def __init__(self, dim, n_head, n_kv_head):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, dim // n_head
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wkv = nn.Linear(dim, 2 * n_kv_head * self.head_dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k, v = self.wkv(x).view(B, T, 2, self.n_kv_head, self.head_dim).unbind(2)
        y = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2), is_causal=True, enable_gqa=True)
        return self.wo(y.transpose(1, 2).reshape(B, T, -1))


class Block(nn.Module):
    def __init__(self, dim, n_head, n_kv_head, hidden):
        super().__init__()
        self.norm1, self.norm2 = nn.RMSNorm(dim, eps=1e-5), nn.RMSNorm(dim, eps=1e-5)
        self.attn = Attention(dim, n_head, n_kv_head)
        self.w1, self.w3 = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        h = self.norm2(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class TinyLlama(nn.Module):
    def __init__(self, vocab=512, dim=256, n_head=4, n_kv_head=2, hidden=512, n_layer=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, n_head, n_kv_head, hidden) for _ in range(n_layer))
        self.norm = nn.RMSNorm(dim, eps=1e-5)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx, targets):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())


def train(model, step, idx, targets):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    losses, grads = [], []
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        loss = step(idx, targets)
        loss.backward()
        losses.append(loss.detach().float())
        grads.append([p.grad.detach().float().clone() for p in model.parameters()])
        optimizer.step()
    return torch.stack(losses), grads


def check_training_matches_eager(executors, *, device, enable_norms=False, seq=128):
    """Trains TinyLlama (bfloat16) jitted and eager from one initialization; losses, gradients and parameters
    agree, and attention (and, with enable_norms, RMSNorm) ran on cuDNN's operators."""
    torch.manual_seed(0)
    model = TinyLlama().to(device=device, dtype=torch.bfloat16)
    eager_model = copy.deepcopy(model)
    idx = torch.randint(0, 512, (2, seq), device=device)
    targets = torch.randint(0, 512, (2, seq), device=device)
    jmodel = thunder.jit(model, executors=executors, executor_options={"cudnn": {"enable_norms": enable_norms}})
    with no_fallback():
        losses, grads = train(model, jmodel, idx, targets)
    eager_losses, eager_grads = train(eager_model, eager_model, idx, targets)

    tol = dict(atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(losses, eager_losses, **tol)
    for step_grads, step_eager in zip(grads, eager_grads):
        for g, e in zip(step_grads, step_eager):
            scale = e.abs().max().clamp_min(1e-6)  # bf16 sums of many terms differ in order: compare to the largest
            torch.testing.assert_close(g / scale, e / scale, **tol)
    for p, e in zip(model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(p.float(), e.float(), **tol)

    forward_ops = operator_ids(thunder.last_traces(jmodel)[-1])
    assert "cudnn.sdpa_fwd" in forward_ops
    assert "cudnn.sdpa_bwd" in operator_ids(thunder.last_backward_traces(jmodel)[-1])
    assert ("cudnn.rms_norm_fwd" in forward_ops) == enable_norms
