"""Discovery: the executor is found through its entry point, listed with its package and priority, and says
why it is unavailable. These tests expect the package installed (pip install --no-deps -e thunder_executors_nvfuser)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from nvfuser_test_support import needs_installed, nvfuser_available
from thunder_executors_nvfuser.plugin import DISABLE_ENV_VAR, PRIORITY, why_unavailable

from thunder.extend import PluginRegistry

pytestmark = needs_installed


def run_plugins_command(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("THUNDER_DISABLE_PLUGIN_AUTOLOAD", DISABLE_ENV_VAR)}
    done = subprocess.run([sys.executable, "-m", "thunder", "plugins"], capture_output=True, text=True,
                          env={**environ, **env}, timeout=120, check=True)  # fmt: skip
    return done.stdout


def row_of(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.split()[:1] == [name])


def rows() -> dict:
    return {row.name: row for row in PluginRegistry(autoload=True).executor_rows()}


def test_plugins_command_lists_the_executor_with_its_distribution_and_priority():
    row = row_of(run_plugins_command(), "nvfuser")
    assert "thunder-executors-nvfuser 0.1.0" in row
    assert f" {PRIORITY} " in row


@pytest.mark.skipif(nvfuser_available(), reason="checks the reason given on a machine without nvFuser or CUDA")
def test_plugins_command_says_why_the_executor_is_unavailable_here():
    row = row_of(run_plugins_command(), "nvfuser")
    assert "unavailable: " in row
    assert ("nvfuser_direct is not importable" in row) or ("needs a CUDA device" in row)


def test_disabling_by_environment_variable_is_reported_as_the_reason():
    row = row_of(run_plugins_command(**{DISABLE_ENV_VAR: "1"}), "nvfuser")
    assert row.endswith(f"unavailable: disabled by {DISABLE_ENV_VAR}=1")


def test_reason_names_the_missing_piece(monkeypatch):
    import importlib.util

    monkeypatch.delenv(DISABLE_ENV_VAR, raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nvfuser_direct" else real_find_spec(name, *a))  # fmt: skip
    assert "nvfuser_direct is not importable" in why_unavailable()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert why_unavailable() == "needs a CUDA device (torch.cuda.is_available() is False)"


def test_priority_is_above_torchcompile_and_below_the_attention_executors():
    found = rows()
    assert found["torchcompile"].priority < found["nvfuser"].priority < found["sdpa"].priority
    assert found["nvfuser"].default  # default-on where available


@pytest.mark.skipif(nvfuser_available(), reason="checks the default list on a machine without nvFuser or CUDA")
def test_an_unavailable_executor_is_left_out_of_the_default_list():
    names = [ex.name for ex in PluginRegistry(autoload=True).get_default_executors()]
    assert "nvfuser" not in names and "sdpa" in names


def test_the_plugin_module_imports_neither_the_executor_nor_nvfuser():
    code = ("import sys, thunder_executors_nvfuser.plugin; "
            "print(any(m.startswith(('nvfuser', 'thunder_executors_nvfuser.executor')) for m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"
