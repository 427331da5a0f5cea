"""Shared set-up and helpers of the `triton` executor's tests (a module name unique in the repository, so
that test modules can import it beside other test suites).

Without a CUDA device the kernels run on CPU tensors through Triton's interpreter: TRITON_INTERPRET=1 must
be set before any kernel module is imported (Triton reads it when a kernel is decorated), so it is set here,
first. Shapes are small on the interpreter and real on a GPU (see `sizes`).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Run from a checkout without installing: the distribution's src folder holds the package.
_SOURCES = str(Path(__file__).resolve().parents[1] / "src")
if _SOURCES not in sys.path:
    sys.path.insert(0, _SOURCES)


import thunder  # noqa: E402
from thunder import testing  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"

DTYPES = [torch.float32, torch.bfloat16, torch.float16]

#: Tolerances against a float32 eager reference, for outputs rounded to each dtype.
TOLERANCES = {
    torch.float32: {"atol": 2e-5, "rtol": 2e-5},
    torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2},
    torch.float16: {"atol": 4e-3, "rtol": 4e-3},
}


def sizes(cpu, cuda):
    """Small shapes on the interpreter (it runs every program in Python), real ones on a GPU."""
    return cuda if HAS_CUDA else cpu


#: thunder.testing's comparison against a float32 reference, with this suite's tolerances.
assert_close_to_reference = functools.partial(testing.assert_close_to_reference, tolerances=TOLERANCES)


def reference_copy(t: torch.Tensor, requires_grad: bool = True) -> torch.Tensor:
    """A float32 leaf with t's (rounded) values, for the eager reference."""
    return t.detach().float().clone().requires_grad_(requires_grad)


def execution_source(jfn) -> str:
    return str(thunder.last_traces(jfn)[-1])


def backward_source(jfn) -> str:
    return str(thunder.last_backward_traces(jfn)[-1])
