"""A testing kit for executor authors: an executor's results against eager PyTorch.

An executor package tests its kernels the same way whatever they wrap: run a function under ``thunder.jit``
with the executor first, in a low-precision dtype, and compare the output and the gradients with the same
function run eagerly in float32 on the same (rounded) values; then train a small Llama-style model a few
steps with the executor and compare the parameters with eager training. This module holds those pieces so
that every package (ours and a user's) checks its kernels the same way.

It imports nothing beyond ``torch`` and ``thunder``: test frameworks stay the package's choice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

import thunder

__all__ = [
    "TOLERANCES",
    "LlamaStyle",
    "assert_close_to_reference",
    "assert_trains_like_eager",
    "check_against_eager",
    "execution_ops",
    "train_steps",
]

#: Tolerances of a result rounded to each dtype against a float32 eager reference. The absolute part is
#: relative to the reference's largest magnitude (a mean's gradients are all tiny).
TOLERANCES = {
    torch.float32: {"atol": 1e-4, "rtol": 1e-4},
    torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2},
    torch.float16: {"atol": 4e-3, "rtol": 4e-3},
}


def assert_close_to_reference(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, scale: float = 1.0,
                              what: str = "result", tolerances: dict | None = None,
                              result_dtype: torch.dtype | None = None) -> None:  # fmt: skip
    """``actual``, computed in ``dtype``, against a float32 ``expected``: the dtype (``result_dtype``, default
    ``dtype``), the shape, and the values within ``tolerances[dtype]`` (default `TOLERANCES`) widened by ``scale``
    (for sums of many rounded terms).

    Values below the dtype's normal range are subnormals spaced ``finfo.tiny * finfo.eps`` apart, so the
    absolute tolerance is never below that spacing; NaNs must match NaNs.
    """
    tol = (tolerances or TOLERANCES)[dtype]
    result_dtype = result_dtype or dtype
    assert actual.dtype == result_dtype, f"{what}: expected dtype {result_dtype}, got {actual.dtype}"
    assert actual.shape == expected.shape, f"{what}: expected shape {list(expected.shape)}, got {list(actual.shape)}"
    finite = expected[expected.isfinite()]
    magnitude = max(finite.abs().max().item(), 1e-6) if finite.numel() else 1.0
    info = torch.finfo(dtype)
    atol = max(tol["atol"] * scale * magnitude, 2 * info.tiny * info.eps)
    torch.testing.assert_close(actual.float(), expected.float(), atol=atol, rtol=tol["rtol"] * scale, equal_nan=True,
                               msg=lambda m: f"{what}: {m}")  # fmt: skip


def execution_ops(jfn) -> list[str]:
    """The ids of the operations of ``jfn``'s last forward and backward execution traces (the backward's only
    where one was built), to check which executor ran what."""
    traces = [thunder.last_traces(jfn)[-1]]
    backward = thunder.last_backward_traces(jfn)
    traces += [backward[-1]] if backward else []
    return [b.sym.id for trace in traces for b in trace.bound_symbols]


def check_against_eager(fn: Callable, args: Sequence, dtype: torch.dtype, *, executors: Sequence,
                        scale: float = 1.0, tolerances: dict | None = None) -> list[str]:  # fmt: skip
    """``fn`` under ``thunder.jit(executors=executors)`` on ``args`` (the floating ones, in ``dtype``, require
    grad) against ``fn`` run eagerly in float32 on the same values: the output, and every gradient for one
    random incoming gradient. Also checks that no argument was changed in place. Returns `execution_ops`.
    """
    leaves = [a.detach().clone().requires_grad_(a.is_floating_point()) for a in args]
    reference = [a.detach().clone().float().requires_grad_() if a.is_floating_point() else a.clone() for a in args]
    jfn = thunder.jit(fn, executors=list(executors))
    out, expected = jfn(*leaves), fn(*reference)
    if expected.is_floating_point():
        assert_close_to_reference(out, expected, dtype, scale, "output", tolerances)
    else:
        assert torch.equal(out, expected), f"output: expected {expected}, got {out}"
    differentiable = [a for a in leaves if a.requires_grad]
    if differentiable and expected.requires_grad:  # eager differentiates it: so must the jitted function
        incoming = torch.randn_like(expected)
        grads = torch.autograd.grad(out, differentiable, incoming.to(out.dtype))
        ref_grads = torch.autograd.grad(expected, [a for a in reference if a.requires_grad], incoming)
        for i, (got, want, leaf) in enumerate(zip(grads, ref_grads, differentiable, strict=True)):
            # each gradient in its argument's dtype (a float32 argument beside dtype ones keeps a float32 one)
            assert_close_to_reference(got, want, dtype, scale, f"gradient {i}", tolerances, result_dtype=leaf.dtype)
    for i, (leaf, original) in enumerate(zip(leaves, args, strict=True)):
        assert torch.equal(leaf.detach(), original), f"argument {i} was changed in place"
    return execution_ops(jfn)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _Block(nn.Module):
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
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attn.transpose(1, 2).reshape(batch, seq, dim))
        h = F.rms_norm(x, (dim,), self.mlp_norm, 1e-6)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class LlamaStyle(nn.Module):
    """A small decoder written the way models write the patterns kernel libraries target: embeddings, pre-norm
    blocks (``F.rms_norm``, the rotary half-rotation with a cache of duplicated frequencies, causal
    ``scaled_dot_product_attention``, ``silu(gate) * up``), an LM head, and the cross-entropy of
    ``targets``. ``forward(tokens, targets)`` returns the loss."""

    def __init__(self, vocab: int = 256, dim: int = 128, heads: int = 4, hidden: int = 352, layers: int = 2):
        super().__init__()
        self.vocab, self.head_dim = vocab, dim // heads
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(_Block(dim, heads, hidden) for _ in range(layers))
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


def train_steps(model: nn.Module, batches: Sequence, executors: Sequence | None = None, steps: int = 3,
                lr: float = 0.05) -> tuple[list[torch.Tensor], Callable]:  # fmt: skip
    """The losses of ``steps`` SGD steps of ``model`` on ``batches`` of ``(tokens, targets)``, under
    ``thunder.jit(executors=executors)`` (eagerly where ``executors`` is None), and the callable that ran them."""
    run = model if executors is None else thunder.jit(model, executors=list(executors))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for tokens, targets in batches[:steps]:
        optimizer.zero_grad()
        loss = run(tokens, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return losses, run


def assert_trains_like_eager(model: nn.Module, executors: Sequence, *, device: str = "cuda",
                             batch_shape: tuple = (4, 64), steps: int = 3, tolerance: float = 1e-4,
                             seed: int = 0) -> list[str]:  # fmt: skip
    """Trains ``model`` (e.g. a `LlamaStyle`, on ``device``) ``steps`` SGD steps under ``thunder.jit`` with
    ``executors`` and a deep copy of it eagerly, on the same random ``batch_shape`` batches: the losses and every parameter
    afterwards must agree within ``tolerance``. Returns the forward execution trace's operation ids."""
    reference = copy.deepcopy(model)
    vocab = getattr(model, "vocab", 256)
    generator = torch.Generator().manual_seed(seed)
    batches = [tuple(torch.randint(0, vocab, batch_shape, generator=generator).to(device) for _ in range(2))
               for _ in range(steps)]  # fmt: skip
    losses, jmodel = train_steps(model, batches, executors, steps)
    expected, _ = train_steps(reference, batches, None, steps)
    torch.testing.assert_close(torch.stack(losses), torch.stack(expected), atol=tolerance, rtol=tolerance)
    for (name, param), ref in zip(model.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(param, ref, atol=tolerance, rtol=tolerance, msg=lambda m, n=name: f"{n}: {m}")
    return [b.sym.id for b in thunder.last_traces(jmodel)[-1].bound_symbols]
