"""CPU tests of the apex plugin: discovery, the unavailable reason, the checkers, and the executor's wiring.

They expect the package installed (`pip install --no-deps --no-build-isolation -e plugins/apex`); Apex need
not be. The wiring tests (which operator gets which argument, the reductions, ignored rows, the gradients'
order) run `thunder.jit` on CPU tensors with Apex's two extensions replaced by stand-ins that follow their
documented contract (`emulated_apex` below), and compare the results and gradients with eager PyTorch; the
real kernels are tested on the GPU (test_apex_gpu.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from apex_testing import check_against_eager
from thunder_apex import checkers, kernels, plugin
from thunder_apex.executor import ex

import thunder
from thunder.core.trace import TraceCtx, torch_tracing, tracectx
from thunder.extend import PluginRegistry, TensorProxy, set_default_registry
from thunder.testing import LlamaStyle, assert_trains_like_eager

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
    row = next(line for line in out.splitlines() if line.split()[:1] == ["apex"])
    assert "thunder-apex 0.1.0" in row and f" {plugin.PRIORITY} " in row and "opt-in" in row
    reason = plugin.why_unavailable()
    assert row.endswith("available" if reason is None else f"unavailable: {reason}")


def test_without_apex_the_reason_points_to_the_readme(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "apex" else real(name))
    assert plugin.why_unavailable() == "apex is not installed: build it from source, see README"


def test_apex_without_its_extensions_is_reported_by_extension(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xentropy_cuda" else object())
    assert plugin.why_unavailable() == (
        "apex is installed without its CUDA extensions xentropy_cuda: build them, see README")


def test_without_a_gpu_the_reason_says_apex_needs_cuda(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert plugin.why_unavailable() == "no CUDA device (Apex's kernels run on CUDA GPUs only)"


def test_executor_is_opt_in_and_found_by_name_or_refused_with_the_reason(registry):
    reason = plugin.why_unavailable()
    if reason is None:
        assert thunder.extend.get_executor("apex") is ex
        assert ex not in thunder.get_default_executors()
    else:
        with pytest.raises(thunder.extend.UnknownExecutorError, match=re.escape(f"'apex' is unavailable: {reason}")):
            thunder.jit(lambda x: x, executors=["apex"])


# -- checkers and claims ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [F32, F16, BF16])
def test_checkers_accept_cuda_tensors_of_the_kernel_dtypes(dtype):
    x, w = proxy((2, 3, 64), dtype), proxy((64,), dtype)
    assert checkers.rms_norm_checker(x, (64,), w)
    assert checkers.rms_norm_checker(x, (3, 64), proxy((3, 64), dtype), 1e-6)
    assert checkers.layer_norm_checker(x, 64, w, w, 1e-5)
    assert checkers.layer_norm_checker(x, (64,))
    assert checkers.cross_entropy_checker(proxy((6, 10), dtype), proxy((6,), I64), reduction="none")


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 8), device="cpu"), (8,)), id="rms-cpu"),
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 8), torch.float64), (8,)), id="rms-float64"),
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 8)), (4,)), id="rms-shape-mismatch"),
        pytest.param(lambda: checkers.rms_norm_checker(proxy((2, 8)), (8,), proxy((8,), F32)), id="rms-weight-dtype"),
        pytest.param(lambda: checkers.layer_norm_checker(proxy((2, 8)), (8,), proxy((8,)), None), id="ln-no-bias"),
        pytest.param(lambda: checkers.layer_norm_checker(proxy((2, 8)), (8,), proxy((8,), device="cuda:1"),
                                                         proxy((8,), device="cuda:1")), id="ln-other-device"),
        pytest.param(lambda: checkers.cross_entropy_checker(proxy((6, 10)), proxy((6,), I64), weight=proxy((10,))),
                     id="ce-class-weights"),
        pytest.param(lambda: checkers.cross_entropy_checker(proxy((6, 10)), proxy((6, 10))), id="ce-soft-targets"),
        pytest.param(lambda: checkers.cross_entropy_checker(proxy((10,)), proxy((), I64)), id="ce-unbatched"),
        pytest.param(lambda: checkers.cross_entropy_checker(proxy((6, 10)), proxy((6,), I64), label_smoothing=1.5),
                     id="ce-smoothing-out-of-range"),
    ],
)
def test_checkers_leave_what_the_kernels_cannot_take_to_the_next_executor(case):
    assert not case()


def test_the_executor_claims_the_norms_and_cross_entropy_on_cuda_and_nothing_on_the_cpu():
    def program(x, w, logits, target):
        return (F.layer_norm(x, (8,), w, w), F.rms_norm(x, (8,), w), F.cross_entropy(logits, target),
                torch.tanh(x))  # fmt: skip

    for device, expected in (("cuda", [True, True, True, False]), ("cpu", [False] * 4)):
        trace = TraceCtx("computation")
        with tracectx(trace), torch_tracing():
            program(proxy((4, 8), F16, device), proxy((8,), F16, device), proxy((4, 10), F16, device),
                    proxy((4,), I64, device))  # fmt: skip
        assert [ex.can_execute(b) for b in trace.bound_symbols] == expected


# -- the executor's wiring, on Apex's contract emulated in PyTorch ------------------------------------------


def _xentropy_forward(logits, labels, smoothing, half_to_float):
    x = logits.float()
    lse = torch.logsumexp(x, dim=1)
    log_prob = x.gather(1, labels[:, None])[:, 0] - lse
    losses = smoothing * (lse - x.mean(1)) - (1 - smoothing) * log_prob
    keep_float = half_to_float or logits.dtype == torch.float32
    return losses, lse if keep_float else lse.to(logits.dtype)


def _xentropy_backward(grad, logits, lse, labels, smoothing):
    probs = torch.exp(logits.float() - lse.float()[:, None])
    one_hot = F.one_hot(labels, logits.shape[1]).float()
    return (grad.float()[:, None] * (probs - smoothing / logits.shape[1] - (1 - smoothing) * one_hot)).to(logits.dtype)


def _autograd_of(norm, dy, tensors):
    """The gradients of norm(*float copies of tensors) for the incoming dy, in the tensors' dtypes."""
    with torch.enable_grad():
        copies = [t.detach().float().requires_grad_() for t in tensors]
        grads = torch.autograd.grad(norm(*copies), copies, dy.float())
    return [g.to(t.dtype) for g, t in zip(grads, tensors)]


