"""Benchmark models: plain PyTorch, no dependency on Thunder.

- ``GPT`` / ``GPTConfig``: GPT-2 in the manner of nanoGPT (LayerNorm, causal SDPA, GELU(tanh), tied embeddings).
- ``Llama`` / ``LlamaConfig``: a Llama-style decoder (RMSNorm, rotary embeddings, grouped-query attention,
  SwiGLU MLP, no biases).
- ``Chain``: a memory-bound elementwise chain with two parameters.

Both language models take ``idx`` (LongTensor ``[B, T]``) and optional ``targets`` (LongTensor ``[B, T]``);
they return the logits ``[B, T, vocab]``, or the mean cross-entropy loss when ``targets`` are given.

Each config has named presets (``GPTConfig.preset("small")``): ``tiny`` (CI smoke), ``small`` (CPU
default) and ``full`` (the GPU configuration). ``batch_size`` in a config is the benchmark's input batch;
the model itself ignores it, and its sequence length is ``block_size`` / ``max_seq_len``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["GPT", "GPTConfig", "Llama", "LlamaConfig", "LlamaDecodeStep", "Chain", "RMSNorm"]


# --------------------------------------------------------------------------------------------------
# GPT-2
# --------------------------------------------------------------------------------------------------


@dataclass
class GPTConfig:
    block_size: int = 1024  # sequence length (the benchmark uses the full block)
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    batch_size: int = 8  # benchmark input batch; not used by the model

    @classmethod
    def preset(cls, name: str, **overrides) -> GPTConfig:
        """``tiny``, ``small`` (nanoGPT-style 4L/256d/seq128/batch4) or ``full`` (GPT-2 124M, seq 1024, batch 8)."""
        try:
            fields = _GPT_PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown GPT preset {name!r}; choose from {sorted(_GPT_PRESETS)}") from None
        return dataclasses.replace(cls(**fields), **overrides)


_GPT_PRESETS = {
    "tiny": dict(block_size=16, vocab_size=64, n_layer=1, n_head=2, n_embd=32, batch_size=2),
    "small": dict(block_size=128, vocab_size=1024, n_layer=4, n_head=4, n_embd=256, batch_size=4),
    "full": dict(block_size=1024, vocab_size=50257, n_layer=12, n_head=12, n_embd=768, batch_size=8),
}


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        dropout_p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class GPTMLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class GPTBlock(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = GPTMLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([GPTBlock(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2 paper: scaled init of the residual projections
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        B, T = idx.shape
        assert T <= self.config.block_size, f"sequence length {T} exceeds block size {self.config.block_size}"
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


# --------------------------------------------------------------------------------------------------
# Llama
# --------------------------------------------------------------------------------------------------


@dataclass
class LlamaConfig:
    vocab_size: int = 32000
    n_layer: int = 4
    dim: int = 2048
    n_head: int = 32
    n_kv_head: int = 8
    hidden_dim: int = 8192  # SwiGLU inner width
    max_seq_len: int = 2048  # sequence length (the benchmark uses all of it)
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    batch_size: int = 2  # benchmark input batch; not used by the model

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @classmethod
    def preset(cls, name: str, **overrides) -> LlamaConfig:
        """``tiny``, ``small`` (2L/256d, seq 128, batch 4) or ``full`` (4L/2048d, 32 heads, 8 KV heads, seq 2048, batch 2)."""
        try:
            fields = _LLAMA_PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown Llama preset {name!r}; choose from {sorted(_LLAMA_PRESETS)}") from None
        return dataclasses.replace(cls(**fields), **overrides)


_LLAMA_PRESETS = {
    "tiny": dict(vocab_size=64, n_layer=1, dim=32, n_head=4, n_kv_head=2, hidden_dim=64, max_seq_len=16, batch_size=2),
    "small": dict(
        vocab_size=1024, n_layer=2, dim=256, n_head=8, n_kv_head=2, hidden_dim=688, max_seq_len=128, batch_size=4
    ),
    "full": dict(
        vocab_size=32000, n_layer=4, dim=2048, n_head=32, n_kv_head=8, hidden_dim=8192, max_seq_len=2048, batch_size=2
    ),
}


#: Llama-3-8B's layer at its real width and sequence length, two layers (the `llama3` workload)
_LLAMA3_PRESETS = {
    "tiny": _LLAMA_PRESETS["tiny"],
    "small": dict(
        vocab_size=2048, n_layer=1, dim=512, n_head=8, n_kv_head=2, hidden_dim=1792, max_seq_len=256, batch_size=1
    ),
    "full": dict(
        vocab_size=128256, n_layer=2, dim=4096, n_head=32, n_kv_head=8, hidden_dim=14336, max_seq_len=4096,
        batch_size=1, rope_theta=500000.0,
    ),
}


def llama3_config(size: str) -> LlamaConfig:
    """The `llama3` workload's config: Llama-3-8B's width (dim 4096, 32 heads, 8 KV heads), 2 layers, seq 4096."""
    return LlamaConfig(**_LLAMA3_PRESETS[size])


class HFLlama(nn.Module):
    """transformers' `LlamaForCausalLM`, built from a config with the `llama` workload's dimensions, returning
    the loss of next-token prediction (HF shifts the labels itself)."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        from transformers import LlamaConfig as HFLlamaConfig
        from transformers import LlamaForCausalLM

        hf = HFLlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.hidden_dim,
            num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
            max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
            attn_implementation="sdpa", use_cache=False,
        )  # fmt: skip
        self.model = LlamaForCausalLM(hf)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if targets is None:
            return self.model(input_ids=idx, use_cache=False).logits
        return self.model(input_ids=idx, labels=targets, use_cache=False).loss


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cos_sin(seq_len: int, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``[seq_len, head_dim]`` for the rotate-half form of rotary embeddings."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # [T, hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, hd]
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, nh, T, hd]; cos, sin: [T, hd]
    return x * cos + rotate_half(x) * sin


