"""The random-program fuzzer: generated programs match eager under thunder.jit (see programs.py).

`THUNDER_FUZZ_PROGRAMS` sets how many programs run (default 300, seeds 0..N-1); `THUNDER_FUZZ_SEED` offsets
the seeds; `THUNDER_TEST_DEVICE` picks the device (default "cpu"). A failure prints the shrunk program as a
runnable reproducer.
"""

from __future__ import annotations

import os

import pytest

from .programs import check_seeds, generate

N_PROGRAMS = int(os.environ.get("THUNDER_FUZZ_PROGRAMS", "300"))
FIRST_SEED = int(os.environ.get("THUNDER_FUZZ_SEED", "0"))
CHUNKS = 10  # programs run in chunks, so that pytest-xdist can spread them


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_programs_match_eager(chunk):
    check_seeds(range(FIRST_SEED + chunk, FIRST_SEED + N_PROGRAMS, CHUNKS))


def test_generated_programs_cover_the_op_families():
    """The generator is not vacuous: programs are long enough and use every family of statements."""
    sources = [generate(seed) for seed in range(60)]
    assert all(3 <= len(p.lines) <= 12 for p in sources)
    text = "\n".join(line for p in sources for line in p.lines)
    for needle in ("_(", "@", "torch.cat", "torch.where", "softmax", ".sum(", ".view(", "[", "layer_norm", "] ="):
        assert needle in text, needle
    inputs = "\n".join(line for p in sources for line in p.input_lines)
    for needle in ("bfloat16", "int64", "torch.bool", "transpose", "::2", "expand", "requires_grad_", "()"):
        assert needle in inputs, needle
