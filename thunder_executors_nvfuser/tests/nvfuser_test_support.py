"""Helpers shared by the tests (a plain module: the repository's own tests/conftest.py owns the name `conftest`)."""

from __future__ import annotations

import importlib.util

import pytest
import torch


def nvfuser_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("nvfuser_direct") is not None


needs_nvfuser = pytest.mark.skipif(not nvfuser_available(), reason="needs CUDA and nvfuser_direct")
