"""Fixtures of the package's tests; GPU tests use `nvfuser_test_support.needs_nvfuser`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# The helpers next to the tests, and the package itself: from the repository root `thunder_executors_nvfuser`
# would otherwise name the distribution's folder, not the package inside it, when the package is not installed.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[1]))


@pytest.fixture(autouse=True)
def seeded():
    """Every test draws the same inputs on every run."""
    torch.manual_seed(0)
