"""Extensions import only Thunder's public modules (thunder.extend.PUBLIC_MODULES, documented in thunder.extend).

Checked: every package under plugins/, every thunder_executors_* package, and the core's own showcase
executors (sdpa, torchcompile), which executor packages copy. `from thunder import x` counts as importing
`thunder.x` when x is a submodule.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import thunder
from thunder.extend import PUBLIC_MODULES

REPO = pathlib.Path(__file__).resolve().parents[1]
CORE = REPO / "thunder_core"
SHOWCASE = [CORE / "executors" / "sdpaex.py", CORE / "executors" / "torchcompileex.py"]


def _extension_files() -> list[pathlib.Path]:
    roots = [REPO / "plugins", *sorted(REPO.glob("thunder_executors_*"))]
    files = [p for root in roots if root.is_dir() for p in sorted(root.rglob("*.py"))]
    return files + SHOWCASE


def _is_public(module: str) -> bool:
    return module in PUBLIC_MODULES or module.startswith("thunder.extend.")


def _thunder_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "thunder"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "thunder":
                continue
            # `from thunder.core import trace` imports the module thunder.core.trace, not names of thunder.core
            submodules = [f"{node.module}.{a.name}" for a in node.names if _is_submodule(f"{node.module}.{a.name}")]
            if len(submodules) < len(node.names):
                found.append((node.lineno, node.module))
            found += [(node.lineno, m) for m in submodules]
    return found


def _is_submodule(name: str) -> bool:
    relative = pathlib.Path(*name.split(".")[1:])
    return (CORE / relative).is_dir() or (CORE / relative).with_suffix(".py").is_file()


def _violations(path: pathlib.Path) -> list[str]:
    return [f"{path}:{line} imports {module}" for line, module in _thunder_imports(path) if not _is_public(module)]


@pytest.mark.parametrize("path", _extension_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_extension_imports_only_public_thunder_modules(path):
    violations = _violations(path)
    assert not violations, "import from thunder.extend instead (or export the name there):\n" + "\n".join(violations)


def test_the_checker_catches_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from thunder.transforms.fusion import Region\nfrom thunder import frontend, jit\n"
                   "import thunder.torch\nfrom thunder.core import trace, pytree\n")
    assert [v.split(" imports ")[1] for v in _violations(bad)] == [
        "thunder.transforms.fusion", "thunder.frontend", "thunder.core.pytree"]


def test_every_public_module_imports_and_extend_exports_what_it_lists():
    import importlib

    for module in sorted(PUBLIC_MODULES):
        importlib.import_module(module)
    missing = [name for name in thunder.extend.__all__ if not hasattr(thunder.extend, name)]
    assert not missing
