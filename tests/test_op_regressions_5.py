"""Regressions found by the full OpInfo sweep (issue #26: every sample, gradients in every dtype), each checked
against torch eager / torch.autograd with `assert_matches_eager` (the default executors and the decomposition into
prims alike).

- complex gradients: torch's gradient of a holomorphic op is the cotangent times the conjugate derivative
  (`grad @ b.mH` for a product), which the rules of linear, addmm, baddbmm, addbmm, the unary prims, pow,
  cumprod and prod lacked; real/imag had no rule (vdot, vecdot), var's real cotangent met a complex input;
- float16 / bfloat16 results that round otherwise than eager's kernels (eager computes addcmul in float32 and
  rounds once; its backward formulas of addcmul, addcdiv and ldexp round factor by factor; its matmul folds a
  batch into one mm) and semantics that only ties reveal (fmax / fmin give a tie's gradient to the first input);
- forward values: logspace rounds its ends to the result dtype first (an int64 logspace of 0..1.2 is 1, 10), and
  complex logaddexp and complex transposed convolutions ran no kernel at all.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder
from tests.test_op_regressions_2 import assert_matches_eager

EXACT = {"atol": 0, "rtol": 0}
COMPLEX_GRAD = {"atol": 1e-5, "rtol": 1e-5}
# eager's CPU kernels' rounding order, reproduced exactly; CUDA's kernels round otherwise
CPU_ROUNDING = pytest.mark.cpu_only(reason="compares with the rounding order of eager's CPU kernels")
NO_CUDA_INTEGER_MATMUL = pytest.mark.cpu_only(reason="eager has no integer matmul on CUDA to compare with")


def cplx(*shape):
    return torch.randn(shape, dtype=torch.complex64)


# -- complex gradients: the conjugates torch's autograd applies ---------------------------------------------------
@pytest.mark.parametrize(
    "name, fn, shapes",
    [
        ("linear", lambda x, w, b: F.linear(x, w, b), [(3, 4), (5, 4), (5,)]),
        ("linear-vector-weight", lambda x, w: F.linear(x, w), [(3, 4), (4,)]),
        ("addmm", lambda b, x, y: torch.addmm(b, x, y, beta=0.5, alpha=2.0), [(3, 5), (3, 4), (4, 5)]),
        ("addmm-complex-scalars", lambda b, x, y: torch.addmm(b, x, y, beta=1 - 2j, alpha=0.5j), [(3, 5), (3, 4), (4, 5)]),
        ("baddbmm", lambda b, x, y: torch.baddbmm(b, x, y, alpha=3.0), [(2, 3, 5), (2, 3, 4), (2, 4, 5)]),
        ("addbmm", lambda b, x, y: torch.addbmm(b, x, y), [(3, 5), (2, 3, 4), (2, 4, 5)]),
        ("vdot", torch.vdot, [(6,), (6,)]),
        ("vecdot", lambda x, y: torch.linalg.vecdot(x, y, dim=0), [(4, 3), (4, 3)]),
        ("real-and-imag", lambda z: torch.real(z) * 2 + torch.imag(z) * 3, [(5,)]),
        ("asin-log-sqrt", lambda z: torch.asin(z) + torch.log(z) * torch.sqrt(z), [(6,)]),
        ("exp-tanh-sigmoid", lambda z: torch.exp(z) * torch.tanh(z) - torch.sigmoid(z), [(6,)]),
        ("pow-tensor-tensor", torch.pow, [(6,), (6,)]),
        ("pow-number-base", lambda z: torch.pow(2.5, z) + torch.pow(-1.5, z), [(6,)]),
        ("pow-number-exponent", lambda z: torch.pow(z, 3) + torch.pow(z, 0.5j), [(6,)]),
        ("cumprod", lambda z: torch.cumprod(z, 1), [(3, 5)]),
        ("prod", lambda z: torch.prod(z, 0), [(4, 3)]),
        ("var", lambda z: torch.var(z, 1), [(3, 5)]),
        ("logaddexp", torch.logaddexp, [(6,), (6,)]),
        ("conv_transpose1d", lambda x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1),
         [(1, 3, 4), (3, 2, 3), (2,)]),
        ("conv_transpose3d", lambda x, w: F.conv_transpose3d(x, w, stride=2), [(1, 2, 2, 3, 2), (2, 2, 2, 2, 2)]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_complex_gradients_are_torchs_conjugate_ones(name, fn, shapes):
    assert_matches_eager(fn, *(cplx(*shape) for shape in shapes), tol=COMPLEX_GRAD)


def test_complex_prod_with_a_zero_takes_the_product_of_the_others():
    z = cplx(3, 4)
    z[1, 2] = 0
    assert_matches_eager(lambda z: torch.prod(z, 1), z, tol=COMPLEX_GRAD)


def test_complex_logaddexp_handles_infinities_and_nan_as_eager():
    inf, nan = float("inf"), float("nan")
    a = torch.tensor([1 + 2j, complex(inf, 1), complex(-inf, 0), complex(3, 1), 2 + 0j])
    b = torch.tensor([2 - 1j, complex(inf, 3), complex(-inf, 2), complex(nan, 0), 2 + 1j])
    torch.testing.assert_close(thunder.jit(torch.logaddexp)(a, b), torch.logaddexp(a, b), equal_nan=True)


# -- float16 / bfloat16: eager's rounding ---------------------------------------------------------------------------
def _low(*shape, dtype, scale=3.0):
    return (torch.randn(shape) * scale).to(dtype)


@CPU_ROUNDING
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op", [torch.addcmul, torch.addcdiv], ids=lambda op: op.__name__)
def test_addcmul_and_addcdiv_round_as_eager_forward_and_backward(op, dtype):
    torch.manual_seed(0)
    bias, t1, t2 = _low(1, dtype=dtype), _low(5, 5, 1, dtype=dtype), _low(1, 5, dtype=dtype)
    for value in (1, 3.14):
        assert_matches_eager(lambda a, b, c, value=value: op(a, b, c, value=value), bias, t1, t2, tol=EXACT)


@CPU_ROUNDING
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "a_shape, b_shape", [((5, 5, 10, 10), (10,)), ((5, 5, 10), (10, 5)), ((4, 10), (3, 10, 5)), ((10,), (6, 10, 4))]
)
def test_matmul_gradient_of_the_broadcast_operand_is_one_sum_as_eager(a_shape, b_shape, dtype):
    torch.manual_seed(0)
    a, b = _low(*a_shape, dtype=dtype, scale=1.0), _low(*b_shape, dtype=dtype, scale=1.0)
    assert_matches_eager(torch.matmul, a, b, tol=EXACT)


@CPU_ROUNDING
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_ldexp_gradients_follow_torchs_formulas(dtype):
    torch.manual_seed(0)
    assert_matches_eager(torch.ldexp, _low(10, 1, 5, dtype=dtype), _low(10, 5, dtype=dtype), tol=EXACT)


@CPU_ROUNDING
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_addr_rounds_as_eager(dtype):
    torch.manual_seed(0)
    args = _low(dtype=dtype), _low(5, dtype=dtype), _low(10, dtype=dtype)
    assert_matches_eager(lambda b, u, v: torch.addr(b, u, v, beta=0.6, alpha=0.2), *args, tol=EXACT)


@pytest.mark.parametrize("op", [torch.fmax, torch.fmin], ids=lambda op: op.__name__)
def test_fmax_and_fmin_give_a_tie_all_its_gradient_to_the_first_input(op):
    a = torch.tensor([1.0, 2.0, 3.0, float("nan"), 5.0])
    b = torch.tensor([1.0, 1.0, 4.0, 0.0, float("nan")])
    assert_matches_eager(op, a, b)
    assert_matches_eager(op, a.reshape(5, 1), b)  # broadcast: the tie's gradient summed into the first


def test_vector_norm_float16_gradient_is_the_exact_one_where_eagers_overflows():
    """Eager's float16 backward of ord=6 computes norm**5 in float16 (about 1e5: inf), so its gradient is all
    zeros; ours computes in float32, as the forward does. The reference is eager's float64 gradient."""
    x = torch.linspace(-9, 9, 15).reshape(3, 5).to(torch.float16).requires_grad_()
    (eager_grad,) = torch.autograd.grad(torch.linalg.vector_norm(x, 6), x)
    assert not eager_grad.any(), "eager's float16 gradient no longer overflows: compare with it directly"
    exact = x.detach().double().requires_grad_()
    (expected,) = torch.autograd.grad(torch.linalg.vector_norm(exact, 6), exact)
    jx = x.detach().clone().requires_grad_()
    (actual,) = torch.autograd.grad(thunder.jit(lambda x: torch.linalg.vector_norm(x, 6))(jx), jx)
    torch.testing.assert_close(actual, expected.to(torch.float16), atol=1e-3, rtol=1e-2)


