"""The check behind tests/test_opinfo.py: one OpInfo of PyTorch's `op_db`, one dtype, every sample input, under
`thunder.jit` against torch eager.

For each sample, eager and the jitted function run on separate clones of the same inputs. The jitted outputs
must equal eager's (values, shapes, dtypes, `requires_grad`) within the dtype's tolerance, and inputs must be
left as eager leaves them. Where the op is differentiable, both sides' outputs are pulled back with the same
random cotangents and every input that requires grad must get eager's gradient (or `None` where eager's is
`None`). Ops that draw random numbers under `wrapper_set_seed` cannot equal eager (our generator is not
eager's); they are run without the wrapper and checked for reproducibility instead: two jitted calls after the
same `torch.manual_seed` agree, with eager's shapes and dtypes. Ops whose output is uninitialized memory
(`torch.empty` and friends) are compared by shape and dtype only.

Run as a script for a quick sweep that prints every failing (op, dtype) with its first message:
`python3 -m tests.opinfo_check [--device cuda] [--dtypes float32] [--grad] [--ops abs,add]`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import sys
import types
import unittest
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.testing._internal.opinfo.core as opinfo_core
from torch.testing._internal import common_utils
from torch.testing._internal.common_methods_invocations import op_db
from torch.utils._pytree import tree_flatten, tree_map

import thunder

SWEEP_DTYPES = (
    torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64, torch.int64, torch.int32, torch.bool,
)  # fmt: skip

# torch.testing.assert_close's defaults are PyTorch's own per-dtype tolerances (the ones its OpInfo tests use for
# one implementation against another); ours decompose into prims, so low precision gets a little more room, as
# PyTorch's reference-implementation tests give it.
FORWARD_TOLERANCE = {
    torch.float16: {"atol": 1e-3, "rtol": 1e-3},
    torch.bfloat16: {"atol": 1e-2, "rtol": 1.6e-2},
}
# Gradients accumulate more rounding than forwards (a sum over the cotangent's elements): float32 gets the
# tolerance PyTorch's gradient-consistency tests use.
GRAD_TOLERANCE = {
    torch.float32: {"atol": 1e-4, "rtol": 1.3e-4},
    torch.complex64: {"atol": 1e-4, "rtol": 1.3e-4},
    torch.float16: {"atol": 1e-2, "rtol": 1e-2},
    torch.bfloat16: {"atol": 5e-2, "rtol": 5e-2},
}

# Outputs are uninitialized memory: only their metadata can be compared.
UNINITIALIZED_OUTPUT_OPS = frozenset(
    {"empty", "empty_like", "new_empty", "new_empty_strided", "empty_permuted", "empty_strided"}
)


def opinfo_name(opinfo) -> str:
    """The OpInfo's name with its variant, as PyTorch prints it: `max.reduction_with_dim`."""
    return opinfo.name + (f".{opinfo.variant_test_name}" if opinfo.variant_test_name else "")


def sweep_opinfos() -> list:
    """Every OpInfo of PyTorch's op_db, variants included, in op_db's order."""
    return list(op_db)


def sweep_dtypes(opinfo, device_type: str) -> list[torch.dtype]:
    """The dtypes of SWEEP_DTYPES that the OpInfo supports on the device type, in SWEEP_DTYPES's order."""
    supported = opinfo.supported_dtypes(device_type)
    return [dtype for dtype in SWEEP_DTYPES if dtype in supported]


def _unittest_test_fn() -> Callable | None:
    """What torch's `extract_test_fn` finds (the test method of a `unittest.TestCase` on the call stack, which
    names the sample generator's seed), found the same way but without `inspect.stack()`: that reads every frame's
    source and, for frames of generated code, scans `sys.modules` each time, which took over half of this
    module's time under pytest (hundreds of frames, thousands of modules) to find nothing for pytest's functions."""
    try:
        frame = sys._getframe(1)
        while frame is not None:
            self_val = frame.f_locals.get("self")
            if isinstance(self_val, unittest.TestCase):
                *_, cls_name, test_name = self_val.id().rsplit(".", 2)
                if cls_name == type(self_val).__name__ and test_name.startswith("test"):
                    return getattr(self_val, test_name).__func__
            frame = frame.f_back
    except Exception:  # as extract_test_fn: no test function found
        pass
    return None


