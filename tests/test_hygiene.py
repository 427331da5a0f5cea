"""Import hygiene and DESIGN.md's layer order."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "thunder_core"
LAYERS = ["core", "prims", "torch", "transforms", "extend", "executors", "frontend"]
# prims and torch are one layer (the operator vocabulary), as are extend and plugins
LAYER_OF = {"core": 1, "prims": 2, "torch": 2, "transforms": 3, "extend": 4, "plugins": 4, "executors": 5, "frontend": 6,
            "distributed": 6, "dynamo": 6}
# `thunder` itself (thunder/__init__.py, the user facade) and the tools beside it sit above every layer
FACADE_LAYER = 7


def _modules() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = ["thunder", *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("module", _modules())
def test_module_imports_alone_without_warnings(module):
    result = subprocess.run([sys.executable, "-W", "error", "-c", f"import {module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "thunder":
        return None
    if len(parts) == 1 or parts[1] not in LAYER_OF:
        return FACADE_LAYER  # `thunder`, `thunder.examine`...: the facade
    return LAYER_OF.get(parts[1])


def _import_targets(node) -> list[str]:
    """The modules an import statement loads: `from thunder import prims` loads thunder.prims, while
    `from thunder import jit` takes a name from the facade, thunder."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
        return []
    if node.module != "thunder":
        return [node.module]
    return [f"thunder.{a.name}" if a.name in LAYER_OF else "thunder" for a in node.names]


def test_lower_layers_never_import_higher_ones():
    violations = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        own = LAYER_OF.get(rel.parts[0]) if len(rel.parts) > 1 else None
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _import_targets(node):
                layer = _layer(target)
                if layer is not None and layer > own:
                    violations.append(f"{rel}:{node.lineno} imports {target}")
    assert not violations, "\n".join(violations)


def test_layer_check_sees_imports_from_the_facade():
    tree = ast.parse("from thunder import jit\nfrom thunder import prims\nimport thunder\nimport thunder.examine\n")
    layers = [_layer(t) for node in ast.walk(tree) for t in _import_targets(node)]
    assert layers == [FACADE_LAYER, LAYER_OF["prims"], FACADE_LAYER, FACADE_LAYER]


def test_function_local_imports_of_thunder_say_why():
    """A thunder module imported inside a function (not at the top of its module) marks a real import cycle or a
    module `import thunder` need not load, and says which on its line; any other is a module-level import."""
    unexplained = []
    for path in ROOT.rglob("*.py"):
        lines = path.read_text().split("\n")
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if any(t.split(".")[0] == "thunder" for t in _import_targets(node)) and not any(
                    "#" in line for line in lines[node.lineno - 1 : node.end_lineno]
                ):
                    unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "\n".join(sorted(unexplained))


def test_import_thunder_loads_neither_the_dynamo_frontend_nor_transformers():
    # the Dynamo frontend loads on first use (thunder.examine's thunderfx verdict), transformers only for user code
    code = ("import sys, thunder\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers' or m.startswith('thunder.dynamo')))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["[]"], result.stdout
