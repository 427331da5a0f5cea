"""CPU tests of the liger plugin: discovery, the unavailable reason, the checkers and the pattern passes.

They expect the package installed (`pip install --no-deps --no-build-isolation -e plugins/liger`); Liger
itself need not be. The passes are checked two ways: on traces recorded with proxies of CUDA tensors (no
GPU needed: the checkers see a CUDA device), for the structure of the rewritten trace; and through
`thunder.jit` on CPU tensors with the checkers told that the CPU counts as a kernel device, where the fused
operators run their PyTorch references, for the numbers against eager.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from thunder_liger import checkers, patterns, plugin
from thunder_liger.executor import ex, rotate_half

import thunder
from thunder.core.trace import TraceCtx, torch_tracing, tracectx
from thunder.core.verify import verify_trace
from thunder.extend import PassContext, PluginRegistry, TensorProxy, set_default_registry

BF16, F16, F32 = torch.bfloat16, torch.float16, torch.float32
I64 = torch.int64


@pytest.fixture(autouse=True)
def registry():
    fresh = PluginRegistry(autoload=True)
    previous = set_default_registry(fresh)
    yield fresh
    set_default_registry(previous)


def proxy(shape, dtype=BF16, device="cuda"):
    return TensorProxy(shape=tuple(shape), dtype=dtype, device=torch.device(device))


# -- discovery and availability -----------------------------------------------------------------------------


def test_plugins_command_lists_the_executor_with_its_package_priority_and_status():
    environ = {k: v for k, v in os.environ.items() if k != "THUNDER_DISABLE_PLUGIN_AUTOLOAD"}
    out = subprocess.run([sys.executable, "-m", "thunder", "plugins"], capture_output=True, text=True, env=environ,
                         timeout=120, check=True).stdout  # fmt: skip
    row = next(line for line in out.splitlines() if line.split()[:1] == ["liger"])
    assert "thunder-liger 0.1.0" in row and f" {plugin.PRIORITY} " in row and "opt-in" in row
    reason = plugin.why_unavailable()
    assert row.endswith("available" if reason is None else f"unavailable: {reason}")


def test_without_liger_kernel_the_reason_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "liger_kernel" else real(name))
    assert plugin.why_unavailable() == "liger-kernel is not installed (pip install liger-kernel)"


def test_without_a_gpu_the_reason_says_liger_needs_cuda(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert plugin.why_unavailable() == "no CUDA device (Liger's Triton kernels run on CUDA GPUs only)"


def test_executor_is_opt_in_and_found_by_name_or_refused_with_the_reason(registry):
    reason = plugin.why_unavailable()
    if reason is None:
        assert thunder.extend.get_executor("liger") is ex
        assert ex not in thunder.get_default_executors()
    else:
        with pytest.raises(thunder.extend.UnknownExecutorError, match=re.escape(f"'liger' is unavailable: {reason}")):
            thunder.jit(lambda x: x, executors=["liger"])


# -- checkers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, F16, BF16])
def test_checkers_accept_cuda_tensors_of_the_kernel_dtypes(dtype):
    x, w = proxy((2, 3, 64), dtype), proxy((64,), dtype)
    assert checkers.rms_norm_checker(x, (64,), w, 1e-6)
    assert checkers.rms_norm_checker(x, 64)
    assert checkers.layer_norm_checker(x, [64], w, w, 1e-5)
    assert checkers.gated_checker(x, proxy((2, 3, 64), dtype))
    assert checkers.cross_entropy_checker(proxy((6, 10), dtype), proxy((6,), I64), label_smoothing=0.1)
    assert checkers.fused_linear_cross_entropy_checker(x, proxy((10, 64), dtype), None, proxy((6,), I64))
    assert checkers.rope_checker(proxy((2, 4, 5, 8), dtype), proxy((5, 8), dtype), proxy((5, 8), dtype))


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 8), device="cpu"), (8,)), id="rms-cpu"),
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 8), torch.float64), (8,)), id="rms-float64"),
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 8)), (2, 8)), id="rms-two-dims"),
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 8)), (8,), proxy((8,), F32)), id="rms-weight-dtype"),
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 70000)), (70000,)), id="rms-row-too-long"),
        pytest.param(lambda: checkers.layer_norm_checker(proxy((2, 8)), (8,), proxy((8,)), None), id="ln-no-bias"),
        pytest.param(lambda: checkers.gated_checker(proxy((2, 8)), proxy((1, 8))), id="gated-broadcast"),
        pytest.param(lambda: checkers.gated_checker(proxy((2, 8)), proxy((2, 8), F32)), id="gated-mixed-dtypes"),
        pytest.param(lambda: checkers.cross_entropy_checker(proxy((6, 10)), proxy((6,), I64), weight=proxy((10,))),
                     id="ce-class-weights"),
        pytest.param(lambda: checkers.cross_entropy_checker(proxy((6, 10)), proxy((6, 10))), id="ce-soft-targets"),
        pytest.param(lambda: checkers.cross_entropy_checker(proxy((2, 10, 3)), proxy((2, 3), I64)), id="ce-3d"),
        pytest.param(lambda: checkers.cross_entropy_checker(proxy((6, 10)), proxy((6,), torch.int32)),
                     id="ce-int32-targets"),
        pytest.param(lambda: checkers.fused_linear_cross_entropy_checker(
            proxy((6, 8)), proxy((10, 8)), None, proxy((6,), I64), reduction="none"), id="flce-unreduced"),
        pytest.param(lambda: checkers.fused_linear_cross_entropy_checker(
            proxy((6, 8)), proxy((10, 8), F32), None, proxy((6,), I64)), id="flce-mixed-dtypes"),
        pytest.param(lambda: checkers.rope_checker(proxy((2, 4, 5, 8)), proxy((2, 5, 8)), proxy((2, 5, 8))),
                     id="rope-3d-trig-with-a-batch"),
        pytest.param(lambda: checkers.rope_checker(proxy((2, 4, 5, 7)), proxy((5, 7)), proxy((5, 7))), id="rope-odd"),
        pytest.param(lambda: checkers.rope_checker(proxy((2, 4, 5, 8)), proxy((5, 8), F32), proxy((5, 8), F32)),
                     id="rope-float32-trig-for-bf16-x"),
    ],
)
def test_checkers_leave_what_the_kernels_cannot_take_to_the_next_executor(case):
    assert not case()


# -- passes on traces of CUDA proxies -----------------------------------------------------------------------


def record(fn, *specs, device="cuda"):
    """The trace `fn` records on proxies of the given (shape, dtype)."""
    trace = TraceCtx("computation")
    with tracectx(trace), torch_tracing():
        trace.args = [proxy(shape, dtype, device) for shape, dtype in specs]
        trace.output = fn(*trace.args)
    return trace


def rewritten(trace, **options):
    context = PassContext(options=options)
    for fuse in (patterns.fuse_linear_cross_entropy, patterns.fuse_swiglu, patterns.fuse_geglu, patterns.fuse_rope):
        trace = fuse(trace, context)
    verify_trace(trace)
    return trace


def op_ids(trace) -> list[str]:
    return [b.sym.id for b in trace.bound_symbols]


def llama_rotary(x, freqs):
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype)[None, None], (emb.sin() * 1.0).to(x.dtype)[None, None]
    return x * cos + rotate_half(x) * sin


def test_silu_times_b_becomes_swiglu_in_either_order():
    trace = rewritten(record(lambda a, b: (F.silu(a) * b, b * F.silu(b)), ((4, 8), BF16), ((4, 8), BF16)))
    assert op_ids(trace).count("liger.swiglu") == 2
    assert trace.bound_symbols[-1].output is trace.output[1]


def test_tanh_gelu_times_b_becomes_geglu_but_exact_gelu_does_not():
    trace = rewritten(record(lambda a, b: (F.gelu(a, approximate="tanh") * b, F.gelu(a) * b),
                             ((4, 8), F16), ((4, 8), F16)))  # fmt: skip
    assert op_ids(trace).count("liger.geglu") == 1


def test_silu_read_elsewhere_is_not_fused():
    def program(a, b):
        gate = F.silu(a)
        return gate * b, gate

    trace = rewritten(record(program, ((4, 8), BF16), ((4, 8), BF16)))
    assert "liger.swiglu" not in op_ids(trace)


def test_gated_patterns_on_cpu_tensors_are_left_alone():
    trace = rewritten(record(lambda a, b: F.silu(a) * b, ((4, 8), F32), ((4, 8), F32), device="cpu"))
    assert "liger.swiglu" not in op_ids(trace)


def test_rotary_half_rotation_with_a_cache_made_from_duplicated_frequencies_becomes_rope():
    trace = rewritten(record(llama_rotary, ((2, 4, 5, 8), BF16), ((5, 4), F32)))
    rope = [b for b in trace.bound_symbols if b.sym.id == "liger.rope"]
    assert len(rope) == 1 and rope[0].args[0] is trace.args[0] and rope[0].output is trace.output


def test_rotary_written_in_another_operand_order_becomes_rope():
    def rotary(x, freqs):
        emb = torch.cat((freqs, freqs), dim=-1)
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[:, :, :, half:], x[:, :, :, :half]), dim=-1)
        return emb.sin() * rotated + emb.cos() * x

    assert "liger.rope" in op_ids(rewritten(record(rotary, ((2, 4, 5, 8), F32), ((5, 4), F32))))


def test_rotary_with_halves_taken_by_chunk_becomes_rope():
    def rotary(x, freqs):
        emb = torch.cat((freqs, freqs), dim=-1)
        x1, x2 = x.chunk(2, dim=-1)
        return x * emb.cos() + torch.cat((-x2, x1), dim=-1) * emb.sin()

    def swapped(x, freqs):  # cat((-x1, x2)) is not the half rotation
        emb = torch.cat((freqs, freqs), dim=-1)
        x1, x2 = x.chunk(2, dim=-1)
        return x * emb.cos() + torch.cat((-x1, x2), dim=-1) * emb.sin()

    assert "liger.rope" in op_ids(rewritten(record(rotary, ((2, 4, 5, 8), F32), ((5, 4), F32))))
    assert "liger.rope" not in op_ids(rewritten(record(swapped, ((2, 4, 5, 8), F32), ((5, 4), F32))))


@pytest.mark.parametrize(
    "rotary",
    [
        pytest.param(lambda x, c, s: x * c + rotate_half(x) * s, id="cache-from-inputs"),
        pytest.param(lambda x, c, s: x * torch.cat((c[:, :4], s[:, :4]), -1).cos() + rotate_half(x) * s.sin(),
                     id="halves-that-differ"),
        pytest.param(lambda x, c, s: x * c.cos() + torch.cat((x[..., 4:], x[..., :4]), -1) * c.sin(),
                     id="no-negation"),
    ],
)
def test_rotary_patterns_that_cannot_be_shown_to_fit_liger_are_left(rotary):
    trace = rewritten(record(rotary, ((2, 4, 5, 8), F32), ((5, 8), F32), ((5, 8), F32)))
    assert "liger.rope" not in op_ids(trace)


def test_rotary_lookalike_indexed_by_a_tensor_is_left():
    def gathered(x, c, s, index):
        rotated = torch.cat((-x[index, :, :, 4:], x[index, :, :, :4]), dim=-1)
        return x * c + rotated * s

    trace = rewritten(record(gathered, ((2, 4, 5, 8), F32), ((5, 8), F32), ((5, 8), F32), ((2,), I64)),
                      rope_cache_is_duplicated=True)
    assert "liger.rope" not in op_ids(trace)


def test_the_rope_cache_option_rewrites_a_cache_that_comes_from_inputs():
    trace = record(lambda x, c, s: x * c + rotate_half(x) * s, ((2, 4, 5, 8), F32), ((5, 8), F32), ((5, 8), F32))
    assert "liger.rope" in op_ids(rewritten(trace, rope_cache_is_duplicated=True))


@pytest.mark.parametrize("flatten", [True, False])
def test_linear_then_cross_entropy_becomes_fused_linear_cross_entropy(flatten):
    def loss(h, w, target):
        logits = F.linear(h, w)
        logits = logits.view(-1, w.shape[0]) if flatten else logits
        return F.cross_entropy(logits, target, ignore_index=0, label_smoothing=0.1)

    shape = (2, 3, 8) if flatten else (6, 8)
    trace = rewritten(record(loss, (shape, BF16), ((10, 8), BF16), ((6,), I64)))
    (fused,) = [b for b in trace.bound_symbols if b.sym.id == "liger.fused_linear_cross_entropy"]
    assert fused.args == (trace.args[0], trace.args[1], None, trace.args[2], 0, 0.1, "mean")
    assert fused.output is trace.output


def test_logits_that_are_also_returned_are_not_fused():
    def loss(h, w, target):
        logits = F.linear(h, w)
        return F.cross_entropy(logits, target), logits

    trace = rewritten(record(loss, ((6, 8), BF16), ((10, 8), BF16), ((6,), I64)))
    assert "liger.fused_linear_cross_entropy" not in op_ids(trace)


@pytest.mark.parametrize("option", ["fuse_swiglu", "fuse_geglu", "fuse_rope", "fuse_linear_cross_entropy"])
def test_each_option_turns_its_pass_off(option):
    def program(a, b, x, freqs, w, target):
        return (F.silu(a) * b, F.gelu(a, approximate="tanh") * b, llama_rotary(x, freqs),
                F.cross_entropy(F.linear(a, w), target))  # fmt: skip

    specs = [((6, 8), BF16), ((6, 8), BF16), ((2, 4, 5, 8), BF16), ((5, 4), F32), ((10, 8), BF16), ((6,), I64)]
    fused = {"fuse_swiglu": "liger.swiglu", "fuse_geglu": "liger.geglu", "fuse_rope": "liger.rope",
             "fuse_linear_cross_entropy": "liger.fused_linear_cross_entropy"}  # fmt: skip
    on = op_ids(rewritten(record(program, *specs)))
    off = op_ids(rewritten(record(program, *specs), **{option: False}))
    assert all(name in on for name in fused.values())
    assert [name for name in fused.values() if name not in off] == [fused[option]]


# -- the fused operators on tensors Liger cannot take ---------------------------------------------------------


def test_a_fused_operator_called_on_cpu_tensors_runs_its_reference_with_a_warning(monkeypatch):
    from thunder_liger import executor
    from thunder_liger.executor import swiglu

    monkeypatch.setattr(executor, "_warned", set())  # the warning is given once per process
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    with pytest.warns(UserWarning, match="swiglu runs its PyTorch reference"):
        result = thunder.jit(lambda a, b: swiglu(a, b), executors=[ex])(a, b)
    torch.testing.assert_close(result, F.silu(a) * b)
