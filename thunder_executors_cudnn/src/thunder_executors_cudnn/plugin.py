"""The module the `thunder.plugins` entry point names: it offers the `cudnn` executor without importing it.

Discovery must stay cheap: `why_unavailable` probes cudnn-frontend with `find_spec` and asks torch whether CUDA
is there; the executor is built by `_load`, when first used, which also imports cudnn-frontend so that a broken
installation (cuDNN's library missing, say) is reported as the executor's reason rather than at the first call.
"""

from __future__ import annotations

import importlib.util
import os

from thunder.extend import ExecutorSpec, hookimpl

#: Setting this environment variable to 1 makes the executor report itself unavailable (and stay out of the
#: default executor list).
DISABLE_ENV_VAR = "THUNDER_CUDNN_DISABLE"

#: Higher runs first: above `sdpa` (100), whose PyTorch attention kernels take what cuDNN's checkers decline,
#: and below `triton` (200).
PRIORITY = 150

#: What to install for cudnn-frontend.
INSTALL_HINT = "pip install 'thunder-executors-cudnn[cudnn]'"


def _has_cuda() -> bool:
    import torch  # already imported by thunder itself

    return torch.cuda.is_available()


def why_unavailable() -> str | None:
    """None where the executor can run here, else a one-line reason (shown by `python -m thunder plugins`)."""
    if os.environ.get(DISABLE_ENV_VAR, "") not in ("", "0"):
        return f"disabled by {DISABLE_ENV_VAR}={os.environ[DISABLE_ENV_VAR]}"
    try:
        found = importlib.util.find_spec("cudnn") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return f"cudnn-frontend is not importable ({INSTALL_HINT})"
    if not _has_cuda():
        return "needs a CUDA device (torch.cuda.is_available() is False)"
    return None


def _load():
    import cudnn  # noqa: F401  (fails here, with its own message, where cuDNN's library cannot be loaded)

    from thunder_executors_cudnn.executor import ex

    return ex


@hookimpl
def thunder_executors():
    return [
        ExecutorSpec(
            name="cudnn",
            priority=PRIORITY,
            load=_load,
            why_unavailable=why_unavailable,
            default=True,
            description="cuDNN graphs: scaled dot-product attention forward and backward; LayerNorm/RMSNorm opt-in "
            "(executor_options={'cudnn': {'enable_norms': True}})",
        )
    ]
