"""The plugin registry, specified through real entry points.

Each test installs throwaway distributions (a ``*.dist-info`` folder with ``entry_points.txt``, and
the plugin module beside it) into a temporary directory on ``sys.path``, then builds a fresh
``PluginRegistry``: discovery goes through ``importlib.metadata`` exactly as for an installed
package. Plugins installed in the environment itself (the core's own, a real executor package) are
blocked, so that the assertions see only the fakes.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import pytest

import thunder.extend as extend
from thunder.extend import (
    ENTRY_POINT_GROUP,
    ExecutorSpec,
    PluginBundle,
    PluginLoadWarning,
    PluginRegistry,
    UnknownExecutorError,
    UnknownPluginBundleError,
    hookimpl,
)
from thunder.extend import hookspecs as hookspecs_module
from thunder.extend.registry import AUTOLOAD_ENV_VAR, set_default_registry

# An unexpected plugin failure fails the test; the tests that expect one record it explicitly.
pytestmark = pytest.mark.filterwarnings("error::thunder.extend.PluginLoadWarning")

FAKEPLUG_SOURCE = """
from thunder.extend import ExecutorSpec, PluginBundle, hookimpl

LOADS = []  # names of the executors whose load() ran, in order


class FakeExecutor:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"FakeExecutor({self.name!r})"


def _loader(name):
    def load():
        LOADS.append(name)
        return FakeExecutor(name)
    return load


@hookimpl
def thunder_executors():
    return [
        ExecutorSpec("beta", priority=50, load=_loader("beta")),
        ExecutorSpec("fast", priority=100, load=_loader("fast"), description="the fast one"),
        ExecutorSpec("alpha", priority=50, load=_loader("alpha")),
        ExecutorSpec("gpu_only", priority=200, load=_loader("gpu_only"), why_unavailable=lambda: "needs a CUDA device"),
        ExecutorSpec("experimental", priority=300, load=_loader("experimental"), default=False),
        ExecutorSpec("interp", priority=-10, load=_loader("interp"), always=True),
        ExecutorSpec("eager", priority=0, load=_loader("eager"), always=True),
    ]


@hookimpl
def thunder_plugin_bundles():
    return [PluginBundle("speed", executors=["experimental", "fast"], transforms=[lambda: "remat"], description="go fast")]
"""

BROKEN_IMPORT_SOURCE = """
raise RuntimeError("boom at import")
"""

BROKEN_HOOK_SOURCE = """
from thunder.extend import ExecutorSpec, PluginBundle, hookimpl

@hookimpl
def thunder_executors():
    raise ValueError("bad executor table")

@hookimpl
def thunder_plugin_bundles():
    return [PluginBundle("from_broken_hook")]
"""

FLAKY_LOAD_SOURCE = """
from thunder.extend import ExecutorSpec, hookimpl

LOAD_CALLS = []

def _load():
    LOAD_CALLS.append(1)
    raise OSError("libflaky.so: cannot open shared object file")

@hookimpl
def thunder_executors():
    return [ExecutorSpec("flaky", priority=1000, load=_load)]
