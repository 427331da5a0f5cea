"""`register_operator(name, like=..., fn=..., replaces=f)` for a Python function `f`: module-level functions,
imported aliases, local functions and closures, and functions made anew from the same def (see
thunder/frontend/function_replacements.py for what counts as a call of `f`). Results are compared with eager,
and the operator's implementation must have run (it counts its calls)."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch

import thunder
from thunder.extend import OperatorExecutor


def rotate_half(x):
    """A model helper, as Hugging Face models define them at module level."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def make_scaler(scale):
    def scaled_tanh(x):
        return torch.tanh(x) * scale

    return scaled_tanh


def make_shifter():
    def shifted(x, shift=1.0):  # no captured values: every function made from this def computes the same
        return x + shift

    return shifted


class Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _executor(f, impl, name="replacement"):
    ex = OperatorExecutor(f"ex_{name}")
    counter = Counter(impl)
    ex.register_operator(name, like=f, fn=counter, replaces=f)
    return ex, counter


def _assert_replaced(jfn, counter, expected, *args):
    torch.testing.assert_close(jfn(*args), expected)
    assert counter.calls >= 1, "the operator's implementation did not run"


def test_module_level_function_is_replaced_and_restored():
    ex, counter = _executor(rotate_half, lambda x: torch.cat((-x.chunk(2, -1)[1], x.chunk(2, -1)[0]), -1))
    original_code = rotate_half.__code__

    def fn(x):
        return rotate_half(x) * 2

    x = torch.randn(3, 4)
    _assert_replaced(thunder.jit(fn, executors=[ex]), counter, fn(x), x)
    assert rotate_half.__code__ is original_code  # put back after tracing


def test_replacement_shows_in_the_trace_and_gradients_match_eager():
    ex, _ = _executor(rotate_half, lambda x: torch.cat((-x.chunk(2, -1)[1], x.chunk(2, -1)[0]), -1))

    def fn(x):
        return rotate_half(x).square().sum()

    x = torch.randn(3, 4, requires_grad=True)
    jfn = thunder.jit(fn, executors=[ex])
    out = jfn(x)
    (g,) = torch.autograd.grad(out, x)
    x_ref = x.detach().requires_grad_()
    (g_ref,) = torch.autograd.grad(fn(x_ref), x_ref)
    torch.testing.assert_close(g, g_ref)
    # recorded as the operator; under autodiff a `like=` operator is differentiated through its decomposition
    assert "replacement(" in str(thunder.last_traces(jfn)[0])


def test_imported_alias_is_replaced():
    alias = rotate_half  # `from model import rotate_half`: another name, the same function object
    ex, counter = _executor(rotate_half, lambda x: torch.cat((-x.chunk(2, -1)[1], x.chunk(2, -1)[0]), -1))
    x = torch.randn(2, 6)
    _assert_replaced(thunder.jit(lambda x: alias(x) + 1, executors=[ex]), counter, rotate_half(x) + 1, x)


def test_local_function_object_is_replaced():
    def local_gelu(x):
        return torch.nn.functional.gelu(x)

    ex, counter = _executor(local_gelu, torch.nn.functional.gelu)
    x = torch.randn(5)
    _assert_replaced(thunder.jit(lambda x: local_gelu(x) * 3, executors=[ex]), counter, local_gelu(x) * 3, x)


def test_closure_object_is_replaced():
    scaled = make_scaler(2.5)
    ex, counter = _executor(scaled, lambda x: torch.tanh(x) * 2.5)
    x = torch.randn(4)
    _assert_replaced(thunder.jit(lambda x: scaled(x) - 1, executors=[ex]), counter, scaled(x) - 1, x)


def test_function_made_anew_without_captures_is_replaced():
    ex, counter = _executor(make_shifter(), lambda x, shift=1.0: x + shift)

    def fn(x):
        return make_shifter()(x, shift=0.5) * 2  # a new function object on every call

    x = torch.randn(4)
    _assert_replaced(thunder.jit(fn, executors=[ex]), counter, fn(x), x)


def test_closure_made_anew_capturing_the_same_objects_is_replaced():
    scale = torch.tensor(1.5)
    ex, counter = _executor(make_scaler(scale), lambda x: torch.tanh(x) * 1.5)

    def fn(x):
        return make_scaler(scale)(x)

    x = torch.randn(4)
    _assert_replaced(thunder.jit(fn, executors=[ex]), counter, fn(x), x)


def test_closure_made_anew_capturing_other_values_is_refused():
    ex, _ = _executor(make_scaler(2.0), lambda x: torch.tanh(x) * 2.0)

    def fn(x):
        return make_scaler(3.0)(x)  # the operator would compute tanh(x) * 2: refuse

    with pytest.raises(NotImplementedError, match="captures other values"):
        thunder.jit(fn, executors=[ex])(torch.randn(4))


def test_function_is_untouched_without_its_executor_and_in_other_threads():
    ex, counter = _executor(rotate_half, lambda x: torch.zeros_like(x))  # wrong on purpose: it must not run
    x = torch.randn(2, 4)
    torch.testing.assert_close(thunder.jit(lambda x: rotate_half(x))(x), rotate_half(x))
    assert counter.calls == 0

    started, release, seen = threading.Event(), threading.Event(), {}

    def traced(x):
        started.set()
        release.wait(10)
        return rotate_half(x)

    def other_thread():
        started.wait(10)
        seen["out"] = rotate_half(x)  # called while the trace holds the trampoline: runs the original
        release.set()

    t = threading.Thread(target=other_thread)
    t.start()
    thunder.jit(traced, executors=[ex])(x)
    t.join()
    torch.testing.assert_close(seen["out"], torch.cat((-x[:, 2:], x[:, :2]), -1))


def test_function_made_anew_inside_a_lambda_warns_that_only_the_object_is_replaced():
    maker = lambda: (lambda x: x * 2)  # noqa: E731  (a def inside a lambda: its definer cannot be found)
    inner = maker()
    ex, counter = _executor(inner, lambda x: x * 2)
    with pytest.warns(UserWarning, match="only calls of this very function object"):
        thunder.jit(lambda x: inner(x), executors=[ex])(torch.randn(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per def
        thunder.jit(lambda x: inner(x) + 1, executors=[ex])(torch.randn(3))
    assert counter.calls >= 1
