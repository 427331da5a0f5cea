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

import inspect
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from unittest import mock

import pytest
import torch
from torch.testing import make_tensor

import thunder
import thunder.transforms.autodiff as autodiff
from thunder.core.pytree import tree_flatten, tree_map, tree_unflatten
from thunder.extend import OperatorExecutor

# the device the suite runs on (tests/conftest.py's --device), known at collection
TEST_DEVICE = os.environ.get("THUNDER_TEST_DEVICE", "cpu")
LOW_PRECISION = (torch.bfloat16, torch.float16)
# low-precision floats: decompositions round differently than the kernels they are compared with
LOW_PRECISION_TOLERANCE = {"atol": 2e-2, "rtol": 2e-2}


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
        return dict(self.tolerances.get(dtype, LOW_PRECISION_TOLERANCE if dtype in LOW_PRECISION else {}))


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
def make(shape, dtype: torch.dtype, device=None, low=None, high=None, **kwargs) -> torch.Tensor:
    """A random tensor (torch.testing.make_tensor) on `device`, by default the test's (--device);
    `low`/`high` are ignored for bool."""
    device = torch.get_default_device() if device is None else device
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


def dtypes_on_test_device(dtypes: tuple) -> tuple:
    """The dtypes an op's tests run at on the test device: on CUDA an op tested in bfloat16 is tested in float16
    too (CUDA kernels support both wherever they support one; CPU float16 kernels are patchy)."""
    if TEST_DEVICE == "cuda" and torch.bfloat16 in dtypes and torch.float16 not in dtypes:
        return (*dtypes, torch.float16)
    return tuple(dtypes)


