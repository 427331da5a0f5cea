"""Shared fixtures. GPU tests are marked with `needs_nvfuser` and skip, with the reason, without CUDA or nvFuser."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


def nvfuser_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("nvfuser_direct") is not None


needs_nvfuser = pytest.mark.skipif(not nvfuser_available(), reason="needs CUDA and nvfuser_direct")


@pytest.fixture(autouse=True)
def seeded():
    """Every test draws the same inputs on every run."""
    torch.manual_seed(0)
