"""Functions compiled with `torch.jit.script`, called from traced code, are traced through their Python original."""

from __future__ import annotations

import torch

import thunder


@torch.jit.script
def scaled_sin(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.sin(x) * scale


def model_code(x):
    return scaled_sin(x, 2.0) + 1


def test_script_function_traces_through_its_python_original_forward_and_backward():
    x = torch.randn(4, 3, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    jfn = thunder.jit(model_code)
    actual = jfn(x)
    actual.sum().backward()
    expected = model_code(x_ref)  # eager, through TorchScript
    expected.sum().backward()
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(x.grad, x_ref.grad)
    assert any("sin" in str(b.sym.name) for b in thunder.last_traces(jfn)[0].bound_symbols)


def test_the_module_keeps_its_script_function_and_the_cache_hits():
    jfn = thunder.jit(model_code)
    x = torch.randn(3)
    jfn(x)
    assert type(scaled_sin) is torch.jit.ScriptFunction  # put back after tracing
    torch.testing.assert_close(jfn(x), model_code(x))
    assert thunder.cache_hits(jfn) == 1 and thunder.cache_misses(jfn) == 1
