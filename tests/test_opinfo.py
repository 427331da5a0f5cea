"""Every OpInfo of PyTorch's `op_db` (about 700 operators and variants, with the sample inputs PyTorch's own
tests use) under `thunder.jit` against torch eager: forward values, and gradients for a fixed random cotangent
(tests/opinfo_check.py says what is compared and how).

One test per (OpInfo, dtype) for every dtype the OpInfo supports on the test device among float32, float64,
bfloat16, float16, complex64, int64, int32 and bool. The full sweep (`THUNDER_OPINFO_FULL=1`) checks every
sample, forward and gradients, in every dtype; it takes too long for CI (tests/README.md has the times), so
by default each test checks a deterministic portion: in float32, CI_FLOAT32_SAMPLES samples spread evenly
over the OpInfo's list (first and last included), forward and gradients; in the other dtypes,
CI_OTHER_DTYPE_SAMPLES samples, forward only. `--device cuda` (tests/conftest.py) runs the same tests on CUDA.

A failing (OpInfo, dtype) must be in tests/opinfo_expected_failures.py, with an error that names what is not
supported; a wrong result is never expected.
"""

from __future__ import annotations

import os

import pytest
import torch

from tests.opinfo_check import opinfo_name, run_opinfo, sweep_dtypes, sweep_opinfos
from tests.opinfo_expected_failures import expected_failure

TEST_DEVICE_TYPE = os.environ.get("THUNDER_TEST_DEVICE", "cpu")
FULL_SWEEP = os.environ.get("THUNDER_OPINFO_FULL", "0") == "1"
CI_FLOAT32_SAMPLES = 4
CI_OTHER_DTYPE_SAMPLES = 1


def _gradients_checked(dtype: torch.dtype) -> bool:
    """CI checks gradients in float32; the full sweep in every differentiable dtype."""
    return FULL_SWEEP or dtype == torch.float32


def _sample_limit(dtype: torch.dtype) -> int | None:
    if FULL_SWEEP:
        return None
    return CI_FLOAT32_SAMPLES if dtype == torch.float32 else CI_OTHER_DTYPE_SAMPLES


def _params():
    for opinfo in sweep_opinfos():
        for dtype in sweep_dtypes(opinfo, TEST_DEVICE_TYPE):
            yield pytest.param(opinfo, dtype, id=f"{opinfo_name(opinfo)}-{str(dtype).removeprefix('torch.')}")


@pytest.mark.parametrize("opinfo, dtype", _params())
def test_op_matches_eager_on_every_sample(opinfo, dtype, device):
    name = opinfo_name(opinfo)
    entry = expected_failure(name, dtype, device.type)
    outcomes = list(run_opinfo(opinfo, str(device), dtype, _gradients_checked(dtype), _sample_limit(dtype)))
    failed = [outcome for outcome in outcomes if outcome.kind in ("error", "mismatch")]
    if entry is None:
        details = "\n".join(f"sample {o.index}: {o.kind}: {o.message[:600]}" for o in failed[:5])
        assert not failed, f"{name} {dtype}: {len(failed)} of {len(outcomes)} samples fail:\n{details}"
        return
    if not failed and not FULL_SWEEP:
        # the portion missed the entry's samples: the entry stands while some sample of the whole list fails
        remaining = run_opinfo(opinfo, str(device), dtype, _gradients_checked(dtype))
        failed = next(([o] for o in remaining if o.kind in ("error", "mismatch")), [])
    assert failed, (
        f"{name} {dtype} passes every sample now: remove its entry from tests/opinfo_expected_failures.py "
        f"(reason given: {entry.reason})"
    )
    unexplained = [o for o in failed if not entry.excuses(o.kind, o.message)]
    details = "\n".join(f"sample {o.index}: {o.kind}: {o.message[:600]}" for o in unexplained[:5])
    assert not unexplained, (
        f"{name} {dtype}: {len(unexplained)} samples fail other than as tests/opinfo_expected_failures.py says "
        f"(an error matching {entry.message!r}: {entry.reason}):\n{details}"
    )