# -- forward values -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, dtype",
    [((0, 1.2, 4), torch.int64), ((0, 1.2, 2, 5.0), torch.int32), ((-1.7, 2.9, 5), torch.int64),
     ((4.3, -3, 2), torch.float16), ((4.3, -3, 4), torch.bfloat16)],
    ids=["int64", "int32-base5", "int64-negative-start", "float16", "bfloat16"],
)  # fmt: skip
def test_logspace_rounds_its_ends_to_the_result_dtype_first(args, dtype):
    expected = torch.logspace(*args, dtype=dtype)
    actual = thunder.jit(lambda: torch.logspace(*args, dtype=dtype))()
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


# -- second round of the sweep ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pool", [
    lambda x: F.max_pool2d(x, 2), lambda x: F.max_pool2d(torch.relu(x), 3, stride=1, padding=1),
    lambda x: F.max_pool1d(x.flatten(2), 3, stride=2, ceil_mode=True), lambda x: F.max_pool3d(x.unsqueeze(2), (1, 2, 2)),
], ids=["2d", "2d-after-relu-padded", "1d-ceil", "3d"])  # fmt: skip
def test_max_pool_gives_a_tied_windows_gradient_to_its_first_maximum(pool):
    x = torch.tensor([[[[0.0, 0.0, 1.0, 1.0], [0.0, -1.0, 1.0, 0.5], [2.0, 2.0, -3.0, -3.0], [2.0, 2.0, -3.0, -4.0]]]])
    assert_matches_eager(pool, x, tol=EXACT)


