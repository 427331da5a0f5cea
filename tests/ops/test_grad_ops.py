"""Gradients of the whole op database against torch.autograd, in float64.

Every operator of the family op databases (elementwise, reductions and sorting, shapes and indexing,
linear algebra, creation and conversions) and of the nn database runs its float64 samples, and their
non-contiguous forms, under `thunder.jit` with every floating tensor input requiring grad; outputs and
the gradients of every input for a random cotangent must be torch.autograd's (`opdb.check_sample_grad`).
Operators whose backward an executor's grad_transform or torch.autograd may supply are checked that way
and with their own rules and decompositions too. Where torch defines no derivative, Thunder must refuse too
or match finite differences. Integer-only operators are not collected; for samples with nothing
differentiable (comparisons, indices, factories) the jitted op must agree that nothing requires grad.

A documented difference from eager is its own test, one sample of one operator, checked where eager is a
reference; the operator's other samples run in its main test. Below them, rules the database's samples do not reach (zeros in products,
NaN in extrema, mixed indexing, ...), against torch.autograd and finite differences.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import thunder

from . import (
    test_creation_ops,
    test_elementwise_ops,
    test_linalg_ops,
    test_nn_ops,
    test_reduction_ops,
    test_shape_ops,
)
from .opdb import (
    OpInfo,
    SampleInput,
    assert_grads_match_finite_differences,
    check_sample_grad,
    opinfo_grad_samples,
    run_grads,
    with_noncontiguous,
)

F64 = torch.float64

# family -> its op cases: `case.samples(dtype)` yields (label, fn, tensor args)
FAMILY_CASES = {
    "elementwise": [*test_elementwise_ops.UNARY_CASES, *test_elementwise_ops.BINARY_CASES,
                    *test_elementwise_ops.TERNARY_CASES],
    "reduction": [*test_reduction_ops.REDUCTION_CASES, *test_reduction_ops.SORTING_CASES],
    "shape": [*test_shape_ops.SHAPE_CASES, *test_shape_ops.JOIN_CASES, *test_shape_ops.INDEX_CASES,
              test_shape_ops.GETITEM_CASE, test_shape_ops.SETITEM_CASE],
    "linalg": test_linalg_ops.LINALG_CASES,
    "creation": [*test_creation_ops.FACTORY_CASES, *test_creation_ops.CONVERSION_CASES],
}  # fmt: skip


# -- known failures and differences ------------------------------------------------------------------------
@dataclass(frozen=True)
class Known:
    """Why a sample is set apart. skip: eager itself is not a reference there; own_rules: also check the
    sample with own rules only (False where their difference from eager is documented, not a bug)."""

    reason: str
    skip: bool = False
    own_rules: bool = True


def _both(name: str) -> tuple[str, str]:
    return name, f"{name} (non-contiguous)"


EAGER_NAN = ("eager's vectorized CPU hardtanh_backward (a contiguous input) gives 0 at NaN, its scalar kernel "
             "(the non-contiguous form, checked) and CUDA's give the gradient: eager is no reference there")  # fmt: skip
BCE_TARGET = ("with own rules, the target's gradient at x = 0 or 1 is finite (the clamped logs'); eager's, "
              "-logit(x), is infinite")  # fmt: skip

# test id -> {sample name: why}. `excluded`: not collected at all (eager is no reference for that sample);
# otherwise the sample is checked on the default path only (own_rules=False), its documented difference
# being in Thunder's own rules.
KNOWN: dict[str, dict[str, Known]] = {
    "nn-relu6": {"special values": Known(EAGER_NAN, skip=True)},
    "nn-hardtanh": {"special values": Known(EAGER_NAN, skip=True)},
    "nn-binary_cross_entropy": dict.fromkeys(_both("log(0) clamp"), Known(BCE_TARGET, own_rules=False)),
}  # fmt: skip


# -- the database ------------------------------------------------------------------------------------------
def _case_samples(case) -> Iterator[tuple[Callable, SampleInput]]:
    for label, fn, args in case.samples(F64):
        yield fn, SampleInput(args, name=label)


def _params(items: list[tuple[str, object, tuple]]) -> list:
    """For each (test id, op, dtypes), (op, which samples, own_rules): the op's main test without its known
    samples, and a test per known sample that is still checked; integer-only ops and samples for which eager
    is no reference are not collected."""
    params = []
    for op_id, op, dtypes in items:
        if not any(d.is_floating_point for d in dtypes):
            continue  # integer-only: nothing to differentiate
        known = KNOWN.get(op_id, {})
        params.append(pytest.param(op, lambda name, known=known: name not in known, True, id=op_id))
        for sample, why in known.items():
            if not why.skip:
                params.append(pytest.param(op, lambda name, sample=sample: name == sample, why.own_rules,
                                           id=f"{op_id}[{sample}]"))  # fmt: skip
    return params


def _require_something_checked(statuses: list[str]) -> None:
    assert statuses, "the operator produced no float64 sample"


FAMILY_PARAMS = _params([(f"{family}-{c.name}", c, c.dtypes) for family, cases in FAMILY_CASES.items() for c in cases])
NN_PARAMS = _params([(f"nn-{o.name}", o, o.dtypes) for o in test_nn_ops.ALL_OPS])


@pytest.mark.parametrize("case, keep, own_rules", FAMILY_PARAMS)
def test_family_op_gradients_match_torch_autograd(case, keep, own_rules):
    samples = (pair for pair in with_noncontiguous(_case_samples(case)) if keep(pair[1].name))
    _require_something_checked(run_grads(case.name, samples, own_rules=own_rules))


@pytest.mark.parametrize("opinfo, keep, own_rules", NN_PARAMS)
def test_nn_op_gradients_match_torch_autograd(opinfo: OpInfo, keep, own_rules):
    samples = opinfo_grad_samples(opinfo)
    if opinfo.noncontiguous:
        samples = with_noncontiguous(samples)
    samples = (pair for pair in samples if keep(pair[1].name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager's deprecation and broadcasting warnings
        statuses = run_grads(opinfo.name, samples, tol=opinfo.tolerance(F64), seeded=opinfo.seeded,
                             reference=opinfo.reference, own_rules=own_rules)  # fmt: skip
    _require_something_checked(statuses)


def test_every_known_failure_names_a_sample_of_the_database():
    ops = {f"{family}-{c.name}": (c, _case_samples(c)) for family, cases in FAMILY_CASES.items() for c in cases}
    ops |= {f"nn-{o.name}": (o, opinfo_grad_samples(o)) for o in test_nn_ops.ALL_OPS}
    for op_id, samples in KNOWN.items():
        assert op_id in ops, f"KNOWN names {op_id}, which is not an operator of the database"
        names = {sample.name for _, sample in with_noncontiguous(ops[op_id][1])}
        assert set(samples) - {"*"} <= names, f"KNOWN names samples {set(samples) - names} that {op_id} lacks"


# -- rules the database's samples do not reach ---------------------------------------------------------------
def _check(fn, *args, name="") -> None:
    """fn's gradients under thunder.jit against torch.autograd, with and without borrowed backwards."""
    for variant in ("torch", "own rules"):
        status = check_sample_grad(fn, SampleInput(args, name=name), variant=variant)
        assert status in ("checked", "borrowed backward"), status


