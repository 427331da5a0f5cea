"""Fixtures of the `cudnn` executor's tests. GPU tests use `cudnn_testing.needs_gpu`; CPU tests of the executor's
logic use the `stand_in` fixture (the cuDNN graphs replaced by `cudnn_reference`, CPU tensors claimed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# The helpers next to the tests, and the package itself when it is not installed (a src layout: from the
# repository root `thunder_executors_cudnn` would otherwise name this distribution's folder).
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1] / "src"))
# as the repository's own tests do: the trace verifier runs after every pass (the norms pass included)
os.environ.setdefault("THUNDER_DEBUG_VERIFY", "1")


@pytest.fixture(autouse=True)
def seeded():
    """Every test draws the same inputs on every run."""
    torch.manual_seed(0)


@pytest.fixture
def stand_in(monkeypatch):
    """CPU tensors claimed as CUDA tensors would be, and the graphs computed by the float32 reference, so that
    the executor's own logic runs on a machine without a GPU. Yields the reference module (its `calls`)."""
    import cudnn_reference

    from thunder_executors_cudnn import checkers, graphs

    monkeypatch.setattr(checkers, "CLAIMED_DEVICE_TYPES", ("cpu", "cuda"))
    for name in cudnn_reference.STAND_INS:
        monkeypatch.setattr(graphs, name, getattr(cudnn_reference, name))
    cudnn_reference.calls.clear()
    yield cudnn_reference


@pytest.fixture
def fake_cudnn(monkeypatch):
    """`import cudnn` gives the recording stand-in of `fake_cudnn` (CPU tensors claimed, no CUDA handle), so that
    `thunder_executors_cudnn.graphs` itself runs, declarations and bindings checked, on a machine without a GPU."""
    import fake_cudnn as fake

    from thunder_executors_cudnn import checkers, graphs

    monkeypatch.setitem(sys.modules, "cudnn", fake)
    monkeypatch.setattr(checkers, "CLAIMED_DEVICE_TYPES", ("cpu", "cuda"))
    monkeypatch.setattr(graphs, "_handle", lambda device: object())
    graphs.graph_cache.clear()
    fake.built.clear()
    yield fake
    graphs.graph_cache.clear()
