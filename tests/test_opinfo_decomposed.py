"""Every OpInfo of PyTorch's `op_db` with each operation decomposed into prims (`DECOMPOSE_TO_PRIMS`), against
eager: what a fusion executor (nvFuser) computes when it takes a composite operation's decomposition, or part of
it, instead of the torch executor running the operation whole (tests/test_opinfo.py checks that).

CI checks a deterministic portion: in float32, 2 samples spread over each OpInfo's list, forward and gradients;
in bfloat16, int64 and bool, the first sample, forward. The whole sweep: `python3 -m tests.opinfo_check
--decomposed --grad --dtypes float32,float64,bfloat16,float16,complex64,int64,int32,bool` (tests/README.md).

A failing sample must be an expected failure of tests/opinfo_expected_failures.py (an unsupported feature that
fails the same way whole), or a difference of a decomposition listed below with its reason: values only (rounding,
or which of tied elements an index names), never a dtype, shape or error.
"""

from __future__ import annotations

import os

import pytest
import torch

from tests.opinfo_check import opinfo_name, opinfo_params, run_opinfo, skip_jiterator_on_cuda
from tests.opinfo_expected_failures import expected_failure
from tests.ops.opdb import DECOMPOSE_TO_PRIMS

TEST_DEVICE_TYPE = os.environ.get("THUNDER_TEST_DEVICE", "cpu")
PORTION = {torch.float32: (2, True), torch.bfloat16: (1, False), torch.int64: (1, False), torch.bool: (1, False)}

# (OpInfo, dtype) -> why the decomposition's values differ from eager's; such a pair passes if each of its failures
# is a value mismatch ("Tensor-likes are not close/equal")
VALUE_DIFFERENCES = {
    ("addbmm", torch.float32): "the product and the sum round separately; torch's addmm kernel accumulates into the "
                               "bias (2e-5 in float32); the fusion executors leave addmm whole where they can",
    ("addbmm", torch.bfloat16): "the same, with the bfloat16 product rounded before the sum",
    ("baddbmm", torch.bfloat16): "the same, with the bfloat16 product rounded before the sum",
    ("linspace", torch.bfloat16): "eager's CPU kernel steps in bfloat16 arithmetic; the decomposition in float64, "
                                  "rounded once (1 ulp at some elements)",
    ("linspace.tensor_overload", torch.bfloat16): "as linspace",
    ("logcumsumexp", torch.float32): "samples with values of 1e4: eager's and the decomposition's gradients are both "
                                     "1e-3 away from float64's, in different places",
    ("kthvalue", torch.int64): "among tied values, eager's index is the one its quickselect meets (not specified); "
                               "the decomposition sorts stably and names another of the tied elements",
}  # fmt: skip


@pytest.mark.parametrize("opinfo, dtype", opinfo_params(TEST_DEVICE_TYPE, PORTION))
def test_decomposed_op_matches_eager(opinfo, dtype, device):
    name = opinfo_name(opinfo)
    skip_jiterator_on_cuda(opinfo, device)
    limit, grad = PORTION[dtype]
    outcomes = list(run_opinfo(opinfo, str(device), dtype, grad, limit, executors=[DECOMPOSE_TO_PRIMS]))
    failed = [o for o in outcomes if o.kind in ("error", "mismatch")]
    entry = expected_failure(name, dtype, device.type, grad)
    if entry is not None:
        failed = [o for o in failed if not entry.excuses(o.kind, o.message)]
    if (name, dtype) in VALUE_DIFFERENCES:
        failed = [o for o in failed if not (o.kind == "mismatch" and "Tensor-likes are not " in o.message)]
    details = "\n".join(f"sample {o.index}: {o.kind}: {o.message[:600]}" for o in failed[:5])
    assert not failed, f"{name} {dtype} decomposed: {len(failed)} of {len(outcomes)} samples fail:\n{details}"
