"""Discovery: the executor is offered through its entry point, listed with its package and priority, on by
default where it can run, and says why it cannot run where it cannot."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from cudnn_testing import HAS_GPU, needs_install

from thunder.extend import PluginRegistry
from thunder_executors_cudnn import plugin


def run_plugins_command(*args: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("THUNDER_DISABLE_PLUGIN_AUTOLOAD", plugin.DISABLE_ENV_VAR)}
    done = subprocess.run([sys.executable, "-m", "thunder", "plugins", *args], capture_output=True, text=True,
                          env={**environ, **env}, timeout=180, check=True)  # fmt: skip
    return done.stdout


def row_of(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.split()[:1] == [name])


def _find_spec_without(monkeypatch, missing: str):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(plugin.importlib.util, "find_spec",
                        lambda name, *a: None if name == missing else real_find_spec(name, *a))  # fmt: skip


def test_without_cudnn_frontend_the_reason_says_what_to_install(monkeypatch):
    monkeypatch.delenv(plugin.DISABLE_ENV_VAR, raising=False)
    _find_spec_without(monkeypatch, "cudnn")
    assert plugin.why_unavailable() == "cudnn-frontend is not importable (pip install 'thunder-executors-cudnn[cudnn]')"


def test_without_a_cuda_device_the_reason_says_so(monkeypatch):
    monkeypatch.delenv(plugin.DISABLE_ENV_VAR, raising=False)
    monkeypatch.setattr(plugin.importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(plugin, "_has_cuda", lambda: False)
    assert plugin.why_unavailable() == "needs a CUDA device (torch.cuda.is_available() is False)"


def test_available_with_cudnn_frontend_and_a_cuda_device(monkeypatch):
    monkeypatch.delenv(plugin.DISABLE_ENV_VAR, raising=False)
    monkeypatch.setattr(plugin.importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr(plugin, "_has_cuda", lambda: True)
    assert plugin.why_unavailable() is None


def test_the_environment_variable_disables_it(monkeypatch):
    monkeypatch.setenv(plugin.DISABLE_ENV_VAR, "1")
    assert plugin.why_unavailable() == f"disabled by {plugin.DISABLE_ENV_VAR}=1"


def test_offered_as_cudnn_on_by_default_above_sdpa():
    (spec,) = plugin.thunder_executors()
    assert (spec.name, spec.default) == ("cudnn", True)
    rows = {row.name: row for row in _registry_with_plugin().executor_rows()}
    assert rows["cudnn"].priority > rows["sdpa"].priority


def _registry_with_plugin() -> PluginRegistry:
    registry = PluginRegistry(autoload=False)
    registry.register_plugin(plugin)
    return registry


@pytest.mark.skipif(HAS_GPU, reason="checks the default list on a machine without CUDA or cudnn-frontend")
def test_where_it_cannot_run_it_is_left_out_of_the_default_list_and_sdpa_takes_attention():
    registry = _registry_with_plugin()
    names = [ex.name for ex in registry.get_default_executors()]
    assert "cudnn" not in names and "sdpa" in names


def test_the_plugin_module_imports_neither_the_executor_nor_cudnn():
    code = ("import sys, thunder_executors_cudnn.plugin; "
            "print(any(m == 'cudnn' or m.startswith(('cudnn.', 'thunder_executors_cudnn.executor')) "
            "for m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})  # fmt: skip
    assert done.stdout.strip() == "False"


@needs_install
def test_plugins_command_lists_the_executor_with_its_distribution_and_priority():
    row = row_of(run_plugins_command(), "cudnn")
    assert "thunder-executors-cudnn 0.1.0" in row
    assert f" {plugin.PRIORITY} " in row
    if HAS_GPU:
        assert row.endswith(" available")
    else:
        assert "unavailable: " in row
        assert ("cudnn-frontend is not importable" in row) or ("needs a CUDA device" in row)


@needs_install
def test_plugins_command_reports_the_environment_variable():
    row = row_of(run_plugins_command(**{plugin.DISABLE_ENV_VAR: "1"}), "cudnn")
    assert row.endswith(f"unavailable: disabled by {plugin.DISABLE_ENV_VAR}=1")
