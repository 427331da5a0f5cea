"""The module named by the entry point: it offers the `liger` executor without importing it or Liger.

The executor is available where the `liger-kernel` package is installed and a CUDA device is present (Liger's
Triton kernels run on GPUs only; Triton's CPU interpreter does not run them). It is opt-in: list it,
`thunder.jit(fn, executors=["liger", ...])`, or `thunder.add_default_executor("liger")`.
"""

from __future__ import annotations

import importlib.util

from thunder.extend import ExecutorSpec, hookimpl

#: Higher runs first: hand-written kernels before fusion executors (torch.compile, nvFuser) and torch.
PRIORITY = 210


def why_unavailable() -> str | None:
    """None where the executor can run here, else the reason (probed without importing Liger)."""
    if importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel is not installed (pip install liger-kernel)"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed (pip install triton)"
    import torch  # already imported by Thunder

    if not torch.cuda.is_available():
        return "no CUDA device (Liger's Triton kernels run on CUDA GPUs only)"
    return None



@hookimpl
def thunder_executors():
    return [
        ExecutorSpec(
            name="liger",
            priority=PRIORITY,
            load="thunder_liger.executor:ex",
            why_unavailable=why_unavailable,
            default=False,
            description="Liger kernels: RMSNorm, LayerNorm, RoPE, SwiGLU, GeGLU, cross-entropy, "
            "fused linear cross-entropy",
        )
    ]
