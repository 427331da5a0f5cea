"""Regions end to end on the CPU: the executor claims CPU tensors and its plans are replayed with torch
(plan_interpreter.py, test only), so that what the planner and the region runner decide (casts, broadcasts,
torch views at the edges, chunking, the fusion cache) is checked against eager on any machine."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from plan_interpreter import interpret_build
from thunder_executors_nvfuser.executor import NvFuserExecutor
from thunder_executors_nvfuser.options import NvFuserOptions

import thunder


def cpu_executor(**options) -> NvFuserExecutor:
    return NvFuserExecutor(NvFuserOptions(**options), device_types=("cpu",), build=interpret_build)


def assert_matches_eager(fn, *args, executor=None, atol=None, rtol=None):
    executor = executor or cpu_executor()
    leaves = [a.detach().requires_grad_(a.requires_grad) for a in args]
    out = thunder.jit(fn, executors=[executor])(*leaves)
    expected = fn(*args)
    torch.testing.assert_close(out, expected, atol=atol, rtol=rtol)
    differentiable = [a for a in args if a.requires_grad]
    if differentiable:
        grads = torch.autograd.grad(out.float().pow(2).sum(), [a for a in leaves if a.requires_grad])
        expected_grads = torch.autograd.grad(expected.float().pow(2).sum(), differentiable)
        torch.testing.assert_close(grads, expected_grads, atol=atol, rtol=rtol)
    return executor


CASES = {
    "gelu_tanh_chain": lambda x, w: torch.tanh(F.gelu(x * w + 1.0, approximate="tanh") * torch.sigmoid(x)) + x,
    "softmax": lambda x, w: F.softmax(x * w, dim=-1),
    "layer_norm": lambda x, w: F.layer_norm(x, (8,), w, w),
    "rms_norm_by_hand": lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w,
    "var_mean": lambda x, w: x.var(-1, keepdim=True) + x.mean(0) * w,
    "masked_fill_where": lambda x, w: torch.where(x > 0, x, 0.5 * w).masked_fill(x < -1, 2.0),
    "cat_slice": lambda x, w: torch.cat([x[:, 1:5], x[:, :3] * 2], dim=1).sum(0) * w[:7],
    "pad": lambda x, w: F.pad(x * w, (1, 2), value=0.25),
    "amax_exp": lambda x, w: torch.exp(x - x.amax(-1, keepdim=True)) * w,
    "expand_of_a_slice": lambda x, w: x[:, 2:3].expand(4, 8) * w,
}


@pytest.mark.parametrize("case", CASES)
def test_float32_regions_match_eager(case):
    x, w = torch.randn(4, 8, requires_grad=True), torch.randn(8, requires_grad=True)
    assert_matches_eager(CASES[case], x, w)


@pytest.mark.parametrize("case", ["gelu_tanh_chain", "softmax", "rms_norm_by_hand", "masked_fill_where", "cat_slice"])
def test_bfloat16_regions_match_eager(case):
    x = torch.randn(4, 8, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(8, dtype=torch.bfloat16, requires_grad=True)
    # Thunder's autodiff orders the backward's bf16 roundings differently from eager's (one ulp, also with the torch
    # executor alone), hence a tolerance of a couple of bf16 ulps
    assert_matches_eager(CASES[case], x, w, atol=5e-2, rtol=5e-2)


def test_non_contiguous_and_broadcast_inputs():
    x = torch.randn(8, 4).t().requires_grad_()
    w = torch.randn(1, 8).expand(4, 8)
    assert_matches_eager(lambda x, w: torch.sigmoid(x) * w + x, x, w)


def test_a_region_that_only_reshapes_returns_views_without_a_fusion():
    executor = cpu_executor()
    x = torch.randn(4, 8)
    out = thunder.jit(lambda x: x.reshape(8, 4).permute(1, 0), executors=[executor])(x)
    torch.testing.assert_close(out, x.reshape(8, 4).permute(1, 0))
    assert out.data_ptr() == x.data_ptr()  # a view, as eager's
    assert executor.stats.compilations == 0


def test_identical_regions_share_one_compiled_fusion():
    executor = cpu_executor()

    def two_blocks(x, m):
        y = torch.tanh(x * 2 + 1) @ m  # the matmul stays with torch and separates two identical regions
        return torch.tanh(y * 2 + 1)

    x, m = torch.randn(4, 4), torch.randn(4, 4)
    jfn = thunder.jit(two_blocks, executors=[executor])
    torch.testing.assert_close(jfn(x, m), two_blocks(x, m))
    assert (executor.stats.compilations, executor.stats.cache_hits) == (1, 1)
    torch.testing.assert_close(jfn(x, m), two_blocks(x, m))  # later calls reuse each region's fusion directly
    assert (executor.stats.compilations, executor.stats.cache_hits) == (1, 1)


def test_a_long_region_runs_as_several_fusions_of_at_most_max_fusion_ops():
    executor = cpu_executor(max_fusion_ops=2)
    fn = CASES["gelu_tanh_chain"]
    assert_matches_eager(fn, torch.randn(4, 8), torch.randn(8), executor=executor)
    (record,) = [r for r in executor.stats.records if r.first_call_ms is not None]
    assert record.nvfuser_fusions == -(-record.operations // 2) and record.status == "nvfuser"


def test_empty_inputs_stay_with_torch():
    executor = cpu_executor()
    x = torch.randn(0, 8)
    out = thunder.jit(lambda x: torch.exp(x) + 1, executors=[executor])(x)
    assert out.shape == (0, 8) and executor.stats.records == []


def test_zero_dim_inputs():
    x, w = torch.tensor(0.7, requires_grad=True), torch.tensor(-1.3, requires_grad=True)
    assert_matches_eager(lambda x, w: torch.sigmoid(x * w) + x.exp(), x, w)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_tiny_models_train_like_eager(kind):
    import copy

    from benchmarks.models import GPT, GPTConfig, Llama, LlamaConfig

    config = GPTConfig.preset("tiny") if kind == "gpt2" else LlamaConfig.preset("tiny")
    model = GPT(config) if kind == "gpt2" else Llama(config)
    seq = config.block_size if kind == "gpt2" else config.max_seq_len
    idx, targets = torch.randint(0, config.vocab_size, (2, seq)), torch.randint(0, config.vocab_size, (2, seq))
    eager = copy.deepcopy(model)
    executor = cpu_executor()
    jmodel = thunder.jit(model, executors=[executor, "sdpa"])
    for _ in range(2):
        loss, expected = jmodel(idx, targets), eager(idx, targets)
        torch.testing.assert_close(loss, expected)
        loss.backward()
        expected.backward()
        for p, e in zip(model.parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, e.grad, atol=1e-5, rtol=1e-4)
    assert any(r.status == "nvfuser" for r in executor.stats.records) and executor.stats.fallbacks == 0


GRAD_RULE_CASES = {
    "gelu": lambda x, w: F.gelu(x) * w,
    "gelu_tanh": lambda x, w: F.gelu(x, approximate="tanh") * w,
    "silu": lambda x, w: F.silu(x) * w,
    "softmax": lambda x, w: F.softmax(x, dim=0) * w,
    "log_softmax": lambda x, w: F.log_softmax(x * w, dim=-1),
    "layer_norm_affine": lambda x, w: F.layer_norm(x, (8,), w, w * 0.5),
    "layer_norm_plain": lambda x, w: F.layer_norm(x, (4, 8)) * w,
}


@pytest.mark.parametrize("case", GRAD_RULE_CASES)
def test_own_grad_rules_match_eager_and_replace_the_aten_backward_kernels(case):
    x, w = torch.randn(3, 4, 8, requires_grad=True), torch.randn(8, requires_grad=True)
    executor = cpu_executor()
    jfn = thunder.jit(GRAD_RULE_CASES[case], executors=[executor])
    out, expected = jfn(x, w), GRAD_RULE_CASES[case](x, w)
    torch.testing.assert_close(out, expected)
    cotangent = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, (x, w), cotangent),
                               torch.autograd.grad(expected, (x, w), cotangent))  # fmt: skip
    backward = str(thunder.last_backward_traces(jfn)[-1])
    assert "_backward(" not in backward, backward


def test_without_own_grad_rules_the_torch_executors_backward_kernels_run():
    jfn = thunder.jit(lambda x: F.gelu(x), executors=[cpu_executor(own_grad_rules=False)])
    jfn(torch.randn(4, requires_grad=True)).sum().backward()
    assert "gelu_backward(" in str(thunder.last_backward_traces(jfn)[-1])


def test_a_view_of_an_input_that_leaves_the_region_is_a_view_and_not_a_fusion_output():
    executor = cpu_executor()
    x = torch.randn(4, 8)
    view, y = thunder.jit(lambda x: (x.reshape(32), torch.exp(x.reshape(32))), executors=[executor])(x)
    assert view.data_ptr() == x.data_ptr()
    torch.testing.assert_close(y, torch.exp(x.reshape(32)))


def test_views_of_fusion_outputs_are_torch_views_of_them():
    def fn(x):
        y = torch.exp(x)
        t = y.reshape(32)
        return y, t, -t

    executor = cpu_executor()
    x = torch.randn(4, 8)
    y, t, u = thunder.jit(fn, executors=[executor])(x)
    torch.testing.assert_close((y, t, u), fn(x))
    assert t.data_ptr() == y.data_ptr()  # the reshape is a view of the fusion's output, as eager's would be


def test_an_input_at_another_alignment_gets_its_own_fusion():
    executor = cpu_executor()
    jfn = thunder.jit(lambda x: torch.exp(x) * 2, executors=[executor], cache="no caching")
    base = torch.randn(65)
    aligned, shifted = base[:64], base[1:]  # same size and stride, data 4 bytes apart
    torch.testing.assert_close(jfn(aligned), torch.exp(aligned) * 2)
    torch.testing.assert_close(jfn(shifted), torch.exp(shifted) * 2)
    assert executor.stats.compilations == 2


def test_executor_options_given_to_jit_reach_the_fusions():
    ex = cpu_executor()
    fn = CASES["gelu_tanh_chain"]
    x, w = torch.randn(4, 8), torch.randn(8)
    jfn = thunder.jit(fn, executors=[ex], executor_options={"nvfuser": {"max_fusion_ops": 2}})
    torch.testing.assert_close(jfn(x, w), fn(x, w))
    variant = ex.with_options(max_fusion_ops=2)
    assert variant is not ex and variant.stats.records, "the jit call's options did not select the variant"
    assert all(r.nvfuser_fusions > 1 for r in variant.stats.records if r.operations > 2)
    assert not ex.stats.records  # the default executor compiled nothing for this call


def test_an_unknown_nvfuser_option_is_a_clear_error():
    with pytest.raises(Exception, match="max_fusion_ops"):  # the message lists the executor's options
        thunder.jit(lambda x: x + 1, executors=[cpu_executor()], executor_options={"nvfuser": {"max_fusion": 2}})


def test_a_fusion_built_for_zero_does_not_serve_minus_zero():
    # the fusion cache compared the plans' numbers with ==, and -0.0 == 0.0: x / -0.0 got the fusion of x / 0.0
    # (found by the guard fuzzer on the H100)
    executor = cpu_executor()
    x = torch.linspace(-2, 2, 3)

    def dividing_by(s):
        return lambda x: x / s + x * 2

    for s in (0.0, -0.0):
        jfn = thunder.jit(dividing_by(s), executors=[executor], cache="constant values")
        torch.testing.assert_close(jfn(x), dividing_by(s)(x), equal_nan=True)


def test_bool_add_with_alpha_stays_bool_when_decomposed():
    assert_matches_eager(lambda b: torch.add(b, True, alpha=2) | b, torch.tensor([True, False]))
