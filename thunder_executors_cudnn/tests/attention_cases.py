"""The attention option grid, checked the same way on the GPU (real cuDNN graphs) and on the CPU (the float32
stand-in of `cudnn_reference`): the jitted function's output and gradients against PyTorch's math attention in
float32 on the same inputs, and the trace showing that the `cudnn` executor ran both directions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from cudnn_testing import assert_close_scaled, float32_leaves, half_tolerance, math_attention, no_fallback

import thunder


@dataclass(frozen=True)
class Case:
    """One point of the grid. mask: None, "bool", "float", "bool_empty_row", "float_empty_row" (a query row the
    mask hides entirely), "key_padding" (a [B, 1, 1, S_kv] boolean mask)."""

    causal: bool = False
    mask: str | None = None
    h_kv: int | None = None  # grouped-query attention: fewer key/value heads
    scale: float | None = None
    s_kv: int | None = None
    bshd: bool = False  # q, k, v as transposed views of [B, S, H, D] tensors (as models make them)

    def __str__(self) -> str:
        parts = ["causal" if self.causal else "", f"mask={self.mask}" if self.mask else "",
                 f"gqa{self.h_kv}" if self.h_kv else "", f"scale={self.scale}" if self.scale else "",
                 f"s_kv={self.s_kv}" if self.s_kv else "", "bshd" if self.bshd else ""]  # fmt: skip
        return "-".join(p for p in parts if p) or "plain"


GRID = [Case(), Case(causal=True), Case(mask="bool"), Case(mask="float"), Case(mask="key_padding"),
        Case(mask="bool_empty_row"), Case(mask="float_empty_row"), Case(h_kv=2), Case(h_kv=1, causal=True),
        Case(scale=0.3), Case(s_kv=None, bshd=True, causal=True), Case(mask="bool", h_kv=2, scale=0.2),
        Case(s_kv=-1, causal=True), Case(s_kv=-1, mask="float")]  # fmt: skip


def _tensor(b, h, s, d, dtype, device, bshd):
    if bshd:
        return torch.randn(b, s, h, d, dtype=dtype, device=device).transpose(1, 2).requires_grad_()
    return torch.randn(b, h, s, d, dtype=dtype, device=device, requires_grad=True)


def _mask(case: Case, b, h, s_q, s_kv, dtype, device):
    if case.mask is None:
        return None
    if case.mask == "key_padding":
        keep = torch.ones(b, 1, 1, s_kv, dtype=torch.bool, device=device)
        keep[0, ..., s_kv // 2 :] = False
        return keep
    keep = torch.rand(b, 1, s_q, s_kv, device=device) > 0.3
    keep[..., 0] = True  # no row hidden entirely unless asked for
    if case.mask.endswith("empty_row"):
        keep[:, :, 3] = False
    if case.mask.startswith("bool"):
        return keep
    additive = torch.randn(b, 1, s_q, s_kv, device=device).to(dtype)
    return additive.masked_fill(~keep, float("-inf"))


def attention(q, k, v, mask, causal, scale, gqa):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale, enable_gqa=gqa)


def check_case(case: Case, executors, *, dtype, device, b=2, h=4, s=64, d=64, expect_fallback=False):
    """Runs the case jitted and in float32 eager; asserts they agree and that cuDNN's operators ran (and that cuDNN
    refused no graph, unless `expect_fallback`: then PyTorch must have stood in, with a warning)."""
    from thunder_executors_cudnn.fallback import CudnnFallbackWarning

    s_kv = {None: s, -1: s * 2}.get(case.s_kv, case.s_kv)
    h_kv = case.h_kv or h
    q = _tensor(b, h, s, d, dtype, device, case.bshd)
    k, v = (_tensor(b, h_kv, s_kv, d, dtype, device, case.bshd) for _ in range(2))
    mask = _mask(case, b, h, s, s_kv, dtype, device)
    grad = torch.randn(b, h, s, d, dtype=dtype, device=device)
    gqa = h_kv != h

    jfn = thunder.jit(attention, executors=executors)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = jfn(q, k, v, mask, case.causal, case.scale, gqa)
        out.backward(grad)
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, CudnnFallbackWarning)]
    assert bool(fallbacks) == expect_fallback, fallbacks
    rq, rk, rv, rmask = float32_leaves(q, k, v, mask)
    expected = math_attention(rq, rk, rv, rmask, 0.0, case.causal, case.scale, gqa)
    expected.backward(grad.float())

    tol = half_tolerance(dtype)
    assert out.dtype == dtype and out.shape == expected.shape
    assert_close_scaled(out, expected, tol)
    for actual, reference in ((q.grad, rq.grad), (k.grad, rk.grad), (v.grad, rv.grad)):
        assert actual.shape == reference.shape
        assert_close_scaled(actual, reference, tol)
    if mask is not None and case.mask.endswith("empty_row"):
        assert torch.all(out[:, :, 3] == 0) and torch.all(q.grad[:, :, 3] == 0)
    assert_ran_on_cudnn(jfn)
    return jfn


def operator_ids(trace) -> set[str]:
    return {b.sym.id for b in trace.bound_symbols}


def assert_ran_on_cudnn(jfn) -> None:
    assert "cudnn.sdpa_fwd" in operator_ids(thunder.last_traces(jfn)[-1]), thunder.last_traces(jfn)[-1]
    assert "cudnn.sdpa_bwd" in operator_ids(thunder.last_backward_traces(jfn)[-1])


def identity_values(b, h, s, dtype, device):
    """v = the identity per head (S_kv == D == s): attention's output is then its probability matrix itself, after
    dropout, so the mask cuDNN drew can be read from the output."""
    eye = torch.eye(s, dtype=dtype, device=device)
    return eye.expand(b, h, s, s).clone().requires_grad_()


def check_dropout_mask_is_shared_by_forward_and_backward(executors, *, dtype, device, b=2, h=2, s=64, p=0.25):
    """With v the identity the output reveals the kept entries; the gradients must be those of attention with that
    very mask (computed in float32 eager), which holds only if the backward regenerated the forward's mask."""
    q = torch.randn(b, h, s, s, dtype=dtype, device=device, requires_grad=True)
    k = torch.randn(b, h, s, s, dtype=dtype, device=device, requires_grad=True)
    v = identity_values(b, h, s, dtype, device)
    grad = torch.randn(b, h, s, s, dtype=dtype, device=device)
    jfn = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=p), executors=executors)
    with no_fallback():
        out = jfn(q, k, v)
        out.backward(grad)
    assert_ran_on_cudnn(jfn)

    kept = out.detach() != 0
    fraction = kept.float().mean().item()
    assert abs(fraction - (1 - p)) < 0.05, f"kept {fraction:.3f} of the attention matrix, expected about {1 - p}"
    rq, rk, rv = float32_leaves(q, k, v)
    probs = torch.softmax(rq @ rk.transpose(-2, -1) / s**0.5, -1)
    expected = (probs * kept / (1 - p)) @ rv
    expected.backward(grad.float())
    tol = half_tolerance(dtype)
    assert_close_scaled(out, expected, tol)
    for actual, reference in ((q.grad, rq.grad), (k.grad, rk.grad), (v.grad, rv.grad)):
        assert_close_scaled(actual, reference, tol)


def check_dropout_is_reproducible(executors, *, dtype, device, b=2, h=2, s=64, p=0.25):
    """Under torch.manual_seed the same masks are drawn; another seed, and the next call, draw others."""
    q, k = (torch.randn(b, h, s, s, dtype=dtype, device=device) for _ in range(2))
    v = identity_values(b, h, s, dtype, device).detach()
    jfn = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=p), executors=executors)
    torch.manual_seed(1234)
    first, following = jfn(q, k, v), jfn(q, k, v)
    torch.manual_seed(1234)
    again = jfn(q, k, v)
    torch.manual_seed(4321)
    other = jfn(q, k, v)
    assert torch.equal(first, again)
    assert not torch.equal(first, following)
    assert not torch.equal(first, other)
