"""How Thunder finds the `triton` executor and decides whether it can run.

The discovery tests need the package installed (``pip install --no-deps --no-build-isolation -e
thunder_executors_triton``) and are skipped, saying so, where it is not.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest
import torch
from triton_testing import HAS_CUDA

import thunder
from thunder.extend import ENTRY_POINT_GROUP
from thunder_executors_triton import plugin

INSTALLED = any(ep.name == "triton" and ep.value == "thunder_executors_triton.plugin"
                for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))  # fmt: skip
needs_install = pytest.mark.skipif(not INSTALLED, reason="needs the package installed (pip install -e "
                                   "thunder_executors_triton) for its entry point")  # fmt: skip


def plugins_table(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "THUNDER_DISABLE_PLUGIN_AUTOLOAD")}
    done = subprocess.run([sys.executable, "-m", "thunder", "plugins"], capture_output=True, text=True,
                          env={**environ, **env}, timeout=180, check=True)  # fmt: skip
    return done.stdout


def triton_row(table: str) -> str:
    return next(line for line in table.splitlines() if line.split()[:1] == ["triton"])


# -- availability ------------------------------------------------------------------------------------------


def test_unavailable_without_a_cuda_device_outside_the_interpreter(monkeypatch):
    monkeypatch.setattr(plugin, "_has_cuda", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert plugin.why_unavailable().startswith("no CUDA device")


def test_available_with_a_cuda_device(monkeypatch):
    monkeypatch.setattr(plugin, "_has_cuda", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert plugin.why_unavailable() is None


def test_available_without_a_gpu_under_the_interpreter(monkeypatch):
    monkeypatch.setattr(plugin, "_has_cuda", lambda: False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert plugin.why_unavailable() is None


def test_unavailable_without_triton(monkeypatch):
    real_find_spec = plugin.importlib.util.find_spec
    monkeypatch.setattr(plugin.importlib.util, "find_spec", lambda name, *a: None if name == "triton"
                        else real_find_spec(name, *a))  # fmt: skip
    assert plugin.why_unavailable().startswith("triton is not importable")


def test_default_on_exactly_where_there_is_a_cuda_device(monkeypatch):
    for has_cuda in (True, False):
        monkeypatch.setattr(plugin, "_has_cuda", lambda has_cuda=has_cuda: has_cuda)
        (spec,) = plugin.thunder_executors()
        assert (spec.name, spec.default) == ("triton", has_cuda)


def test_the_registered_plugin_gives_the_executor_by_name(triton_registry):
    from thunder_executors_triton.executor import ex

    assert thunder.extend.get_executor("triton") is ex
    names = [e.name for e in thunder.extend.get_all_executors()]
    assert names.index("triton") < names.index("torch")


def test_the_plugin_module_does_not_import_triton():
    code = "import sys, thunder_executors_triton.plugin; print('triton' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})  # fmt: skip
    assert done.stdout.strip() == "False"


# -- discovery through the entry point ---------------------------------------------------------------------


@needs_install
def test_entry_point_names_the_plugin_module():
    (ep,) = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == "triton"]
    assert ep.load() is plugin
    assert ep.dist.name == "thunder-executors-triton"


@needs_install
def test_plugins_command_lists_the_executor_and_why_it_cannot_run_here():
    row = triton_row(plugins_table())
    assert "thunder-executors-triton 0.1.0" in row
    assert f" {plugin.PRIORITY} " in row
    if HAS_CUDA:
        assert row.endswith(" available") and "opt-in" not in row
    else:
        assert "unavailable: no CUDA device" in row


@needs_install
@pytest.mark.skipif(HAS_CUDA, reason="the interpreter's availability matters only without a GPU")
def test_plugins_command_lists_the_executor_as_available_opt_in_under_the_interpreter():
    row = triton_row(plugins_table(TRITON_INTERPRET="1"))
    assert row.endswith(" available")
    assert "opt-in" in row


@needs_install
def test_autoloading_registry_finds_the_executor_where_it_can_run():
    from thunder.extend import PluginRegistry

    registry = PluginRegistry(autoload=True)
    assert any(row.name == "triton" for row in registry.executor_rows())
    if HAS_CUDA or os.environ.get("TRITON_INTERPRET") == "1":
        assert registry.get_executor("triton").name == "triton"
    assert torch.cuda.is_available() == any(e.name == "triton" for e in registry.get_default_executors())
