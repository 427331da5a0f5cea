"""The check behind tests/test_opinfo_numbers.py: PyTorch's OpInfo samples with their numbers as inputs of the
program (`cache="symbolic values"`), called again with special values in place of each number.

For one OpInfo, one dtype and one executor list (tests/ops/opdb.py's EXECUTOR_LISTS: "torch" runs each symbol
whole, "prims" decomposes it), each sample whose arguments hold a Python float (or an int that is a value, not a
dim or a size: see `_is_value_int`) is traced once with its own numbers; then the SAME jitted function is called
with one number at a time replaced by each of NaN, +-inf, +-0.0, a negative, a large and a random value. Every
call is checked against eager on the same inputs by tests/opinfo_check.py's `check_sample` (values with
equal_nan, dtypes, shapes, inputs after the call; where eager raises, the program must raise, and where it does
not, the program must not). A decomposition that reads a number's value while tracing without guarding it bakes
the traced value into the program, and a later call then silently differs from eager.

Run as a script for a quick sweep, one line per (OpInfo, dtype, executors):
`python3 -m tests.opinfo_numbers [--device cuda] [--dtypes float32] [--ops clamp,add] [--limit N]`.
"""

from __future__ import annotations

import copy
import math
import random
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.testing._internal.opinfo.core import BinaryUfuncInfo
from torch.utils._pytree import tree_flatten, tree_flatten_with_path, tree_unflatten

import thunder
from tests.opinfo_check import (
    NEARER_THAN_EAGER,
    _assert_same_metadata,
    _clone_inputs,
    _without_seed_wrapper,
    check_sample,
    classify,
    generate_samples,
    opinfo_name,
    raise_as_eager,
    seeds_internally,
    spread_indices,
)
from tests.ops.opdb import EXECUTOR_LISTS

FLOAT_SPECIALS = (math.nan, math.inf, -math.inf, -0.0, 0.0, -2.5, 1e30)
# ints: no infinities or NaN; a large value that still fits every integer dtype's Python-scalar conversion
INT_SPECIALS = (0, 1, -1, -3, 1_000_003)

# Keyword arguments whose ints are values (an alpha, a fill value, an exponent, an offset), not dims or sizes:
# varying them within ints is a valid call whose result eager defines.
VALUE_INT_KWARGS = frozenset({
    "alpha", "beta", "value", "fill_value", "exponent", "diagonal", "offset", "min", "max", "other", "scalar",
    "decimals", "correction", "p", "ord", "lambd", "threshold", "margin", "negative_slope", "weight",
    "posinf", "neginf", "nan", "start", "end", "base", "eps", "delta", "k",
})  # fmt: skip
# Positional ints that are values, by OpInfo name: (positions in `args`, after the input)
VALUE_INT_POSITIONS = {
    "clamp": (0, 1), "clamp_min": (0,), "clamp_max": (0,), "tril": (0,), "triu": (0,), "diag": (0,),
    "diagonal": (0,), "diag_embed": (0,), "polygamma": (), "masked_fill": (1,), "index_fill": (2,),
    "fill": (0,), "pow": (0,), "float_power": (0,), "lerp": (1,), "where": (1,), "threshold": (0, 1),
    "nn.functional.threshold": (0, 1), "new_full": (1,), "full_like": (0,), "kthvalue": (0,),
}  # fmt: skip


@dataclass(frozen=True)
class NumberSlot:
    """One number among a sample's leaves: its position in the flattened ((input, *args), kwargs), where it
    sits (for messages), and the values to try there."""

    index: int
    where: str
    values: tuple


# The traced call raises, and so does the sample under cache="constant values": an error of the op itself (the
# OpInfo sweep's business, tests/test_opinfo.py), not of its numbers as inputs.
CONSTANTS_FAIL_TOO = "error with constant numbers too"


@dataclass
class NumberOutcome:
    """One call: kind is "pass", "eager error" (both raised), "mismatch", "error" (the program raised where
    eager did not) or CONSTANTS_FAIL_TOO; `value` is None for the traced call (the sample's own numbers)."""

    kind: str
    sample: int
    slot: str
    value: object
    message: str = ""


def _key_name(entry) -> str:
    return str(getattr(entry, "key", getattr(entry, "idx", getattr(entry, "name", entry))))


def _is_value_int(opinfo, path) -> bool:
    """Whether an int leaf at `path` (a pytree key path into ((input, *args), kwargs)) is a value we may vary:
    a keyword argument named in VALUE_INT_KWARGS, a positional one of VALUE_INT_POSITIONS, or the `other` of a
    binary elementwise op. Dims and sizes are left alone (a large size allocates; tests of them live in
    tests/test_symbolic_shapes.py)."""
    top = _key_name(path[0])
    if top == "1":  # kwargs
        return len(path) == 2 and _key_name(path[1]) in VALUE_INT_KWARGS
    if len(path) != 2:  # inside a list or tuple argument: a shape or a list of dims
        return False
    position = int(_key_name(path[1])) - 1  # in `args`, after the input
    if position < 0:
        return isinstance(opinfo, BinaryUfuncInfo)  # a number as the input of a binary op (`2 ** t`)
    if isinstance(opinfo, BinaryUfuncInfo) and position == 0:
        return True
    return position in VALUE_INT_POSITIONS.get(opinfo_name(opinfo), ())


