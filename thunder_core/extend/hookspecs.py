"""The plugin contract: every hook that Thunder calls on its plugins, in one module.

A plugin is a module (or any object) holding functions decorated with :data:`hookimpl` whose names
match the hook specifications below. An installed package makes its plugin discoverable through an
entry point in the :data:`ENTRY_POINT_GROUP` group, pointing at a *light* module::

    # pyproject.toml of the plugin package
    [project.entry-points."thunder.plugins"]
    myexec = "my_package.thunder_plugin"

    # my_package/thunder_plugin.py -- imports nothing heavy at module level
    from thunder.extend import ExecutorSpec, hookimpl

    @hookimpl
    def thunder_executors():
        # "module:attribute": the heavy import happens on first use of the executor, not here
        return [ExecutorSpec(name="myexec", priority=50, load="my_package.executor:my_executor")]

A running program can also register a plugin object directly with
``thunder.extend.register_plugin(plugin)``. The executors that ship with Thunder register through
this same contract (the ``core`` entry point of the ``thunder-core`` distribution).

Kinds of hooks (the vocabulary of pluggy):

* *collecting*: every plugin that implements the hook is called and contributes a list; the
  registry concatenates the lists. Conflicts (two plugins naming the same executor) are reported
  and the first registration kept.
* *first-result* (``firstresult=True``): plugins are called until one returns something other than
  ``None``, and that value is the answer.

Hooks are grouped below by the moment in Thunder's lifecycle at which they are called. What an
executor contributes to compilation itself is not a hook but part of the executor object it loads:
its options (:class:`thunder.extend.ExecutorOption`) and its trace passes
(:meth:`thunder.extend.Executor.register_pass`), which run at the named stages of
:mod:`thunder.extend.passes` when the executor is in the executor list, in priority order. Later
versions add hooks here; a plugin that implements a
hook the running Thunder does not know yet is accepted, and the hook is simply never called. A hook
may declare fewer arguments than its specification lists (pluggy passes only the ones it names),
so adding an argument to a hook later breaks no plugin.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import pluggy

__all__ = [
    "ENTRY_POINT_GROUP",
    "ExecutorSpec",
    "PluginBundle",
    "TransformSpec",
    "hookimpl",
    "hookspec",
    "thunder_executors",
    "thunder_plugin_bundles",
    "thunder_transforms",
]

#: Marks a function in this module as a hook specification.
hookspec = pluggy.HookspecMarker("thunder")

#: Marks a plugin's function as the implementation of the hook of the same name.
hookimpl = pluggy.HookimplMarker("thunder")

#: The ``importlib.metadata`` entry-point group in which installed packages declare their plugins.
ENTRY_POINT_GROUP = "thunder.plugins"


def _always_available() -> str | None:
    return None


def _importer(name: str, reference: str) -> Callable[[], object]:
    """The loader of ``"module:attribute"``: it imports the module when called, not now."""
    module, sep, attribute = reference.partition(":")
    if not sep or not module or not attribute:
        raise TypeError(f"ExecutorSpec {name!r}: load must be 'module:attribute' (like an entry point), got {reference!r}")

    def load():
        return getattr(importlib.import_module(module), attribute)

    load.__qualname__ = f"load[{reference}]"
    return load


@dataclass(frozen=True)
class ExecutorSpec:
    """How a plugin offers an executor, without importing it.

    The registry reads these records at discovery time, which must stay cheap: nothing here may
    import the executor's library. The executor object itself is built by :attr:`load`, on first use.

    Attributes:
        name: the executor's name, as users write it in ``thunder.jit(fn, executors=[...])``.
            Unique across all plugins.
        priority: higher is tried first. The default executor list is every available default
            executor sorted by priority, descending, ties broken by name.
        load: where the executor object is: ``"package.module:attribute"`` (imported on first use),
            or a zero-argument callable that imports the executor's module and returns the executor
            object. Called at most once per registry (the result is cached); if it raises, the
            executor is reported and treated as unavailable, with the exception as the reason.
        why_unavailable: a zero-argument callable returning ``None`` when the executor can run here,
            or a one-line reason when it cannot (``"nvfuser_direct is not importable"``,
            ``"needs a CUDA device"``). Checked at most once per registry, before :attr:`load`; it
            should probe cheaply (``importlib.util.find_spec``) rather than import.
        always: an *always-executor* (like ``torch`` and ``python``) is appended after every
            executor list, default or explicit, so that every operation has someone to run it.
        default: ``False`` makes the executor opt-in: usable by name, but left out of the default
            list.
        description: one line for ``python -m thunder plugins``.
    """

    name: str
    priority: int
    load: Callable[[], object] | str
    why_unavailable: Callable[[], str | None] = _always_available
    always: bool = False
    default: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        # Checked here so that a malformed spec is reported against the plugin that returned it,
        # rather than failing later inside sorting or the claiming loop.
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"ExecutorSpec.name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise TypeError(f"ExecutorSpec {self.name!r}: priority must be an int, got {self.priority!r}")
        if isinstance(self.load, str):
            object.__setattr__(self, "load", _importer(self.name, self.load))
        if not callable(self.load):
            raise TypeError(f"ExecutorSpec {self.name!r}: load must be 'module:attribute' or a zero-argument callable")
        if not callable(self.why_unavailable):
            raise TypeError(f"ExecutorSpec {self.name!r}: why_unavailable must be a zero-argument callable")


@dataclass(frozen=True)
class PluginBundle:
    """A named set of executors and transforms that a user turns on together.

    Attributes:
        name: the bundle's name, unique across all plugins; users ask for the bundle by this name.
        executors: executor names or executor objects, in priority order; when the bundle is used
            they are put in front of the default executor list.
        transforms: zero-argument callables, each returning a transform object; called when the
            bundle is used, so that building a transform can import what it needs lazily.
        description: one line for ``python -m thunder plugins``.
    """

    name: str
    executors: tuple = ()
    transforms: tuple = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"PluginBundle.name must be a non-empty str, got {self.name!r}")
        # Accept lists for convenience but store tuples, so that the frozen record stays immutable.
        object.__setattr__(self, "executors", tuple(self.executors))
        object.__setattr__(self, "transforms", tuple(self.transforms))


@dataclass(frozen=True)
class TransformSpec:
    """How a plugin offers a transform by name, without building it.

    Attributes:
        name: what users write in ``thunder.jit(fn, transforms=["name"])``; unique across all plugins.
        factory: a zero-argument callable returning a fresh transform object (a ``thunder.Transform``);
            called once per ``thunder.jit`` call that names the transform, so it may import lazily.
        description: one line for ``python -m thunder plugins``.
        default: ``True`` adds the transform to every ``thunder.jit`` call that passes no ``transforms=``
            (an explicit list is the user's choice and wins, as for executors).
    """

    name: str
    factory: Callable[[], object]
    description: str = ""
    default: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"TransformSpec.name must be a non-empty str, got {self.name!r}")
        if not callable(self.factory):
            raise TypeError(f"TransformSpec {self.name!r}: factory must be a zero-argument callable")


# -------------------------------------------------------------------------------------------------
# Discovery hooks: called once per registry, the first time it is queried (or when a plugin is
# registered at run time), before any executor is loaded. They must be cheap and import nothing
# heavy.
# -------------------------------------------------------------------------------------------------


@hookspec
def thunder_executors() -> list[ExecutorSpec]:
    """Offer executors.

    Collecting hook: every plugin's list is concatenated.

    :return: a list of :class:`ExecutorSpec`, one per executor the plugin provides (empty if none).
        Offer an executor even when it cannot run here, with :attr:`ExecutorSpec.why_unavailable`
        saying why: ``python -m thunder plugins`` then shows the user what is missing.

    If this hook raises, or returns something that is not a list of ``ExecutorSpec``, the plugin is
    reported once (a :class:`~thunder.extend.PluginLoadWarning`) and contributes nothing.
    """


@hookspec
def thunder_plugin_bundles() -> list[PluginBundle]:
    """Offer named plugin bundles: executors and transforms that a user enables by one name.

    Collecting hook: every plugin's list is concatenated.

    :return: a list of :class:`PluginBundle` (empty if none).

    If this hook raises, or returns something that is not a list of ``PluginBundle``, the plugin is
    reported once (a :class:`~thunder.extend.PluginLoadWarning`) and contributes nothing.
    """


@hookspec
def thunder_transforms() -> list[TransformSpec]:
    """Offer transforms by name: ``thunder.jit(fn, transforms=["name"])``.

    Collecting hook: every plugin's list is concatenated.

    :return: a list of :class:`TransformSpec` (empty if none). A transform is an object with any of the
        stage methods of ``thunder.Transform`` (``transform_module``, ``transform_traces_pre_prologue``,
        ``transform_traces_post_autodiff``, ``transform_trace_post_optimization``,
        ``transform_state_dict_for_submodule``); see :mod:`thunder.frontend.compile` for when each runs.

    If this hook raises, or returns something that is not a list of ``TransformSpec``, the plugin is
    reported once (a :class:`~thunder.extend.PluginLoadWarning`) and contributes nothing.
    """
