"""The fallback: a fusion that nvFuser fails to build, compile or run runs with torch, with one warning that
names the region, and the result is eager's. nvFuser is replaced by stub `build` functions (test only), and the
executor claims CPU tensors, so that the path runs on any machine."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from thunder_executors_nvfuser.executor import NvFuserExecutor
from thunder_executors_nvfuser.runtime import NvFuserFallbackWarning

import thunder


def failing_build(plan, tensors):
    raise RuntimeError("INTERNAL ASSERT FAILED at fusion_kernel_runtime.cpp:476 (stub)")


class BuildsButFailsToRun:
    """A stub whose fusions are defined fine and fail on their first run, as nvFuser's compile-on-execute does."""

    def __init__(self):
        self.builds = 0

    def __call__(self, plan, tensors):
        self.builds += 1

        def run(tensors, scalars):
            raise RuntimeError("INTERNAL ASSERT FAILED at executor_utils.cpp:511 (stub)")

        return run


def block(x, w, b):
    return F.softmax(F.gelu(x * w + b, approximate="tanh"), dim=-1)


def inputs(requires_grad=True):
    torch.manual_seed(0)
    return [torch.randn(4, 8, requires_grad=requires_grad), torch.randn(8, requires_grad=requires_grad),
            torch.randn(8, requires_grad=requires_grad)]  # fmt: skip


def run_recording_warnings(fn, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
    return out, [w for w in caught if issubclass(w.category, NvFuserFallbackWarning)]


@pytest.mark.parametrize("build", [failing_build, BuildsButFailsToRun()], ids=["build fails", "first run fails"])
def test_a_failing_fusion_runs_with_torch_and_matches_eager_forward_and_backward(build):
    ex = NvFuserExecutor(device_types=("cpu",), build=build)
    args = inputs()
    out, caught = run_recording_warnings(thunder.jit(block, executors=[ex]), *args)
    expected = block(*args)
    torch.testing.assert_close(out, expected)
    (g_out,) = torch.autograd.grad(out.pow(2).sum(), args[0])
    (g_ref,) = torch.autograd.grad(expected.pow(2).sum(), args[0])
    torch.testing.assert_close(g_out, g_ref)
    assert len(caught) == 1 and "fusion region nvFusion0" in str(caught[0].message)
    assert "INTERNAL ASSERT FAILED" in str(caught[0].message)
    assert ex.stats.fallbacks >= 1
    assert all(r.status.startswith("torch fallback") for r in ex.stats.records if r.first_call_ms is None)


def test_the_warning_is_given_once_per_region_not_per_call():
    ex = NvFuserExecutor(device_types=("cpu",), build=failing_build)
    jfn = thunder.jit(block, executors=[ex])
    args = inputs(requires_grad=False)
    _, first = run_recording_warnings(jfn, *args)
    out, second = run_recording_warnings(jfn, *args)
    assert len(first) == 1 and second == []
    torch.testing.assert_close(out, block(*args))
    assert ex.stats.fallbacks == 1


def test_identical_regions_do_not_retry_a_fusion_that_failed():
    build = BuildsButFailsToRun()
    ex = NvFuserExecutor(device_types=("cpu",), build=build)

    def two_blocks(x, w, b, m):
        y = block(x, w, b) @ m  # matmul stays with torch: two regions with the same program and inputs
        return block(y, w, b)

    args = [*inputs(requires_grad=False), torch.randn(8, 8)]
    out, caught = run_recording_warnings(thunder.jit(two_blocks, executors=[ex]), *args)
    torch.testing.assert_close(out, two_blocks(*args))
    assert build.builds == 1
    assert ex.stats.fallbacks == 2 and len(caught) == 2


def test_with_the_debug_variable_the_warning_shows_the_failing_fusions_calls(monkeypatch):
    monkeypatch.setenv("THUNDER_NVFUSER_DEBUG", "1")
    ex = NvFuserExecutor(device_types=("cpu",), build=failing_build)
    _, caught = run_recording_warnings(thunder.jit(lambda x: torch.exp(x) * 2, executors=[ex]), torch.randn(4))
    (warning,) = caught
    assert "fd.ops.exp(v0)" in str(warning.message) and "fd.add_output(" in str(warning.message)
