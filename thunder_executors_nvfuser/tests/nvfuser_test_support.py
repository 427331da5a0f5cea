"""Helpers shared by the tests (a plain module: the repository's own tests/conftest.py owns the name `conftest`)."""

from __future__ import annotations

import importlib.util

import pytest
import torch


def nvfuser_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("nvfuser_direct") is not None


needs_nvfuser = pytest.mark.skipif(not nvfuser_available(), reason="needs CUDA and nvfuser_direct")


def installed() -> bool:
    """Whether the distribution is installed (its entry point is then visible to Thunder's plugin discovery)."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("thunder-executors-nvfuser")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_installed = pytest.mark.skipif(
    not installed(), reason="needs the package installed: pip install --no-deps --no-build-isolation -e thunder_executors_nvfuser"
)
