"""What every model test checks: a model under `thunder.jit` against an eager copy of itself.

Each check deep-copies the model it is given, runs the original under `thunder.jit` and the copy eagerly on
the same inputs, and compares: the forward outputs (in inference, under `torch.no_grad()`), one
training step (the loss and every parameter's gradient), and `thunder.examine`'s report (every operation
supported, only the expected ones through the meta-kernel fallback, and the jitted result equal to eager).

`assert_thunderfx_training_step_matches_eager` does the training-step check through the second frontend,
`thunder.dynamo.thunderfx`.

`executors` names an entry of `EXECUTOR_LISTS`: the model tests are parametrized over it, so that a new
executor row (torchcompile, ...) is one entry here, with its tolerances.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import pytest
import torch
import torch._dynamo

import thunder
from thunder.examine import examine

# name -> the `executors=` argument of thunder.jit (None: the default executors, by priority)
EXECUTOR_LISTS: dict[str, list | None] = {"default": None, "torchcompile": ["torchcompile", "sdpa"]}
# name -> torch.testing.assert_close tolerances for float32 results. The default executors run each torch
# operation whole through PyTorch, but their backward formulas are Thunder's own, so gradients may differ
# from torch autograd's in the last bits.
TOLERANCES: dict[str, dict] = {"default": {"rtol": 1e-5, "atol": 1e-5}, "torchcompile": {"rtol": 1e-4, "atol": 1e-4}}
# every test runs with the default executors; the training-step tests (forward loss and every gradient) of
# every model also run with torchcompile (Inductor's compile time on 2 cores keeps it to those)
EXECUTORS = ["default"]


def jit(model: torch.nn.Module, executors: str):
    return thunder.jit(model, executors=EXECUTOR_LISTS[executors])


def needs_core_patch(gap: str, raises: type[BaseException] | tuple) -> pytest.MarkDecorator:
    """Marks a test that fails until a change in thunder_core lands; strict, so that it fails once it passes
    (remove the mark then). `raises` is the failure expected today: any other failure is a real one."""
    return pytest.mark.xfail(strict=True, raises=raises, reason=f"core gap: {gap}")


def seeded(build: Callable[[], torch.nn.Module], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build()


def assert_forward_matches_eager(model: torch.nn.Module, inputs: Mapping, executors: str) -> None:
    """Inference (eval mode, no grad): every output tensor of the jitted model equals eager's."""
    model.eval()
    reference = copy.deepcopy(model)
    with torch.no_grad():
        expected = reference(**inputs)
        actual = jit(model, executors)(**inputs)
    torch.testing.assert_close(actual, expected, **TOLERANCES[executors])


def assert_training_step_matches_eager(
    model: torch.nn.Module, inputs: Mapping, loss_of: Callable, executors: str
) -> None:
    """One training step (train mode): the loss, and the gradient of every parameter, equal eager's."""
    model.train()
    reference = copy.deepcopy(model)
    loss = loss_of(jit(model, executors)(**inputs))
    loss.backward()
    expected = loss_of(reference(**inputs))
    expected.backward()
    assert_loss_and_gradients_match(model, reference, loss, expected, TOLERANCES[executors], "thunder.jit")


def assert_loss_and_gradients_match(model, reference, loss, expected, tolerances: dict, frontend: str) -> None:
    """The loss, and every parameter's gradient (None where eager's is None), equal the eager reference's."""
    torch.testing.assert_close(loss, expected, **tolerances)
    checked = 0
    for (name, param), (_, ref_param) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        if ref_param.grad is None:
            assert param.grad is None, f"{name} got a gradient under {frontend} but none in eager"
            continue
        assert param.grad is not None, f"{name} got no gradient under {frontend}"
        torch.testing.assert_close(param.grad, ref_param.grad, **tolerances, msg=lambda m, n=name: f"{n}: {m}")
        checked += 1
    assert checked > 0, "the loss reaches no parameter: the comparison checked nothing"


def assert_thunderfx_training_step_matches_eager(model: torch.nn.Module, inputs: Mapping, loss_of: Callable):
    """One training step through `thunder.dynamo.thunderfx` (the regions Thunder does not take run eagerly): the
    loss and every parameter's gradient equal eager's; Thunder ran at least one region and failed on none."""
    from thunder.dynamo import thunderfx

    torch._dynamo.reset()  # no graph cached by an earlier test's model
    model.train()
    reference = copy.deepcopy(model)
    compiled = thunderfx(model, fallback="eager")
    loss = loss_of(compiled(**inputs))
    loss.backward()
    expected = loss_of(reference(**inputs))
    expected.backward()
    assert_loss_and_gradients_match(model, reference, loss, expected, TOLERANCES["default"], "thunderfx")
    failed = [str(r) for r in compiled.split_reasons if r.kind == "thunder failed"]
    assert not failed, "Thunder failed on regions (they ran eagerly):\n" + "\n".join(failed)
    assert compiled.last_traces, f"no region ran through Thunder:\n{compiled.report()}"


def assert_examine_finds_every_op_supported(
    model: torch.nn.Module, inputs: Mapping, expected_fallbacks: Mapping[str, str]
) -> None:
    """examine: nothing unsupported, the jitted result matches eager, and every operation is native except
    those in `expected_fallbacks` (operation -> why it takes the meta-kernel fallback path)."""
    result = examine(model, **inputs)
    report = result.report()
    assert result.jit_error is None, report
    assert result.unsupported == [], report
    assert result.matches_eager, report
    unexpected = sorted(set(result.fallback) - set(expected_fallbacks))
    assert not unexpected, f"operations newly on the fallback path: {unexpected}\n{report}"
