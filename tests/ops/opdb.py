"""The op database's shared machinery: operator records, sample inputs, and the runner that checks an
operator under `thunder.jit` against torch eager.

An `OpInfo` names a torch callable, the dtypes it supports, how close results must be, and a generator
of `SampleInput`s. `run_opinfo(opinfo, dtype)` calls the op through `thunder.jit(lambda *a, **k: op(*a,
**k))` on every sample, and on a non-contiguous copy of every sample, twice: with the default executors
(the torch executor runs each `thunder.torch` symbol whole, through the torch callable it mirrors), and
decomposed into prims (what every other executor sees). Each run must give eager's values, dtypes and
shapes, leave mutated arguments as eager leaves them, and agree with the shapes and dtypes the trace's
metas inferred; the acquired trace must contain the op's symbol and, for native ops, no fallback.

Test modules build their lists of `OpInfo`s and parametrize over `opinfo_params(opinfos)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

import pytest
import torch
from torch.testing import make_tensor

import thunder
from thunder.core.pytree import tree_flatten, tree_map
from thunder.extend import OperatorExecutor


@dataclass
class SampleInput:
    """One call of an op: `op(*args, **kwargs)`.

    name: shown when the sample fails. raises: the exception eager raises for it (the jitted op must raise
    too). expect_symbol: False where the op is an identity for this sample and records nothing.
    """

    args: tuple
    kwargs: dict = field(default_factory=dict)
    name: str = ""
    raises: type[BaseException] | None = None
    expect_symbol: bool = True


@dataclass
class OpInfo:
    """An operator of the database.

    op: the torch callable, called as `op(*sample.args, **sample.kwargs)` in eager and under thunder.jit.
    sample_inputs: `(dtype, device) -> iterable of SampleInput`.
    tolerances: dtype -> {"rtol": ..., "atol": ...}; torch.testing.assert_close's defaults otherwise.
    symbol: the `thunder.torch` symbol ("ltorch.softmax") the acquired trace must contain; None skips it.
    native: the op must not take the meta-kernel fallback path.
    decomposes: also run the op decomposed into prims.
    noncontiguous: also run each sample with non-contiguous copies of its tensors.
    seeded: reseed torch's RNG before every run, so that a random op draws what eager drew.
    reference: what eager runs, when it is not `op` (e.g. an op with no eager equivalent).
    """

    name: str
    op: Callable
    sample_inputs: Callable[[torch.dtype, torch.device], Iterable[SampleInput]]
    dtypes: tuple = (torch.float32, torch.float64)
    tolerances: dict = field(default_factory=dict)
    symbol: str | None = None
    native: bool = True
    decomposes: bool = True
    noncontiguous: bool = True
    seeded: bool = False
    reference: Callable | None = None

    def tolerance(self, dtype: torch.dtype) -> dict:
        return dict(self.tolerances.get(dtype, {}))


class DecomposeToPrims(OperatorExecutor):
    """Claims every symbol that has a decomposition and lowers it to its subsymbols, so that only prims
    (and fallback operators, which have no decomposition) reach the torch executor."""

    def __init__(self):
        super().__init__("decompose_to_prims")

    def can_execute(self, bsym) -> bool:
        return not bsym.sym.is_prim and bool(bsym.subsymbols)

    def lower(self, bsym) -> list:
        subsymbols = list(bsym.subsymbols)
        for sub in subsymbols:
            sub.tag = sub.tag or bsym.tag
        return subsymbols


DECOMPOSE_TO_PRIMS = DecomposeToPrims()
# label -> the `executors=` argument of thunder.jit
EXECUTOR_LISTS: dict[str, list | None] = {"torch": None, "prims": [DECOMPOSE_TO_PRIMS]}


# -- sample helpers ------------------------------------------------------------------------------------
def make(shape, dtype: torch.dtype, device="cpu", low=None, high=None, **kwargs) -> torch.Tensor:
    """A random tensor (torch.testing.make_tensor); `low`/`high` are ignored for bool."""
    if dtype == torch.bool:
        return make_tensor(shape, dtype=dtype, device=device, **kwargs)
    return make_tensor(shape, dtype=dtype, device=device, low=low, high=high, **kwargs)


def noncontiguous_copy(t: torch.Tensor) -> torch.Tensor:
    """A tensor with t's values whose last dim is strided (as make_tensor(noncontiguous=True) does)."""
    if t.ndim == 0 or t.numel() <= 1:
        return t.clone()
    return t.repeat_interleave(2, dim=-1)[..., ::2]


def _has_noncontiguous_form(sample: SampleInput) -> bool:
    leaves, _ = tree_flatten((sample.args, sample.kwargs))
    return any(isinstance(x, torch.Tensor) and x.ndim > 0 and x.shape[-1] > 1 for x in leaves)


