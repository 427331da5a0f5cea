"""Each Triton kernel, called directly, against PyTorch eager in float32 on the same (rounded) inputs:
forward and backward, float32 / bfloat16 / float16, odd sizes (rows that are not a multiple of the block,
vocabularies swept in several blocks), ignore_index wherever there are targets.

Without CUDA they run on the CPU through Triton's interpreter (TRITON_INTERPRET=1, set in triton_testing).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from thunder_executors_triton.kernels import cross_entropy as ce
from thunder_executors_triton.kernels import norms, rotary, softmax, swiglu
from triton_testing import DEVICE, DTYPES, assert_close_to_reference, reference_copy, sizes


def randn(*shape, dtype=torch.float32, scale=1.0):
    return (torch.randn(shape, device=DEVICE) * scale).to(dtype)


def targets(n_rows: int, n_classes: int, ignore_index: int) -> torch.Tensor:
    t = torch.randint(0, n_classes, (n_rows,), device=DEVICE)
    t[::3] = ignore_index  # every third row is ignored
    return t


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(1234)


# -- cross-entropy -----------------------------------------------------------------------------------------

CE_SHAPES = sizes(cpu=[(4, 2100), (5, 37)], cuda=[(2048, 50257), (1023, 3001)])  # float16 sums stay finite


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", CE_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_matches_eager(dtype, reduction, shape, label_smoothing):
    n_rows, n_classes = shape
    ignore_index = 3 if n_classes > 3 else -100  # an index that is also a class
    logits, target = randn(*shape, dtype=dtype, scale=4.0), targets(n_rows, n_classes, ignore_index)
    options = {"ignore_index": ignore_index, "label_smoothing": label_smoothing, "reduction": reduction}

    loss, lse = ce.cross_entropy_forward(logits, target, **options)
    ref_logits = reference_copy(logits)
    expected = F.cross_entropy(ref_logits, target, **options)
    assert_close_to_reference(loss, expected, dtype)

    grad = randn(*expected.shape, dtype=dtype)
    expected.backward(grad.float())
    actual_grad = ce.cross_entropy_backward(grad, logits, target, lse, **options)
    assert_close_to_reference(actual_grad, ref_logits.grad, dtype)
    assert not actual_grad[::3].any(), "ignored rows must get no gradient"


def test_cross_entropy_backward_may_write_into_the_logits():
    logits, target = randn(5, 300, scale=3.0), targets(5, 300, -100)
    ref_logits = reference_copy(logits)
    F.cross_entropy(ref_logits, target).backward()
    _, lse = ce.cross_entropy_forward(logits, target)
    out = ce.cross_entropy_backward(torch.ones((), device=DEVICE), logits, target, lse, out=logits)
    assert out.data_ptr() == logits.data_ptr()
    assert_close_to_reference(logits, ref_logits.grad, torch.float32)


def test_cross_entropy_of_all_ignored_rows_is_nan_for_mean_and_zero_for_sum():
    logits, target = randn(4, 50), torch.full((4,), -100, device=DEVICE)
    for reduction in ("mean", "sum"):
        loss, _ = ce.cross_entropy_forward(logits, target, reduction=reduction)
        torch.testing.assert_close(loss, F.cross_entropy(logits, target, reduction=reduction), equal_nan=True)


def test_cross_entropy_rejects_unflattened_logits():
    with pytest.raises(ValueError, match="flatten the leading dimensions"):
        ce.cross_entropy_forward(randn(2, 3, 5), torch.zeros(2, 3, dtype=torch.long, device=DEVICE))


def test_cross_entropy_rejects_an_unknown_reduction():
    with pytest.raises(ValueError, match="reduction must be one of"):
        ce.cross_entropy_forward(randn(2, 5), torch.zeros(2, dtype=torch.long, device=DEVICE), reduction="avg")


# -- linear + cross-entropy --------------------------------------------------------------------------------

LINEAR_CE_SHAPES = sizes(cpu=[(21, 16, 150)], cuda=[(8192, 768, 50257), (1000, 256, 3001)])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", LINEAR_CE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear_cross_entropy_matches_eager(dtype, reduction, shape, with_bias=True):
    n_tokens, hidden, vocab = shape
    x, weight = randn(n_tokens, hidden, dtype=dtype), randn(vocab, hidden, dtype=dtype, scale=hidden**-0.5)
    bias = randn(vocab, dtype=dtype) if with_bias else None
    target = targets(n_tokens, vocab, ignore_index=-100)
    options = {"ignore_index": -100, "label_smoothing": 0.05, "reduction": reduction}
    chunk = 8 if DEVICE == "cpu" else None  # several chunks and a partial last one on the interpreter
    refs = [reference_copy(t) if t is not None else None for t in (x, weight, bias)]
    expected = F.cross_entropy(F.linear(*refs), target, **options)

    loss = ce.linear_cross_entropy(x, weight, bias, target, chunk_tokens=chunk, **options)
    # bfloat16 logits are rounded before the loss (as eager's linear does), hence the wider tolerance
    assert_close_to_reference(loss, expected, dtype, scale=2.0)
    if reduction == "none":
        return  # the gradients come with the forward only for a scalar loss
    expected.backward()
    _, *grads = ce.linear_cross_entropy(x, weight, bias, target, with_grads=True, chunk_tokens=chunk, **options)
    for actual, ref in zip(grads, refs):
        if ref is not None:
            assert_close_to_reference(actual, ref.grad, dtype, scale=2.0)


@pytest.mark.parametrize("shape", LINEAR_CE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear_cross_entropy_without_bias_matches_eager(shape):
    test_linear_cross_entropy_matches_eager(torch.float32, "mean", shape, with_bias=False)


@pytest.mark.parametrize("shape", sizes(cpu=[(384, 16, 2048)], cuda=[(8192, 768, 50257)]), ids=lambda s: "x".join(map(str, s)))
def test_linear_cross_entropy_float16_gradients_of_a_mean_over_many_tokens_do_not_underflow(shape):
    # A mean over N tokens scales each logit's gradient by 1/N: scaled in float16 before the matmuls, most of them
    # fall into (or below) float16's subnormal range and lose their digits. The gradients must be about as close
    # to the float32 reference as that reference rounded to float16 is (summed over all elements, where the tiny
    # ones count), which scaling in float16 missed by 2.2x to 4.2x on the CPU shape.
    n_tokens, hidden, vocab = shape
    x, weight = randn(n_tokens, hidden, dtype=torch.float16), randn(vocab, hidden, dtype=torch.float16, scale=hidden**-0.5)
    bias, target = randn(vocab, dtype=torch.float16), targets(n_tokens, vocab, ignore_index=-100)
    refs = [reference_copy(t) for t in (x, weight, bias)]
    F.cross_entropy(F.linear(*refs), target).backward()
    chunk = 128 if DEVICE == "cpu" else None
    _, *grads = ce.linear_cross_entropy(x, weight, bias, target, with_grads=True, chunk_tokens=chunk)
    for name, actual, ref in zip(("x", "weight", "bias"), grads, refs, strict=True):
        error = (actual.float() - ref.grad).abs().sum()
        rounding = (ref.grad.half().float() - ref.grad).abs().sum()
        assert error <= 2 * rounding, f"grad of {name}: L1 error {error:.3g}, float16 rounding alone {rounding:.3g}"


def test_linear_cross_entropy_with_grads_refuses_reduction_none():
    x, w, t = randn(4, 8), randn(10, 8), targets(4, 10, -100)
    with pytest.raises(ValueError, match="with_grads needs reduction"):
        ce.linear_cross_entropy(x, w, None, t, reduction="none", with_grads=True)


def test_token_chunk_keeps_chunk_logits_a_small_part_of_the_full_logits():
    chunk = ce.token_chunk(8192)
    assert chunk == 8192 // 4
    assert ce.token_chunk(5) == 5  # never more tokens than there are


# -- RMSNorm and LayerNorm ---------------------------------------------------------------------------------

NORM_SHAPES = sizes(cpu=[(3, 5, 93), (4, 128)], cuda=[(8192, 4096), (3, 1000, 1111)])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_weight", [True, False], ids=["weight", "no-weight"])
def test_rms_norm_matches_eager(dtype, shape, with_weight):
    x, dy = randn(*shape, dtype=dtype), randn(*shape, dtype=dtype)
    weight = randn(shape[-1], dtype=dtype) if with_weight else None
    ref_x, ref_w = reference_copy(x), reference_copy(weight) if with_weight else None
    expected = F.rms_norm(ref_x, (shape[-1],), ref_w, 1e-6)
    expected.backward(dy.float())

    y, rstd = norms.rms_norm_forward(x, weight, 1e-6)
    dx, dw = norms.rms_norm_backward(dy, x, weight, rstd)
    assert_close_to_reference(y, expected, dtype)
    assert_close_to_reference(dx, ref_x.grad, dtype)
    if with_weight:
        assert_close_to_reference(dw, ref_w.grad, dtype)
    else:
        assert dw is None


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("affine", ["weight-and-bias", "none", "bias-only"])
def test_layer_norm_matches_eager(dtype, shape, affine):
    n = shape[-1]
    x, dy = randn(*shape, dtype=dtype, scale=2.0) + 0.5, randn(*shape, dtype=dtype)
    weight = randn(n, dtype=dtype) if affine == "weight-and-bias" else None
    bias = randn(n, dtype=dtype) if affine != "none" else None
    refs = [reference_copy(t) if t is not None else None for t in (x, weight, bias)]
    expected = F.layer_norm(refs[0], (n,), refs[1], refs[2], 1e-5)
    expected.backward(dy.float())

    y, mean, rstd = norms.layer_norm_forward(x, weight, bias, 1e-5)
    grads = norms.layer_norm_backward(dy, x, weight, mean, rstd, has_bias=bias is not None)
    assert_close_to_reference(y, expected, dtype)
    for actual, ref in zip(grads, refs):
        if ref is None:
            assert actual is None
        else:
            assert_close_to_reference(actual, ref.grad, dtype, scale=2.0)


def test_norm_rejects_a_weight_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"weight must have shape \[8\]"):
        norms.rms_norm_forward(randn(2, 8), randn(7), 1e-6)


def test_norm_rejects_a_non_contiguous_input():
    with pytest.raises(ValueError, match="contiguous"):
        norms.layer_norm_forward(randn(8, 4).t(), None, None, 1e-5)


# -- softmax and log-softmax -------------------------------------------------------------------------------

SOFTMAX_SHAPES = sizes(cpu=[(5, 3, 1500), (4, 7)], cuda=[(4096, 50257), (8, 1024, 1025)])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_matches_eager(dtype, shape, log):
    x, dy = randn(*shape, dtype=dtype, scale=5.0), randn(*shape, dtype=dtype)
    ref_x = reference_copy(x)
    expected = (F.log_softmax if log else F.softmax)(ref_x, -1)
    expected.backward(dy.float())

    y = softmax.softmax_forward(x, log=log)
    assert_close_to_reference(y, expected, dtype)
    # the backward reads the kernel's own (rounded) output, as it will in a trace
    assert_close_to_reference(softmax.softmax_backward(dy, y, log=log), ref_x.grad, dtype, scale=2.0)


def test_softmax_of_huge_logits_does_not_overflow():
    x = torch.tensor([[1e4, 1e4 - 1.0, -1e4]], device=DEVICE)
    torch.testing.assert_close(softmax.softmax_forward(x), torch.softmax(x, -1))
    torch.testing.assert_close(softmax.softmax_forward(x, log=True), torch.log_softmax(x, -1))


# -- rotary position embedding -----------------------------------------------------------------------------

ROTARY_SHAPES = sizes(cpu=[(2, 3, 5, 14), (7, 6)], cuda=[(4, 32, 2048, 128), (3, 5, 77, 64)])


def llama_cos_sin(seq_len: int, dim: int, dtype):
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, device=DEVICE, dtype=torch.float32) / dim))
    angles = torch.outer(torch.arange(seq_len, device=DEVICE, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", ROTARY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_rotary_embedding_matches_eager(dtype, shape):
    x, dy = randn(*shape, dtype=dtype), randn(*shape, dtype=dtype)
    cos, sin = llama_cos_sin(shape[-2], shape[-1], dtype)
    ref_x = reference_copy(x)
    expected = ref_x * cos.float() + rotate_half(ref_x) * sin.float()
    expected.backward(dy.float())

    assert_close_to_reference(rotary.rotary_forward(x, cos, sin), expected, dtype)
    assert_close_to_reference(rotary.rotary_backward(dy, cos, sin), ref_x.grad, dtype)


def test_rotary_embedding_rejects_cos_of_another_length():
    cos, sin = llama_cos_sin(4, 8, torch.float32)
    with pytest.raises(ValueError, match="cos must hold"):
        rotary.rotary_forward(randn(2, 5, 8), cos, sin)


# -- SwiGLU ------------------------------------------------------------------------------------------------

SWIGLU_SHAPES = sizes(cpu=[(3, 777), (5,)], cuda=[(8192, 11008), (3, 1001)])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SWIGLU_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_swiglu_matches_eager(dtype, shape):
    a, b, dy = randn(*shape, dtype=dtype, scale=3.0), randn(*shape, dtype=dtype), randn(*shape, dtype=dtype)
    ref_a, ref_b = reference_copy(a), reference_copy(b)
    expected = F.silu(ref_a) * ref_b
    expected.backward(dy.float())

    assert_close_to_reference(swiglu.swiglu_forward(a, b), expected, dtype)
    da, db = swiglu.swiglu_backward(dy, a, b)
    assert_close_to_reference(da, ref_a.grad, dtype)
    assert_close_to_reference(db, ref_b.grad, dtype)


def test_swiglu_rejects_operands_of_different_shapes():
    with pytest.raises(ValueError, match="one shape and dtype"):
        swiglu.swiglu_forward(randn(3, 4), randn(4))
