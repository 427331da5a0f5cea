"""What a new user meets first: the README's set-up and test commands (and that CI runs exactly those), the
benchmark CLI's warning about meaningless timings, and the messages and docstrings of the user API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import thunder
from benchmarks.cli import MEANINGFUL_ITERS, MEANINGFUL_STEP_S, short_timing_warning
from benchmarks.harness import RunConfig
from thunder.core.proxies import TensorProxy
from thunder.extend import OperatorExecutor, PluginRegistry, set_default_registry
from thunder.frontend.cache import CACHE_OPTIONS

REPO_ROOT = Path(__file__).resolve().parent.parent


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, flags=re.S)


def readme_setup_and_test_commands() -> tuple[str, str]:
    setup, tests = (block.strip() for block in bash_blocks((REPO_ROOT / "README.md").read_text())[:2])
    return setup, tests


# -- the set-up ---------------------------------------------------------------------------------------------


def test_readme_setup_installs_from_the_requirements_files_and_runs_the_demo():
    setup, _ = readme_setup_and_test_commands()
    assert setup.endswith(" && python3 docs/demo.py")
    for path in re.findall(r"-r (\S+)", setup):
        assert (REPO_ROOT / path).is_file(), f"the README installs {path}, which does not exist"


def test_benchmarks_readme_gives_the_main_readme_install_line():
    setup, _ = readme_setup_and_test_commands()
    install = setup.removesuffix(" && python3 docs/demo.py")
    assert install in bash_blocks((REPO_ROOT / "benchmarks" / "README.md").read_text())[1]


def test_ci_runs_the_readme_setup_and_test_command_and_builds_the_docs():
    setup, tests = readme_setup_and_test_commands()
    ci_lines = [line for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3")]
    ci_commands = [line.replace(" -q", "", 1) if " pip " in line else line for line in ci_lines]
    readme_installs = setup.removesuffix(" && python3 docs/demo.py").split(" && ")
    assert ci_commands[: len(readme_installs)] == readme_installs
    assert tests in ci_commands
    assert any(line.startswith("python3 -m sphinx -W") and " docs " in line for line in ci_commands)


def test_ci_runs_the_readme_second_model_test_run_after_the_test_command():
    # the README's third bash block: the Hugging Face model tests again, under transformers 4.55
    block = bash_blocks((REPO_ROOT / "README.md").read_text())[2].strip().splitlines()
    ci_lines = [line for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines() if not line.startswith("#")]
    ci_lines = [line.replace(" -q", "", 1) if " pip " in line else line for line in ci_lines]
    _, tests = readme_setup_and_test_commands()
    start = ci_lines.index(block[0])
    assert ci_lines[start : start + len(block)] == block
    assert ci_lines.index(tests) < start
    for path in re.findall(r"-r (\S+)", block[0]):
        assert (REPO_ROOT / path).is_file(), f"the README installs {path}, which does not exist"
    installed_into = re.search(r"--target (\S+)", block[0]).group(1)
    assert f"PYTHONPATH={installed_into} " in block[1] and f"{installed_into}/" in (REPO_ROOT / ".gitignore").read_text()


def test_the_test_command_runs_in_parallel():
    _, tests = readme_setup_and_test_commands()
    assert re.search(r" -n (2|auto) ", tests)


def requirement_lines(name: str) -> list[str]:
    lines = (REPO_ROOT / "requirements" / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_torch_is_pinned_exactly_and_no_other_package_index_is_named():
    # a looser pin pulls a multi-GB CUDA build; an extra index the CI machine cannot reach stalls pip on retries
    lines = requirement_lines("torch-cpu.txt")
    assert lines == ["torch==2.13.0"]


@pytest.mark.parametrize("name", ["test.txt", "docs.txt", "models.txt", "models-no-deps.txt", "models-transformers-4.55.txt"])
def test_third_party_requirements_are_pinned(name):
    for line in requirement_lines(name):
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.+]*", line), f"{name}: {line!r}"


def test_ci_requirements_install_every_package_of_the_repository_that_installs_everywhere():
    lines = requirement_lines("ci.txt")
    assert "-e ." in lines and "-e plugins/example_executor" in lines


# -- the benchmark CLI's warning ----------------------------------------------------------------------------


def config(size: str, iters: int) -> RunConfig:
    return RunConfig(workloads=["chain"], backends=[], modes=["train"], device="cpu", dtype="float32", size=size,
                     iters=iters)  # fmt: skip


def row(workload: str, step_time_s: float | None) -> dict:
    return {"workload": workload, "step_time_s": step_time_s}


def test_benchmark_warns_when_tiny_steps_are_too_short_to_mean_anything():
    rows = [row("chain", MEANINGFUL_STEP_S / 10), row("gpt2", MEANINGFUL_STEP_S * 10)]
    warning = short_timing_warning(config("tiny", MEANINGFUL_ITERS), rows)
    assert warning is not None and "1 of 2 rows take under 1 ms a step" in warning and "--size small" in warning


def test_benchmark_warns_when_a_tiny_run_times_too_few_steps():
    warning = short_timing_warning(config("tiny", 3), [row("gpt2", 1.0)])
    assert warning is not None and "only 3 steps" in warning


def test_benchmark_does_not_warn_for_long_enough_tiny_runs_or_other_sizes():
    assert short_timing_warning(config("tiny", MEANINGFUL_ITERS), [row("gpt2", 1.0), row("overhead", 1e-6)]) is None
    assert short_timing_warning(config("small", 3), [row("chain", 1e-6)]) is None


def test_benchmark_warning_ignores_failed_rows():
    assert short_timing_warning(config("tiny", MEANINGFUL_ITERS), [row("chain", None)]) is None


# -- messages and docstrings of the user API ----------------------------------------------------------------


@pytest.fixture
def fresh_registry():
    previous = set_default_registry(PluginRegistry(autoload=False))
    yield
    set_default_registry(previous)


def test_no_gradient_error_for_a_plugin_operator_says_its_executor_must_be_listed(fresh_registry):
    ex = OperatorExecutor("grad_ex")
    thunder.extend.register_executor(ex)
    double = ex.register_operator("double", meta=lambda a: TensorProxy(like=a), fn=lambda a: a * 2)
    ex.register_implementation(double, grad_transform=lambda a: double(a))  # a rule exists, on the executor
    jfn = thunder.jit(lambda a: double(a), executors=["torch"])
    with pytest.raises(NotImplementedError, match=r"'grad_ex' executor.*executors=\['grad_ex', \.\.\.\]"):
        jfn(torch.randn(3, requires_grad=True))


def test_no_gradient_error_for_a_listed_executor_does_not_blame_the_list(fresh_registry):
    ex = OperatorExecutor("nograd_ex")
    thunder.extend.register_executor(ex)
    double = ex.register_operator("double", meta=lambda a: TensorProxy(like=a), fn=lambda a: a * 2)
    jfn = thunder.jit(lambda a: double(a), executors=[ex])
    with pytest.raises(NotImplementedError, match="register a grad_transform") as info:
        jfn(torch.randn(3, requires_grad=True))
    assert "executor list" not in str(info.value)


def test_jit_docstring_lists_every_cache_option():
    for option in CACHE_OPTIONS:
        assert f'"{option}"' in thunder.jit.__doc__, option


def test_last_prologue_traces_is_empty_and_says_why():
    jfn = thunder.jit(lambda x: x + 1)
    jfn(torch.ones(2))
    assert thunder.last_prologue_traces(jfn) == []
    assert "cache key" in thunder.last_prologue_traces.__doc__ and "empty" in thunder.last_prologue_traces.__doc__


def test_every_public_function_of_thunder_has_a_docstring():
    missing = [name for name in thunder.__all__ if not (getattr(thunder, name).__doc__ or "").strip()]
    assert not missing


def test_every_hook_specification_is_documented_for_the_api_reference():
    from thunder.extend import hookspecs

    hooks = [name for name in vars(hookspecs) if name.startswith("thunder_") and callable(getattr(hookspecs, name))]
    assert hooks, "the API reference documents the hook specifications of thunder.extend.hookspecs"
    assert [name for name in hooks if not (getattr(hookspecs, name).__doc__ or "").strip()] == []
