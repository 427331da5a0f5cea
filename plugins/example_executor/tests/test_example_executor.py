"""Tests of the example executor plugin. They install nothing: they expect the package to be installed, e.g.

    pip install --no-deps --no-build-isolation -e plugins/example_executor

and check it the way a user meets it: found through its entry point, listed by `python -m thunder plugins`,
used by `thunder.jit` when asked for, and computing what PyTorch eager computes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from thunder_example_executor.executor import ex, scaled_add
from thunder_example_executor.plugin import DISABLE_ENV_VAR, PRIORITY

import thunder
from thunder.extend import PluginRegistry, set_default_registry


@pytest.fixture(autouse=True)
def registry():
    """A fresh registry that discovers installed plugins (whatever THUNDER_DISABLE_PLUGIN_AUTOLOAD says)."""
    fresh = PluginRegistry(autoload=True)
    previous = set_default_registry(fresh)
    yield fresh
    set_default_registry(previous)


def run_plugins_command(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in ("THUNDER_DISABLE_PLUGIN_AUTOLOAD", DISABLE_ENV_VAR)}
    done = subprocess.run([sys.executable, "-m", "thunder", "plugins"], capture_output=True, text=True,
                          env={**environ, **env}, timeout=120, check=True)  # fmt: skip
    return done.stdout


def row_of(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.split()[:1] == [name])


def execution_source(jfn) -> str:
    return str(thunder.last_traces(jfn)[-1])


# -- discovery ----------------------------------------------------------------------------------------------


def test_plugins_command_lists_the_executor_with_its_package_and_priority():
    row = row_of(run_plugins_command(), "example")
    assert "thunder-example-executor 0.1.0" in row
    assert f" {PRIORITY} " in row
    assert row.endswith("available")


def test_plugins_command_says_why_the_executor_is_unavailable():
    row = row_of(run_plugins_command(**{DISABLE_ENV_VAR: "1"}), "example")
    assert row.endswith(f"unavailable: disabled by {DISABLE_ENV_VAR}=1")


def test_executor_is_found_by_name():
    assert thunder.extend.get_executor("example") is ex


def test_executor_is_opt_in():
    assert ex not in thunder.get_default_executors()


def test_executor_priority_places_it_before_torch_in_the_list_of_all_executors():
    names = [e.name for e in thunder.extend.get_all_executors()]
    assert names.index("example") < names.index("torch")


# -- execution ----------------------------------------------------------------------------------------------


def test_jit_runs_add_with_alpha_as_scaled_add_when_the_executor_is_listed():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    jfn = thunder.jit(lambda a, b: torch.add(a, b, alpha=0.5), executors=["example"])
    torch.testing.assert_close(jfn(a, b), torch.add(a, b, alpha=0.5))
    assert "scaled_add(a, b, 0.5)" in execution_source(jfn)


def test_jit_runs_sub_with_alpha_as_scaled_add_with_the_opposite_scale():
    a, b = torch.randn(5), torch.randn(5)
    jfn = thunder.jit(lambda a, b: a.sub(b, alpha=2.0), executors=["example"])
    torch.testing.assert_close(jfn(a, b), a.sub(b, alpha=2.0))
    assert "scaled_add(a, b, -2.0)" in execution_source(jfn)


@pytest.mark.parametrize(
    "make_inputs",
    [
        pytest.param(lambda: (torch.randn(3), torch.randn(3), 1), id="alpha-is-one"),
        pytest.param(lambda: (torch.randn(2, 3), torch.randn(3), 0.5), id="broadcasting"),
        pytest.param(lambda: (torch.randn(3), torch.randn(3, dtype=torch.float64), 0.5), id="mixed-dtypes"),
        pytest.param(lambda: (torch.arange(3), torch.arange(3), 2), id="integers"),
    ],
)
def test_additions_the_checker_rejects_run_on_torch(make_inputs):
    a, b, alpha = make_inputs()
    jfn = thunder.jit(lambda a, b: torch.add(a, b, alpha=alpha), executors=["example"])
    torch.testing.assert_close(jfn(a, b), torch.add(a, b, alpha=alpha))
    assert "scaled_add" not in execution_source(jfn)


def test_executor_is_not_used_unless_listed():
    jfn = thunder.jit(lambda a, b: torch.add(a, b, alpha=0.5))
    jfn(torch.randn(3), torch.randn(3))
    assert "scaled_add" not in execution_source(jfn)


def test_executor_added_to_the_defaults_is_used_without_listing_it():
    thunder.add_default_executor("example")
    a, b = torch.randn(3), torch.randn(3)
    jfn = thunder.jit(lambda a, b: torch.add(a, b, alpha=3.0))
    torch.testing.assert_close(jfn(a, b), torch.add(a, b, alpha=3.0))
    assert "scaled_add" in execution_source(jfn)


def test_scaled_add_called_in_jitted_code_matches_eager():
    a, b = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    jfn = thunder.jit(lambda a, b: scaled_add(a, b, -1.5).sum(), executors=["example"])
    torch.testing.assert_close(jfn(a, b), (a - 1.5 * b).sum())


def test_scaled_add_rejects_tensors_of_different_shapes():
    jfn = thunder.jit(lambda a, b: scaled_add(a, b, 2.0))
    with pytest.raises(ValueError, match="one shape, dtype and device"):
        jfn(torch.randn(3), torch.randn(2, 3))


def test_scaled_add_gradients_match_eager():
    a, b = (torch.randn(4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    ea, eb = (x.detach().clone().requires_grad_() for x in (a, b))
    jfn = thunder.jit(lambda a, b: (scaled_add(a, b, 0.25) * b).sum(), executors=["example"])
    jfn(a, b).backward()
    ((ea + 0.25 * eb) * eb).sum().backward()
    torch.testing.assert_close(a.grad, ea.grad)
    torch.testing.assert_close(b.grad, eb.grad)


# --- the trace pass, its option, and the transform offered by name --------------------------------------


def _mul_add(a, b):
    return a + 0.25 * b


def _ops(jfn) -> list[str]:
    return [b.sym.id for b in thunder.last_traces(jfn)[-1].bound_symbols]


def test_pass_rewrites_a_plus_s_times_b_into_scaled_add_with_eager_gradients():
    a = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    jfn = thunder.jit(_mul_add, executors=["example"])
    out = jfn(a, b)
    grads = torch.autograd.grad(out.sum(), (a, b))
    expected = _mul_add(a, b)
    torch.testing.assert_close(out, expected)
    for g, e in zip(grads, torch.autograd.grad(expected.sum(), (a, b))):
        torch.testing.assert_close(g, e)
    assert "example.scaled_add" in _ops(jfn)
    assert "example: fuse_mul_add" in [t.provenance for t in thunder.last_traces(jfn)]


def test_fuse_mul_add_option_turns_the_pass_off():
    a, b = torch.randn(5), torch.randn(5)
    jfn = thunder.jit(_mul_add, executors=["example"], executor_options={"example": {"fuse_mul_add": False}})
    torch.testing.assert_close(jfn(a, b), _mul_add(a, b))
    assert "example.scaled_add" not in _ops(jfn)


def test_pass_leaves_a_product_that_is_also_read_elsewhere():
    def f(a, b):
        t = 0.25 * b
        return a + t, t

    a, b = torch.randn(5), torch.randn(5)
    jfn = thunder.jit(f, executors=["example"])
    for got, expected in zip(jfn(a, b), f(a, b)):
        torch.testing.assert_close(got, expected)
    assert "example.scaled_add" not in _ops(jfn)


def test_scale_grads_transform_is_offered_by_name():
    x = torch.randn(4, requires_grad=True)

    def f(x):
        return (torch.sin(x) * x).sum()

    jfn = thunder.jit(f, transforms=["example-scale-grads"])
    (grad,) = torch.autograd.grad(jfn(x), x)
    (expected,) = torch.autograd.grad(f(x), x)
    torch.testing.assert_close(grad, expected * 0.5)
