"""The API for plugin and executor authors.

Everything an extension needs is importable from here: the executor classes, the ``hookimpl``
marker and the records that hooks return (the hooks themselves are specified, and documented, in
:mod:`thunder.extend.hookspecs`), and the registry with its module-level shortcuts, which act on
the process-wide :func:`default_registry`.
"""

from thunder.extend.executors import Executor, FusionExecutor, OperatorExecutor
from thunder.extend.hookspecs import ENTRY_POINT_GROUP, ExecutorSpec, PluginBundle, hookimpl
from thunder.extend.registry import (
    ExecutorRow,
    PluginFailure,
    PluginInfo,
    PluginLoadWarning,
    PluginRegistry,
    UnknownExecutorError,
    UnknownPluginBundleError,
    default_registry,
    set_default_registry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Executor",
    "ExecutorRow",
    "ExecutorSpec",
    "FusionExecutor",
    "OperatorExecutor",
    "PluginBundle",
    "PluginFailure",
    "PluginInfo",
    "PluginLoadWarning",
    "PluginRegistry",
    "UnknownExecutorError",
    "UnknownPluginBundleError",
    "add_default_executor",
    "default_registry",
    "deregister_executor",
    "get_all_executors",
    "get_always_executors",
    "get_default_executors",
    "get_executor",
    "get_plugin_bundle",
    "hookimpl",
    "register_executor",
    "register_plugin",
    "remove_default_executor",
    "resolve_executors",
    "set_default_registry",
]


# The shortcuts look the default registry up on every call (rather than binding its methods once),
# so that set_default_registry() takes effect everywhere.


def get_executor(name: str) -> object:
    """The available executor named ``name`` (see :meth:`PluginRegistry.get_executor`)."""
    return default_registry().get_executor(name)


def get_all_executors() -> list:
    """Every available executor, by priority (see :meth:`PluginRegistry.get_all_executors`)."""
    return default_registry().get_all_executors()


def get_default_executors() -> list:
    """The default executor list (see :meth:`PluginRegistry.get_default_executors`)."""
    return default_registry().get_default_executors()


def get_always_executors() -> list:
    """The executors appended after every list (see :meth:`PluginRegistry.get_always_executors`)."""
    return default_registry().get_always_executors()


def resolve_executors(executors=None) -> list:
    """The executor list to use for ``executors`` (see :meth:`PluginRegistry.resolve_executors`)."""
    return default_registry().resolve_executors(executors)


def register_executor(ex, *, priority: int = 0, always: bool = False, default: bool = False):
    """Register an executor object at run time (see :meth:`PluginRegistry.register_executor`)."""
    return default_registry().register_executor(ex, priority=priority, always=always, default=default)


def deregister_executor(ex_or_name) -> None:
    """Forget an executor (see :meth:`PluginRegistry.deregister_executor`)."""
    default_registry().deregister_executor(ex_or_name)


def add_default_executor(ex) -> None:
    """Put an executor at the front of the default list (see :meth:`PluginRegistry.add_default_executor`)."""
    default_registry().add_default_executor(ex)


def remove_default_executor(ex_or_name) -> None:
    """Take an executor out of the default list (see :meth:`PluginRegistry.remove_default_executor`)."""
    default_registry().remove_default_executor(ex_or_name)


def register_plugin(plugin, name: str | None = None) -> str | None:
    """Register a plugin object at run time (see :meth:`PluginRegistry.register_plugin`)."""
    return default_registry().register_plugin(plugin, name=name)


def get_plugin_bundle(name: str) -> PluginBundle:
    """The plugin bundle named ``name`` (see :meth:`PluginRegistry.get_plugin_bundle`)."""
    return default_registry().get_plugin_bundle(name)
