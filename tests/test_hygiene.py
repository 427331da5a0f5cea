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
            "dynamo": 6}


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
    if len(parts) < 2 or parts[0] != "thunder":
        return None
    return LAYER_OF.get(parts[1])


def test_lower_layers_never_import_higher_ones():
    violations = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        own = LAYER_OF.get(rel.parts[0]) if len(rel.parts) > 1 else None
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            for target in targets:
                layer = _layer(target)
                if layer is not None and layer > own:
                    violations.append(f"{rel}:{node.lineno} imports {target}")
    assert not violations, "\n".join(violations)
