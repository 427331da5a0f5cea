"""Every claimed primitive, through the torch operations that decompose into it, forward and backward against
eager, on CUDA with nvFuser, in float32, bfloat16 and float16; non-contiguous, broadcast, 0-d and empty inputs.

Each test also checks that nvFuser really ran (a region reached the "nvfuser" status) and that no region fell
back to torch: a fallback would still give eager's numbers and hide an nvFuser failure.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from nvfuser_test_support import needs_nvfuser

import thunder

pytestmark = needs_nvfuser

TOLERANCES = {torch.float32: (1e-4, 1e-4), torch.bfloat16: (5e-2, 5e-2), torch.float16: (1e-2, 1e-2)}


def positive(t):
    return t.abs() + 0.5


def unit(t):
    return torch.tanh(t) * 0.9


# name -> (function of (x, y), differentiable)
OPS = {
    "exp": (lambda x, y: torch.exp(x), True),
    "log": (lambda x, y: torch.log(positive(x)), True),
    "log1p": (lambda x, y: torch.log1p(x.abs()), True),
    "expm1": (lambda x, y: torch.expm1(x), True),
    "tanh": (lambda x, y: torch.tanh(x), True),
    "sigmoid": (lambda x, y: torch.sigmoid(x), True),
    "rsqrt": (lambda x, y: torch.rsqrt(positive(x)), True),
    "sqrt": (lambda x, y: torch.sqrt(positive(x)), True),
    "reciprocal": (lambda x, y: torch.reciprocal(positive(x)), True),
    "erf": (lambda x, y: torch.erf(x), True),
    "sin_cos": (lambda x, y: torch.sin(x) * torch.cos(y), True),
    "asin_atan": (lambda x, y: torch.asin(unit(x)) + torch.atan(y), True),
    "abs_neg_sign": (lambda x, y: torch.abs(x) - torch.neg(y) * torch.sign(x), True),
    "floor_ceil_trunc": (lambda x, y: torch.floor(x * 3) + torch.ceil(y * 3) + torch.trunc(x * 5), False),
    "add_sub_mul_div": (lambda x, y: (x + y) * (x - y) / positive(y), True),
    "scalar_operands": (lambda x, y: 2 * x - 0.5 + y / 3, True),
    "pow": (lambda x, y: torch.pow(positive(x), y) + x**2, True),
    "maximum_minimum": (lambda x, y: torch.maximum(x, y) + torch.minimum(x, y * 2), True),
    "atan2": (lambda x, y: torch.atan2(x, positive(y)), True),
    "comparisons": (lambda x, y: ((x < y) | (x >= 0.5)).to(x.dtype) + (x == y).to(x.dtype) + (x != 0).to(x.dtype), False),
    "isnan_isinf": (lambda x, y: (torch.isnan(x / 0 * 0) & ~torch.isinf(y)).to(x.dtype), False),
    "where": (lambda x, y: torch.where(x > 0, x, y), True),
    "where_scalar": (lambda x, y: torch.where(x > 0, x, -1.5), True),
    "masked_fill": (lambda x, y: x.masked_fill(y > 0, 0.25) * 2, True),
    "relu_gelu_silu": (lambda x, y: F.relu(x) + F.gelu(y) + F.gelu(x, approximate="tanh") + F.silu(y), True),
    "sum_mean": (lambda x, y: x.sum(-1, keepdim=True) * y + x.mean(0), True),
    "var": (lambda x, y: x.var(-1, keepdim=True) + y, True),
    "amax_amin": (lambda x, y: x.amax(-1, keepdim=True) - y.amin(0), True),
    "prod": (lambda x, y: positive(x).prod(-1), True),
    "softmax": (lambda x, y: F.softmax(x, dim=-1) * y, True),
    "log_softmax": (lambda x, y: F.log_softmax(x, dim=-1), True),
    "layer_norm": (lambda x, y: F.layer_norm(x, x.shape[-1:], y[0], y[1]), True),
    "rms_norm": (lambda x, y: x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype) * y[0], True),
    "reshape_permute": (lambda x, y: (x.reshape(x.shape[1], x.shape[0]) * 2).permute(1, 0) + y, True),
    "cat_slice": (lambda x, y: torch.cat([x[:, 1:], y[:, :1]], dim=1) * 3, True),
    "pad": (lambda x, y: F.pad(x * y, (1, 2), value=0.5), True),
    "expand_unsqueeze": (lambda x, y: x.sum(0).unsqueeze(0).expand_as(y) * y, True),
    "casts": (lambda x, y: (x.float() * 2).to(x.dtype) + y.double().to(y.dtype), True),
}


def run_and_check(fn, args, *, differentiable=True, dtype=torch.float32, expect_fusion=True, equal_nan=False):
    from thunder_executors_nvfuser.executor import NvFuserExecutor
    from thunder_executors_nvfuser.runtime import NvFuserFallbackWarning

    ex = NvFuserExecutor()
    atol, rtol = TOLERANCES[dtype]
    leaves = [a.detach().clone().requires_grad_(differentiable and a.is_floating_point()) for a in args]
    refs = [a.detach().clone().requires_grad_(differentiable and a.is_floating_point()) for a in args]
    jfn = thunder.jit(fn, executors=[ex])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = jfn(*leaves)
        expected = fn(*refs)
        torch.testing.assert_close(out, expected, atol=atol, rtol=rtol, equal_nan=equal_nan)
        if differentiable:
            cotangent = torch.randn_like(expected)
            grads = torch.autograd.grad(out, leaves, cotangent, allow_unused=True)
            expected_grads = torch.autograd.grad(expected, refs, cotangent, allow_unused=True)
            for g, e in zip(grads, expected_grads):
                if e is not None:
                    torch.testing.assert_close(g, e, atol=atol * 4, rtol=rtol * 4)
        torch.cuda.synchronize()
    fallbacks = [str(w.message) for w in caught if issubclass(w.category, NvFuserFallbackWarning)]
    assert not fallbacks, fallbacks
    if expect_fusion:
        assert any(r.status == "nvfuser" for r in ex.stats.records), ex.stats.records
    return ex


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_op_matches_eager(op, dtype):
    fn, differentiable = OPS[op]
    x = torch.randn(6, 8, device="cuda", dtype=dtype)
    y = torch.randn(6, 8, device="cuda", dtype=dtype)
    run_and_check(fn, [x, y], differentiable=differentiable, dtype=dtype)


@pytest.mark.parametrize("op", ["exp", "add_sub_mul_div", "softmax", "layer_norm", "where", "sum_mean"])
def test_non_contiguous_inputs(op):
    fn, differentiable = OPS[op]
    x = torch.randn(8, 6, device="cuda").t()  # transposed
    y = torch.randn(6, 16, device="cuda")[:, ::2]  # strided
    run_and_check(fn, [x, y], differentiable=differentiable)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_broadcasting_operands(dtype):
    x = torch.randn(4, 6, 8, device="cuda", dtype=dtype)
    row, col = torch.randn(8, device="cuda", dtype=dtype), torch.randn(4, 1, 1, device="cuda", dtype=dtype)
    run_and_check(lambda x, r, c: torch.tanh(x * r + c) - r, [x, row, col], dtype=dtype)


def test_expanded_input_with_zero_strides():
    x = torch.randn(1, 8, device="cuda").expand(5, 8)
    y = torch.randn(5, 8, device="cuda")
    run_and_check(lambda x, y: torch.sigmoid(x) * y, [x, y], differentiable=False)


def test_zero_dim_inputs():
    x, y = torch.tensor(0.7, device="cuda"), torch.tensor(-1.2, device="cuda")
    run_and_check(lambda x, y: torch.sigmoid(x * y) + x.exp(), [x, y])


def test_empty_inputs_are_left_to_torch():
    x = torch.randn(0, 8, device="cuda")
    run_and_check(lambda x: torch.exp(x) * 2, [x], expect_fusion=False)


def test_a_cpu_scalar_tensor_operand_is_left_to_torch():
    # the multiplication by a 0-d CPU tensor stays with torch; exp and the addition around it are fused
    x, s = torch.randn(4, 8, device="cuda"), torch.tensor(2.0)
    run_and_check(lambda x, s: torch.exp(x) * s + 1, [x, s], differentiable=False)


def test_integer_and_bool_elementwise():
    x = torch.randint(-50, 50, (6, 8), device="cuda")
    run_and_check(lambda x: (x * 3 + 1) & 0x0F | (x > 0).long(), [x], differentiable=False)


def test_nan_propagation_in_maximum_and_amax():
    # NaN where eager has NaN and numbers elsewhere: row 1 of the maximum's amax, column 3 of the amin
    x = torch.randn(4, 8, device="cuda")
    x[1, 3] = float("nan")
    expected = torch.maximum(x, torch.zeros_like(x)).amax(-1)
    assert expected.isnan().tolist() == [False, True, False, False]
    run_and_check(lambda x: torch.cat([torch.maximum(x, torch.zeros_like(x)).amax(-1), x.amin(0)]), [x],
                  differentiable=False, equal_nan=True)  # fmt: skip


def test_matmul_and_linear_with_the_option():
    from thunder_executors_nvfuser.executor import NvFuserExecutor

    ex = NvFuserExecutor().with_options(enable_matmul=True)
    a, w, b = (torch.randn(16, 32, device="cuda", dtype=torch.bfloat16), torch.randn(24, 32, device="cuda",
               dtype=torch.bfloat16), torch.randn(24, device="cuda", dtype=torch.bfloat16))  # fmt: skip
    fn = lambda a, w, b: torch.relu(F.linear(a, w, b)) @ w
    out = thunder.jit(fn, executors=[ex])(a, w, b)
    torch.testing.assert_close(out, fn(a, w, b), atol=5e-2, rtol=5e-2)
    assert any(r.status == "nvfuser" for r in ex.stats.records)


def test_fusion_cache_reuses_one_fusion_for_identical_regions_and_reports_compile_time():
    from thunder_executors_nvfuser.executor import NvFuserExecutor

    ex = NvFuserExecutor()

    def two_blocks(x, m):
        return torch.tanh(torch.tanh(x * 2 + 1) @ m * 2 + 1)

    x, m = torch.randn(64, 64, device="cuda"), torch.randn(64, 64, device="cuda")
    jfn = thunder.jit(two_blocks, executors=[ex])
    torch.testing.assert_close(jfn(x, m), two_blocks(x, m), atol=1e-4, rtol=1e-4)
    assert ex.stats.compilations == 1 and ex.stats.cache_hits >= 1
    assert ex.stats.compile_ms > 0
    assert all(r.first_call_ms is not None for r in ex.stats.records)