def _stats(x, shape, eps):
    """Apex's per-row statistics (float32 for half inputs): the mean and 1/sqrt(var + eps), or 1/rms."""
    rows = x.float().reshape(-1, *shape).flatten(1)
    return rows.mean(1), torch.rsqrt(rows.var(1, unbiased=False) + eps), torch.rsqrt(rows.pow(2).mean(1) + eps)


def _layer_norm_ext():
    def forward_affine(x, shape, w, b, eps):
        mean, invvar, _ = _stats(x, shape, eps)
        return F.layer_norm(x, shape, w, b, eps), mean, invvar

    def backward_affine(dy, mean, invvar, x, shape, w, b, eps, memory_efficient):
        return _autograd_of(lambda *t: F.layer_norm(t[0], shape, t[1], t[2], eps), dy, [x, w, b])

    def rms_forward_affine(x, shape, w, eps):
        return F.rms_norm(x, shape, w, eps), _stats(x, shape, eps)[2]

    def rms_backward_affine(dy, invvar, x, shape, w, eps, memory_efficient):
        return _autograd_of(lambda *t: F.rms_norm(t[0], shape, t[1], eps), dy, [x, w])

    return SimpleNamespace(
        forward_affine=forward_affine, backward_affine=backward_affine,
        forward=lambda x, shape, eps: forward_affine(x, shape, None, None, eps),
        backward=lambda dy, mean, invvar, x, shape, eps, m: _autograd_of(
            lambda t: F.layer_norm(t, shape, None, None, eps), dy, [x])[0],
        rms_forward_affine=rms_forward_affine, rms_backward_affine=rms_backward_affine,
        rms_forward=lambda x, shape, eps: rms_forward_affine(x, shape, None, eps),
        rms_backward=lambda dy, invvar, x, shape, eps, m: _autograd_of(
            lambda t: F.rms_norm(t, shape, None, eps), dy, [x])[0],
    )  # fmt: skip


@pytest.fixture
def emulated_apex(monkeypatch):
    """The CPU counts as a kernel device, and Apex's extensions are PyTorch stand-ins of their contract."""
    extensions = {"xentropy_cuda": SimpleNamespace(forward=_xentropy_forward, backward=_xentropy_backward),
                  "fused_layer_norm_cuda": _layer_norm_ext()}  # fmt: skip
    monkeypatch.setattr(checkers, "on_kernel_device", lambda t: True)
    monkeypatch.setattr(kernels, "_extension", extensions.__getitem__)


def _check_against_eager(fn, *args):
    return check_against_eager(fn, args, F32, executors=[ex])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_reductions_ignored_rows_and_smoothing_match_eager(emulated_apex, reduction, smoothing):
    torch.manual_seed(0)
    logits, target = torch.randn(7, 11), torch.tensor([1, -100, 4, 10, -100, 0, 3])
    ops = _check_against_eager(lambda x, t: F.cross_entropy(x, t, reduction=reduction, label_smoothing=smoothing),
                               logits, target)  # fmt: skip
    assert "apex.cross_entropy_fwd" in ops and "apex.cross_entropy_bwd" in ops


def test_cross_entropy_with_an_ignore_index_inside_the_classes_matches_eager(emulated_apex):
    torch.manual_seed(1)
    logits, target = torch.randn(6, 5), torch.tensor([0, 2, 0, 4, 1, 0])
    _check_against_eager(lambda x, t: F.cross_entropy(x, t, ignore_index=0), logits, target)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(8,), (3, 8)])
def test_layer_norm_and_rms_norm_with_and_without_parameters_match_eager(emulated_apex, affine, shape):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8)
    w, b = (torch.randn(shape), torch.randn(shape)) if affine else (None, None)
    args = (x, w, b) if affine else (x,)
    ops = _check_against_eager(lambda x, w=None, b=None: F.layer_norm(x, shape, w, b, 1e-5), *args)
    assert "apex.layer_norm_fwd" in ops and "apex.layer_norm_bwd" in ops
    rms_args = (x, w) if affine else (x,)
    ops = _check_against_eager(lambda x, w=None: F.rms_norm(x, shape, w, 1e-6), *rms_args)
    assert "apex.rms_norm_fwd" in ops and "apex.rms_norm_bwd" in ops


def test_llama_style_model_trains_with_apex_first_as_in_eager(emulated_apex):
    torch.manual_seed(3)
    model = LlamaStyle(vocab=64, dim=32, heads=2, hidden=48, layers=2)
    executors = [ex, *(e.name for e in thunder.get_default_executors())]
    ops = assert_trains_like_eager(model, executors, device="cpu", batch_shape=(2, 8), tolerance=1e-5)
    assert ops.count("apex.rms_norm_fwd") == 5 and ops.count("apex.cross_entropy_fwd") == 1
