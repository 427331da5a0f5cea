"""Number proxies (a learning rate, a step count: numbers that are inputs of the program) as scalar inputs of
nvFuser fusions, not constants (issue #19: the optimizer update's operations on the learning rate used to stay
outside every fusion).

Each case runs twice: on the CPU, with the plans replayed by torch (plan_interpreter.py: what the planner
decides), and on CUDA with nvFuser itself (skipped without it). Every result is compared with eager, for
several values of the numbers, and a new value must not compile a new fusion.
"""

from __future__ import annotations

import copy
import math
import random
import warnings

import pytest
import torch
from nvfuser_test_support import nvfuser_available
from plan_interpreter import interpret_build
from thunder_executors_nvfuser.executor import NvFuserExecutor
from thunder_executors_nvfuser.options import NvFuserOptions
from thunder_executors_nvfuser.runtime import NvFuserFallbackWarning

import thunder
from thunder.core.proxies import NumberProxy

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not nvfuser_available(), reason="needs CUDA and nvfuser_direct"))]


def executor_for(device: str) -> NvFuserExecutor:
    if device == "cpu":
        return NvFuserExecutor(NvFuserOptions(), device_types=("cpu",), build=interpret_build)
    return NvFuserExecutor(NvFuserOptions())  # a fresh one: its own fusion cache and counters


def fused_numbers(jfn) -> list[str]:
    """The number proxies that the fusion regions of the last program read."""
    return [p.name for b in thunder.last_traces(jfn)[-1].bound_symbols if b.sym.id.startswith("nvfuser.")
            for p in b.flat_args if isinstance(p, NumberProxy)]  # fmt: skip


def run_with_values(fn, make_x, values, device):
    """jit(fn) with number inputs; each call's result against eager. Returns (jitted fn, compilations per call)."""
    ex = executor_for(device)
    jfn = thunder.jit(fn, executors=[ex], cache="symbolic values")
    compilations = []
    for numbers in values:
        x = make_x()
        with warnings.catch_warnings():
            warnings.simplefilter("error", NvFuserFallbackWarning)  # a fallback would hide an nvFuser failure
            out = jfn(x, *numbers)
        torch.testing.assert_close(out, fn(x, *numbers), equal_nan=True, msg=lambda m, numbers=numbers: f"numbers {numbers}: {m}")
        compilations.append(ex.stats.compilations)
    return jfn, compilations


def update_like(x, lr, beta, step):
    bias_correction = 1 - beta**step
    y = x * (1 - lr * 0.01) - lr * torch.tanh(x) / bias_correction
    return torch.where(y > lr, y, beta) + step


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_numbers_are_scalar_inputs_of_the_fusion_and_new_values_compile_nothing(device, dtype):
    rng = random.Random(0)
    values = [(1e-3, 0.9, 1), (0.5, 0.99, 7), (-2.0, 0.5, 100), (-0.0, 0.0, 3)]
    values += [(rng.uniform(-3, 3), rng.uniform(0, 1), rng.randint(1, 50)) for _ in range(4)]
    jfn, compilations = run_with_values(update_like, lambda: torch.randn(5, 7, device=device, dtype=dtype),
                                        values, device)  # fmt: skip
    assert {"lr", "beta"} <= set(fused_numbers(jfn)), thunder.last_traces(jfn)[-1]
    assert compilations[0] >= 1 and len(set(compilations)) == 1, compilations


@pytest.mark.parametrize("device", DEVICES)
def test_integer_tensors_with_integer_and_float_numbers(device):
    def fn(x, k, f):
        # int64 * int stays int64 (and wraps as eager's does); int64 * float is a float32 tensor in eager, which
        # the decomposition makes by converting x first
        return (x * k + k) // 3 + (x * f)

    values = [(3, 0.5), (-7, 2.5), (1 << 40, -1.25), (1 << 62, 1e30)]
    jfn, _ = run_with_values(fn, lambda: torch.arange(-6, 6, device=device).reshape(3, 4), values, device)
    assert set(fused_numbers(jfn)) == {"k", "f"}, thunder.last_traces(jfn)[-1]


@pytest.mark.parametrize("device", DEVICES)
def test_a_bool_number_input_in_a_bool_operation(device):
    values = [(True,), (False,)]
    run_with_values(lambda x, b: (x > 0) | b, lambda: torch.randn(6, device=device), values, device)


@pytest.mark.parametrize("device", DEVICES)
def test_a_nan_number_reaching_maximum_and_minimum_gives_nan_as_eager(device):
    # maximum/minimum take no number input (nvFuser's return the other operand where one is NaN); the NaN input
    # still reaches the other operations of the program
    def fn(x, lo, hi):
        return torch.clamp(x * lo, min=lo, max=hi) + lo

    values = [(0.5, 1.0), (math.nan, 1.0), (-1.0, math.nan), (math.inf, -math.inf)]
    run_with_values(fn, lambda: torch.randn(4, 3, device=device), values, device)


@pytest.mark.parametrize("device", DEVICES)
def test_adamw_with_a_scheduler_fuses_the_update_and_matches_eager(device):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4)).to(device)
    twin = copy.deepcopy(model)
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1) for m in (model, twin)]
    schedulers = [torch.optim.lr_scheduler.StepLR(o, 1, gamma=0.5) for o in opts]
    ex = executor_for(device)

    def step_of(m, opt):
        def step(x):
            loss = m(x).square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss

        return step

    eager_step, jstep = step_of(model, opts[0]), thunder.jit(step_of(twin, opts[1]), executors=[ex])
    compilations = []
    for _ in range(4):
        x = torch.randn(5, 8, device=device)
        torch.testing.assert_close(jstep(x), eager_step(x))
        compilations.append(ex.stats.compilations)
        for s in schedulers:
            s.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(b, a)
    state_e, state_j = opts[0].state_dict()["state"], opts[1].state_dict()["state"]
    for i in state_e:
        for key in state_e[i]:
            torch.testing.assert_close(state_j[i][key], state_e[i][key])
    assert opts[1].param_groups[0]["lr"] < 2e-3  # the schedule did change the learning rate
    assert fused_numbers(jstep), "the update's numbers are not inside the fusions"
    # the first step creates the optimizer state (a program of its own); later steps reuse one program and its
    # fusions, whatever the learning rate
    assert compilations[1] == compilations[2] == compilations[3]