def number_slots(opinfo, sample, seed: int, ints: bool = True) -> list[NumberSlot]:
    """The sample's numbers that the sweep varies, each with its special values and a random one."""
    rng = random.Random(seed)
    slots = []
    leaves = tree_flatten_with_path(((sample.input, *sample.args), sample.kwargs))[0]
    for index, (path, leaf) in enumerate(leaves):
        where = "".join(f"[{_key_name(p)}]" for p in path)
        if type(leaf) is float:
            slots.append(NumberSlot(index, where, (*FLOAT_SPECIALS, round(rng.uniform(-4, 4), 3))))
        elif ints and type(leaf) is int and _is_value_int(opinfo, path):
            slots.append(NumberSlot(index, where, (*INT_SPECIALS, rng.randint(-6, 6))))
    return slots


def _with_number(sample, index: int, value):
    """A shallow copy of the sample whose leaf `index` is `value` (the tensors are shared: check_sample clones)."""
    leaves, spec = tree_flatten(((sample.input, *sample.args), sample.kwargs))
    leaves[index] = value
    (inputs, kwargs) = tree_unflatten(leaves, spec)
    new = copy.copy(sample)
    new.input, new.args, new.kwargs = inputs[0], tuple(inputs[1:]), kwargs
    return new


def _check_seeded_metadata(fn, jitted, sample) -> None:
    """A random op cannot equal eager's draws: raising and output metadata must agree."""
    args, kwargs = _clone_inputs(((sample.input, *sample.args), sample.kwargs))
    try:
        expected = fn(*args, **kwargs)
    except Exception as eager_error:
        raise_as_eager(eager_error, jitted, args, kwargs)
    args, kwargs = _clone_inputs(((sample.input, *sample.args), sample.kwargs))
    _assert_same_metadata(jitted(*args, **kwargs), expected, "output")


def _one_call(opinfo, fn, jitted, sample, dtype, seeded: bool) -> tuple[str, str]:
    if seeded:
        kind, message, _ = classify(lambda: _check_seeded_metadata(fn, jitted, sample))
    else:
        kind, message, _ = classify(lambda: check_sample(opinfo, fn, jitted, sample, dtype, check_grad=False))
    return ("pass" if kind == NEARER_THAN_EAGER else kind), message


def samples_with_numbers(opinfo, samples: list, ints: bool = True) -> list[int]:
    """Indices of the samples that hold at least one number the sweep varies."""
    return [i for i, s in enumerate(samples) if number_slots(opinfo, s, seed=0, ints=ints)]


def run_numbers(
    opinfo, device: str, dtype: torch.dtype, executors: str, sample_limit: int | None = None, ints: bool = True
) -> Iterator[NumberOutcome]:
    """Checks the OpInfo's samples that hold numbers (all, or `sample_limit` of them spread over that list):
    one jitted function per sample, traced with the sample's numbers, then called with each special value at
    each number's position. Yields one outcome per call."""
    seeded = seeds_internally(opinfo)
    fn = _without_seed_wrapper(opinfo.op) if seeded else opinfo.op
    samples = generate_samples(opinfo, device, dtype, requires_grad=False)
    with_numbers = samples_with_numbers(opinfo, samples, ints)
    name = opinfo_name(opinfo)
    for position in spread_indices(len(with_numbers), sample_limit):
        index = with_numbers[position]
        sample = samples[index]

        def call_op(*args, **kwargs):
            return fn(*args, **kwargs)

        jitted = thunder.jit(call_op, cache="symbolic values", executors=EXECUTOR_LISTS[executors])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind, message = _one_call(opinfo, fn, jitted, sample, dtype, seeded)
            if kind == "error":
                constants = thunder.jit(call_op, executors=EXECUTOR_LISTS[executors])
                if _one_call(opinfo, fn, constants, sample, dtype, seeded)[0] == "error":
                    kind = CONSTANTS_FAIL_TOO
            yield NumberOutcome(kind, index, "", None, message)
            if kind != "pass":
                continue  # the traced call itself fails: no program to call again
            seed = zlib.crc32(f"{name}-{dtype}-{index}".encode())
            for slot in number_slots(opinfo, sample, seed, ints):
                for value in slot.values:
                    kind, message = _one_call(opinfo, fn, jitted, _with_number(sample, slot.index, value), dtype, seeded)
                    yield NumberOutcome(kind, index, slot.where, value, message)


def _main() -> None:
    import time

    from tests.opinfo_check import selected_pairs, sweep_argument_parser

    parser = sweep_argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--executors", default="torch,prims")
    args = parser.parse_args()
    totals = {"pairs": 0, "samples": 0, "calls": 0, "failed": 0, "constants fail too": 0}
    for opinfo, dtype in selected_pairs(args):
        for executors in args.executors.split(","):
            start = time.perf_counter()
            try:
                outcomes = list(run_numbers(opinfo, args.device, dtype, executors, args.limit))
            except Exception as error:
                outcomes = [NumberOutcome("error", -1, "", None, f"sample generation: {error!r}")]
            if not outcomes:
                continue
            elapsed = time.perf_counter() - start
            failed = [o for o in outcomes if o.kind in ("error", "mismatch")]
            totals["constants fail too"] += sum(o.kind == CONSTANTS_FAIL_TOO for o in outcomes)
            totals["pairs"] += 1
            totals["samples"] += len({o.sample for o in outcomes})
            totals["calls"] += len(outcomes)
            totals["failed"] += len(failed)
            print(f"{opinfo_name(opinfo)} {dtype} {executors}: {len(outcomes)} calls {elapsed:.2f}s "
                  f"{len(failed)} failed", flush=True)  # fmt: skip
            for o in failed[:6]:
                print(f"    sample {o.sample} {o.slot}={o.value!r}: {o.kind}: {o.message[:300]!r}", flush=True)
    print(totals)


if __name__ == "__main__":
    _main()
