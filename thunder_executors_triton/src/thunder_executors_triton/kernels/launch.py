"""Where the kernels may run, and the block sizes they are launched with.

The kernels run on CUDA tensors. Under Triton's interpreter (``TRITON_INTERPRET=1``, read by Triton when a
kernel module is imported) they run on CPU tensors too, slowly: that is how the tests run on a machine
without a GPU.
"""

from __future__ import annotations

import os

import torch

#: The environment variable with which Triton runs kernels in its Python interpreter, on CPU tensors.
INTERPRET_ENV_VAR = "TRITON_INTERPRET"

#: The most elements a row-at-once kernel (norms, rotary embedding) holds in registers.
MAX_ROW_BLOCK = 65536


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter, where CPU tensors are accepted."""
    return os.environ.get(INTERPRET_ENV_VAR, "0") not in ("", "0")


def runs_here(device) -> bool:
    """Whether the kernels can run on tensors of `device` (a torch.device, a proxy's device or a string)."""
    kind = torch.device(device).type
    return kind == "cuda" or (kind == "cpu" and interpreting())


def next_power_of_2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def row_block(n_cols: int) -> int:
    """The block that holds a whole row (a power of two, at least 16)."""
    return max(16, next_power_of_2(n_cols))


def loop_block(n_cols: int, *, largest: int = 4096) -> int:
    """The block a row is swept in by kernels that loop over long rows (softmax, cross-entropy)."""
    if interpreting():
        largest = 1024  # the interpreter's cost grows with the block; a few iterations are cheaper
    return min(largest, row_block(n_cols))


def warps_for(block: int) -> int:
    return 4 if block <= 2048 else 8 if block <= 8192 else 16


def check_tensors(op: str, *tensors: torch.Tensor) -> None:
    """Raises a clear error where the kernels cannot take these tensors (wrong device or layout)."""
    for t in tensors:
        if t is None:
            continue
        if not runs_here(t.device):
            raise ValueError(
                f"{op}: the Triton kernel needs CUDA tensors, got one on {t.device}; move the tensors to a CUDA "
                f"device (or set {INTERPRET_ENV_VAR}=1 to run it on CPU tensors through Triton's interpreter)"
            )
        if t.numel() and t.stride(-1) != 1:
            raise ValueError(f"{op}: the Triton kernel needs tensors contiguous in their last dimension; "
                             "call .contiguous() first")  # fmt: skip


# Loops over a row run `range(N_BLOCKS)` with N_BLOCKS a compile-time constant (a kernel is compiled per number
# of blocks, not per row length): Triton 3.6's interpreter cannot take a run-time loop bound under NumPy 2.4
# (it converts the 1-element array that holds the bound with int(), which NumPy no longer allows).
