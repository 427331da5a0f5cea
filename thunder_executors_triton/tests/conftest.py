"""Fixtures of the `triton` executor's tests; `triton_testing` (imported first) sets up the interpreter."""

from __future__ import annotations

import pytest
import triton_testing  # noqa: F401  (sets TRITON_INTERPRET=1 without CUDA, before any kernel is imported)

from thunder.extend import PluginRegistry, set_default_registry


@pytest.fixture
def triton_registry():
    """A fresh registry holding the `triton` plugin (whether or not the package is installed)."""
    import thunder_executors_triton.plugin as plugin

    registry = PluginRegistry(autoload=False)
    previous = set_default_registry(registry)
    registry.register_plugin(plugin)
    yield registry
    set_default_registry(previous)