@functools.cache
def _only_the_cpu_generator() -> bool:
    """Whether `torch.manual_seed` can reach no generator but the CPU's: no accelerator it seeds (now or at a lazy
    initialization) is available, and no custom device backend is registered."""
    accelerators = (torch.cuda, getattr(torch, "xpu", None), getattr(torch, "mtia", None))
    if any(module is not None and module.is_available() for module in accelerators):
        return False
    if torch.backends.mps.is_available():
        return False
    return not hasattr(torch, torch._C._get_privateuse1_backend_name())


def _set_rng_seed(seed=None) -> None:
    """torch's `set_rng_seed`, seeding the same generators: where only the CPU's exists, without
    `torch.manual_seed`'s queueing of seeds for devices that are not initialized, which formats the whole call
    stack each time (torch seeds before every sample it generates: over a millisecond each under pytest)."""
    if not _only_the_cpu_generator():
        return _original_set_rng_seed(seed)
    seed = common_utils.SEED if seed is None else seed
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    if common_utils.TEST_NUMPY:
        import numpy

        numpy.random.seed(seed)


_original_set_rng_seed = common_utils.set_rng_seed


@contextlib.contextmanager
def _cheap_sample_bookkeeping() -> Iterator[None]:
    """Sample generation with `_unittest_test_fn` in place of torch's `extract_test_fn` and `_set_rng_seed` in place
    of its `set_rng_seed` (the same results, see each)."""
    patches = [(m, "extract_test_fn", _unittest_test_fn) for m in (opinfo_core, common_utils)]
    patches.append((common_utils, "set_rng_seed", _set_rng_seed))
    patches = [(module, name, new) for module, name, new in patches if hasattr(module, name)]
    saved = [getattr(module, name) for module, name, _ in patches]
    for module, name, new in patches:
        setattr(module, name, new)
    try:
        yield
    finally:
        for (module, name, _), original in zip(patches, saved):
            setattr(module, name, original)


def seeds_internally(opinfo) -> bool:
    """Whether the OpInfo's callable reseeds torch's generator around the op (`wrapper_set_seed`)."""
    code = getattr(opinfo.op, "__code__", None)
    return code is not None and "wrapper_set_seed" in code.co_names


def _without_seed_wrapper(fn: Callable) -> Callable:
    """`fn` with its `wrapper_set_seed(op, ...)` call replaced by a plain `op(...)`: the op itself, which draws
    from the generator the caller seeded."""

    def call_plainly(op, *args, **kwargs):
        return op(*args, **kwargs)

    namespace = dict(fn.__globals__, wrapper_set_seed=call_plainly)
    return types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


NEARER_THAN_EAGER = "pass, nearer float64 than eager"


class EagerRaises(Exception):
    """Eager raises on the sample and so does the jitted op: nothing to compare."""


@dataclass
class SampleOutcome:
    """What happened to one sample: `kind` is "pass", NEARER_THAN_EAGER (a pass: a float16 / bfloat16 result
    beyond the tolerance of eager's but no farther from the float64 one), "error" (the jitted call raised),
    "mismatch" (a result differs from eager's), or "eager error" (eager itself raised, and so did the jitted
    call)."""

    kind: str
    index: int
    message: str = ""
    exception: BaseException | None = field(default=None, repr=False)


def _clone_inputs(values):
    """Fresh leaves with the same values, strides and requires_grad, for one side of the comparison."""

    def clone(value):
        if not isinstance(value, torch.Tensor):
            return value
        copy = value.detach().clone()
        return copy.requires_grad_(value.requires_grad) if copy.is_leaf else copy

    return tree_map(clone, values)


def _tensors(tree) -> list[torch.Tensor]:
    return [leaf for leaf in tree_flatten(tree)[0] if isinstance(leaf, torch.Tensor)]


def _differentiable(tensor: torch.Tensor) -> bool:
    return tensor.requires_grad and (tensor.is_floating_point() or tensor.is_complex())


def _assert_same(actual, expected, tolerance: dict, what: str) -> None:
    try:
        torch.testing.assert_close(actual, expected, equal_nan=True, check_device=True, **tolerance)
    except (AssertionError, TypeError, ValueError) as error:  # a value, type or structure differs
        raise AssertionError(f"{what} differs from eager's: {error}") from None