def opinfo_params(opinfos: Iterable[OpInfo]) -> list:
    """pytest parameters (opinfo, dtype), one per supported dtype, with readable ids."""
    return [
        pytest.param(o, dtype, id=f"{o.name}-{str(dtype).removeprefix('torch.')}")
        for o in opinfos
        for dtype in dtypes_on_test_device(o.dtypes)
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
    # a seeded op compared whole runs on the core's executors: a fusion executor (nvFuser, the CUDA default) draws
    # from its own random stream, reproducible under the seed but not eager's values (its package tests that)
    executor_lists = EXECUTOR_LISTS if opinfo.decomposes else {"torch": [] if opinfo.seeded else None}
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


def samples_with_variants(opinfo: OpInfo, dtype: torch.dtype, device=None) -> Iterator[SampleInput]:
    device = torch.get_default_device() if device is None else torch.device(device)
    for sample in opinfo.sample_inputs(dtype, device):
        yield sample
        if opinfo.noncontiguous and sample.raises is None and _has_noncontiguous_form(sample):
            yield noncontiguous_sample(sample)


def run_opinfo(opinfo: OpInfo, dtype: torch.dtype, device=None) -> None:
    """Checks every sample of `opinfo` (and its non-contiguous form) at `dtype` against eager, on `device` (by
    default the test's, see tests/conftest.py)."""
    torch.manual_seed(0)
    for sample in samples_with_variants(opinfo, dtype, device):
        try:
            check_sample(opinfo, sample, dtype)
        except Exception as e:
            raise AssertionError(f"{opinfo.name} [{dtype}] sample {sample.name!r}: {e}") from e


# -- gradients -----------------------------------------------------------------------------------------
@contextmanager
def own_rules_only():
    """Differentiates every symbol by its grad rule or its decomposition: the executors' grad_transforms (the
    torch executor's aten backward kernels, sdpa's attention backward) and autodiff's table of symbols
    differentiated through torch.autograd (TORCH_VJP) are set aside, so that both backward paths of those
    symbols can be checked. (Fallback operators, which have no decomposition, still go through torch.)"""
    forward_and_backward = autodiff.forward_and_backward
    without_executors = lambda trace, executors=(): forward_and_backward(trace, ())
    with (
        mock.patch.object(autodiff, "TORCH_VJP", {}),
        mock.patch.object(autodiff, "forward_and_backward", without_executors),
    ):
        yield


# label -> (the `executors=` argument of thunder.jit, whether symbols are differentiated by their own rules only)
GRAD_VARIANTS: dict[str, tuple[list | None, bool]] = {
    "torch": (None, False),
    "own rules": ([DECOMPOSE_TO_PRIMS], True),
}
_NOT_DIFFERENTIABLE = re.compile(r"not differentiable with respect to argument '(\w+)'")


def _is_float(x) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype.is_floating_point


@dataclass
class _GradCall:
    """A sample's leaves (cloned), the positions of those that require grad, and how to call the op."""

    leaves: list
    spec: object
    positions: list[int]
    seeded: bool

    @property
    def inputs(self) -> list[torch.Tensor]:
        return [self.leaves[i] for i in self.positions]

    def __call__(self, fn, inputs=None):
        leaves = list(self.leaves)
        for i, x in zip(self.positions, inputs or ()):
            leaves[i] = x
        args, kwargs = tree_unflatten(leaves, self.spec)
        return _call(fn, SampleInput(args, kwargs), self.seeded)[0]


def _grad_call(sample: SampleInput, frozen: set[int], seeded: bool) -> _GradCall:
    """Clones of the sample's leaves whose floating tensors (but the frozen ones) require grad."""
    leaves, spec = tree_flatten((sample.args, sample.kwargs))
    leaves = [_clone(x) for x in leaves]
    positions = [i for i, x in enumerate(leaves) if _is_float(x) and i not in frozen]
    for i in positions:
        leaves[i].requires_grad_(True)
    return _GradCall(leaves, spec, positions, seeded)


def _written_leaves(reference: Callable, sample: SampleInput, seeded: bool) -> set[int] | None:
    """Positions of the sample's tensors that the op writes in place (running statistics: state, not
    differentiable inputs), or None where eager rejects the sample."""
    try:
        with torch.no_grad():
            _, (args, kwargs) = _call(reference, sample, seeded)
    except Exception:
        return None
    before, _ = tree_flatten((sample.args, sample.kwargs))
    after, _ = tree_flatten((args, kwargs))
    return {
        i for i, (b, a) in enumerate(zip(before, after))
        if isinstance(b, torch.Tensor) and not torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
    }  # fmt: skip


def _refused_leaf(reference: Callable, sample: SampleInput, error: RuntimeError) -> int | None:
    """The position of the argument torch declares not differentiable ("... is not differentiable with
    respect to argument 'weight'") where `error` says so, found through the reference's signature."""
    match = _NOT_DIFFERENTIABLE.search(str(error))
    try:
        bound = inspect.signature(reference).bind(*sample.args, **sample.kwargs) if match else None
    except (TypeError, ValueError):
        return None
    if bound is None or match[1] not in bound.arguments:
        return None
    value = bound.arguments[match[1]]
    return next((i for i, x in enumerate(tree_flatten((sample.args, sample.kwargs))[0]) if x is value), None)


def _eager_with_grad(reference: Callable, sample: SampleInput, seeded: bool) -> tuple[_GradCall, object] | None:
    """Runs eager with every floating input requiring grad, except inputs the op writes and those torch
    refuses to differentiate (nll_loss's class weights, batch_norm's running statistics in eval mode)."""
    frozen = _written_leaves(reference, sample, seeded)
    if frozen is None:
        return None
    while True:
        call = _grad_call(sample, frozen, seeded)
        try:
            return call, call(reference, call.inputs)
        except RuntimeError as e:
            refused = _refused_leaf(reference, sample, e)
            if refused is None or refused in frozen:
                raise
            frozen.add(refused)


def _grads(outputs: list, inputs: list, cotangents: list) -> tuple:
    return torch.autograd.grad(outputs, inputs, cotangents, allow_unused=True, materialize_grads=True)


def _has_borrowed_backward(jfn) -> bool:
    """Whether the acquired trace holds a symbol (at any depth) that an executor's grad_transform or
    torch.autograd (TORCH_VJP) may differentiate instead of its own rule or decomposition."""
    pending = list(thunder.last_traces(jfn)[0].bound_symbols)
    while pending:
        bsym = pending.pop()
        infos = (getattr(ex, "implmap", {}).get(bsym.sym.id) for ex in jfn.executors)
        if bsym.sym.id in autodiff.TORCH_VJP or any(getattr(i, "grad_transform", None) for i in infos):
            return True
        pending.extend(bsym.subsymbols)
    return False


def assert_grads_match_finite_differences(fn: Callable, inputs: list, grads: list, cotangent_dot: Callable,
                                          eps: float = 1e-6) -> None:  # fmt: skip
    """For each input x and a random direction v, <grad_x, v> must be the central difference of
    `cotangent_dot(fn(inputs))` (the outputs' inner product with the cotangents) along v: a random projection
    of the Jacobian, as gradcheck's fast mode (which cannot run here: it backpropagates through one graph
    several times, and Thunder frees a graph's saved tensors after its backward)."""
    generator = torch.Generator(torch.get_default_device()).manual_seed(4321)
    inputs = [x.detach() for x in inputs]
    for k, (x, grad) in enumerate(zip(inputs, grads)):
        v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        step = [x + eps * v if j == k else y for j, y in enumerate(inputs)]
        back = [x - eps * v if j == k else y for j, y in enumerate(inputs)]
        with torch.no_grad():
            numerical = (cotangent_dot(fn(step)) - cotangent_dot(fn(back))) / (2 * eps)
        torch.testing.assert_close((grad * v).sum(), numerical, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, k=k: f"gradient of input {k} against finite differences: {m}")  # fmt: skip


def _check_against_finite_differences(jfn, call: _GradCall, positions: list[int], cotangents: list) -> str:
    """Where torch defines no derivative, Thunder either refuses too or gives finite differences' gradient."""
    try:
        out, _ = tree_flatten(call(jfn, call.inputs))
        grads = _grads([out[i] for i in positions], call.inputs, cotangents)
    except Exception:
        return "raises"

    def cotangent_dot(result) -> torch.Tensor:
        flat, _ = tree_flatten(result)
        return sum((flat[i] * c).sum() for i, c in zip(positions, cotangents))

    assert_grads_match_finite_differences(lambda inputs: call(jfn, inputs), call.inputs, grads, cotangent_dot)
    return "finite differences"


def check_sample_grad(op: Callable, sample: SampleInput, *, variant: str = "torch", tol: dict | None = None,
                      seeded: bool = False, reference: Callable | None = None) -> str:  # fmt: skip
    """Checks the gradients of `op` on `sample` under thunder.jit against torch.autograd.

    Every floating tensor input requires grad, but those the op writes in place and those torch refuses to
    differentiate; the outputs that eager makes differentiable get a random cotangent, and the jitted op's
    outputs and the gradients of every input must be eager's. Where torch defines no derivative
    (torch.autograd.grad raises), the jitted op must raise too or match finite differences.

    variant: "torch" (the default executors, whose grad_transforms and torch.autograd may supply a symbol's
    backward) or "own rules" (every symbol differentiated by its own rule or decomposition, run as prims).

    Returns what happened: "checked"; "borrowed backward" (checked, and a symbol may have been
    differentiated by an executor's grad_transform or torch.autograd, not by its own rule or decomposition);
    "raises" or "finite differences" (torch has no derivative); or why the sample was skipped: "rejected"
    (eager rejects it), "no floating input", "no differentiable output" (comparisons, indices, factories:
    nothing to differentiate by construction).
    """
    reference = reference or op
    eager = _eager_with_grad(reference, sample, seeded) if sample.raises is None else None
    if eager is None:
        return "rejected"
    call, expected = eager
    if not call.positions:
        return "no floating input"
    flat_expected, _ = tree_flatten(expected)
    positions = [i for i, o in enumerate(flat_expected) if _is_float(o) and o.requires_grad]
    if not positions:
        # nothing to differentiate by construction: the jitted op must agree (same values, nothing requiring grad)
        jfn = thunder.jit(lambda *a, **k: op(*a, **k))
        jcall = _grad_call(sample, set(range(len(call.leaves))) - set(call.positions), seeded)
        actual = jcall(jfn, jcall.inputs)
        _assert_same(actual, expected, tol or {}, "result (no differentiable output)")
        flat_actual, _ = tree_flatten(actual)
        assert not any(isinstance(o, torch.Tensor) and o.requires_grad for o in flat_actual), "an output requires grad"
        return "no differentiable output"
    generator = torch.Generator(torch.get_default_device()).manual_seed(1234)
    cotangents = [torch.randn(flat_expected[i].shape, generator=generator, dtype=flat_expected[i].dtype)
                  for i in positions]  # fmt: skip
    executors, decompose = GRAD_VARIANTS[variant]
    jfn = thunder.jit(lambda *a, **k: op(*a, **k), executors=executors)
    jcall = _grad_call(sample, set(range(len(call.leaves))) - set(call.positions), seeded)
    with own_rules_only() if decompose else nullcontext():
        try:
            expected_grads = _grads([flat_expected[i] for i in positions], call.inputs, cotangents)
        except RuntimeError:  # e.g. "the derivative for 'floor_divide' is not implemented"
            return _check_against_finite_differences(jfn, jcall, positions, cotangents)
        actual = jcall(jfn, jcall.inputs)
    _assert_same(actual, expected, tol or {}, f"result ({variant})")
    flat_actual, _ = tree_flatten(actual)
    not_differentiable = [i for i in positions if not flat_actual[i].requires_grad]
    assert not not_differentiable, f"outputs {not_differentiable} do not require grad ({variant}); eager's do"
    actual_grads = _grads([flat_actual[i] for i in positions], jcall.inputs, cotangents)
    for i, (a, e) in enumerate(zip(actual_grads, expected_grads)):
        torch.testing.assert_close(a, e, equal_nan=True, msg=lambda m, i=i: f"gradient of input {i} ({variant}): {m}",
                                   **(tol or {}))  # fmt: skip
    return "borrowed backward" if _has_borrowed_backward(jfn) else "checked"


def run_grads(name: str, samples: Iterable[tuple[Callable, SampleInput]], *, tol: dict | None = None,
              seeded: bool = False, reference: Callable | None = None, own_rules: bool = True) -> list[str]:  # fmt: skip
    """`check_sample_grad` on every (op, sample) pair; where the op's trace may have borrowed a symbol's
    backward (an executor's grad_transform, torch.autograd), also with own rules only, run as prims (unless
    `own_rules` is False). Returns the status of each sample."""
    statuses = []
    torch.manual_seed(0)
    for op, sample in samples:
        try:
            status = check_sample_grad(op, sample, tol=tol, seeded=seeded, reference=reference)
            if status == "borrowed backward" and own_rules:
                check_sample_grad(op, sample, variant="own rules", tol=tol, seeded=seeded, reference=reference)
        except Exception as e:
            raise AssertionError(f"{name} sample {sample.name!r}: {e}") from e
        statuses.append(status)
    return statuses


def with_noncontiguous(samples: Iterable[tuple[Callable, SampleInput]]) -> Iterator[tuple[Callable, SampleInput]]:
    """Each (op, sample) pair, followed by the sample with non-contiguous copies of its tensors."""
    for op, sample in samples:
        yield op, sample
        if sample.raises is None and _has_noncontiguous_form(sample):
            yield op, noncontiguous_sample(sample)


def opinfo_grad_samples(opinfo: OpInfo, device=None) -> Iterator[tuple[Callable, SampleInput]]:
    """The op's float64 samples (gradients are compared in float64, whatever dtypes the forward runs at)."""
    device = torch.get_default_device() if device is None else torch.device(device)
    for sample in opinfo.sample_inputs(torch.float64, device):
        yield opinfo.op, sample
