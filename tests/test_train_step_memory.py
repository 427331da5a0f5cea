"""Memory of the jitted training step (issue #19, "no more memory than torch.compile"): what the executed program
keeps alive, computed from its trace, and that in-place write-backs moved early still give eager's results.

Before the `schedule writes` pass, every new parameter and optimizer-state value stayed alive until the write-backs
at the end of the program (three parameter-sized copies of the model for AdamW), and with the torchcompile
executor AdamW's weight-decay products `param * (1 - lr * wd)` ran first and stayed alive through the forward and
backward.
"""

from __future__ import annotations

import copy

import pytest
import torch

import thunder
from benchmarks.models import Llama, LlamaConfig
from thunder.core.proxies import TensorProxy
from thunder.core.symbol import flat_proxies
from thunder.transforms.schedule_writes import schedule_writes


def _llama_step(executors=None):
    torch.manual_seed(0)
    model = Llama(LlamaConfig.preset("tiny"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randint(0, 64, (2, 16), generator=g) for _ in range(2))
    return model, opt, training_step(model, opt), x, y


def training_step(model, opt):
    def step(x, y):
        loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def peak_live_parameter_sized(trace, parameter_shapes: set) -> int:
    """The most tensors of a parameter's shape that the program itself made (not its inputs) alive at once,
    following the trace's `del` statements."""
    inputs = {p.name for p in flat_proxies(trace.args)}
    live: set[str] = set()
    peak = 0
    for bsym in trace.bound_symbols:
        if bsym.sym.name == "python_del":
            live.difference_update(bsym.args)
            continue
        for p in bsym.flat_outs:
            if isinstance(p, TensorProxy) and p.name not in inputs and tuple(p.shape) in parameter_shapes:
                live.add(p.name)
        peak = max(peak, len(live))
    return peak


def test_adamw_step_keeps_few_parameter_sized_values_alive():
    model, _, step, x, y = _llama_step()
    jstep = thunder.jit(step)
    jstep(x, y)
    jstep(x, y)  # the second step has optimizer state: every update writes back in place
    params = list(model.parameters())
    shapes = {tuple(p.shape) for p in params}
    peak = peak_live_parameter_sized(thunder.last_traces(jstep)[-1], shapes)
    # eager holds one gradient per parameter when the optimizer starts, and a few temporaries of one parameter
    # while it updates; the new values of parameters and state must not pile up until the end of the program
    # (before the fix: 3 per parameter on top of the gradients)
    assert peak <= len(params) + 6, f"{peak} parameter-sized values alive at once for {len(params)} parameters"


def _compare(model, ref_model, opt, ref_opt):
    for (name, p), r in zip(model.named_parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, r, msg=lambda m, name=name: f"{name}: {m}")
    for p, r in zip(model.parameters(), ref_model.parameters()):
        for key, value in ref_opt.state[r].items():
            torch.testing.assert_close(opt.state[p][key], value)


def test_adamw_steps_with_early_write_backs_match_eager():
    model, opt, step, x, y = _llama_step()
    ref_model = copy.deepcopy(model)
    ref_opt = torch.optim.AdamW(ref_model.parameters(), lr=1e-2, weight_decay=0.1)
    ref_step = training_step(ref_model, ref_opt)

    jstep = thunder.jit(step)
    for _ in range(3):
        torch.testing.assert_close(jstep(x, y), ref_step(x, y))
    _compare(model, ref_model, opt, ref_opt)


def test_write_back_waits_for_reads_of_a_view_of_its_destination():
    # A program where the value written into x exists before a view of x is read (the order the optimizer's
    # updates have): the write must not move before that read, which eager makes on the old data.
    def f(x, a):
        flat = x.reshape(-1)
        new = a * 3
        early = flat * 2
        x.copy_(new)
        return early.sum()

    jf = thunder.jit(f)
    jf(torch.randn(4, 5), torch.randn(4, 5))
    acquired = next(t for t in thunder.last_traces(jf) if t.provenance == "dead code elimination")
    by_name = {b.sym.name: b for b in acquired.bound_symbols if b.sym.name not in ("mul",)}
    muls = [b for b in acquired.bound_symbols if b.sym.name == "mul"]
    makes_new = next(b for b in muls if b.flat_args[0].name == "a")
    reads_view = next(b for b in muls if b is not makes_new)
    write = by_name["copy_to"]
    # the new value (and its conversion) first, then the read of the view, then the write
    order = [by_name["reshape"], makes_new, by_name["convert_element_type"], reads_view, by_name["sum"], write]
    assert len(order) == len(acquired.bound_symbols)
    scheduled = schedule_writes(acquired.from_trace("reordered", order)).bound_symbols
    assert scheduled.index(write) > scheduled.index(reads_view), "the write into x moved before a read of its view"


def test_input_only_operation_is_not_moved_past_a_write_into_its_input():
    def f(x, a):
        scaled = x * 2  # reads x before the write below
        x.add_(a)
        return scaled + x

    x, a = torch.randn(3, 3), torch.randn(3, 3)
    xj = x.clone()
    expected = f(x, a)
    got = thunder.jit(f)(xj, a)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(xj, x)


@pytest.mark.parametrize("executors", [None, ["torchcompile"]], ids=["default", "torchcompile"])
def test_write_backs_follow_their_values_in_the_execution_trace(executors):
    # each write-back comes within one parameter's update (AdamW: about a dozen operations) of the operation that
    # made its value, not at the end of the program (hundreds of operations later)
    model, _, step, x, y = _llama_step()
    jstep = thunder.jit(step, executors=executors)
    jstep(x, y)
    jstep(x, y)
    trace = thunder.last_traces(jstep)[-1]
    ops = [b for b in trace.bound_symbols if b.sym.name != "python_del"]
    producer = {p.name: i for i, b in enumerate(ops) for p in b.flat_outs}
    is_write = ["device_write" in b.sym.tags for b in ops]
    writes = [(i, b) for i, b in enumerate(ops) if is_write[i]]
    assert len(writes) == 3 * len(list(model.parameters()))  # parameter, exp_avg, exp_avg_sq
    # distance in operations other than write-backs (with torchcompile the update runs inside the backward's
    # regions, and a region's write-backs follow it one after the other); a parameter's write-back also waits for
    # the reads of values that may share its memory (an embedding's output, conservatively: a region later)
    late = [b.flat_args[0].name for i, b in writes
            if sum(not w for w in is_write[producer[b.flat_args[1].name] + 1 : i]) > 20]  # fmt: skip
    assert not late, f"write-backs far from their values: {late}"
