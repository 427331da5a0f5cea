"""The optimizer update of a jitted training step inside the torchcompile executor's regions (issue #19: "the
fusion executors see the optimizer update and can fuse it").

The update reads the learning rate and the step counts as number inputs of the program (a scheduler changes them
without recompiling). The torchcompile executor used to leave every operation on such a number outside its
regions, which cut AdamW's update of a two-block Llama-style model into 45 regions of its own. Now the update
joins the regions of the backward that computes its gradients: it adds no region, and no tensor operation of it
runs outside a region; an optimizer step jitted alone is one region. Values are checked against eager, and a
scheduler's new learning rate compiles nothing.
"""

from __future__ import annotations

import collections
import copy

import pytest
import torch
import torch._inductor.config

import thunder
from thunder.core.proxies import NumberProxy
from thunder.executors import torchcompileex
from thunder.extend import CompileCache, OpTag
from thunder.testing import LlamaStyle

OPTIMIZERS = {
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, weight_decay=0.01),
}


@pytest.fixture(autouse=True, scope="module")
def one_compile_thread():
    # Two cores: a pool of compile workers costs more to start than it saves on small regions.
    with torch._inductor.config.patch(compile_threads=1):
        yield


def small_llama(layers: int = 2) -> LlamaStyle:
    torch.manual_seed(0)
    return LlamaStyle(vocab=64, dim=32, heads=2, hidden=64, layers=layers)


def batches(n: int):
    g = torch.Generator().manual_seed(1)  # drawn on the CPU, moved to the test device (--device cuda)
    return [tuple(torch.randint(0, 64, (2, 8), generator=g, device="cpu").to(torch.get_default_device())
                  for _ in range(2)) for _ in range(n)]  # fmt: skip


def training_step(model, opt):
    def step(x, y):
        loss = model(x, y)
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        return loss

    return step


def program_outline(trace) -> tuple[int, collections.Counter]:
    """The number of fusion regions, and the operations outside them other than write-backs into inputs,
    number arithmetic and bookkeeping (`del`, `return`)."""
    regions = 0
    outside = collections.Counter()
    for bsym in trace.bound_symbols:
        if OpTag.FUSION in bsym.sym.tags:
            regions += 1
        elif OpTag.DEVICE_WRITE in bsym.sym.tags or bsym.sym.name in ("python_del", "python_return"):
            continue
        elif bsym.flat_outs and all(isinstance(p, NumberProxy) for p in bsym.flat_outs):
            continue
        else:
            outside[bsym.sym.name] += 1
    return regions, outside


def outline_after_two_steps(opt_name: str | None):
    model = small_llama()
    opt = OPTIMIZERS[opt_name](model.parameters()) if opt_name else None
    jstep = thunder.jit(training_step(model, opt), executors=["torchcompile"])
    for x, y in batches(2):  # the second step runs the program that every later step reuses
        jstep(x, y)
    return program_outline(thunder.last_traces(jstep)[-1])


@pytest.fixture
def regions_not_compiled(monkeypatch):
    """The torchcompile executor partitions as usual but runs its regions without Inductor (the structure of the
    program is what is checked; the cache is a fresh one, so later tests get compiled regions)."""
    monkeypatch.setattr(torchcompileex, "_inductor_compile", lambda program, args, options=None:
                        program.trace.python_callable())  # fmt: skip
    monkeypatch.setattr(torchcompileex.ex, "cache", CompileCache())


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_the_optimizer_update_adds_no_region_and_runs_inside_the_regions(optimizer, regions_not_compiled):
    regions, outside = outline_after_two_steps(optimizer)
    regions_without_update, outside_without_update = outline_after_two_steps(None)
    assert outside == outside_without_update, "tensor operations of the update left outside the regions"
    assert regions == regions_without_update  # before the number inputs joined the regions: 47 with AdamW
    # what separates the regions: the backward kernels of rms_norm and attention, which the torch executor runs
    assert set(outside) == {"vjp_ltorch_rms_norm", "vjp_ltorch_scaled_dot_product_attention"}
    assert regions == sum(outside.values()) + 1


def assert_same_parameters_and_state(eager, jitted):
    (model_e, opt_e), (model_j, opt_j) = eager, jitted
    for (name, a), b in zip(model_e.named_parameters(), model_j.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")
        assert (b.grad is None) == (a.grad is None)
    state_e, state_j = opt_e.state_dict()["state"], opt_j.state_dict()["state"]
    assert state_e.keys() == state_j.keys()
    for i, entry in state_e.items():
        for key, value in entry.items():
            torch.testing.assert_close(state_j[i][key], value, rtol=1e-5, atol=1e-5,
                                       msg=lambda m, i=i, key=key: f"state[{i}][{key!r}]: {m}")  # fmt: skip


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_fused_update_with_a_scheduler_matches_eager_and_compiles_nothing_new(optimizer):
    model = small_llama(layers=1)
    twin = copy.deepcopy(model)
    eager = (model, OPTIMIZERS[optimizer](model.parameters()))
    jitted = (twin, OPTIMIZERS[optimizer](twin.parameters()))
    schedulers = [torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5) for _, opt in (eager, jitted)]
    e_step, j_step = training_step(*eager), thunder.jit(training_step(*jitted), executors=["torchcompile"])
    compilations = []
    for x, y in batches(4):
        torch.testing.assert_close(j_step(x, y), e_step(x, y), rtol=1e-5, atol=1e-5)
        compilations.append(torchcompileex.ex.compilations)
        for scheduler in schedulers:
            scheduler.step()
    assert_same_parameters_and_state(eager, jitted)
    assert jitted[1].param_groups[0]["lr"] == eager[1].param_groups[0]["lr"] < 2e-3  # the schedule did change lr
    # the first step creates the optimizer state (a program of its own); every later one reuses one program, and
    # its regions read the new learning rate at each call instead of being compiled for it
    assert thunder.cache_misses(j_step) == 2
    assert compilations[1] == compilations[2] == compilations[3]
    fused_numbers = [p for b in thunder.last_traces(j_step)[-1].bound_symbols if OpTag.FUSION in b.sym.tags
                     for p in b.flat_args if isinstance(p, NumberProxy)]  # fmt: skip
    assert fused_numbers, "the update's number inputs are not inside the regions"


def test_an_optimizer_step_alone_updates_every_parameter_in_one_region():
    # the gradients come from an eager backward (thunder.jit(model) and the optimizer apart): each parameter's
    # update is independent of the others, and one region runs them all, as a foreach optimizer does
    model = small_llama(layers=1)
    twin = copy.deepcopy(model)
    eager_opt, jit_opt = (OPTIMIZERS["adamw"](m.parameters()) for m in (model, twin))
    jstep = thunder.jit(lambda: jit_opt.step(), executors=["torchcompile"])
    for x, y in batches(3):
        for m, step in ((model, eager_opt.step), (twin, jstep)):
            m.zero_grad(set_to_none=True)
            m(x, y).backward()
            step()
    assert_same_parameters_and_state((model, eager_opt), (twin, jit_opt))
    regions, outside = program_outline(thunder.last_traces(jstep)[-1])
    assert regions == 1 and not outside
