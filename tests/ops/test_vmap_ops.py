"""vmap over the op database's samples (tests/ops), with random in_dims, against eager run per example.

The reference is the definition of vmap: eager on each example, stacked at out_dims 0 (torch.func.vmap
itself departs from eager in places, e.g. argmin(x, keepdim=True) on a matrix gives (1,) per example).

Each float64 sample of a family becomes a batch of 3 perturbed copies stacked at a random dimension of
each tensor argument (or left unbatched). Samples reaching an operator without a batching rule must
fail with the error naming it; a family none of whose samples is batchable is skipped, naming them.
"""

from __future__ import annotations

import random

import pytest
import torch

import thunder

from .test_elementwise_ops import BINARY_CASES, TERNARY_CASES, UNARY_CASES
from .test_nn_ops import ACTIVATIONS, LOSSES, NORMS, OTHERS, SIMILARITY, SOFTMAX
from .test_reduction_ops import REDUCTION_CASES, SORTING_CASES
from .test_shape_ops import INDEX_CASES, JOIN_CASES, SHAPE_CASES

CASES = [*UNARY_CASES, *BINARY_CASES, *TERNARY_CASES, *REDUCTION_CASES, *SORTING_CASES, *SHAPE_CASES, *JOIN_CASES,
         *INDEX_CASES]
BATCH = 3


def _batch_arg(a, rng: random.Random, g: torch.Generator):
    if not isinstance(a, torch.Tensor) or rng.random() < 0.25:
        return a, None
    dim = rng.randint(0, a.ndim)
    copies = [a]
    for _ in range(BATCH - 1):
        if a.dtype.is_floating_point:
            copies.append(a + 0.01 * torch.randn(a.shape, dtype=a.dtype, generator=g))
        else:
            copies.append(a.clone())
    return torch.stack(copies, dim), dim


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _per_example(fn, values, dims):
    results = []
    for i in range(BATCH):
        example = [v if d is None else v.select(d, i) for v, d in zip(values, dims)]
        results.append(_as_tuple(fn(*example)))
    if not all(isinstance(r, torch.Tensor) for r in results[0]):
        return None
    return tuple(torch.stack([r[k] for r in results]) for k in range(len(results[0])))


def _check_sample(fn, args, kwargs, what: str, rng: random.Random, g: torch.Generator, missing: set) -> bool:
    """Compares one batched sample; False where it was not compared (nothing batched, eager rejects it, or a
    batching rule is missing, which must then be the error naming the operator)."""
    batched = [_batch_arg(a, rng, g) for a in args]
    if all(d is None for _, d in batched):
        return False
    values, dims = [b for b, _ in batched], tuple(d for _, d in batched)

    def call(*a):
        return fn(*a, **kwargs)

    try:
        expected = _per_example(call, values, dims)
    except Exception:  # eager rejects this sample: nothing to compare with
        return False
    if expected is None:
        return False
    try:
        ours = _as_tuple(thunder.vmap(call, in_dims=dims)(*values))
    except NotImplementedError as e:
        if "writes to a tensor in place" in str(e):  # e.g. batch_norm updating running statistics
            missing.add("in-place writes")
            return False
        assert "no batching rule for the operator" in str(e), f"{what}: {e}"
        missing.add(str(e).split("operator ")[1].split(" ")[0])
        return False
    assert len(ours) == len(expected), what
    message = f"{what} in_dims={dims}"
    for o, e in zip(ours, expected):
        torch.testing.assert_close(o, e, equal_nan=True, msg=lambda m: f"{message}: {m}")
    return True


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_vmap_matches_eager(case):
    if torch.float64 not in case.dtypes:
        pytest.skip(f"{case.name} has no float64 samples")
    torch.manual_seed(0)
    rng, g = random.Random(case.name), torch.Generator(torch.get_default_device()).manual_seed(0)
    missing: set = set()
    compared = sum(_check_sample(fn, args, {}, f"{case.name}: {label}", rng, g, missing)
                   for label, fn, args in case.samples(torch.float64))  # fmt: skip
    if compared == 0:
        pytest.skip(f"{case.name}: no sample batchable; missing rules: {sorted(missing) or 'none reached'}")


NN_OPINFOS = [o for o in (*ACTIVATIONS, *SOFTMAX, *NORMS, *OTHERS, *LOSSES, *SIMILARITY) if not o.seeded]


@pytest.mark.parametrize("opinfo", NN_OPINFOS, ids=lambda o: o.name)
def test_vmap_nn_ops_match_eager(opinfo):
    dtype = torch.float64 if torch.float64 in opinfo.dtypes else opinfo.dtypes[0]
    torch.manual_seed(0)
    rng, g = random.Random(opinfo.name), torch.Generator(torch.get_default_device()).manual_seed(0)
    missing: set = set()
    compared = 0
    for sample in opinfo.sample_inputs(dtype, "cpu"):
        if sample.raises is None:
            what = f"{opinfo.name}: {sample.name}"
            compared += _check_sample(opinfo.op, sample.args, sample.kwargs, what, rng, g, missing)
    if compared == 0:
        pytest.skip(f"{opinfo.name}: no sample batchable; missing rules: {sorted(missing) or 'none reached'}")
