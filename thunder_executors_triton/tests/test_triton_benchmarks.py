"""The micro-benchmark module: its autograd wrappers of the kernels (against eager, small shapes, on the
interpreter too) and, with CUDA, one real run of its smallest case."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from triton_testing import DEVICE, HAS_CUDA, reference_copy

from thunder_executors_triton import benchmarks


def test_cross_entropy_wrapper_matches_eager():
    logits = torch.randn(6, 300, device=DEVICE, requires_grad=True)
    target = torch.randint(0, 300, (6,), device=DEVICE)
    ref = reference_copy(logits)
    benchmarks._CrossEntropy.apply(logits, target).backward()
    F.cross_entropy(ref, target).backward()
    torch.testing.assert_close(logits.grad, ref.grad)


def test_linear_cross_entropy_wrapper_matches_eager():
    x, w = torch.randn(9, 8, device=DEVICE, requires_grad=True), torch.randn(40, 8, device=DEVICE, requires_grad=True)
    target = torch.randint(0, 40, (9,), device=DEVICE)
    rx, rw = reference_copy(x), reference_copy(w)
    loss = benchmarks._LinearCrossEntropy.apply(x, w, target)
    expected = F.cross_entropy(F.linear(rx, rw), target)
    torch.testing.assert_close(loss, expected)
    (loss * 3).backward()
    (expected * 3).backward()
    torch.testing.assert_close(x.grad, rx.grad)
    torch.testing.assert_close(w.grad, rw.grad)


def test_rms_norm_wrapper_matches_eager():
    x, w = torch.randn(5, 32, device=DEVICE, requires_grad=True), torch.randn(32, device=DEVICE, requires_grad=True)
    rx, rw = reference_copy(x), reference_copy(w)
    benchmarks._RMSNorm.apply(x, w, 1e-6).sum().backward()
    F.rms_norm(rx, (32,), rw, 1e-6).sum().backward()
    torch.testing.assert_close(x.grad, rx.grad)
    torch.testing.assert_close(w.grad, rw.grad)


@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA (CUDA events and memory statistics)")
def test_rms_norm_benchmark_reports_every_implementation():
    rows = benchmarks.run(["rms_norm"], reps=2)
    assert [r["impl"] for r in rows] == ["eager", "torch.compile", "triton", "thunder+triton"]
    assert all(r["ms"] > 0 and r["peak_mib"] > 0 for r in rows)
    assert "| RMSNorm" in benchmarks.markdown(rows)
