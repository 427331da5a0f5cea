"""How much of the torch API Thunder covers natively: with a `thunder.torch` symbol (or a handler built
on symbols) rather than the meta-kernel fallback, so that executors see the operation and its
decomposition into prims."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import thunder
from thunder.torch import TORCH_HANDLERS
from thunder.torch.fallback import qualified_name

T = torch.Tensor
MINIMUM_NATIVE_CALLABLES = 250


def native_callables() -> set:
    """The torch callables (functions, Tensor methods, operators, property getters, F.*) with a native handler."""
    return {fn for fn, handler in TORCH_HANDLERS.items() if "fallback" not in getattr(handler, "tags", ())}


def test_at_least_250_torch_callables_are_native():
    native = native_callables()
    names = sorted(qualified_name(fn) for fn in native)
    assert len(native) >= MINIMUM_NATIVE_CALLABLES, f"only {len(native)} native torch callables: {names}"


def test_native_coverage_spans_functions_methods_operators_and_functional():
    names = [qualified_name(fn) for fn in native_callables()]
    kinds = {
        "torch functions": [n for n in names if n.count(".") == 1],
        "Tensor methods": [n for n in names if n.startswith("torch.Tensor.") and not n.endswith("__")],
        "operators": [n for n in names if n.startswith("torch.Tensor.__")],
        "torch.nn.functional": [n for n in names if n.startswith("torch.nn.functional.")],
    }
    for kind, members in kinds.items():
        assert len(members) >= 20, f"only {len(members)} native {kind}: {sorted(members)}"


# The torch callables that GPT-2, Llama-style decoders, BERT, ViT and small CNNs call in their forward
# (and loss): each must trace to a Thunder symbol, never to the fallback.
MODEL_OPS = {
    "linear layers": [F.linear, torch.matmul, T.matmul, T.__matmul__, torch.bmm, torch.baddbmm, torch.addmm],
    "normalization": [F.layer_norm, F.rms_norm, F.batch_norm, F.group_norm, torch.rsqrt, T.rsqrt, T.pow, torch.pow,
                      torch.mean, T.mean, T.var, torch.sqrt],
    "activations": [F.gelu, F.silu, F.relu, torch.relu, torch.tanh, T.tanh, F.sigmoid, torch.sigmoid, F.softmax,
                    torch.softmax, T.softmax, F.log_softmax, torch.erf],
    "attention": [F.scaled_dot_product_attention, T.masked_fill, torch.tril, torch.triu, torch.where, torch.full,
                  torch.ones, torch.zeros, torch.zeros_like, torch.ones_like, T.__rsub__, torch.min, torch.max,
                  torch.amax],
    "embeddings and position": [F.embedding, torch.arange, torch.outer, torch.cos, torch.sin, T.cos, T.sin,
                                torch.cat, torch.stack, T.neg, T.__neg__, T.float, T.type_as, T.to, T.__getitem__],
    "reshaping": [T.transpose, torch.transpose, T.view, T.reshape, torch.reshape, T.permute, T.contiguous,
                  T.split, torch.split, T.chunk, T.unsqueeze, T.squeeze, T.expand, torch.flatten, T.flatten,
                  T.repeat_interleave, T.repeat, T.unbind],
    "arithmetic": [T.__add__, T.__radd__, T.__sub__, T.__mul__, T.__rmul__, T.__truediv__, T.__rtruediv__,
                   torch.add, torch.mul, T.add, T.mul, T.div, T.sum, torch.sum, T.__gt__, T.__eq__, T.long],
    "convolutional nets": [F.conv2d, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.pad, F.dropout],
    "losses": [F.cross_entropy, F.nll_loss, F.mse_loss, torch.argmax, T.argmax, T.eq],
}  # fmt: skip


@pytest.mark.parametrize("family", list(MODEL_OPS))
def test_every_op_common_models_use_is_native(family):
    native = native_callables()
    missing = sorted(qualified_name(fn) for fn in MODEL_OPS[family] if fn not in native)
    assert not missing, f"{family}: these torch callables would trace through the fallback: {missing}"


def _llama_block(x, wq, wk, wv, wo, w_gate, w_up, w_down, norm_weight):
    batch, seq, dim = x.shape
    heads = 2
    variance = x.float().pow(2).mean(-1, keepdim=True)
    h = (x * torch.rsqrt(variance + 1e-6)).type_as(x) * norm_weight
    q, k, v = (F.linear(h, w).view(batch, seq, heads, dim // heads).transpose(1, 2) for w in (wq, wk, wv))
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim // heads, 2).float() / (dim // heads)))
    freqs = torch.outer(torch.arange(seq).float(), inv_freq)
    cos, sin = torch.cat((freqs, freqs), -1).cos(), torch.cat((freqs, freqs), -1).sin()

    def rotate(t):
        t1, t2 = t[..., : t.shape[-1] // 2], t[..., t.shape[-1] // 2 :]
        return t * cos + torch.cat((-t2, t1), dim=-1) * sin

    attn = F.scaled_dot_product_attention(rotate(q), rotate(k), v, is_causal=True)
    x = x + F.linear(attn.transpose(1, 2).reshape(batch, seq, dim), wo)
    return x + F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


def _gpt2_attention(x, w_attn, b_attn, mask_value):
    batch, seq, dim = x.shape
    qkv = torch.addmm(b_attn, x.view(-1, dim), w_attn).view(batch, seq, 3 * dim)
    q, k, v = qkv.split(dim, dim=2)
    scores = q @ k.transpose(-1, -2) / dim**0.5
    causal = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
    scores = torch.where(causal, scores, mask_value)
    h = F.gelu(torch.softmax(scores, dim=-1) @ v, approximate="tanh")
    return F.layer_norm(h, (dim,))


def _vit_bert_encoder(images, patch_weight, cls_token, position, attention_mask, w_qkv):
    patches = F.conv2d(images, patch_weight, stride=4).flatten(2).transpose(1, 2)  # ViT patch embedding
    x = torch.cat((cls_token.expand(images.shape[0], -1, -1), patches), dim=1) + position
    x = F.dropout(F.layer_norm(x, x.shape[-1:]), p=0.1, training=False)
    q, k, v = F.linear(x, w_qkv).chunk(3, dim=-1)
    extended = (1.0 - attention_mask[:, None, :].to(x.dtype)) * torch.finfo(x.dtype).min  # BERT's additive mask
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1]) + extended
    return F.gelu(torch.matmul(scores.softmax(dim=-1), v))


def _small_cnn(x, conv_weight, conv_bias, fc_weight, target):
    h = F.relu(F.conv2d(x, conv_weight, conv_bias, padding=1))
    h = F.max_pool2d(h, 2)
    h = torch.flatten(F.adaptive_avg_pool2d(h, (2, 2)), 1)
    return F.cross_entropy(F.linear(h, fc_weight), target)


def _model_inputs(name):
    r = lambda *shape: torch.randn(*shape) * 0.3
    if name == "llama":
        return (r(2, 4, 8), *(r(8, 8) for _ in range(4)), r(16, 8), r(16, 8), r(8, 16), r(8))
    if name == "gpt2":
        return r(2, 4, 8), r(8, 24), r(24), torch.tensor(-1e4)
    if name == "vit_bert":
        mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
        return r(2, 3, 8, 8), r(8, 3, 4, 4), r(1, 1, 8), r(1, 5, 8), mask, r(24, 8)
    return r(2, 3, 8, 8), r(4, 3, 3, 3), r(4), r(5, 16), torch.tensor([1, 4])


@pytest.mark.parametrize(
    "name, fn",
    [("llama", _llama_block), ("gpt2", _gpt2_attention), ("vit_bert", _vit_bert_encoder), ("cnn", _small_cnn)],
)
def test_model_blocks_trace_without_fallback_and_match_eager(name, fn):
    torch.manual_seed(0)
    args = _model_inputs(name)
    jfn = thunder.jit(fn)
    torch.testing.assert_close(jfn(*args), fn(*args))
    assert thunder.fallback_ops(jfn) == set()
