"""The module the `thunder.plugins` entry point names: it offers the `nvfuser` executor without importing it.

Discovery must stay cheap, so nothing here imports nvFuser: `why_unavailable` probes with `find_spec`, and
the executor is built by `_load` when first used.
"""

from __future__ import annotations

import importlib.util
import os

from thunder.extend import ExecutorSpec, hookimpl

#: Setting this environment variable to 1 makes the executor report itself unavailable (and stay out of the
#: default executor list).
DISABLE_ENV_VAR = "THUNDER_NVFUSER_DISABLE"

#: Higher runs first. Above `torchcompile` (50), a general fusion executor like this one; below the attention
#: executors (`sdpa` is 100, cuDNN goes above it), whose kernels a region must stop at.
PRIORITY = 75


def why_unavailable() -> str | None:
    """None when nvFuser can run here, else a one-line reason (shown by `python -m thunder plugins`)."""
    if os.environ.get(DISABLE_ENV_VAR, "") not in ("", "0"):
        return f"disabled by {DISABLE_ENV_VAR}={os.environ[DISABLE_ENV_VAR]}"
    try:
        found = importlib.util.find_spec("nvfuser_direct") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "nvfuser_direct is not importable (pip install 'thunder-executors-nvfuser[cu130]')"
    import torch  # already imported by thunder itself

    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    return None



@hookimpl
def thunder_executors():
    return [
        ExecutorSpec(
            name="nvfuser",
            priority=PRIORITY,
            load="thunder_executors_nvfuser.executor:ex",
            why_unavailable=why_unavailable,
            default=True,
            description="fuses regions of primitives (elementwise, reductions, shapes, dropout) into nvFuser kernels",
        )
    ]
