"""The pattern rewrites (Trace -> Trace) on acquired traces: what they match and leave alone, that the traces
they return are valid, and, applied through `TritonPatterns` inside `thunder.jit`, outputs and gradients
against PyTorch eager.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from thunder_executors_triton.rewrites import TritonPatterns, fuse_linear_cross_entropy, fuse_swiglu
from triton_testing import DEVICE, backward_source, execution_source, reference_copy

import thunder
from thunder.core.verify import verify_trace

pytestmark = pytest.mark.usefixtures("triton_registry")


def randn(*shape, requires_grad=False):
    return torch.randn(shape, device=DEVICE).requires_grad_(requires_grad)


def acquired(fn, *args):
    jfn = thunder.jit(fn, executors=["triton"])
    jfn(*args)
    return thunder.last_traces(jfn)[0]


def symbol_ids(trace) -> list[str]:
    return [b.sym.id for b in trace.bound_symbols]


def lm_loss(x, w, target):
    """A language-model head: hidden states [B, T, H] to a mean loss over B * T tokens."""
    return F.cross_entropy(F.linear(x, w).view(-1, w.shape[0]), target.view(-1), ignore_index=0)


# -- linear + cross-entropy --------------------------------------------------------------------------------


def test_linear_then_cross_entropy_becomes_one_operator():
    def fn(x, w, b, t):
        return F.cross_entropy(F.linear(x, w, b), t, reduction="sum", label_smoothing=0.1)

    trace = acquired(fn, randn(5, 4), randn(11, 4), randn(11), torch.arange(5, device=DEVICE))
    rewritten = fuse_linear_cross_entropy(trace)
    verify_trace(rewritten)
    assert symbol_ids(rewritten) == ["triton.linear_cross_entropy"]
    (bsym,) = rewritten.bound_symbols
    assert [a.name if hasattr(a, "name") else a for a in bsym.args] == ["x", "w", "b", "t", -100, 0.1, "sum"]
    assert bsym.output is trace.bound_symbols[-1].output  # the loss keeps its name


def test_flattened_logits_of_batched_hidden_states_are_matched():
    trace = acquired(lm_loss, randn(2, 3, 4), randn(7, 4), torch.randint(0, 7, (2, 3), device=DEVICE))
    rewritten = fuse_linear_cross_entropy(trace)
    verify_trace(rewritten)
    assert "triton.linear_cross_entropy" in symbol_ids(rewritten)
    assert "ltorch.linear" not in symbol_ids(rewritten)
    assert "ltorch.cross_entropy" not in symbol_ids(rewritten)


def test_logits_that_are_also_returned_are_not_fused():
    def fn(x, w, t):
        logits = F.linear(x, w)
        return F.cross_entropy(logits, t), logits

    trace = acquired(fn, randn(5, 4), randn(11, 4), torch.arange(5, device=DEVICE))
    assert fuse_linear_cross_entropy(trace) is trace


def test_cross_entropy_with_class_weights_is_not_fused():
    def fn(x, w, cw, t):
        return F.cross_entropy(F.linear(x, w), t, weight=cw)

    trace = acquired(fn, randn(5, 4), randn(11, 4), torch.rand(11, device=DEVICE), torch.arange(5, device=DEVICE))
    assert fuse_linear_cross_entropy(trace) is trace


def test_float64_operands_are_not_fused():
    trace = acquired(lm_loss, randn(2, 3, 4).double(), randn(7, 4).double(), torch.ones(2, 3, dtype=torch.long, device=DEVICE))
    assert fuse_linear_cross_entropy(trace) is trace


def test_fused_language_model_head_matches_eager_with_gradients():
    x, w = randn(2, 5, 8, requires_grad=True), randn(30, 8, requires_grad=True)
    target = torch.randint(0, 30, (2, 5), device=DEVICE)
    target[0, :2] = 0  # ignore_index=0
    jfn = thunder.jit(lm_loss, executors=["triton"], transforms=[TritonPatterns()])
    loss = jfn(x, w, target)
    rx, rw = reference_copy(x), reference_copy(w)
    expected = lm_loss(rx, rw, target)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(x.grad, rx.grad)
    torch.testing.assert_close(w.grad, rw.grad)
    assert "linear_cross_entropy_with_grads(" in execution_source(jfn)


# -- SwiGLU ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["silu(a) * b", "b * silu(a)"])
def test_silu_times_a_tensor_becomes_swiglu(order):
    def fn(a, b):
        return F.silu(a) * b if order == "silu(a) * b" else b * F.silu(a)

    trace = acquired(fn, randn(3, 6), randn(3, 6))
    rewritten = fuse_swiglu(trace)
    verify_trace(rewritten)
    assert symbol_ids(rewritten) == ["triton.swiglu"]
    assert [a.name for a in rewritten.bound_symbols[0].args] == ["a", "b"]


def test_silu_whose_output_is_used_twice_is_not_fused():
    def fn(a, b):
        gate = F.silu(a)
        return gate * b, gate.sum()

    trace = acquired(fn, randn(3, 6), randn(3, 6))
    assert fuse_swiglu(trace) is trace


def test_broadcasting_product_is_not_fused():
    trace = acquired(lambda a, b: F.silu(a) * b, randn(3, 6), randn(6))
    assert fuse_swiglu(trace) is trace


def test_mlp_with_fused_swiglu_matches_eager_with_gradients():
    def mlp(x, w_gate, w_up, w_down):
        return F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)

    inputs = [randn(4, 8, requires_grad=True)] + [randn(16, 8, requires_grad=True) for _ in range(2)]
    inputs.append(randn(8, 16, requires_grad=True))
    jfn = thunder.jit(mlp, executors=["triton"], transforms=[TritonPatterns()])
    out = jfn(*inputs)
    refs = [reference_copy(t) for t in inputs]
    expected = mlp(*refs)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    expected.sum().backward()
    for actual, ref in zip(inputs, refs):
        torch.testing.assert_close(actual.grad, ref.grad)
    assert "swiglu(" in execution_source(jfn)
    assert "swiglu_bwd(" in backward_source(jfn)