def _assert_same_metadata(actual, expected, what: str) -> None:
    actual_leaves, actual_spec = tree_flatten(actual)
    expected_leaves, expected_spec = tree_flatten(expected)
    if actual_spec != expected_spec:
        raise AssertionError(f"{what}: structure {actual_spec} where eager's is {expected_spec}")
    for a, e in zip(actual_leaves, expected_leaves):
        if isinstance(e, torch.Tensor):
            if not isinstance(a, torch.Tensor) or (a.shape, a.dtype, a.device) != (e.shape, e.dtype, e.device):
                meta = (a.shape, a.dtype, a.device) if isinstance(a, torch.Tensor) else type(a)
                raise AssertionError(f"{what}: {meta} where eager's is {(e.shape, e.dtype, e.device)}")


def _assert_same_requires_grad(actual, expected) -> None:
    actual_flags = [t.requires_grad for t in _tensors(actual)]
    expected_flags = [t.requires_grad for t in _tensors(expected)]
    if actual_flags != expected_flags:
        raise AssertionError(f"outputs' requires_grad are {actual_flags} where eager's are {expected_flags}")


def _cotangents(outputs: list[torch.Tensor], like: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Fixed random cotangents (the same on both sides): a generator seeded with the output's position, on the
    outputs' device; with `like` (the outputs of the sample at its own dtype), those cotangents in the outputs'
    dtypes."""
    cotangents = []
    for output, reference in zip(outputs, like or outputs):
        generator = torch.Generator(device=output.device).manual_seed(len(cotangents))
        shape, dtype = reference.shape, reference.dtype
        cotangent = torch.randn(shape, dtype=dtype, device=output.device, generator=generator)
        cotangents.append(cotangent.to(output.dtype))
    return cotangents


def _gradients(outputs, inputs: list[torch.Tensor], cotangents_like=None):
    """The inputs' gradients for the outputs pulled back with fixed cotangents; None where no input needs one."""
    differentiable = [t for t in _tensors(outputs) if _differentiable(t)]
    if not differentiable or not inputs:
        return None
    like = None if cotangents_like is None else [t for t in _tensors(cotangents_like) if _differentiable(t)]
    return torch.autograd.grad(differentiable, inputs, _cotangents(differentiable, like), allow_unused=True)


# Where ours and eager's float16 / bfloat16 results differ beyond the tolerance, the test asks which is nearer to
# the exact result, as PyTorch's own test of its decompositions against eager does (`_ref_test_helper` in its
# test/test_ops.py): the op in float64 on the same values, and ours passes if its summed absolute distance from
# that is no larger than eager's. Eager's low-precision kernels are not the truth: some backward formulas overflow
# where ours do not (linalg.vector_norm's gradient for ord=6 in float16 is all zeros in eager).
LOW_PRECISION = (torch.float16, torch.bfloat16)


def _upcast(values):
    """Fresh leaves in float64 (complex128 for complex) with the same values and requires_grad."""

    def upcast(value):
        if not isinstance(value, torch.Tensor) or not (value.is_floating_point() or value.is_complex()):
            return _clone_inputs(value)
        precise = value.detach().to(torch.complex128 if value.is_complex() else torch.float64)
        return precise.requires_grad_(value.requires_grad)

    return tree_map(upcast, values)


def _distance_from(results, precise) -> float:
    """PyTorch's `_ref_test_helper` distance: the summed absolute difference, NaN against NaN counting 0."""
    total = 0.0
    for result, exact in zip(_tensors(results), _tensors(precise), strict=True):
        same = result == exact
        if not (result.is_floating_point() or result.is_complex()):
            total += (~same).sum().item()
            continue
        same = same | (result.isnan() & exact.isnan())
        total += torch.where(same, 0, (result.to(exact.dtype) - exact).abs()).sum().item()
    return total


def _assert_same_or_more_accurate(actual, expected, precise: Callable, dtype, tolerance: dict, what: str) -> bool:
    """`actual` equals eager's `expected` within the tolerance or, in low precision, is no farther from the
    float64 result `precise()` than eager's is; returns whether it took the second."""
    try:
        _assert_same(actual, expected, tolerance, what)
        return False
    except AssertionError as mismatch:
        if dtype not in LOW_PRECISION:
            raise
        # only tensor values may be judged by accuracy: never a dtype, a shape or a Python value
        _assert_same_metadata(actual, expected, what)
        numbers = [(a, e) for a, e in zip(tree_flatten(actual)[0], tree_flatten(expected)[0]) if not _is_t(e)]
        if any(a != e for a, e in numbers):
            raise
        try:
            exact = precise()
            ours, eagers = _distance_from(actual, exact), _distance_from(expected, exact)
        except Exception:  # no float64 run to judge by (or not one of the same structure): the mismatch stands
            raise mismatch from None
        if not ours <= eagers:
            raise AssertionError(f"{mismatch}\n(summed distance from the float64 result: ours {ours}, eager's "
                                 f"{eagers})") from None  # fmt: skip
        return True


def _is_t(value) -> bool:
    return isinstance(value, torch.Tensor)


def _assert_same_gradients(jit_outputs, eager_outputs, jit_inputs, eager_inputs, dtype, precise: Callable) -> bool:
    """`precise()` gives the float64 run: (outputs, differentiable leaves), for `_assert_same_or_more_accurate`,
    whose answer this returns."""
    try:
        expected = _gradients(eager_outputs, eager_inputs)
    except (RuntimeError, NotImplementedError):
        return False  # eager has no derivative for this sample: nothing to compare against
    actual = _gradients(jit_outputs, jit_inputs)
    if expected is None:
        return False
    for position, (a, e) in enumerate(zip(actual, expected)):
        if (a is None) != (e is None):
            raise AssertionError(
                f"gradient of differentiable input {position} is {'None' if a is None else 'a tensor'} where "
                f"eager's is {'None' if e is None else 'a tensor'}"
            )

    def precise_gradients():
        outputs, inputs = precise()
        return list(_gradients(outputs, inputs, cotangents_like=eager_outputs) or ())

    tolerance = GRAD_TOLERANCE.get(dtype, {})
    return _assert_same_or_more_accurate(list(actual), list(expected), precise_gradients, dtype, tolerance, "gradient")


def _check_seeded(fn: Callable, sample, uninitialized: bool) -> None:
    """Two jitted calls after the same manual_seed agree (unless the output is uninitialized memory), and have
    eager's metadata."""
    jitted = thunder.jit(fn)
    results = []
    for _ in range(2):
        args, kwargs = _clone_inputs(((sample.input, *sample.args), sample.kwargs))
        torch.manual_seed(1234)
        results.append(jitted(*args, **kwargs))
    args, kwargs = _clone_inputs(((sample.input, *sample.args), sample.kwargs))
    _assert_same_metadata(results[0], fn(*args, **kwargs), "output")
    if uninitialized:
        return
    _assert_same(results[1], results[0], {"atol": 0, "rtol": 0}, "the second seeded call's output (vs the first)")


def raise_as_eager(eager_error: Exception, jitted: Callable, args, kwargs) -> None:
    """Where eager raised `eager_error`: EagerRaises if the jitted call raises too, else AssertionError."""
    try:
        jitted(*args, **kwargs)
    except Exception as error:
        raise EagerRaises(f"eager raises {eager_error!r}, and so does the jitted op: {error!r}") from error
    raise AssertionError(f"the jitted op returns a result where eager raises {eager_error!r}") from None


def check_sample(opinfo, fn: Callable, jitted: Callable, sample, dtype: torch.dtype, check_grad: bool) -> bool:
    """Raises AssertionError when the jitted op's result on `sample` differs from eager's, and whatever the
    jitted call raises; returns whether a result passed by being nearer the float64 one than eager's (see
    LOW_PRECISION)."""
    eager_args, eager_kwargs = _clone_inputs(((sample.input, *sample.args), sample.kwargs))
    jit_args, jit_kwargs = _clone_inputs(((sample.input, *sample.args), sample.kwargs))
    try:
        eager_out = sample.output_process_fn_grad(fn(*eager_args, **eager_kwargs))
    except Exception as eager_error:
        raise_as_eager(eager_error, jitted, jit_args, jit_kwargs)
    jit_out = sample.output_process_fn_grad(jitted(*jit_args, **jit_kwargs))
    if opinfo.name in UNINITIALIZED_OUTPUT_OPS:
        _assert_same_metadata(jit_out, eager_out, "output")
        return False

    @functools.cache
    def precise():
        """The sample in float64 through eager: its outputs and differentiable leaves."""
        args, kwargs = _upcast(((sample.input, *sample.args), sample.kwargs))
        outputs = sample.output_process_fn_grad(fn(*args, **kwargs))
        return outputs, [t for t in _tensors((args, kwargs)) if t.requires_grad and t.is_leaf]

    tolerance = FORWARD_TOLERANCE.get(dtype, {})
    nearer = _assert_same_or_more_accurate(jit_out, eager_out, lambda: precise()[0], dtype, tolerance, "output")
    _assert_same(_tensors(jit_args), _tensors(eager_args), tolerance, "an input after the call")
    _assert_same_requires_grad(jit_out, eager_out)
    if check_grad:
        eager_inputs = [t for t in _tensors((eager_args, eager_kwargs)) if t.requires_grad and t.is_leaf]
        jit_inputs = [t for t in _tensors((jit_args, jit_kwargs)) if t.requires_grad and t.is_leaf]
        nearer |= _assert_same_gradients(jit_out, eager_out, jit_inputs, eager_inputs, dtype, precise)
    return nearer


def differentiable_dtype(dtype: torch.dtype) -> bool:
    return dtype.is_floating_point or dtype.is_complex


def is_jiterator_kernel(opinfo) -> bool:
    """A `torch.cuda.jiterator` OpInfo: its kernel launches from C++ on the proxies' (absent) storage under
    thunder.jit, an illegal memory access that poisons the CUDA context for every later test of the process."""
    jiterator = getattr(torch.cuda, "jiterator", None)
    return jiterator is not None and isinstance(opinfo.op, jiterator._JittedFunction)


def opinfo_params(device_type: str, dtypes=None) -> Iterator:
    """pytest params (opinfo, dtype), id "op-dtype", for every OpInfo and each dtype it supports on the device type
    among the sweep's (or among `dtypes`)."""
    import pytest

    for opinfo in sweep_opinfos():
        for dtype in sweep_dtypes(opinfo, device_type):
            if dtypes is None or dtype in dtypes:
                yield pytest.param(opinfo, dtype, id=f"{opinfo_name(opinfo)}-{str(dtype).removeprefix('torch.')}")


def skip_jiterator_on_cuda(opinfo, device: torch.device) -> None:
    """pytest.skip for a `torch.cuda.jiterator` OpInfo on CUDA (see `is_jiterator_kernel`)."""
    if device.type == "cuda" and is_jiterator_kernel(opinfo):
        import pytest

        pytest.skip("torch.cuda.jiterator kernels launch on proxies under thunder.jit: an illegal memory access")


def spread_indices(count: int, limit: int | None) -> list[int]:
    """`limit` indices spread evenly over range(count), first and last included (all of them if limit is None
    or not smaller): a deterministic portion that reaches the corner cases OpInfos list last."""
    if limit is None or count <= limit:
        return list(range(count))
    if limit == 1:
        return [0]
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def run_opinfo(
    opinfo, device: str, dtype: torch.dtype, check_grad: bool, sample_limit: int | None = None, executors=None
) -> Iterator[SampleOutcome]:
    """Checks the OpInfo's samples at the dtype (all, or `sample_limit` of them spread over the list); yields
    one outcome per sample checked, with the sample's index in the OpInfo's list. executors: thunder.jit's
    (None: the defaults)."""
    requires_grad = check_grad and opinfo.supports_autograd and differentiable_dtype(dtype)
    seeded = seeds_internally(opinfo)
    fn = _without_seed_wrapper(opinfo.op) if seeded else opinfo.op

    def call_op(*args, **kwargs):
        return fn(*args, **kwargs)

    jitted = thunder.jit(call_op, executors=executors)
    samples = generate_samples(opinfo, device, dtype, requires_grad, first_only=sample_limit == 1)
    for index in spread_indices(len(samples), sample_limit):
        sample = samples[index]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield _outcome(opinfo, fn, jitted, sample, dtype, index, seeded, requires_grad)


def generate_samples(opinfo, device: str, dtype: torch.dtype, requires_grad: bool, first_only: bool = False) -> list:
    """The OpInfo's sample inputs (warnings off, with the cheap bookkeeping); `first_only`: only the first, which
    spares generating the rest (hundreds for some OpInfos)."""
    with warnings.catch_warnings(), _cheap_sample_bookkeeping():
        warnings.simplefilter("ignore")
        generated = opinfo.sample_inputs(device, dtype, requires_grad=requires_grad)
        return list(itertools.islice(generated, 1)) if first_only else list(generated)


def classify(check: Callable[[], bool | None]) -> tuple[str, str, Exception | None]:
    """(kind, message, error) of a check of one sample: "pass" (NEARER_THAN_EAGER where the check returns True),
    "eager error" (both raised), "mismatch" (an AssertionError) or "error" (the jitted call raised)."""
    try:
        nearer = check()
    except EagerRaises as both_raise:
        return "eager error", str(both_raise), both_raise
    except AssertionError as error:
        return "mismatch", str(error), error
    except Exception as error:  # the jitted call raised
        return "error", f"{type(error).__name__}: {error}", error
    return (NEARER_THAN_EAGER if nearer else "pass"), "", None


def _outcome(opinfo, fn, jitted, sample, dtype, index: int, seeded: bool, check_grad: bool) -> SampleOutcome:
    if seeded:
        kind, message, error = classify(lambda: _check_seeded(fn, sample, opinfo.name in UNINITIALIZED_OUTPUT_OPS))
    else:
        kind, message, error = classify(lambda: check_sample(opinfo, fn, jitted, sample, dtype, check_grad))
    return SampleOutcome(kind, index, message, error)


def sweep_argument_parser(description: str):
    """The options every sweep script takes: --device, --dtypes, --ops, --shard, --limit (see `selected_pairs`)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", default="float32")
    parser.add_argument("--ops", default="")
    parser.add_argument("--shard", default="0/1", help="i/n: every n-th OpInfo from the i-th")
    parser.add_argument("--limit", type=int, default=None, help="samples per OpInfo and dtype (default: all)")
    return parser


def selected_pairs(args) -> Iterator[tuple]:
    """The (OpInfo, dtype) pairs the parsed options of `sweep_argument_parser` select, in op_db's order."""
    wanted = {getattr(torch, name) for name in args.dtypes.split(",")}
    names = set(args.ops.split(",")) - {""}
    shard, shards = map(int, args.shard.split("/"))
    for position, opinfo in enumerate(sweep_opinfos()):
        if position % shards != shard or (names and opinfo_name(opinfo) not in names and opinfo.name not in names):
            continue
        for dtype in sweep_dtypes(opinfo, torch.device(args.device).type):
            if dtype in wanted:
                yield opinfo, dtype


def _main() -> None:
    import json
    import time

    parser = sweep_argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--grad", action="store_true")
    parser.add_argument("--json", default="")
    parser.add_argument("--decomposed", action="store_true",
                        help="run every op decomposed into prims (what fusion executors see), not whole")
    args = parser.parse_args()
    executors = None
    if args.decomposed:
        from tests.ops.opdb import DECOMPOSE_TO_PRIMS

        executors = [DECOMPOSE_TO_PRIMS]
    records = []
    for opinfo, dtype in selected_pairs(args):
        start = time.perf_counter()
        try:
            outcomes = list(run_opinfo(opinfo, args.device, dtype, args.grad, args.limit, executors))
        except Exception as error:
            outcomes = [SampleOutcome("error", -1, f"sample generation: {type(error).__name__}: {error}")]
        elapsed = time.perf_counter() - start
        failed = [o for o in outcomes if o.kind in ("error", "mismatch")]
        nearer = [o.index for o in outcomes if o.kind == NEARER_THAN_EAGER]
        record = {"op": opinfo_name(opinfo), "dtype": str(dtype), "samples": len(outcomes), "seconds": elapsed,
                  "failed": [(o.kind, o.index, o.message[:400]) for o in failed], "nearer_than_eager": nearer}
        records.append(record)
        status = "ok" if not failed else f"{len(failed)} failed: {failed[0].kind}: {failed[0].message[:200]!r}"
        status += f" ({len(nearer)} nearer float64 than eager)" if nearer else ""
        print(f"{record['op']} {dtype} {len(outcomes)} samples {elapsed:.2f}s {status}", flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(records, file)


if __name__ == "__main__":
    _main()
