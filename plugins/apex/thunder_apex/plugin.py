"""The module named by the entry point: it offers the `apex` executor without importing it or Apex.

The executor runs two of Apex's CUDA extensions: `xentropy_cuda` (fused softmax cross-entropy, from
`apex.contrib.xentropy`) and `fused_layer_norm_cuda` (fused LayerNorm and RMSNorm, from
`apex.normalization`). It is available where both import and a CUDA device is present, and is opt-in:
`thunder.jit(fn, executors=["apex", ...])` or `thunder.add_default_executor("apex")`.
"""

from __future__ import annotations

import importlib.util

from thunder.extend import ExecutorSpec, hookimpl

#: Higher runs first: hand-written kernels before fusion executors (torch.compile, nvFuser) and torch.
PRIORITY = 220

#: The compiled extensions the executor calls (Apex builds them only when asked to, see README.md).
EXTENSIONS = ("xentropy_cuda", "fused_layer_norm_cuda")


def why_unavailable() -> str | None:
    """None where the executor can run here, else the reason (probed without importing Apex)."""
    if importlib.util.find_spec("apex") is None:
        return "apex is not installed: build it from source, see README"
    missing = [name for name in EXTENSIONS if importlib.util.find_spec(name) is None]
    if missing:
        return f"apex is installed without its CUDA extensions {', '.join(missing)}: build them, see README"
    import torch  # already imported by Thunder

    if not torch.cuda.is_available():
        return "no CUDA device (Apex's kernels run on CUDA GPUs only)"
    return None



@hookimpl
def thunder_executors():
    return [
        ExecutorSpec(
            name="apex",
            priority=PRIORITY,
            load="thunder_apex.executor:ex",
            why_unavailable=why_unavailable,
            default=False,
            description="Apex fused kernels: softmax cross-entropy, LayerNorm, RMSNorm",
        )
    ]
