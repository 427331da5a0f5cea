"""Tracing through `torch.jit.script` functions: their Python original runs instead, while Thunder traces.

A `torch.jit.ScriptFunction` runs in TorchScript's interpreter, which calls the dispatcher directly: Thunder's
proxies would reach it without `__torch_function__` ever seeing the ops. Model code (some Hugging Face models)
calls such helpers by their module-level name, so while a trace is recorded each module-level ScriptFunction
that keeps its Python original is swapped for it, and put back when tracing ends. Both compute the same thing;
the original is what Dynamo inlines too (`_torchdynamo_inline`).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import torch

# module name -> (id of its namespace, size when scanned, [names of its ScriptFunctions]): rescanned only when
# a module is new or its namespace changed size, so a trace pays about a millisecond, not a full scan
_scanned: dict[str, tuple[int, int, list[str]]] = {}
# names of the modules holding ScriptFunctions, and len(sys.modules) when every module was last scanned: a trace
# rescans every module only after imports (module-level ScriptFunctions are made when their module is imported);
# otherwise only the holders and __main__ (iterating all ~2,000 modules of a session with transformers cost 10-20 ms a trace)
_holders: set[str] = set()
_modules_at_full_scan = [-1]
# id(Python original) -> its ScriptFunction, while swapped (see python_originals_of_script_functions)
_swapped_originals: dict[int, torch.jit.ScriptFunction] = {}


def script_function_of(value):
    """The ScriptFunction whose Python original `value` is, while the two are swapped for a trace; else value."""
    return _swapped_originals.get(id(value), value)


def _script_function_names(module_name: str, namespace: dict) -> list[str]:
    key = (id(namespace), len(namespace))
    cached = _scanned.get(module_name)
    if cached is not None and cached[:2] == key:
        return cached[2]
    script_function = torch.jit.ScriptFunction
    names = [name for name, value in list(namespace.items()) if type(value) is script_function]
    _scanned[module_name] = (*key, names)
    return names


@contextmanager
def python_originals_of_script_functions():
    """Within the block, module-level ScriptFunctions are their Python originals (restored on exit)."""
    swapped = []
    if len(sys.modules) != _modules_at_full_scan[0]:
        _modules_at_full_scan[0] = len(sys.modules)
        _holders.clear()
        modules = list(sys.modules.items())
    else:
        # __main__ too: a script or notebook defines ScriptFunctions after its imports
        modules = [(name, sys.modules.get(name)) for name in {*_holders, "__main__"}]
    for module_name, module in modules:
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        names = _script_function_names(module_name, namespace)
        if names:
            _holders.add(module_name)
        for name in names:
            scripted = namespace.get(name)
            original = getattr(scripted, "_torchdynamo_inline", None)
            if type(scripted) is torch.jit.ScriptFunction and callable(original):
                namespace[name] = original
                swapped.append((namespace, name, scripted, original))
                _swapped_originals[id(original)] = scripted
    try:
        yield
    finally:
        for namespace, name, scripted, original in swapped:
            _swapped_originals.pop(id(original), None)
            if namespace.get(name) is original:  # leave a name the program rebound while tracing as it is
                namespace[name] = scripted