def _t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


@pytest.mark.parametrize("values", [(2.0, 0.0, 3.0, 0.0, 5.0), (0.0, 2.0, 3.0), (2.0, 3.0, 0.0), (0.5, 2.0, 3.0)],
                         ids=["two zeros", "leading zero", "trailing zero", "no zero"])  # fmt: skip
def test_cumulative_and_full_products_with_zeros_have_torchs_gradient(values):
    x = _t(*values)
    _check(lambda a: torch.cumprod(a, 0), x)
    _check(lambda a: torch.prod(a), x)
    _check(lambda a: a.reshape(1, -1).expand(2, -1).prod(1), x)


def test_pow_at_zero_base_or_zero_exponent_has_torchs_gradient():
    base, exponent = _t(0.0, 0.0, 2.0, 0.0), _t(0.0, 2.0, 0.0, -1.0)
    _check(torch.pow, base, exponent)
    _check(lambda e: torch.pow(0.0, e), exponent)
    _check(lambda e: torch.pow(2.5, e), exponent)


def test_extrema_split_ties_and_pass_nan_like_torch():
    a, b = _t(1.0, math.nan, 2.0, 3.0, math.nan), _t(1.0, 0.0, math.nan, -1.0, math.nan)
    _check(torch.maximum, a, b)
    _check(torch.minimum, a, b)


def test_digamma_gradient_is_trigamma_for_negative_and_large_inputs():
    x = _t(-7.7, -2.3, -0.5, 1e-3, 0.7, 6.0, 1e3, 1e6)
    _check(torch.digamma, x)


def test_digamma_gradient_matches_finite_differences():
    x = torch.linspace(-3.7, 20.0, 17, dtype=F64).requires_grad_()
    out = thunder.jit(torch.digamma)(x)
    cotangent = torch.linspace(-1.0, 1.0, 17, dtype=F64)
    (grad,) = torch.autograd.grad(out, x, cotangent)
    assert_grads_match_finite_differences(lambda xs: torch.digamma(xs[0]), [x], [grad], lambda o: (o * cotangent).sum())


@pytest.mark.parametrize(
    "key",
    [(0, slice(None), [1, 2]), (slice(1, None), None, [3, 0]), ([1, 2], None, slice(1, 3)), ([1, 1], slice(None, None, 2)),
     (Ellipsis, [0, 0, 2]), (2, [[0], [3]], slice(None))],
    ids=["int slice list", "slice None list", "list None slice", "repeated list strided", "ellipsis list", "int 2-d list"],
)  # fmt: skip
def test_mixed_basic_and_advanced_indexing_has_torchs_gradient(key):
    _check(lambda a: a[key], torch.randn(4, 5, 6, dtype=F64), name=str(key))


def test_norm_of_a_zero_vector_has_zero_gradient():
    x = torch.cat([torch.zeros(1, 3, dtype=F64), torch.randn(1, 3, dtype=F64)])
    _check(lambda a: torch.linalg.vector_norm(a, dim=1), x)
    _check(lambda a: torch.linalg.vector_norm(a, 3, dim=1), x)


def test_torch_autograd_vjp_leaves_constant_arguments_alone():
    x, t, w = torch.randn(3, 4, dtype=F64), torch.rand(3, 4, dtype=F64), torch.rand(3, 4, dtype=F64)
    _check(lambda a: F.binary_cross_entropy_with_logits(a, t, w), x)


def test_attention_float_mask_gets_torchs_gradient():
    q, k, v = (torch.randn(2, 3, 4, 8, dtype=F64) for _ in range(3))
    _check(F.scaled_dot_product_attention, q, k, v, torch.randn(2, 1, 4, 4, dtype=F64))
