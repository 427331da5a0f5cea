"""PyTorch's OpInfo samples under `cache="symbolic values"`: every Python float of a sample (and every int that is
a value, not a dim or a size) is an input of the program, which is traced with the sample's own numbers and then
called again with NaN, +-inf, +-0.0, a negative, a large and a random value in each number's place, against eager
(tests/opinfo_numbers.py says how), whole ("torch") and decomposed into prims ("prims").

CI checks a deterministic portion: float32, CI_SAMPLES samples holding numbers per (OpInfo, executors), spread
over the OpInfo's list (first and last included). The full sweep (`THUNDER_NUMBERS_FULL=1`) checks every such
sample in float32, bfloat16 and int64. The OpInfos are split into SHARDS tests per (dtype, executors): one test
per OpInfo would have to generate every OpInfo's samples at collection to know which hold numbers.

A difference from eager fails the test unless KNOWN_DIFFERENCES below lists it with its reason: differences we
decided not to fix, never a wrong result a program could reasonably meet. A sample whose traced call raises and
raises under cache="constant values" too is not this sweep's failure (tests/test_opinfo.py checks the op itself).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import thunder
from tests.opinfo_check import is_jiterator_kernel, opinfo_name, sweep_dtypes, sweep_opinfos
from tests.opinfo_numbers import NumberOutcome, run_numbers
from tests.ops.opdb import EXECUTOR_LISTS

TEST_DEVICE_TYPE = os.environ.get("THUNDER_TEST_DEVICE", "cpu")
FULL_SWEEP = os.environ.get("THUNDER_NUMBERS_FULL", "0") == "1"
CI_SAMPLES = 2
SHARDS = 8
SWEEP_DTYPES = (torch.float32, torch.bfloat16, torch.int64) if FULL_SWEEP else (torch.float32,)


def _is_non_finite(value) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _eager_raises(fragment: str) -> Callable[[NumberOutcome], bool]:
    return lambda o: o.kind == "mismatch" and "where eager raises" in o.message and fragment in o.message


@dataclass(frozen=True)
class KnownDifference:
    """Calls of `ops` (OpInfo names) whose difference from eager we do not fix, with the reason. `executors`: the
    executor list it applies to (None: both); `matches`: which failing calls it covers."""

    ops: tuple[str, ...]
    reason: str
    matches: Callable[[NumberOutcome], bool]
    executors: str | None = None
    dtypes: tuple[torch.dtype, ...] | None = None

    def covers(self, op: str, dtype: torch.dtype, executors: str, outcome: NumberOutcome) -> bool:
        return (op in self.ops and (self.executors in (None, executors)) and (self.dtypes is None or dtype in self.dtypes)
                and self.matches(outcome))  # fmt: skip


KNOWN_DIFFERENCES = (
    KnownDifference(
        ("addmm", "addmm.decomposed", "addmv", "baddbmm", "addbmm"),
        "a NaN or infinite alpha: eager's CPU BLAS scales a factor before summing (inf * 0 is NaN in every sum that "
        "meets a zero), the decomposition scales the product; both are IEEE results of an implementation-defined "
        "order (cuBLAS differs again)",
        lambda o: o.slot.endswith("[alpha]") and _is_non_finite(o.value),
        executors="prims",
    ),
    KnownDifference(
        ("linalg.vector_norm", "norm", "masked.norm", "nn.functional.normalize", "masked.normalize"),
        "a NaN ord, or one so large that |x| ** ord overflows, where each output reduces a single element: eager "
        "copies |x| without the power (for two or more elements it overflows or gives NaN as ours does)",
        lambda o: isinstance(o.value, (int, float)) and (o.value != o.value or abs(o.value) > 1000),
        executors="prims",
    ),
    KnownDifference(
        ("linalg.vector_norm", "norm", "masked.norm", "nn.functional.normalize", "masked.normalize"),
        "an ord of magnitude below 1 (a random value): the root, a power 1 / ord, multiplies the float32 rounding "
        "of the summed powers by 1 / ord (3.6e-6 relative for ord 0.042, beyond float32's 1.3e-6)",
        lambda o: (o.kind == "mismatch" and "Tensor-likes are not close" in o.message and "nan" not in o.message
                   and isinstance(o.value, float) and 0 < abs(o.value) < 1),  # fmt: skip
        dtypes=(torch.float32,),
    ),
    KnownDifference(
        ("masked.norm", "masked.normalize", "masked.var", "masked.std"),
        "torch.masked's Python code asks isinstance(dim, int) of a dim, which a number proxy is not: the trace "
        "fails with TypeError (an error, never a wrong result; cache='constant values' runs it)",
        lambda o: o.kind == "error" and "'IntegerProxy' object is not iterable" in o.message,
    ),
    KnownDifference(
        ("logspace", "logspace.tensor_overload"),
        "steps=1 with a base whose power of start is NaN, infinite or beyond the dtype: eager's kernel fills its one "
        "element by a checked conversion and raises, ours converts (inf, or the integer conversion's value)",
        _eager_raises("without overflow"),
    ),
    KnownDifference(
        ("nn.functional.scaled_dot_product_attention",),
        "a non-zero dropout_p on the CPU: eager's flash kernel refuses every dropout_p but 0 (NaN and negatives "
        "included) where its math kernel is not chosen; ours draws the dropout as eager does on CUDA",
        _eager_raises("do not support dropout"),
        executors="prims",
    ),
    KnownDifference(
        ("kthvalue",),
        "ties among integers: which index of equal values kthvalue returns is not specified by torch; the "
        "decomposition picks another (the values agree)",
        lambda o: o.kind == "mismatch" and "item [1]" in o.message,
        executors="prims",
        dtypes=(torch.int64,),
    ),
    KnownDifference(
        ("addmm", "addmm.decomposed", "addmv", "baddbmm", "addbmm", "linspace", "linspace.tensor_overload",
         "round.decimals_0", "round.decimals_3", "round.decimals_neg_3"),
        "bfloat16 rounding of the decomposition (a matrix product rounded to bfloat16 before it is scaled, a "
        "spacing step rounded before it is added) where eager's fused kernel rounds once; seen with the sample's "
        "own numbers too",
        lambda o: o.kind == "mismatch" and "Tensor-likes are not close" in o.message and "nan" not in o.message,
        executors="prims",
        dtypes=(torch.bfloat16,),
    ),
    KnownDifference(
        ("addbmm",),
        "float32 rounding of the decomposed batch accumulation (up to about 3e-5 relative on these samples' "
        "values), with any alpha and beta, the sample's own included",
        lambda o: o.kind == "mismatch" and "Tensor-likes are not close" in o.message and "nan" not in o.message,
        executors="prims",
        dtypes=(torch.float32,),
    ),
)


def _params():
    for dtype in SWEEP_DTYPES:
        for executors in EXECUTOR_LISTS:
            for shard in range(SHARDS):
                yield pytest.param(dtype, executors, shard, id=f"{str(dtype)[6:]}-{executors}-{shard}of{SHARDS}")


def _unexplained(name: str, dtype, executors: str, outcomes: list[NumberOutcome]):
    for o in outcomes:
        if o.kind not in ("error", "mismatch"):
            continue
        if any(known.covers(name, dtype, executors, o) for known in KNOWN_DIFFERENCES):
            continue
        yield o


@pytest.mark.parametrize("dtype, executors, shard", _params())
def test_numbers_as_program_inputs_match_eager_for_special_values(dtype, executors, shard, device):
    limit = None if FULL_SWEEP else CI_SAMPLES
    failures, calls = [], 0
    for position, opinfo in enumerate(sweep_opinfos()):
        if position % SHARDS != shard or dtype not in sweep_dtypes(opinfo, device.type):
            continue
        if device.type == "cuda" and is_jiterator_kernel(opinfo):
            continue  # launches on the proxies' absent storage (see tests/test_opinfo.py)
        name = opinfo_name(opinfo)
        outcomes = list(run_numbers(opinfo, str(device), dtype, executors, limit))
        calls += len(outcomes)
        failures += [(name, o) for o in _unexplained(name, dtype, executors, outcomes)]
    details = "\n".join(f"{name} sample {o.sample} {o.slot or '(traced)'}={o.value!r}: {o.kind}: {o.message[:300]}"
                        for name, o in failures[:12])  # fmt: skip
    assert calls, "no sample of this shard holds a number: the sweep checks nothing here"
    assert not failures, f"{len(failures)} of {calls} calls differ from eager:\n{details}"


# Regressions the sweep found: each program traced with the first numbers, then called with the others, against
# eager (an error where eager raises, eager's values, dtype and shape where it does not).


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as error:  # eager and the program must both raise (the messages may differ)
        return error


def _assert_calls_match_eager(fn, calls: list[tuple], executors: str) -> None:
    jitted = thunder.jit(fn, cache="symbolic values", executors=EXECUTOR_LISTS[executors])
    for args in calls:
        expected, actual = _outcome(fn, *args), _outcome(jitted, *args)
        if isinstance(expected, Exception) or isinstance(actual, Exception):
            assert isinstance(expected, Exception) and isinstance(actual, Exception), (args, expected, actual)
            continue
        torch.testing.assert_close(actual, expected, equal_nan=True, msg=lambda m, args=args: f"{args}: {m}")


EXECUTORS = list(EXECUTOR_LISTS)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_round_with_decimals_beyond_a_double_gives_eager_nans(executors):
    x = torch.randn(6, dtype=torch.float64) * 100
    calls = [(x, 3), (x, 1000003), (x, -1000003), (x, 308), (x, -309), (x, 0), (x, 2)]
    _assert_calls_match_eager(lambda x, d: torch.round(x, decimals=d), calls, executors)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_arguments_eager_refuses_are_refused_when_they_arrive_as_numbers(executors):
    x, y = torch.randn(4, 5), torch.randn(4, 5)
    values = [0.5, math.nan, -2.5, -math.inf, 0.0, -0.0, 1.0, 2.0]
    fns = [
        lambda x, y, v: torch.isclose(x, y, rtol=v),
        lambda x, y, v: torch.isclose(x, y, atol=v),
        lambda x, y, v: F.cosine_similarity(x, y, eps=v),
        lambda x, y, v: F.smooth_l1_loss(x, y, beta=v),
        lambda x, y, v: F.dropout(x, v, training=False),
        lambda x, y, v: F.batch_norm(x, None, None, training=True, eps=v),
    ]
    for fn in fns:
        _assert_calls_match_eager(fn, [(x, y, v) for v in values], executors)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_integer_arange_truncates_float_bounds_first_as_eager(executors):
    dtype = torch.int64
    calls = [(0.0, -8.000001, -4.0), (-0.9, 2.1, 2.0), (0.1, 1.1, 1.0), (0.1, 0.0, 1.0), (0.5, 7.9, 2.5),
             (0.0, 3.0, math.inf), (0.0, 3.0, math.nan), (0.0, math.inf, 1.0), (0.0, 3.0, 0.0), (2.0, 1e30, 1.0)]
    _assert_calls_match_eager(lambda a, b, c: torch.arange(a, b, c, dtype=dtype), calls, executors)
    float_calls = [(0.0, 3.0, 1.0), (0.0, -3.0, math.inf), (0.0, 3.0, math.inf), (0.0, -3.0, 1.0), (0.0, 3.0, -0.0)]
    _assert_calls_match_eager(lambda a, b, c: torch.arange(a, b, c), float_calls, executors)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_integer_linspace_and_logspace_convert_their_ends_as_eager(executors):
    calls = [(-2.0, 3.0, 5), (0.3, 2.7, 5), (-2.7, 2.7, 7), (math.nan, 3.0, 5), (0.0, math.inf, 5),
             (math.inf, 3.0, 1), (0.0, math.nan, 1), (math.nan, 1.0, 0)]
    _assert_calls_match_eager(lambda a, b, n: torch.linspace(a, b, n, dtype=torch.int64), calls, executors)
    _assert_calls_match_eager(lambda a, b, n: torch.logspace(a, b, n, base=2.0, dtype=torch.int64), calls, executors)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_integer_hardtanh_refuses_bounds_beyond_int64_as_eager(executors):
    x = torch.arange(-3, 4)
    calls = [(-1.5, 2.5), (-0.5, 0.7), (math.nan, 2.0), (-1e30, 2.0), (-2.0, math.inf), (-2.0, 3.0)]
    _assert_calls_match_eager(lambda lo, hi: F.hardtanh(x, lo, hi), calls, executors)


@pytest.mark.parametrize("executors", EXECUTORS)
def test_integer_addmm_family_truncates_float_alpha_and_beta_as_eager(executors):
    m, v = torch.randint(-5, 5, (4, 3)), torch.randint(-5, 5, (3,))
    bias, b = torch.randint(-5, 5, (4,)), torch.randint(-5, 5, (2, 4, 3))
    calls = [(0.5, 2.7), (1.0, 1.0), (-1.9, 0.2), (3.0, -2.0)]
    _assert_calls_match_eager(lambda al, be: torch.addmv(bias, m, v, alpha=al, beta=be), calls, executors)
    _assert_calls_match_eager(lambda al, be: torch.baddbmm(b @ b.mT, b, b.mT, alpha=al, beta=be), calls, executors)