class LlamaAttention(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        assert config.dim % config.n_head == 0 and config.n_head % config.n_kv_head == 0
        self.n_head = config.n_head
        self.n_kv_head = config.n_kv_head
        self.head_dim = config.head_dim
        self.wq = nn.Linear(config.dim, config.n_head * self.head_dim, bias=False)
        self.wk = nn.Linear(config.dim, config.n_kv_head * self.head_dim, bias=False)
        self.wv = nn.Linear(config.dim, config.n_kv_head * self.head_dim, bias=False)
        self.wo = nn.Linear(config.n_head * self.head_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # [B, nh, T, hd]
        k = self.wk(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # [B, nkv, T, hd]
        v = self.wv(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q = apply_rotary(q, cos, sin)
        k = apply_rotary(k, cos, sin)
        # grouped-query attention: repeat each KV head n_rep times (expand + reshape)
        n_rep = self.n_head // self.n_kv_head
        k = k[:, :, None].expand(B, self.n_kv_head, n_rep, T, self.head_dim).reshape(B, self.n_head, T, self.head_dim)
        v = v[:, :, None].expand(B, self.n_kv_head, n_rep, T, self.head_dim).reshape(B, self.n_head, T, self.head_dim)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)
        return self.wo(y)


class SwiGLU(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w3 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w2 = nn.Linear(config.hidden_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class LlamaBlock(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = LlamaAttention(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.feed_forward = SwiGLU(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin)
        x = x + self.feed_forward(self.ffn_norm(x))
        return x


class Llama(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList([LlamaBlock(config) for _ in range(config.n_layer)])
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        cos, sin = rope_cos_sin(config.max_seq_len, config.head_dim, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        B, T = idx.shape
        assert T <= self.config.max_seq_len, f"sequence length {T} exceeds max_seq_len {self.config.max_seq_len}"
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = self.tok_embeddings(idx)
        for layer in self.layers:
            x = layer(x, cos, sin)
        logits = self.output(self.norm(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


class LlamaDecodeStep(nn.Module):
    """One decoding step of a ``Llama`` with a static KV cache: ``forward(idx [B, 1], input_pos [1])`` writes the new
    token's keys and values at ``input_pos`` of each layer's cache (in place, ``index_copy_``) and returns the logits
    ``[B, 1, vocab]``, attending to the positions up to ``input_pos``. Every shape is fixed (the cache is as long as
    ``max_seq_len``; the position is a tensor), so one compiled program, or one CUDA graph, serves every step."""

    def __init__(self, model: Llama, batch_size: int):
        super().__init__()
        self.model = model
        cfg = model.config
        for i in range(cfg.n_layer):
            shape = (batch_size, cfg.n_kv_head, cfg.max_seq_len, cfg.head_dim)
            self.register_buffer(f"k_cache{i}", torch.zeros(shape), persistent=False)
            self.register_buffer(f"v_cache{i}", torch.zeros(shape), persistent=False)

    def forward(self, idx: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        m, cfg = self.model, self.model.config
        B = idx.shape[0]
        cos, sin = m.rope_cos.index_select(0, input_pos), m.rope_sin.index_select(0, input_pos)
        visible = (torch.arange(cfg.max_seq_len, device=idx.device) <= input_pos).view(1, 1, 1, -1)  # [1, 1, 1, L]
        x = m.tok_embeddings(idx)
        for i, layer in enumerate(m.layers):
            attn, h = layer.attention, layer.attention_norm(x)
            q = apply_rotary(attn.wq(h).view(B, 1, attn.n_head, attn.head_dim).transpose(1, 2), cos, sin)
            k = apply_rotary(attn.wk(h).view(B, 1, attn.n_kv_head, attn.head_dim).transpose(1, 2), cos, sin)
            v = attn.wv(h).view(B, 1, attn.n_kv_head, attn.head_dim).transpose(1, 2)
            k_cache, v_cache = getattr(self, f"k_cache{i}"), getattr(self, f"v_cache{i}")
            k_cache.index_copy_(2, input_pos, k)
            v_cache.index_copy_(2, input_pos, v)
            n_rep = attn.n_head // attn.n_kv_head
            keys = k_cache.repeat_interleave(n_rep, dim=1)
            values = v_cache.repeat_interleave(n_rep, dim=1)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible)
            x = x + attn.wo(y.transpose(1, 2).reshape(B, 1, attn.n_head * attn.head_dim))
            x = x + layer.feed_forward(layer.ffn_norm(x))
        return m.output(m.norm(x))


# --------------------------------------------------------------------------------------------------
# Elementwise chain
# --------------------------------------------------------------------------------------------------


class Chain(nn.Module):
    """``tanh(gelu(x * w + b) * sigmoid(x)) + x`` with ``w`` and ``b`` broadcast over the last dimension."""

    def __init__(self, cols: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cols))
        self.bias = nn.Parameter(torch.randn(cols))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.gelu(x * self.weight + self.bias) * torch.sigmoid(x)) + x
