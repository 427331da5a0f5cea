"""The family op databases' shared form: samples as (label, function, args), run through the op-database
runner (opdb.run_opinfo) whole and decomposed to prims, on the inputs and on non-contiguous copies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from .opdb import OpInfo, SampleInput, dtypes_on_test_device, run_opinfo
from .opdb import make as make_on_device


# -- samples as (label, function, args), run through the shared op-database runner --------------------
@dataclass
class OpCase:
    """A family of samples and the dtypes they run at: `samples(dtype)` yields (label, fn, args), where fn
    states the call (function, Tensor method, operator, keyword form) and args are its tensor inputs."""

    name: str
    samples: Callable
    dtypes: tuple


LOOSE = {"atol": 2e-2, "rtol": 2e-2}  # low-precision floats: decompositions round differently than kernels


def assert_matches_eager(fn: Callable, *args, dtype: torch.dtype = torch.float32, name: str = "") -> None:
    """`fn(*args)` under thunder.jit (whole, and decomposed to prims; on the inputs and on non-contiguous
    copies) gives eager's values, dtypes and shapes, natively (no fallback); where eager raises, so must it."""
    try:
        fn(*args)
        raises = None
    except Exception as e:
        raises = type(e)
    sample = SampleInput(args, name=name, raises=raises)
    tolerances = {dtype: LOOSE} if dtype in (torch.bfloat16, torch.float16) else {}
    run_opinfo(OpInfo(name or "sample", fn, lambda dtype, device: [sample], (dtype,), tolerances), dtype)


def op_params(cases: list[OpCase]) -> list:
    return [
        pytest.param(case, dtype, id=f"{case.name}-{str(dtype).removeprefix('torch.')}")
        for case in cases
        for dtype in dtypes_on_test_device(case.dtypes)
    ]


def run_case(case: OpCase, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    for label, fn, args in case.samples(dtype):
        assert_matches_eager(fn, *args, dtype=dtype, name=f"{case.name}: {label}")


def make(shape, dtype: torch.dtype, low=None, high=None) -> torch.Tensor:
    """A random tensor on the test's device (--device)."""
    return make_on_device(shape, dtype, None, low, high)


FLOATS = (torch.float32, torch.float64, torch.bfloat16)
INTS = (torch.int64, torch.int32)
ALL = FLOATS + INTS + (torch.bool,)
