"""The plugin module named by the entry point: it offers the `triton` executor without importing it.

The executor is available where Triton is importable and a CUDA device is present, and is then on by
default. Under Triton's interpreter (``TRITON_INTERPRET=1``) it is also available without a GPU, opt-in,
with its checkers accepting CPU tensors: that is how its tests run on a CPU machine.
"""

from __future__ import annotations

import importlib.util

from thunder.extend import ExecutorSpec, hookimpl

#: Higher runs first: hand-written kernels before fusion executors (torch.compile, nvFuser) and torch.
PRIORITY = 200


def _has_cuda() -> bool:
    import torch  # already imported by Thunder

    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def why_unavailable() -> str | None:
    """None where the executor can run here, else the reason."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not importable (pip install triton)"
    if _has_cuda():
        return None
    from thunder_executors_triton.kernels.launch import INTERPRET_ENV_VAR, interpreting

    if interpreting():
        return None
    return f"no CUDA device ({INTERPRET_ENV_VAR}=1 runs the kernels on CPU tensors in Triton's interpreter, for tests)"



@hookimpl
def thunder_executors():
    return [
        ExecutorSpec(
            name="triton",
            priority=PRIORITY,
            load="thunder_executors_triton.executor:ex",
            why_unavailable=why_unavailable,
            default=_has_cuda(),  # never by default on the interpreter: it is for tests, and slow
            description="Triton kernels: cross-entropy, linear+cross-entropy, RMSNorm, LayerNorm, rotary, "
            "SwiGLU, softmax",
        )
    ]
