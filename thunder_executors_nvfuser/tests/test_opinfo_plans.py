"""The nvFuser executor's planner on PyTorch's OpInfo samples, on the CPU: each OpInfo of `op_db` under
`thunder.jit(executors=[nvFuser claiming CPU tensors, plans replayed by torch])`, against eager
(tests/opinfo_check.py: forward values and gradients).

A sample may fail here only where the same sample fails with every operation decomposed into prims and no
fusion (`DECOMPOSE_TO_PRIMS`): that is a difference of the decomposition (rounding of a separate product and sum,
an expected failure of tests/opinfo_expected_failures.py), which the fusion executors inherit and which the
decomposed sweep tracks (`python3 -m tests.opinfo_check --decomposed`). Anything else is the planner's: a claim,
cast, broadcast, reduction or view it got wrong.

CI checks float32 (2 samples spread over each OpInfo's list, with gradients) and bfloat16 (the first sample,
forward); `sweep_plans.py` runs every sample.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from plan_interpreter import interpret_build
from thunder_executors_nvfuser.executor import NvFuserExecutor
from thunder_executors_nvfuser.options import NvFuserOptions

sys.path.insert(0, str(Path(__file__).parents[2]))  # the repository root: its tests package

from tests.opinfo_check import opinfo_name, opinfo_params, run_opinfo  # noqa: E402
from tests.ops.opdb import DECOMPOSE_TO_PRIMS  # noqa: E402

PORTION = {torch.float32: (2, True), torch.bfloat16: (1, False)}  # dtype -> (samples, gradients checked)
EXECUTOR = NvFuserExecutor(NvFuserOptions(), device_types=("cpu",), build=interpret_build)


def _failures(opinfo, dtype, executors) -> dict[int, str]:
    limit, grad = PORTION[dtype]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcomes = run_opinfo(opinfo, "cpu", dtype, grad, limit, executors=executors)
        return {o.index: f"{o.kind}: {o.message[:400]}" for o in outcomes if o.kind in ("error", "mismatch")}


@pytest.mark.parametrize("opinfo, dtype", opinfo_params("cpu", PORTION))
def test_planned_fusions_match_eager_wherever_the_decomposition_does(opinfo, dtype):
    failed = _failures(opinfo, dtype, [EXECUTOR])
    if not failed:
        return
    decomposed = _failures(opinfo, dtype, [DECOMPOSE_TO_PRIMS])
    planner_only = {i: message for i, message in failed.items() if i not in decomposed}
    assert not planner_only, f"{opinfo_name(opinfo)} {dtype}: samples wrong only with nvFuser's plans: {planner_only}"
