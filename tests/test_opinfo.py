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

import thunder
from tests.opinfo_check import opinfo_name, opinfo_params, run_opinfo, skip_jiterator_on_cuda
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


@pytest.mark.parametrize("opinfo, dtype", opinfo_params(TEST_DEVICE_TYPE))
def test_op_matches_eager_on_every_sample(opinfo, dtype, device):
    name = opinfo_name(opinfo)
    # a jiterator kernel launches from C++ on the proxies' (absent) storage, bypassing __torch_function__: an illegal
    # memory access that poisons the CUDA context for every later test of the process (issue #26)
    skip_jiterator_on_cuda(opinfo, device)
    entry = expected_failure(name, dtype, device.type, _gradients_checked(dtype))
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


# Regressions the sweep found, checked on every run whatever portion of the samples CI checks.


def _assert_matches_eager_with_grads(fn, *inputs):
    jit_inputs = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    expected, actual = fn(*inputs), thunder.jit(fn)(*jit_inputs)
    torch.testing.assert_close(actual, expected)
    differentiable = [t for t in inputs if t.requires_grad]
    cotangent = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, differentiable, cotangent, allow_unused=True)
    actual_grads = torch.autograd.grad(actual, [t for t in jit_inputs if t.requires_grad], cotangent, allow_unused=True)
    assert [g is None for g in actual_grads] == [g is None for g in expected_grads]
    torch.testing.assert_close([g for g in actual_grads if g is not None], [g for g in expected_grads if g is not None])


def test_cat_gives_legacy_empty_tensors_a_gradient_and_their_dtype():
    empty, matrix = torch.randn(0, dtype=torch.float64, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    _assert_matches_eager_with_grads(lambda a, b: torch.cat([a, b], dim=1), empty, matrix)
    _assert_matches_eager_with_grads(lambda a, b: torch.cat([a, b]), empty, torch.randn(0, requires_grad=True))


def test_gather_accepts_an_empty_index_of_another_rank():
    index = torch.empty(2, 0, dtype=torch.long)
    _assert_matches_eager_with_grads(lambda a: torch.gather(a, 0, index), torch.randn(5, requires_grad=True))
    _assert_matches_eager_with_grads(lambda a: torch.gather(a, 0, index), torch.randn((), requires_grad=True))


def test_take_along_dim_counts_negative_indices_from_the_end():
    indices = torch.tensor([[-1, 0, -3]])
    for dim in (1, -1):
        _assert_matches_eager_with_grads(
            lambda a, dim=dim: torch.take_along_dim(a, indices, dim), torch.randn(4, 5, requires_grad=True)
        )


def test_index_put_with_a_boolean_mask_names_the_data_dependent_shape():
    a, mask = torch.randn(3, 4), torch.randn(3, 4) > 0
    with pytest.raises(NotImplementedError, match="index_put with a boolean mask: .*data-dependent shape"):
        thunder.jit(lambda a, v: torch.index_put(a, (mask,), v))(a, torch.randn(()))


def test_einsum_of_one_integer_operand_sums_to_int64_as_eager():
    f = thunder.jit(lambda equation, x: torch.einsum(equation, x))
    for dtype in (torch.int32, torch.bool, torch.float16):
        for equation, shape in (("i->", (4,)), ("ii->", (3, 3)), ("ii->i", (3, 3)), ("ij->j", (2, 3))):
            x = torch.ones(shape, dtype=dtype)
            torch.testing.assert_close(f(equation, x), torch.einsum(equation, x))