def test_nextafter_gives_no_gradient_where_the_inputs_are_equal():
    assert_matches_eager(torch.nextafter, torch.tensor([1.0, 2.0, 3.0, -1.0]), torch.tensor([1.0, 5.0, -3.0, -1.0]))


@CPU_ROUNDING
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_number_divided_by_a_tensor_rounds_as_eagers_reciprocal_product(dtype):
    torch.manual_seed(0)
    assert_matches_eager(lambda x: 7.3 / x, _low(6, 5, dtype=dtype), tol=EXACT)


@CPU_ROUNDING
@pytest.mark.parametrize("weight", [0.3, 0.8, "tensor"])
def test_lerp_float16_rounds_once_as_eagers_kernel(weight):
    torch.manual_seed(0)
    start, end = _low(5, 5, dtype=torch.float16), _low(5, 5, dtype=torch.float16)
    if weight == "tensor":
        assert_matches_eager(torch.lerp, start, end, torch.rand(5, 5).to(torch.float16), grads=False, tol=EXACT)
    else:
        assert_matches_eager(lambda a, b: torch.lerp(a, b, weight), start, end, grads=False, tol=EXACT)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_digamma_gradient_near_a_pole_in_half_precision(dtype):
    x = torch.tensor([-3.0332, -0.5737, 1.1348, -8.4766, 4.95]).to(dtype)
    assert_matches_eager(torch.digamma, x, tol={"atol": 0, "rtol": 1e-2})


@pytest.mark.parametrize(
    "equation, shapes",
    [("ij,jk->", [(2, 3), (3, 4)]), ("ij,k->ik", [(2, 3), (3,)]), ("...ik,...j->ij", [(1, 2, 3), (3,)]),
     ("ij,jk->ik", [(2, 3), (3, 4)]), ("ij,kl->", [(2, 3), (3, 4)])],
)  # fmt: skip
@NO_CUDA_INTEGER_MATMUL
def test_integer_einsum_widens_as_eager(equation, shapes):
    operands = [torch.randint(-5, 5, shape, dtype=torch.int32) for shape in shapes]
    expected = torch.einsum(equation, *operands)
    actual = thunder.jit(lambda *ops: torch.einsum(equation, *ops))(*operands)
    assert actual.dtype == expected.dtype
    torch.testing.assert_close(actual, expected, atol=0, rtol=0)


@NO_CUDA_INTEGER_MATMUL
def test_integer_tensordot_over_a_length_one_dim():
    a, b = torch.randint(-5, 5, (1, 1, 1), dtype=torch.int32), torch.randint(-5, 5, (2, 1, 2), dtype=torch.int32)
    assert_matches_eager(lambda a, b: torch.tensordot(a, b, dims=((0, 1), (2, 0))), a, b, tol=EXACT)


def test_logsumexp_gradient_is_torchs_formula_for_large_complex_values():
    z = torch.tensor([[1028979.25 + 1401898.625j, 2.0 - 1.0j], [3.0 + 4.0j, -1.0 + 0.5j]], dtype=torch.complex64)
    for dim, keepdim in ((0, True), (1, False), ((0, 1), False)):
        assert_matches_eager(lambda z, dim=dim, keepdim=keepdim: torch.logsumexp(z, dim, keepdim), z, tol=COMPLEX_GRAD)


def test_complex_logcumsumexp_gradient_with_large_real_parts():
    z = cplx(4, 3)
    z[0] = 1e4
    assert_matches_eager(lambda z: torch.logcumsumexp(z, 0), z, tol=COMPLEX_GRAD)


@pytest.mark.parametrize("loss", [F.l1_loss, F.mse_loss, F.smooth_l1_loss], ids=lambda f: f.__name__)
def test_pointwise_losses_promote_input_and_target_as_eager(loss):
    assert_matches_eager(loss, cplx(3) if loss is F.l1_loss else torch.randn(3), torch.randn(3, dtype=torch.float64))
    assert_matches_eager(loss, torch.randn(3, dtype=torch.float64), torch.randn(3))


@CPU_ROUNDING
def test_huber_loss_float16_rounds_delta_and_computes_as_eager():
    torch.manual_seed(0)
    a, b = _low(5, 5, dtype=torch.float16), _low(5, 5, dtype=torch.float16)
    huber = lambda a, b: F.huber_loss(a, b, reduction="none", delta=8.698115367693557)  # noqa: E731
    assert_matches_eager(huber, a, b, grads=False, tol=EXACT)


@CPU_ROUNDING
@pytest.mark.parametrize("op", [torch.fmod, torch.remainder], ids=lambda op: op.__name__)
def test_fmod_and_remainder_divisor_gradient_uses_eagers_rounded_quotient(op):
    torch.manual_seed(0)
    a, b = _low(5, 10, 5, dtype=torch.bfloat16, scale=9.0), _low(10, 5, dtype=torch.bfloat16, scale=2.0)
    assert_matches_eager(op, a, b, tol=EXACT)
