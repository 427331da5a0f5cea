"""The small Llama-style model of `tiny_llama` trained a few steps on the GPU with `cudnn` in the executor list
(and nvFuser where it is installed), against the same training in eager."""

from __future__ import annotations

import importlib.util

import pytest
from cudnn_testing import needs_gpu
from tiny_llama import check_training_matches_eager

pytestmark = needs_gpu

EXECUTOR_LISTS = [["cudnn", "sdpa"]]
if importlib.util.find_spec("nvfuser_direct") is not None:
    EXECUTOR_LISTS.append(["cudnn", "nvfuser", "sdpa"])


@pytest.fixture
def cudnn_discoverable():
    """The `cudnn` name resolves even where the package runs from a checkout (not installed)."""
    from thunder.extend import UnknownExecutorError, get_executor, register_plugin
    from thunder_executors_cudnn import plugin

    try:
        get_executor("cudnn")
    except UnknownExecutorError:
        register_plugin(plugin)


@pytest.mark.parametrize("executors", EXECUTOR_LISTS, ids="+".join)
@pytest.mark.parametrize("enable_norms", [False, True], ids=["norms-off", "norms-on"])
def test_training_matches_eager(cudnn_discoverable, executors, enable_norms):
    check_training_matches_eager(executors, device="cuda", enable_norms=enable_norms)