"""


class FakeSite:
    """A directory on ``sys.path`` into which a test installs throwaway distributions."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.distributions: set[str] = set()
        self.modules: set[str] = set()
        monkeypatch.syspath_prepend(str(root))

    def install(self, distribution: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        info = self.root / f"{distribution}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{name} = {target}" for name, target in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        self.distributions.add(distribution)
        self.modules.update(modules)
        importlib.invalidate_caches()

    def install_fakeplug(self) -> None:
        self.install("fakeplug", "1.2", {"fake": "fakeplug_mod"}, {"fakeplug_mod": FAKEPLUG_SOURCE})

    def outside_plugins(self) -> list[str]:
        """Entry-point names of the plugins installed in the environment rather than by this test."""
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        return [ep.name for ep in found if ep.dist is None or ep.dist.metadata["Name"] not in self.distributions]

    def registry(self, autoload: bool | None = True, blocked: tuple[str, ...] = ()) -> PluginRegistry:
        return PluginRegistry(autoload=autoload, blocked=[*self.outside_plugins(), *blocked])


@pytest.fixture
def site(tmp_path, monkeypatch):
    fake_site = FakeSite(tmp_path, monkeypatch)
    yield fake_site
    # The next test installs modules of the same names from another directory.
    for module in fake_site.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


@pytest.fixture
def registry(site):
    """A fresh registry that discovers the fakeplug distribution."""
    site.install_fakeplug()
    return site.registry()


def names(executors) -> list[str]:
    return [ex.name for ex in executors]


def plugin_warnings(action) -> list[str]:
    """The messages of the PluginLoadWarnings issued while running ``action()``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    return [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]


def loads() -> list[str]:
    return sys.modules["fakeplug_mod"].LOADS


# --- the contract -----------------------------------------------------------------------------------


def test_every_hook_specification_is_documented_as_collecting_or_first_result():
    specs = [
        obj
        for name, obj in vars(hookspecs_module).items()
        if name.startswith("thunder_") and callable(obj) and hasattr(obj, "thunder_spec")
    ]
    assert {spec.__name__ for spec in specs} == {"thunder_executors", "thunder_plugin_bundles", "thunder_transforms"}
    for spec in specs:
        kind = "First-result hook" if spec.thunder_spec["firstresult"] else "Collecting hook"
        assert spec.__doc__ and kind in spec.__doc__, spec.__name__


def test_executor_spec_rejects_a_non_integer_priority():
    with pytest.raises(TypeError, match="priority must be an int"):
        ExecutorSpec("x", priority="high", load=lambda: None)


# --- discovery ----------------------------------------------------------------------------------------


def test_discovery_records_entry_point_name_distribution_and_version(registry):
    fake = [plugin for plugin in registry.plugins if plugin.name == "fake"]
    assert len(fake) == 1
    assert (fake[0].distribution, fake[0].version) == ("fakeplug", "1.2")
    assert fake[0].source == "fakeplug 1.2"


def test_discovery_imports_nothing_until_the_registry_is_queried(site):
    site.install_fakeplug()
    registry = site.registry()
    assert "fakeplug_mod" not in sys.modules
    registry.get_executor("fast")
    assert "fakeplug_mod" in sys.modules


def test_executor_is_loaded_on_first_use_only_once(registry):
    first = registry.get_executor("fast")
    second = registry.get_executor("fast")
    assert first is second
    assert loads() == ["fast"]


# --- ordering -----------------------------------------------------------------------------------------


def test_default_executors_are_sorted_by_priority_with_ties_broken_by_name(registry):
    # gpu_only is unavailable, experimental is opt-in, interp and eager are always-executors.
    assert names(registry.get_default_executors()) == ["fast", "alpha", "beta"]


def test_always_executors_are_sorted_by_priority(registry):
    assert names(registry.get_always_executors()) == ["eager", "interp"]


def test_all_executors_include_every_available_one(registry):
    assert names(registry.get_all_executors()) == ["experimental", "fast", "alpha", "beta", "eager", "interp"]


def test_opt_in_executor_is_usable_by_name_but_not_in_the_default_list(registry):
    assert registry.get_executor("experimental").name == "experimental"
    assert "experimental" not in names(registry.get_default_executors())


def test_unavailable_executor_is_never_loaded(registry):
    registry.resolve_executors()
    with pytest.raises(UnknownExecutorError):
        registry.get_executor("gpu_only")
    assert "gpu_only" not in loads()


# --- resolving executor lists -----------------------------------------------------------------------


def test_resolve_without_a_list_gives_the_defaults_then_the_always_executors(registry):
    assert names(registry.resolve_executors()) == ["fast", "alpha", "beta", "eager", "interp"]


def test_resolve_keeps_the_order_of_an_explicit_list_of_names(registry):
    assert names(registry.resolve_executors(["beta", "experimental", "fast"])) == [
        "beta",
        "experimental",
        "fast",
        "eager",
        "interp",
    ]


def test_resolve_passes_executor_objects_through_unchanged(registry):
    mine = types.SimpleNamespace(name="mine")
    resolved = registry.resolve_executors([mine])
    assert resolved[0] is mine
    assert names(resolved) == ["mine", "eager", "interp"]


def test_resolve_accepts_names_and_objects_mixed(registry):
    mine = types.SimpleNamespace(name="mine")
    resolved = registry.resolve_executors(["alpha", mine, "fast"])
    assert names(resolved) == ["alpha", "mine", "fast", "eager", "interp"]
    assert resolved[0] is registry.get_executor("alpha")


def test_resolve_does_not_append_an_always_executor_the_list_already_has(registry):
    assert names(registry.resolve_executors(["interp", "fast"])) == ["interp", "fast", "eager"]


def test_resolve_drops_duplicates_keeping_the_first(registry):
    alpha = registry.get_executor("alpha")
    assert names(registry.resolve_executors(["beta", "alpha", "beta", alpha])) == ["beta", "alpha", "eager", "interp"]


# --- errors ---------------------------------------------------------------------------------------------


def test_unknown_executor_error_lists_the_known_names_and_why_others_are_unavailable(registry):
    with pytest.raises(UnknownExecutorError) as error:
        registry.get_executor("nvfuzer")
    message = str(error.value)
    assert "'nvfuzer'" in message
    for name in ("fast", "alpha", "beta", "experimental", "eager", "interp"):
        assert name in message
    assert "gpu_only: needs a CUDA device" in message
    assert isinstance(error.value, KeyError)


def test_unknown_executor_error_suggests_close_names(registry):
    with pytest.raises(UnknownExecutorError, match="did you mean 'fast'"):
        registry.get_executor("fsat")


def test_asking_for_an_unavailable_executor_says_why(registry):
    with pytest.raises(UnknownExecutorError, match="'gpu_only' is unavailable: needs a CUDA device"):
        registry.resolve_executors(["gpu_only"])


# --- blocking and autoloading ------------------------------------------------------------------------


def test_blocked_plugin_is_never_imported(site):
    site.install_fakeplug()
    registry = site.registry(blocked=("fake",))
    assert registry.get_all_executors() == []
    assert "fakeplug_mod" not in sys.modules


def test_block_plugin_after_discovery_removes_its_executors_and_bundles(registry):
    registry.get_executor("fast")
    registry.block_plugin("fake")
    assert registry.get_all_executors() == []
    with pytest.raises(UnknownPluginBundleError):
        registry.get_plugin_bundle("speed")


def test_environment_variable_disables_autoloading(site, monkeypatch):
    site.install_fakeplug()
    monkeypatch.setenv(AUTOLOAD_ENV_VAR, "1")
    registry = site.registry(autoload=None)
    assert registry.autoload is False
    assert registry.get_all_executors() == []
    assert "fakeplug_mod" not in sys.modules


def test_environment_variable_set_to_zero_keeps_autoloading(site, monkeypatch):
    site.install_fakeplug()
    monkeypatch.setenv(AUTOLOAD_ENV_VAR, "0")
    assert "fast" in names(site.registry(autoload=None).get_all_executors())


def test_core_distribution_plugins_load_even_when_autoloading_is_off(site):
    # A stand-in for the core: importlib.metadata sees only the first distribution of a name on
    # sys.path, so this one hides the installed thunder-core for the duration of the test.
    core_source = """
    import types
    from thunder.extend import ExecutorSpec, hookimpl

    @hookimpl
    def thunder_executors():
        return [ExecutorSpec("core_ex", priority=0, load=lambda: types.SimpleNamespace(name="core_ex"), always=True)]
    """
    site.install("thunder_core", "9.9", {"fakecore": "fakecore_mod"}, {"fakecore_mod": core_source})
    site.install_fakeplug()
    registry = site.registry(autoload=False)
    assert names(registry.get_all_executors()) == ["core_ex"]
    assert "fakeplug_mod" not in sys.modules


def test_explicit_autoload_wins_over_the_environment_variable(site, monkeypatch):
    site.install_fakeplug()
    monkeypatch.setenv(AUTOLOAD_ENV_VAR, "1")
    assert "fast" in names(site.registry(autoload=True).get_all_executors())


# --- failures -----------------------------------------------------------------------------------------


def test_plugin_that_fails_to_import_is_reported_once_by_name_and_distribution(site):
    site.install_fakeplug()
    site.install("brokenplug", "0.1", {"broken": "brokenplug_mod"}, {"brokenplug_mod": BROKEN_IMPORT_SOURCE})
    registry = site.registry()
    first = plugin_warnings(registry.get_default_executors)
    again = plugin_warnings(lambda: (registry.get_default_executors(), registry.get_all_executors()))
    assert len(first) == 1
    assert "'broken'" in first[0] and "brokenplug 0.1" in first[0] and "RuntimeError: boom at import" in first[0]
    assert again == []


def test_plugin_that_fails_to_import_does_not_stop_the_others(site):
    site.install_fakeplug()
    site.install("brokenplug", "0.1", {"broken": "brokenplug_mod"}, {"brokenplug_mod": BROKEN_IMPORT_SOURCE})
    registry = site.registry()
    plugin_warnings(registry.get_default_executors)
    assert names(registry.get_default_executors()) == ["fast", "alpha", "beta"]
    [failure] = registry.failures
    assert (failure.plugin, failure.distribution, failure.version, failure.step) == (
        "broken",
        "brokenplug",
        "0.1",
        "import",
    )
    assert isinstance(failure.exception, RuntimeError)


def test_plugin_whose_hook_raises_is_skipped_entirely(site):
    site.install_fakeplug()
    site.install("badhook", "2.0", {"badhook": "badhook_mod"}, {"badhook_mod": BROKEN_HOOK_SOURCE})
    registry = site.registry()
    messages = plugin_warnings(registry.get_all_executors)
    assert len(messages) == 1
    assert (
        "'badhook'" in messages[0] and "badhook 2.0" in messages[0] and "ValueError: bad executor table" in messages[0]
    )
    # Its other hook succeeded, but a broken plugin contributes nothing.
    with pytest.raises(UnknownPluginBundleError):
        registry.get_plugin_bundle("from_broken_hook")
    assert [plugin.name for plugin in registry.plugins] == ["fake"]
    assert "fast" in names(registry.get_all_executors())


def test_hook_returning_something_other_than_a_list_of_specs_is_reported(site):
    source = "from thunder.extend import hookimpl\n\n@hookimpl\ndef thunder_executors():\n    return ['fast']\n"
    site.install("sloppy", "0.3", {"sloppy": "sloppy_mod"}, {"sloppy_mod": source})
    registry = site.registry()
    messages = plugin_warnings(registry.get_all_executors)
    assert len(messages) == 1 and "expected a list of ExecutorSpec" in messages[0]


def test_executor_whose_load_raises_is_reported_once_and_unavailable_with_the_reason(site):
    site.install_fakeplug()
    site.install("flakyplug", "0.9", {"flaky": "flakyplug_mod"}, {"flakyplug_mod": FLAKY_LOAD_SOURCE})
    registry = site.registry()
    messages = plugin_warnings(registry.get_default_executors)
    assert len(messages) == 1 and "'flaky'" in messages[0] and "flakyplug 0.9" in messages[0]
    assert names(registry.get_default_executors()) == ["fast", "alpha", "beta"]
    with pytest.raises(UnknownExecutorError, match="'flaky' is unavailable: load\\(\\) raised OSError: libflaky.so"):
        registry.get_executor("flaky")
    assert sys.modules["flakyplug_mod"].LOAD_CALLS == [1]


def test_executor_whose_load_returns_an_object_of_another_name_is_unavailable(site):
    source = """
    import types
    from thunder.extend import ExecutorSpec, hookimpl

    @hookimpl
    def thunder_executors():
        return [ExecutorSpec("named", priority=0, load=lambda: types.SimpleNamespace(name="other"))]
    """
    site.install("misnamed", "1.0", {"misnamed": "misnamed_mod"}, {"misnamed_mod": source})
    registry = site.registry()
    assert len(plugin_warnings(registry.get_all_executors)) == 1
    with pytest.raises(UnknownExecutorError, match="whose name is 'other', not 'named'"):
        registry.get_executor("named")


def test_two_plugins_offering_one_executor_name_keep_the_first_by_entry_point_name(site):
    source = """
    import types
    from thunder.extend import ExecutorSpec, hookimpl

    @hookimpl
    def thunder_executors():
        return [ExecutorSpec("fast", priority=1, load=lambda: types.SimpleNamespace(name="fast", origin="rival"))]
    """
    site.install_fakeplug()
    site.install("rival", "3.0", {"a_rival": "rival_mod"}, {"rival_mod": source})
    registry = site.registry()
    messages = plugin_warnings(registry.get_all_executors)
    assert len(messages) == 1 and "'fake'" in messages[0] and "'a_rival'" in messages[0]
    assert registry.get_executor("fast").origin == "rival"


# --- run-time registration ------------------------------------------------------------------------------


class RuntimePlugin:
    @hookimpl
    def thunder_executors(self):
        return [ExecutorSpec("runtime", priority=75, load=lambda: types.SimpleNamespace(name="runtime"))]

    @hookimpl
    def thunder_plugin_bundles(self):
        return [PluginBundle("runtime_bundle", executors=("runtime",))]


def test_register_plugin_at_run_time_adds_its_executors_by_priority(registry):
    registry.get_default_executors()
    assert registry.register_plugin(RuntimePlugin(), name="rt") == "rt"
    assert names(registry.get_default_executors()) == ["fast", "runtime", "alpha", "beta"]
    assert registry.get_plugin_bundle("runtime_bundle").executors == ("runtime",)


def test_register_plugin_whose_hook_raises_is_reported_and_skipped(registry):
    class Raising:
        @hookimpl
        def thunder_executors(self):
            raise RuntimeError("no luck")

    messages = plugin_warnings(lambda: registry.register_plugin(Raising(), name="raising"))
    assert len(messages) == 1 and "'raising'" in messages[0] and "no luck" in messages[0]
    assert "raising" not in [plugin.name for plugin in registry.plugins]


def test_register_plugin_under_a_blocked_name_registers_nothing(site):
    registry = site.registry(blocked=("rt",))
    assert registry.register_plugin(RuntimePlugin(), name="rt") is None
    with pytest.raises(UnknownExecutorError):
        registry.get_executor("runtime")


def test_registered_executor_object_is_usable_by_name_but_not_a_default(registry):
    mine = types.SimpleNamespace(name="mine")
    registry.register_executor(mine, priority=1000)
    assert registry.get_executor("mine") is mine
    assert "mine" not in names(registry.get_default_executors())


def test_registered_executor_with_default_true_takes_its_place_by_priority(registry):
    registry.register_executor(types.SimpleNamespace(name="mine"), priority=60, default=True)
    assert names(registry.get_default_executors()) == ["fast", "mine", "alpha", "beta"]


def test_registered_always_executor_is_appended_by_priority(registry):
    registry.register_executor(types.SimpleNamespace(name="last_resort"), priority=-100, always=True)
    assert names(registry.get_always_executors()) == ["eager", "interp", "last_resort"]


def test_deregistered_executor_is_unknown_by_name_or_object(registry):
    registry.deregister_executor("alpha")
    mine = registry.register_executor(types.SimpleNamespace(name="mine"))
    registry.deregister_executor(mine)
    for name in ("alpha", "mine"):
        with pytest.raises(UnknownExecutorError):
            registry.get_executor(name)
    assert names(registry.get_default_executors()) == ["fast", "beta"]


# --- the default list ---------------------------------------------------------------------------------


def test_add_default_executor_registers_an_object_and_puts_it_in_front(registry):
    first, second = types.SimpleNamespace(name="first"), types.SimpleNamespace(name="second")
    registry.add_default_executor(first)
    registry.add_default_executor(second)
    assert names(registry.get_default_executors()) == ["second", "first", "fast", "alpha", "beta"]
    assert registry.get_executor("first") is first


def test_add_default_executor_by_name_moves_an_opt_in_executor_to_the_front(registry):
    registry.add_default_executor("beta")
    registry.add_default_executor("experimental")
    assert names(registry.get_default_executors()) == ["experimental", "beta", "fast", "alpha"]


def test_removed_default_executor_stays_usable_by_name(registry):
    registry.remove_default_executor("fast")
    assert names(registry.get_default_executors()) == ["alpha", "beta"]
    assert registry.get_executor("fast").name == "fast"


def test_removing_an_unknown_default_executor_raises(registry):
    with pytest.raises(UnknownExecutorError, match="'nope'"):
        registry.remove_default_executor("nope")


# --- bundles ----------------------------------------------------------------------------------------------


def test_plugin_bundle_is_found_by_name(registry):
    bundle = registry.get_plugin_bundle("speed")
    assert bundle.executors == ("experimental", "fast")
    assert [make() for make in bundle.transforms] == ["remat"]
    assert bundle.description == "go fast"


def test_unknown_plugin_bundle_error_lists_the_known_bundles(registry):
    with pytest.raises(UnknownPluginBundleError, match="'slow'.*known bundles: speed"):
        registry.get_plugin_bundle("slow")


# --- the report behind `python -m thunder plugins` ----------------------------------------------------


def test_executor_rows_give_source_priority_flags_and_availability(registry):
    rows = {row.name: row for row in registry.executor_rows()}
    assert (rows["fast"].plugin, rows["fast"].source, rows["fast"].priority) == ("fake", "fakeplug 1.2", 100)
    assert rows["fast"].status == "available"
    assert rows["gpu_only"].status == "unavailable: needs a CUDA device"
    assert rows["experimental"].default is False and rows["interp"].always is True
    assert [row.name for row in registry.executor_rows()][-2:] == ["eager", "interp"]


def test_executor_rows_do_not_load_executors_unless_asked(registry):
    registry.executor_rows()
    assert loads() == []
    registry.executor_rows(load=True)
    assert sorted(loads()) == ["alpha", "beta", "eager", "experimental", "fast", "interp"]


# --- the process-wide registry ---------------------------------------------------------------------------


@pytest.fixture
def default_registry_slot():
    previous = set_default_registry(None)
    yield
    set_default_registry(previous)


def test_default_registry_is_created_once(default_registry_slot):
    assert extend.default_registry() is extend.default_registry()


def test_module_level_functions_act_on_the_default_registry(registry, default_registry_slot):
    set_default_registry(registry)
    mine = types.SimpleNamespace(name="mine")
    extend.add_default_executor(mine)
    assert names(extend.resolve_executors()) == ["mine", "fast", "alpha", "beta", "eager", "interp"]
    assert extend.get_executor("mine") is mine
    assert extend.get_plugin_bundle("speed").name == "speed"


# --- the command line ---------------------------------------------------------------------------------------


def run_cli(site: FakeSite, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        **env,
        "PYTHONPATH": os.pathsep.join([str(site.root), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "thunder", *args], capture_output=True, text=True, env=environment, timeout=120
    )


def row_of(output: str, name: str) -> str:
    [line] = [line for line in output.splitlines() if line.split()[:1] == [name]]
    return line


def test_plugins_command_shows_each_executor_with_its_distribution_priority_and_status(site):
    site.install_fakeplug()
    result = run_cli(site, "plugins")
    assert result.returncode == 0, result.stderr
    fast = row_of(result.stdout, "fast")
    assert fast.split()[:5] == ["fast", "fake", "fakeplug", "1.2", "100"] and fast.endswith("available")
    assert row_of(result.stdout, "gpu_only").endswith("unavailable: needs a CUDA device")
    assert "opt-in" in row_of(result.stdout, "experimental")
    assert "always" in row_of(result.stdout, "interp")


def test_plugins_command_lists_plugins_that_failed_to_load(site):
    site.install_fakeplug()
    site.install("brokenplug", "0.1", {"broken": "brokenplug_mod"}, {"brokenplug_mod": BROKEN_IMPORT_SOURCE})
    result = run_cli(site, "plugins")
    assert result.returncode == 0, result.stderr
    failures = result.stdout.split("Plugin failures")[1]
    assert "plugin 'broken' (brokenplug 0.1): import: RuntimeError: boom at import" in failures
    assert "fast" in row_of(result.stdout, "fast")


def test_plugins_command_says_when_autoloading_is_off(site):
    site.install_fakeplug()
    result = run_cli(site, "plugins", **{AUTOLOAD_ENV_VAR: "1"})
    assert result.returncode == 0, result.stderr
    assert f"{AUTOLOAD_ENV_VAR} is set" in result.stdout
    assert "fakeplug" not in result.stdout


@pytest.mark.parametrize("args", [(), ("frobnicate",)], ids=["no command", "unknown command"])
def test_command_line_without_a_known_command_prints_usage_and_exits_2(site, args):
    result = run_cli(site, *args)
    assert result.returncode == 2
    assert "usage: python -m thunder" in result.stderr


def test_executor_loaded_by_module_and_attribute_imports_its_module_on_first_use(site):
    plugin_source = """
    from thunder.extend import ExecutorSpec, hookimpl

    @hookimpl
    def thunder_executors():
        return [ExecutorSpec("lazy", priority=5, load="lazyplug_heavy:executor"),
                ExecutorSpec("missing_attr", priority=4, load="lazyplug_heavy:no_such_executor")]
    """
    heavy_source = """
    import types
    executor = types.SimpleNamespace(name="lazy")
    """
    site.install("lazyplug", "1.0", {"lazy": "lazyplug_mod"}, {"lazyplug_mod": plugin_source,
                                                               "lazyplug_heavy": heavy_source})  # fmt: skip
    registry = site.registry()
    assert {"lazy", "missing_attr"} <= {row.name for row in registry.executor_rows()}  # discovered, not loaded
    assert "lazyplug_heavy" not in sys.modules
    assert registry.get_executor("lazy") is sys.modules["lazyplug_heavy"].executor
    with pytest.warns(PluginLoadWarning, match="no attribute 'no_such_executor'"), pytest.raises(
        UnknownExecutorError, match="'missing_attr' is unavailable: load\\(\\) raised AttributeError"
    ):
        registry.get_executor("missing_attr")


@pytest.mark.parametrize("reference", ["no_colon", ":attr", "module:", ""])
def test_a_malformed_load_reference_is_refused_naming_the_form(reference):
    with pytest.raises(TypeError, match="load must be 'module:attribute'"):
        ExecutorSpec("bad", priority=0, load=reference)
