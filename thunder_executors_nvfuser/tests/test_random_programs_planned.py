"""The random-program fuzzer (tests/fuzz/programs.py: generated programs of elementwise ops with Python scalars
and type promotion, reductions, views, cat, where, casts, in-place ops; float32, float64, bfloat16, int64 and bool
inputs, 0-d, empty, strided or expanded) through the nvFuser executor's planner on the CPU (plans replayed by
torch), against eager: outputs, mutated inputs, gradients and a cached second call.

`THUNDER_FUZZ_PROGRAMS` sets how many programs run (default 150 here).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from plan_interpreter import interpret_build
from thunder_executors_nvfuser.executor import NvFuserExecutor
from thunder_executors_nvfuser.options import NvFuserOptions

sys.path.insert(0, str(Path(__file__).parents[2]))  # the repository root: its tests package

import thunder  # noqa: E402
from tests.fuzz.programs import check_program, generate, shrink  # noqa: E402
from tests.ops.opdb import DECOMPOSE_TO_PRIMS  # noqa: E402

N_PROGRAMS = int(os.environ.get("THUNDER_FUZZ_PROGRAMS", "150"))
CHUNKS = 5
EXECUTORS = [NvFuserExecutor(NvFuserOptions(), device_types=("cpu",), build=interpret_build)]


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_programs_through_planned_fusions_match_eager(chunk):
    failures = []
    for seed in range(chunk, N_PROGRAMS, CHUNKS):
        if check_program(generate(seed), EXECUTORS) is not None:
            program = shrink(generate(seed), EXECUTORS)
            failures.append(f"seed {seed}: {check_program(program, EXECUTORS)}\n{program.source()}")
            if len(failures) >= 3:
                break
    assert not failures, "\n\n".join(failures)


# Regressions the fuzzer found, shrunk.


def test_the_backward_reads_an_input_as_it_was_before_the_forward_wrote_into_it():
    # seed 124: with fusions, rematerialization made the backward recompute from the input x0, saved as it was,
    # after the forward had written into it: the mutation was applied twice (schedule_writes now saves a copy)
    def fn(x0, x1):
        x0.mul_(3)
        v = torch.clamp(torch.clamp(x1, -0.5, 0.5), min=torch.add(True, x0, alpha=2))
        return torch.atan2(torch.where(x0 > v, x0, v), x1)

    for executors in (None, [DECOMPOSE_TO_PRIMS], EXECUTORS):
        x0, x1 = torch.tensor(1), torch.tensor(1.5814, requires_grad=True)
        e0, e1 = x0.clone(), x1.detach().clone().requires_grad_()
        out, expected = thunder.jit(fn, executors=executors)(x0, x1), fn(e0, e1)
        out.backward()
        expected.backward()
        torch.testing.assert_close((out, x0, x1.grad), (expected, e0, e1.grad))


def test_a_result_computed_from_an_input_is_not_changed_by_a_later_write_into_that_input():
    # seed 51: repeat, decomposed into expand + reshape, ran as a view of x0; the write-back of the in-place
    # update of x0 then changed the returned value (eager's repeat copies)
    def fn(x0):
        v = x0.repeat(2, *[1] * x0.ndim)
        x0[..., 1:] = 5
        return v

    for executors in (None, [DECOMPOSE_TO_PRIMS], EXECUTORS):
        x0 = torch.arange(8).reshape(2, 2, 2).transpose(0, 1)
        e0 = x0.clone()
        torch.testing.assert_close((thunder.jit(fn, executors=executors)(x0), x0), (fn(e0), e0))
