"""The plugin module named by the entry point: it offers the executor and a transform without importing them.

Thunder calls `thunder_executors()` when it discovers plugins (`import thunder` does not, the first query of
the registry does), so this module imports nothing heavy: the executor is built by `_load`, on first use.
"""

from __future__ import annotations

import importlib.util
import os

from thunder.extend import ExecutorSpec, TransformSpec, hookimpl

#: Setting this environment variable to 1 makes the executor report itself unavailable.
DISABLE_ENV_VAR = "THUNDER_EXAMPLE_EXECUTOR_DISABLE"

#: Higher runs first: above the always-executors (`torch` is 0), below specialised kernels (cuDNN, Apex).
PRIORITY = 50


def _why_unavailable() -> str | None:
    # Probe cheaply: find_spec locates a library without importing it.
    if os.environ.get(DISABLE_ENV_VAR, "") not in ("", "0"):
        return f"disabled by {DISABLE_ENV_VAR}={os.environ[DISABLE_ENV_VAR]}"
    if importlib.util.find_spec("torch") is None:
        return "torch is not importable"
    return None



@hookimpl
def thunder_executors():
    return [
        ExecutorSpec(
            name="example",
            priority=PRIORITY,
            load="thunder_example_executor.executor:ex",
            why_unavailable=_why_unavailable,
            default=False,  # opt-in: used when listed, `executors=["example"]`, or after add_default_executor
            description="example plugin: fused a + alpha * b (torch.add/sub with alpha)",
        )
    ]


def _scale_gradients():
    from thunder_example_executor.transforms import ScaleGradients

    return ScaleGradients()


@hookimpl
def thunder_transforms():
    return [
        TransformSpec(
            name="example-scale-grads",
            factory=_scale_gradients,
            description="example plugin: multiplies every gradient by 0.5 (after autodiff)",
        )
    ]
