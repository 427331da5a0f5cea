"""The suite's `--device` option (tests/conftest.py), checked by running pytest on a small test file with it.

CUDA is faked where the behaviour under test needs only its availability: the conftest then sets CUDA as the
default device (which needs no GPU until a tensor is made), and the inner tests read that setting.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

CONFTEST = pathlib.Path(__file__).with_name("conftest.py")

INNER_TESTS = '''
import os

import pytest
import torch


def _default_device():
    context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    return None if context is None else str(context.device)


def test_runs_with_the_test_device_as_the_default():
    assert _default_device() == ("cuda" if os.environ["THUNDER_TEST_DEVICE"] == "cuda" else None)
    if os.environ["THUNDER_TEST_DEVICE"] == "cuda":
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


@pytest.mark.cpu_only(reason="reads the CPU's flags")
def test_about_the_cpu():
    assert _default_device() is None
'''

FAKE_CUDA = "import torch\ntorch.cuda.is_available = lambda: True\n"


def _run_pytest(tmp_path, *args, fake_cuda=False):
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "fake_cuda.py").write_text(FAKE_CUDA)
    plugin = ["-p", "fake_cuda"] if fake_cuda else []
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *plugin, *args, "test_inner.py"]
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)


def test_the_default_device_is_the_cpu(tmp_path):
    result = _run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_cuda_runs_tests_with_cuda_as_the_default_device_and_skips_cpu_only_ones_with_their_reason(tmp_path):
    result = _run_pytest(tmp_path, "--device", "cuda", fake_cuda=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    assert "CPU only: reads the CPU's flags" in result.stdout


def test_cuda_without_a_cuda_device_is_a_usage_error_except_when_collecting(tmp_path):
    if _cuda_available():
        pytest.skip("this host has CUDA: --device cuda is legitimate here")
    result = _run_pytest(tmp_path, "--device", "cuda")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "needs a CUDA device" in result.stderr
    collected = _run_pytest(tmp_path, "--device", "cuda", "--collect-only")
    assert collected.returncode == 0 and "2 tests collected" in collected.stdout, collected.stdout + collected.stderr


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
