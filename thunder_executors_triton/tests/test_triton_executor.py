"""The `triton` executor inside `thunder.jit(fn, executors=["triton"])`: which operations it claims (its
checkers), and outputs and gradients against PyTorch eager (in float32, on the same rounded inputs).

Without CUDA the executor runs through Triton's interpreter on CPU tensors (TRITON_INTERPRET=1); its
checkers accept CPU tensors only then.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from thunder_executors_triton.executor import apply_rotary_emb, linear_cross_entropy, swiglu_op
from triton_testing import (
    DEVICE,
    DTYPES,
    assert_close_to_reference,
    backward_source,
    execution_source,
    reference_copy,
    sizes,
)

import thunder
from thunder.core.proxies import TensorProxy
from thunder_executors_triton import checkers

pytestmark = pytest.mark.usefixtures("triton_registry")


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(7)


def randn(*shape, dtype=torch.float32, scale=1.0, requires_grad=False):
    return (torch.randn(shape, device=DEVICE) * scale).to(dtype).requires_grad_(requires_grad)


def jit_and_eager(fn, inputs: list, dtype, *, scale: float = 1.0):
    """Runs fn jitted with the triton executor and in eager float32; compares outputs and input gradients."""
    jfn = thunder.jit(fn, executors=["triton"])
    out = jfn(*inputs)
    refs = [reference_copy(x, x.requires_grad) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
            for x in inputs]  # fmt: skip
    expected = fn(*refs)
    assert_close_to_reference(out, expected, dtype, scale=scale)
    grad = randn(*expected.shape, dtype=dtype)
    out.backward(grad)
    expected.backward(grad.float())
    for x, ref in zip(inputs, refs):
        if isinstance(x, torch.Tensor) and x.requires_grad:
            assert_close_to_reference(x.grad, ref.grad, dtype, scale=scale)
    return jfn


def rope(x, cos, sin):
    """The triton operator inside a trace, its definition in eager."""
    if isinstance(x, TensorProxy):
        return apply_rotary_emb(x, cos, sin)
    x1, x2 = x.chunk(2, -1)
    return x * cos + torch.cat((-x2, x1), -1) * sin


# -- claimed operations, forward and backward --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_runs_on_triton_with_gradients(dtype, reduction):
    n_rows, vocab = sizes(cpu=(6, 1100), cuda=(2048, 32000))
    logits = randn(n_rows, vocab, dtype=dtype, scale=3.0, requires_grad=True)
    target = torch.randint(0, vocab, (n_rows,), device=DEVICE)
    target[1::2] = 5

    def loss(logits, target):
        return F.cross_entropy(logits, target, ignore_index=5, reduction=reduction, label_smoothing=0.2)

    jfn = jit_and_eager(loss, [logits, target], dtype)
    assert "cross_entropy_fwd(" in execution_source(jfn)
    assert "cross_entropy_bwd(" in backward_source(jfn)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", [torch.softmax, torch.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_along_the_last_dimension_runs_on_triton_with_gradients(dtype, op):
    x = randn(*sizes(cpu=(3, 4, 65), cuda=(16, 512, 4096)), dtype=dtype, scale=4.0, requires_grad=True)
    jfn = jit_and_eager(lambda x: op(x, -1) * 2, [x], dtype, scale=2.0)
    name = op.__name__
    assert f"{name}_fwd(" in execution_source(jfn)
    assert f"{name}_bwd(" in backward_source(jfn)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rms_norm_runs_on_triton_with_gradients(dtype):
    shape = sizes(cpu=(2, 5, 48), cuda=(4, 2048, 4096))
    x, w = randn(*shape, dtype=dtype, requires_grad=True), randn(shape[-1], dtype=dtype, requires_grad=True)
    jfn = jit_and_eager(lambda x, w: F.rms_norm(x, (shape[-1],), w, 1e-6), [x, w], dtype, scale=2.0)
    assert "rms_norm_fwd(" in execution_source(jfn)
    assert "rms_norm_bwd(" in backward_source(jfn)


def test_rms_norm_without_eps_uses_the_float32_epsilon_as_eager_does():
    x = randn(4, 16, dtype=torch.bfloat16, requires_grad=True)
    jfn = jit_and_eager(lambda x: F.rms_norm(x, (16,)), [x], torch.bfloat16)
    assert "rms_norm_fwd(" in execution_source(jfn)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layer_norm_runs_on_triton_with_gradients(dtype):
    shape = sizes(cpu=(7, 33), cuda=(8192, 1024))
    x = randn(*shape, dtype=dtype, requires_grad=True)
    w, b = (randn(shape[-1], dtype=dtype, requires_grad=True) for _ in range(2))
    jfn = jit_and_eager(lambda x, w, b: F.layer_norm(x, (shape[-1],), w, b), [x, w, b], dtype, scale=2.0)
    assert "layer_norm_fwd(" in execution_source(jfn)
    assert "layer_norm_bwd(" in backward_source(jfn)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rotary_embedding_operator_runs_on_triton_with_gradients(dtype):
    shape = sizes(cpu=(2, 2, 5, 8), cuda=(4, 32, 1024, 128))
    x = randn(*shape, dtype=dtype, requires_grad=True)
    cos, sin = randn(*shape[-2:], dtype=dtype), randn(*shape[-2:], dtype=dtype)

    jfn = thunder.jit(rope, executors=["triton"])
    out = jfn(x, cos, sin)
    ref_x = reference_copy(x)
    expected = rope(ref_x, cos.float(), sin.float())
    assert_close_to_reference(out, expected, dtype)
    grad = randn(*shape, dtype=dtype)
    out.backward(grad)
    expected.backward(grad.float())
    assert_close_to_reference(x.grad, ref_x.grad, dtype)
    assert "rotary_bwd(" in backward_source(jfn)


def test_rotary_embedding_gives_gradients_to_cos_and_sin_when_they_require_them():
    x = randn(2, 3, 4, 6, requires_grad=True)
    cos, sin = randn(4, 6, requires_grad=True), randn(4, 6, requires_grad=True)

    jfn = jit_and_eager(rope, [x, cos, sin], torch.float32)
    assert "rotary_bwd(" in backward_source(jfn)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_swiglu_operator_runs_on_triton_with_gradients(dtype):
    shape = sizes(cpu=(3, 70), cuda=(8192, 11008))
    a, b = (randn(*shape, dtype=dtype, requires_grad=True) for _ in range(2))
    jfn = thunder.jit(lambda a, b: swiglu_op(a, b), executors=["triton"])
    out = jfn(a, b)
    ra, rb = reference_copy(a), reference_copy(b)
    expected = F.silu(ra) * rb
    assert_close_to_reference(out, expected, dtype)
    out.sum().backward()
    expected.sum().backward()
    assert_close_to_reference(a.grad, ra.grad, dtype)
    assert_close_to_reference(b.grad, rb.grad, dtype)
    assert "swiglu_bwd(" in backward_source(jfn)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_linear_cross_entropy_operator_computes_gradients_with_its_forward(dtype, reduction):
    n_tokens, hidden, vocab = sizes(cpu=(9, 8, 40), cuda=(4096, 768, 50257))
    x = randn(n_tokens, hidden, dtype=dtype, requires_grad=True)
    w = randn(vocab, hidden, dtype=dtype, scale=hidden**-0.5, requires_grad=True)
    b = randn(vocab, dtype=dtype, requires_grad=True)
    target = torch.randint(0, vocab, (n_tokens,), device=DEVICE)
    target[::4] = -100

    def loss(x, w, b, target):
        if isinstance(x, TensorProxy):
            return linear_cross_entropy(x, w, b, target, -100, 0.1, reduction)
        return F.cross_entropy(F.linear(x, w, b), target, label_smoothing=0.1, reduction=reduction)

    jfn = jit_and_eager(loss, [x, w, b, target], dtype, scale=2.0)
    assert "linear_cross_entropy_with_grads(" in execution_source(jfn)


def test_linear_cross_entropy_without_a_scalar_loss_is_differentiated_through_its_reference():
    x, w = randn(6, 4, requires_grad=True), randn(10, 4, requires_grad=True)
    target = torch.tensor([1, 2, -100, 3, 4, 9], device=DEVICE)

    def loss(x, w, target):
        if isinstance(x, TensorProxy):
            return linear_cross_entropy(x, w, None, target, -100, 0.0, "none")
        return F.cross_entropy(F.linear(x, w), target, reduction="none")

    jfn = jit_and_eager(loss, [x, w, target], torch.float32)
    assert "linear_cross_entropy_with_grads" not in execution_source(jfn)


# -- what the checkers leave to torch ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, make_inputs",
    [
        pytest.param(lambda x, t: F.cross_entropy(x, t, weight=torch.ones(x.shape[1], device=x.device)),
                     lambda: (randn(4, 9), torch.arange(4, device=DEVICE)), id="cross_entropy-class-weights"),
        pytest.param(lambda x, t: F.cross_entropy(x, t), lambda: (randn(4, 9, 3), torch.zeros(4, 3, dtype=torch.long,
                     device=DEVICE)), id="cross_entropy-3d-logits"),
        pytest.param(lambda x, t: F.cross_entropy(x, t), lambda: (randn(4, 9).double(), torch.arange(4, device=DEVICE)),
                     id="cross_entropy-float64"),
        pytest.param(lambda x, t: torch.softmax(x, 0), lambda: (randn(4, 9), None), id="softmax-first-dim"),
        pytest.param(lambda x, t: torch.softmax(x, -1, dtype=torch.float64), lambda: (randn(4, 9), None),
                     id="softmax-with-dtype"),
        pytest.param(lambda x, t: F.rms_norm(x, (4, 9)), lambda: (randn(2, 4, 9), None), id="rms_norm-two-dims"),
        pytest.param(lambda x, t: F.layer_norm(x, (4, 9)), lambda: (randn(2, 4, 9), None), id="layer_norm-two-dims"),
        pytest.param(lambda x, t: F.rms_norm(x, (9,), torch.ones(9, dtype=torch.float64, device=x.device)),
                     lambda: (randn(4, 9), None), id="rms_norm-weight-of-another-dtype"),
    ],
)  # fmt: skip
def test_calls_the_checkers_reject_run_on_torch(fn, make_inputs):
    x, t = make_inputs()
    jfn = thunder.jit(fn, executors=["triton"])
    torch.testing.assert_close(jfn(x, t), fn(x, t))
    source = execution_source(jfn)
    assert "_fwd(" not in source, source


@pytest.mark.parametrize("op", [torch.softmax, torch.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax_of_a_transposed_tensor_matches_eager(op):
    # a view's proxy may not know its strides: the kernels' operators make their inputs contiguous
    x = randn(5, 9, requires_grad=True)
    jit_and_eager(lambda x: op(x.t(), -1), [x], torch.float32)


def test_checkers_accept_cuda_tensors_and_cpu_tensors_only_under_the_interpreter(monkeypatch):
    cuda_x = TensorProxy(shape=(4, 8), dtype=torch.bfloat16, device="cuda")
    cpu_x = TensorProxy(shape=(4, 8), dtype=torch.bfloat16, device="cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert checkers.softmax_checker(cuda_x, -1)
    assert not checkers.softmax_checker(cpu_x, -1)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert checkers.softmax_checker(cpu_x, -1)


def test_cross_entropy_checker_rejects_legacy_reduction_flags_and_unknown_reductions():
    logits = TensorProxy(shape=(4, 8), dtype=torch.float32, device="cuda")
    target = TensorProxy(shape=(4,), dtype=torch.int64, device="cuda")
    assert checkers.cross_entropy_checker(logits, target, label_smoothing=0.1)
    assert not checkers.cross_entropy_checker(logits, target, size_average=False)
    assert not checkers.cross_entropy_checker(logits, target, reduction="batchmean")
    assert not checkers.cross_entropy_checker(logits, TensorProxy(shape=(4,), dtype=torch.float32, device="cuda"))
    assert not checkers.cross_entropy_checker(logits, TensorProxy(shape=(4,), dtype=torch.int64, device="cuda:1"))


def test_rotary_checker_needs_an_even_head_dimension_and_one_row_of_cos_per_position():
    x = TensorProxy(shape=(2, 5, 8), dtype=torch.float16, device="cuda")
    good = TensorProxy(shape=(1, 5, 8), dtype=torch.float16, device="cuda")
    assert checkers.rotary_checker(x, good, good)
    short = TensorProxy(shape=(4, 8), dtype=torch.float16, device="cuda")
    assert not checkers.rotary_checker(x, short, short)
    odd = TensorProxy(shape=(2, 5, 7), dtype=torch.float16, device="cuda")
    assert not checkers.rotary_checker(odd, good, good)


def test_operators_fall_back_to_their_reference_on_tensors_the_kernels_cannot_take():
    a, b = randn(4, 6).double(), randn(4, 6).double()  # float64: no kernel
    with pytest.warns(UserWarning, match="swiglu runs its PyTorch reference"):
        torch.testing.assert_close(swiglu_op(a, b), F.silu(a) * b)
