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


def test_script_function_a_script_defines_after_its_first_trace(tmp_path):
    """Modules are rescanned for ScriptFunctions only after imports, except __main__, where a script or notebook
    defines them at any time: a helper scripted after a first compilation is traced through too."""
    import subprocess
    import sys

    script = tmp_path / "late_script.py"
    script.write_text(
        "import torch, thunder\n"
        "def warm(x: torch.Tensor) -> torch.Tensor:\n"
        "    return x + 1\n"
        "torch.jit.script(warm)(torch.ones(2))\n"  # scripting's imports done before the first trace
        "thunder.jit(lambda x: x.sin())(torch.ones(2))\n"
        "@torch.jit.script\n"
        "def late(x: torch.Tensor) -> torch.Tensor:\n"
        "    return x * 2 + 1\n"
        "def fn(x):\n"
        "    return late(x).cos()\n"
        "x = torch.randn(3)\n"
        "jfn = thunder.jit(fn)\n"
        "torch.testing.assert_close(jfn(x), fn(x))\n"
        "assert any('cos' in b.sym.name for b in thunder.last_traces(jfn)[0].bound_symbols)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
