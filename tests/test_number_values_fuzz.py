"""Operations whose arguments are numbers, with those numbers as inputs of the program (cache="symbolic
values"), called with special values after the program was traced with ordinary ones: NaN, infinities, signed
zeros, negatives, large values. Each call against eager, the operation run whole by the torch executor and
decomposed into prims (what the fusion executors see).

A decomposition that reads a number's value while tracing (`math.isnan(min)` in clamp) bakes the traced
value into a program that later calls reuse; it must guard what it read, or compute it in the program. These
were silently wrong (NaN bounds of clamp and hardtanh, NaN eps of logit, infinite replacements of nan_to_num,
non-positive huber delta, `fill_` with a number input).
"""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F

import thunder
from tests.ops.opdb import EXECUTOR_LISTS

# name -> fn(x, y, n, m): x, y float tensors, n and m numbers that are inputs of the program
NUMBER_OPS = {
    "clamp": lambda x, y, n, m: torch.clamp(x, n, m),
    "clamp_min": lambda x, y, n, m: torch.clamp(x, min=n),
    "clamp_max": lambda x, y, n, m: torch.clamp(x, max=m),
    "hardtanh": lambda x, y, n, m: F.hardtanh(x, n, m),
    "leaky_relu": lambda x, y, n, m: F.leaky_relu(x, n),
    "threshold": lambda x, y, n, m: F.threshold(x, n, m),
    "add_alpha": lambda x, y, n, m: torch.add(x, y, alpha=n),
    "sub_alpha": lambda x, y, n, m: torch.sub(x, y, alpha=n),
    "addcmul": lambda x, y, n, m: torch.addcmul(x, y, x, value=n),
    "addcdiv": lambda x, y, n, m: torch.addcdiv(x, y, x, value=n),
    "lerp": lambda x, y, n, m: torch.lerp(x, y, n),
    "masked_fill": lambda x, y, n, m: x.masked_fill(y > 0, n),
    "where": lambda x, y, n, m: torch.where(y > 0, x, n),
    "pow_tensor_number": lambda x, y, n, m: torch.pow(x, n),
    "pow_number_tensor": lambda x, y, n, m: torch.pow(n, x),
    "nan_to_num": lambda x, y, n, m: torch.nan_to_num(x / y.round(), nan=n, posinf=m, neginf=n),
    "softplus": lambda x, y, n, m: F.softplus(x, beta=n, threshold=m),
    "div": lambda x, y, n, m: x / n + n / x,
    "remainder": lambda x, y, n, m: torch.remainder(x, n),
    "fmod": lambda x, y, n, m: torch.fmod(x, n),
    "floor_divide": lambda x, y, n, m: torch.floor_divide(x, n),
    "logit": lambda x, y, n, m: torch.logit(torch.sigmoid(x), eps=n),
    "full_like": lambda x, y, n, m: torch.full_like(x, n) + x,
    "fill_": lambda x, y, n, m: torch.zeros_like(x).fill_(n),
    "xlogy": lambda x, y, n, m: torch.xlogy(x, n),
    "compare_and_select": lambda x, y, n, m: torch.where(x > n, x, m),
    "comparisons": lambda x, y, n, m: (x == n) | (x != m) | (x <= n),
    "huber_loss": lambda x, y, n, m: F.huber_loss(x, y, delta=n),
    # elu and celu take only finite alphas here: with a NaN or infinite alpha, eager gives 0 at x == 0 and the
    # decomposition NaN (expm1(0) * alpha); see tests/README.md
    "elu": lambda x, y, n, m: F.elu(x, alpha=n if math.isfinite(n) else 1.5),
    "celu": lambda x, y, n, m: F.celu(x, alpha=n if math.isfinite(n) and n != 0 else 1.5),
}
SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 0.0, -3.0, 1e30]


def values_to_try(seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    randoms = [rng.choice([rng.uniform(-4, 4), rng.uniform(0, 1), float(rng.randint(-3, 3))]) for _ in range(3)]
    return list(itertools.product(SPECIAL + randoms, [2.0, math.nan, -math.inf]))


def outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # eager and the program must both raise (the messages may differ)
        return e


@pytest.mark.parametrize("executors", ["torch", "prims"])
@pytest.mark.parametrize("name", list(NUMBER_OPS))
def test_special_number_values_after_tracing_with_ordinary_ones_match_eager(name, executors):
    fn = NUMBER_OPS[name]
    jfn = thunder.jit(fn, cache="symbolic values", executors=EXECUTOR_LISTS[executors])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=g).to(torch.get_default_device())
    y = torch.randn(4, 5, generator=g).to(x.device)
    x[0, 0], x[0, 1] = 0.0, -0.0
    torch.testing.assert_close(jfn(x, y, 0.5, 2.0), fn(x, y, 0.5, 2.0), equal_nan=True)  # traced with ordinary values
    for n, m in values_to_try(seed=len(name)):
        expected, out = outcome(fn, x, y, n, m), outcome(jfn, x, y, n, m)
        if isinstance(expected, Exception) or isinstance(out, Exception):
            assert isinstance(expected, Exception) and isinstance(out, Exception), (n, m, expected, out)
            continue
        torch.testing.assert_close(out, expected, equal_nan=True, msg=lambda msg, n=n, m=m: f"n={n}, m={m}: {msg}")