def noncontiguous_sample(sample: SampleInput) -> SampleInput:
    convert = lambda x: noncontiguous_copy(x) if isinstance(x, torch.Tensor) else x
    return replace(sample, args=tree_map(convert, sample.args), kwargs=tree_map(convert, sample.kwargs),
                   name=f"{sample.name} (non-contiguous)")  # fmt: skip


def _clone(x):
    """Tensors cloned with their strides (an in-place op must not disturb the next run)."""
    if isinstance(x, torch.Tensor):
        out = torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
        out.copy_(x)
        return out
    return x


def opinfo_params(opinfos: Iterable[OpInfo]) -> list:
    """pytest parameters (opinfo, dtype), one per supported dtype, with readable ids."""
    return [
        pytest.param(o, dtype, id=f"{o.name}-{str(dtype).removeprefix('torch.')}") for o in opinfos for dtype in o.dtypes
    ]


# -- the runner ----------------------------------------------------------------------------------------
def _assert_same(actual, expected, tol: dict, what: str) -> None:
    actual_leaves, actual_spec = tree_flatten(actual)
    expected_leaves, expected_spec = tree_flatten(expected)
    assert actual_spec == expected_spec, f"{what}: structure {actual_spec} != eager's {expected_spec}"
    for a, e in zip(actual_leaves, expected_leaves):
        if isinstance(e, torch.Tensor):
            assert isinstance(a, torch.Tensor), f"{what}: got {type(a).__name__}, eager gave a tensor"
            torch.testing.assert_close(a, e, equal_nan=True, msg=lambda m: f"{what}: {m}", **tol)
        else:
            assert a == e or a != a and e != e, f"{what}: {a!r} != eager's {e!r}"


def _call(fn, sample: SampleInput, seeded: bool):
    args, kwargs = tree_map(_clone, sample.args), tree_map(_clone, sample.kwargs)
    if seeded:
        torch.manual_seed(0)
    return fn(*args, **kwargs), (args, kwargs)


def check_sample(opinfo: OpInfo, sample: SampleInput, dtype: torch.dtype) -> None:
    """Runs one sample in eager and under thunder.jit (every executor list) and compares."""
    op = opinfo.op
    reference = opinfo.reference or op
    executor_lists = EXECUTOR_LISTS if opinfo.decomposes else {"torch": None}
    if sample.raises is not None:
        with pytest.raises(sample.raises):
            _call(reference, sample, opinfo.seeded)
        for executors in executor_lists.values():
            with pytest.raises(Exception):  # the jitted op must fail too; its error may be more specific
                _call(thunder.jit(lambda *a, **k: op(*a, **k), executors=executors), sample, opinfo.seeded)
        return
    expected, eager_inputs = _call(reference, sample, opinfo.seeded)
    tol = opinfo.tolerance(dtype)
    for label, executors in executor_lists.items():
        jfn = thunder.jit(lambda *a, **k: op(*a, **k), executors=executors)
        actual, inputs = _call(jfn, sample, opinfo.seeded)
        _assert_same(actual, expected, tol, f"result ({label})")
        _assert_same(inputs, eager_inputs, tol, f"inputs after the call ({label})")
        acquired = thunder.last_traces(jfn)[0]
        for proxy, e in zip(acquired.output, tree_flatten(expected)[0]):
            if isinstance(e, torch.Tensor):
                assert (tuple(proxy.shape), proxy.dtype) == (tuple(e.shape), e.dtype), "the meta disagrees with eager"
        if opinfo.symbol is not None and sample.expect_symbol:
            assert f"{opinfo.symbol}(" in str(acquired), f"{opinfo.symbol} is not in the acquired trace:\n{acquired}"
        if opinfo.native:
            assert not thunder.fallback_ops(jfn), f"ops took the fallback path: {thunder.fallback_ops(jfn)}"


def samples_with_variants(opinfo: OpInfo, dtype: torch.dtype, device="cpu") -> Iterator[SampleInput]:
    for sample in opinfo.sample_inputs(dtype, torch.device(device)):
        yield sample
        if opinfo.noncontiguous and sample.raises is None and _has_noncontiguous_form(sample):
            yield noncontiguous_sample(sample)


def run_opinfo(opinfo: OpInfo, dtype: torch.dtype, device="cpu") -> None:
    """Checks every sample of `opinfo` (and its non-contiguous form) at `dtype` against eager."""
    torch.manual_seed(0)
    for sample in samples_with_variants(opinfo, dtype, device):
        try:
            check_sample(opinfo, sample, dtype)
        except Exception as e:
            raise AssertionError(f"{opinfo.name} [{dtype}] sample {sample.name!r}: {e}") from e
