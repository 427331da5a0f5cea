"""The API for plugin and executor authors.

Everything an extension needs is importable from here: the executor classes, the ``hookimpl``
marker and the records that hooks return (the hooks themselves are specified, and documented, in
:mod:`thunder.extend.hookspecs`), the registry with its module-level shortcuts, which act on
the process-wide :func:`default_registry`, and the IR an executor reads and writes.

**The public modules of Thunder.** An extension (every package under ``plugins/``, every
``thunder_executors_*`` package) imports only these, and a test (``tests/test_public_api.py``) enforces
it: ``thunder`` (the user API), ``thunder.extend`` and its submodules (this API), ``thunder.torch`` and
``thunder.prims`` (the operator vocabulary: symbols to claim and to call), ``thunder.core.proxies``
(``TensorProxy``), ``thunder.core.symbol`` (``Symbol``, ``BoundSymbol``, ``OpTag``),
``thunder.core.trace`` (``TraceCtx``), ``thunder.core.transforms`` (``get_grad``/``put_grad``/``put_grads``/
``mark_non_differentiable``, also exported here),
``thunder.core.dtypes``, ``thunder.core.verify`` (``verify_trace``, for an extension's tests of its
passes) and ``thunder.examine``. Everything else (``thunder.frontend``, ``thunder.transforms``,
``thunder.executors``, the rest of ``thunder.core``) may change without notice; what an extension needs
from there is exported here.

What a fusion executor uses: :class:`FusionExecutor` (``can_fuse``/``fuse``, which may decline or split a
:class:`Region`), :class:`CompileOnFirstCall` and :class:`CompileCache` (compile a region on its first
call, specialized on its inputs, once per process), :func:`lower_region` (a region as another executor's
calls), :class:`OpTag` (operator properties), :class:`ExecutorOption` (typed options) and
:meth:`Executor.register_pass` with the stages of :mod:`thunder.extend.passes` (pattern rewrites).
"""

from thunder.core.proxies import TensorProxy
from thunder.core.proxies import is_symbolic as has_symbolic_shape
from thunder.core.symbol import BoundSymbol, OpTag, Symbol
from thunder.core.trace import TraceCtx
from thunder.core.transforms import get_grad, mark_non_differentiable, put_grad, put_grads
from thunder.extend.compile_cache import CompileCache, CompileOnFirstCall, input_metadata
from thunder.extend.executors import (
    Executor,
    ExecutorOption,
    ExecutorOptionError,
    FusionExecutor,
    ImplInfo,
    OperatorExecutor,
)
from thunder.extend.hookspecs import ENTRY_POINT_GROUP, ExecutorSpec, PluginBundle, TransformSpec, hookimpl
from thunder.extend.lowering import lower_bound_symbols, lower_region
from thunder.extend.passes import (
    ACQUIRED,
    AFTER_AUTODIFF,
    AFTER_CLAIMING,
    BEFORE_AUTODIFF,
    BEFORE_EXECUTION,
    BEFORE_FUSION,
    FUSION_AND_CLAIMING,
    STAGES,
    PassContext,
    TracePass,
)
from thunder.extend.registry import (
    ExecutorRow,
    PluginFailure,
    PluginInfo,
    PluginLoadWarning,
    PluginRegistry,
    UnknownExecutorError,
    UnknownPluginBundleError,
    UnknownTransformError,
    default_registry,
    set_default_registry,
)
from thunder.torch.fallback import meta_from_torch
from thunder.transforms.fusion import Region

#: The modules of Thunder an extension may import (and their submodules, for ``thunder.extend``); see the
#: module docstring. ``tests/test_public_api.py`` holds every plugin and executor package to it.
PUBLIC_MODULES = frozenset({
    "thunder", "thunder.extend", "thunder.torch", "thunder.prims", "thunder.core.proxies", "thunder.core.symbol",
    "thunder.core.trace", "thunder.core.transforms", "thunder.core.dtypes", "thunder.core.verify", "thunder.examine",
    "thunder.testing",
})  # fmt: skip

__all__ = [
    "ACQUIRED",
    "PUBLIC_MODULES",
    "AFTER_AUTODIFF",
    "AFTER_CLAIMING",
    "BEFORE_AUTODIFF",
    "BEFORE_EXECUTION",
    "BEFORE_FUSION",
    "BoundSymbol",
    "CompileCache",
    "CompileOnFirstCall",
    "has_symbolic_shape",
    "ENTRY_POINT_GROUP",
    "Executor",
    "ExecutorOption",
    "ExecutorOptionError",
    "ExecutorRow",
    "ExecutorSpec",
    "FUSION_AND_CLAIMING",
    "FusionExecutor",
    "ImplInfo",
    "OpTag",
    "OperatorExecutor",
    "PassContext",
    "PluginBundle",
    "PluginFailure",
    "PluginInfo",
    "PluginLoadWarning",
    "PluginRegistry",
    "Region",
    "STAGES",
    "Symbol",
    "TensorProxy",
    "TraceCtx",
    "TracePass",
    "TransformSpec",
    "UnknownExecutorError",
    "UnknownPluginBundleError",
    "UnknownTransformError",
    "get_grad",
    "get_transform",
    "input_metadata",
    "lower_bound_symbols",
    "lower_region",
    "mark_non_differentiable",
    "meta_from_torch",
    "put_grad",
    "put_grads",
    "resolve_transforms",
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


def resolve_transforms(transforms=None) -> list:
    """Transform objects for names and objects (see :meth:`PluginRegistry.resolve_transforms`)."""
    return default_registry().resolve_transforms(transforms)


def get_transform(name: str) -> object:
    """A new transform object offered as ``name`` by a plugin (see :meth:`PluginRegistry.get_transform_spec`)."""
    return default_registry().get_transform_spec(name).factory()


def register_plugin(plugin, name: str | None = None) -> str | None:
    """Register a plugin object at run time (see :meth:`PluginRegistry.register_plugin`)."""
    return default_registry().register_plugin(plugin, name=name)


def get_plugin_bundle(name: str) -> PluginBundle:
    """The plugin bundle named ``name`` (see :meth:`PluginRegistry.get_plugin_bundle`)."""
    return default_registry().get_plugin_bundle(name)
