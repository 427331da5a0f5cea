"""The random-program fuzzer with writes autograd does not record (see `generate(..., untracked=True)` in
programs.py): in-place ops under `torch.no_grad()`, through `detach()` or `.data`, on values, on views (of views)
and on inputs that require grad, `__setitem__` among them, mixed with the other statements, which use the written
tensors later in grad mode. Outputs, inputs after the call and gradients are compared with eager.

Where eager's backward fails because a value saved for backward was written in place (or would fail, for a write
through `.data`, which eager's version counter does not see, so that eager differentiates with the overwritten
values), the forward is compared and the gradients are not: Thunder may return the gradient of the program as
written there.

`THUNDER_FUZZ_UNTRACKED_PROGRAMS` sets how many programs run (default 300, seeds 0..N-1); `THUNDER_FUZZ_SEED`
offsets the seeds; `THUNDER_TEST_DEVICE` picks the device (default "cpu"). A failure prints the shrunk program as
a runnable reproducer.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from .programs import _eager_result, check_program, check_seeds, generate

N_PROGRAMS = int(os.environ.get("THUNDER_FUZZ_UNTRACKED_PROGRAMS", "300"))
FIRST_SEED = int(os.environ.get("THUNDER_FUZZ_SEED", "0"))
CHUNKS = 4  # programs run in chunks, so that pytest-xdist can spread them


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_programs_with_untracked_writes_match_eager(chunk):
    check_seeds(range(FIRST_SEED + chunk, FIRST_SEED + N_PROGRAMS, CHUNKS), untracked=True)


def test_generated_programs_write_without_autograd_in_every_form():
    """The generator is not vacuous: every form of untracked write appears, and most programs' gradients are
    compared."""
    programs = [generate(seed, untracked=True) for seed in range(80)]
    text = "\n".join(line for p in programs for line in p.lines)
    for needle in (
        "with torch.no_grad(): x",
        ".detach().",
        ".data.",
        "].data.",
        ".data[",
        "] = ",
        "zero_()",
        "fill_(",
        "copy_(",
        ".t()[1:]",
        "with torch.no_grad(): v",
        "= x0.data",
        ".detach()\n",
    ):
        assert needle in text + "\n", needle
    # a written tensor is used again after the write
    assert sum(any(_later_use(p.lines, i) for i in range(len(p.lines))) for p in programs) >= 40
    results = [_eager_result(p) for p in programs]
    compared = sum(r.grads is not None and r.grads_comparable for r in results)
    assert compared >= len(programs) // 2, compared
    assert any(not r.grads_comparable for r in results)  # eager's backward refused some: the forward is compared


def _later_use(lines, i) -> bool:
    line = lines[i]
    if not ("no_grad" in line or ".data" in line or ".detach()." in line):
        return False
    written = line.removeprefix("with torch.no_grad(): ").split(".")[0].split("[")[0]
    return any(written in later and "no_grad" not in later for later in lines[i + 1 :])


def test_eager_backward_failure_keeps_the_forward_comparison():
    """A program whose eager backward fails on a saved value written in place is kept, gradients not compared."""
    program = generate(0, untracked=True)
    program = replace(program, lines=("v0 = x0 * x0", "with torch.no_grad(): x0.mul_(2)"), outputs=("v0",))
    program = replace(program, input_lines=("x0 = torch.randn((3,), generator=g, dtype=torch.float64).to(DEVICE)",
                                            "x0 = x0.detach().requires_grad_()"), n_inputs=1)  # fmt: skip
    result = _eager_result(program)
    assert result is not None and not result.grads_comparable
    assert _eager_result(replace(program, untracked=False)) is None  # the default fuzzer drops it
    assert check_program(program) is None
