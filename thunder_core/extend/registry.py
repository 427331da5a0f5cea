"""The plugin registry: discovers plugins, collects what they offer, and resolves executor lists.

A :class:`PluginRegistry` is an ordinary object (a test builds a fresh one); the process-wide
instance that ``thunder.jit`` uses is :func:`default_registry`. Discovery is lazy: nothing is
imported until the registry is first queried. Then every entry point of the ``thunder.plugins``
group is imported and registered with a pluggy ``PluginManager``, and the discovery hooks of
:mod:`thunder.extend.hookspecs` are collected. Executors themselves are loaded later still, one by
one, when first asked for.

Failures are forgiving and loud: a plugin whose import or hook raises, or an executor whose
``load()`` raises, is reported once with a :class:`PluginLoadWarning`, recorded in
:attr:`PluginRegistry.failures`, and skipped. It never breaks another plugin or ``import thunder``.

This module imports nothing else from Thunder but the hook specifications: an executor is any
object with a ``name`` attribute.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from thunder.extend import hookspecs as _hookspecs
from thunder.extend.hookspecs import ENTRY_POINT_GROUP, ExecutorSpec, PluginBundle, TransformSpec

__all__ = [
    "AUTOLOAD_ENV_VAR",
    "CORE_DISTRIBUTION",
    "ExecutorRow",
    "PluginFailure",
    "PluginInfo",
    "PluginLoadWarning",
    "PluginRegistry",
    "UnknownExecutorError",
    "UnknownPluginBundleError",
    "UnknownTransformError",
    "autoload_enabled_by_env",
    "default_registry",
    "set_default_registry",
]

#: Setting this environment variable to ``1`` turns off the automatic loading of third-party plugins.
AUTOLOAD_ENV_VAR = "THUNDER_DISABLE_PLUGIN_AUTOLOAD"

#: The distribution whose entry points load even when autoloading is off: the core's own executors
#: (``torch``, ``python``) register through the same entry-point group as any plugin, and Thunder
#: cannot run anything without them.
CORE_DISTRIBUTION = "thunder-core"


class PluginLoadWarning(UserWarning):
    """A plugin, or one of its executors, failed and was skipped. Details are in the message."""


class UnknownExecutorError(KeyError):
    """No available executor has the requested name. The message lists the known executors and,
    for the unavailable ones, why."""

    def __str__(self) -> str:
        # KeyError's own __str__ shows the repr of its argument, which mangles a multi-line message.
        return str(self.args[0]) if self.args else ""


class UnknownPluginBundleError(KeyError):
    """No plugin bundle has the requested name. The message lists the known bundle names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownTransformError(KeyError):
    """No plugin offers a transform of the requested name. The message lists the known transform names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from.

    ``name`` is the entry point's name (or the name given to ``register_plugin``); ``distribution``
    and ``version`` are those of the installed package declaring the entry point (``None`` for a
    plugin registered at run time); ``origin`` is the entry point's target or ``"run time"``.
    """

    name: str
    distribution: str | None = None
    version: str | None = None
    origin: str = "run time"

    @property
    def source(self) -> str:
        """``"distribution version"``, or a note that the plugin was registered at run time."""
        if self.distribution is None:
            return f"(registered at {self.origin})" if self.origin == "run time" else self.origin
        return f"{self.distribution} {self.version}" if self.version else self.distribution


@dataclass(frozen=True)
class PluginFailure:
    """A failure that was reported and skipped: which plugin, at which step, and the error."""

    plugin: str
    distribution: str | None
    version: str | None
    step: str
    error: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        source = PluginInfo(self.plugin, self.distribution, self.version).source
        return f"plugin {self.plugin!r} ({source}): {self.step}: {self.error}"


@dataclass(frozen=True)
class ExecutorRow:
    """One executor as ``python -m thunder plugins`` shows it. ``reason`` is ``None`` if available."""

    name: str
    plugin: str
    distribution: str | None
    version: str | None
    priority: int
    always: bool
    default: bool
    reason: str | None
    description: str = ""

    @property
    def source(self) -> str:
        """``"distribution version"`` of the plugin, or a note that it was registered at run time."""
        return PluginInfo(self.plugin, self.distribution, self.version).source

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def status(self) -> str:
        return "available" if self.reason is None else f"unavailable: {self.reason}"


_RUNTIME = PluginInfo(name="register_executor")
_UNSET = object()


@dataclass(eq=False)
class _ExecutorEntry:
    """The registry's record of one executor: its spec, its plugin, and the cached checks."""

    spec: ExecutorSpec
    plugin: PluginInfo
    executor: object = _UNSET  # the loaded object; None once load() failed
    reason: object = _UNSET  # None = available, a str = why not; _UNSET until checked


def autoload_enabled_by_env() -> bool:
    """False when :data:`AUTOLOAD_ENV_VAR` is set to a true value (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get(AUTOLOAD_ENV_VAR, "").strip().lower() in ("", "0", "false", "no", "off")


def _canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _distribution_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    """The name and version of the distribution declaring ``ep`` (None where the metadata lacks them)."""
    if ep.dist is None:
        return None, None
    return ep.dist.metadata["Name"], ep.dist.version


def _describe(error: BaseException | str) -> str:
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


def _executor_name(ex_or_name: object) -> str:
    if isinstance(ex_or_name, str):
        return ex_or_name
    name = getattr(ex_or_name, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"an executor must be a name or an object with a str `name` attribute, got {ex_or_name!r}")
    return name


def _sort_key(entry: _ExecutorEntry) -> tuple:
    # Priority is data: higher first, ties broken by name, never by registration order.
    return (-entry.spec.priority, entry.spec.name)


def _dedupe_by_name(executors: Iterable[object]) -> list:
    seen: set[str] = set()
    unique = []
    for ex in executors:
        name = _executor_name(ex)
        if name not in seen:
            seen.add(name)
            unique.append(ex)
    return unique


class PluginRegistry:
    """Plugins, the executors and bundles they offer, and the rules that order executors.

    Args:
        autoload: whether to load third-party plugins from their entry points. ``None`` (the
            default) means yes unless the environment variable :data:`AUTOLOAD_ENV_VAR` is set.
            The entry points of the core distribution (:data:`CORE_DISTRIBUTION`) load either way.
        blocked: entry-point (plugin) names never to import or register.
    """

    def __init__(self, autoload: bool | None = None, blocked: Iterable[str] = ()) -> None:
        self.autoload = autoload_enabled_by_env() if autoload is None else bool(autoload)
        self._pm = pluggy.PluginManager("thunder")
        self._pm.add_hookspecs(_hookspecs)
        self._blocked: set[str] = set()
        self._plugins: dict[str, PluginInfo] = {}
        self._executors: dict[str, _ExecutorEntry] = {}
        self._bundles: dict[str, tuple[PluginBundle, PluginInfo]] = {}
        self._transforms: dict[str, tuple[TransformSpec, PluginInfo]] = {}
        self._front_defaults: list[str] = []  # add_default_executor, most recent first
        self._removed_defaults: set[str] = set()
        self._failures: list[PluginFailure] = []
        self._discovered = False
        self._discovering = False
        # Reentrant: a plugin's import or load() may itself query the registry.
        self._lock = threading.RLock()
        for name in blocked:
            self.block_plugin(name)

    # --- plugins -----------------------------------------------------------------------------------

    @property
    def plugins(self) -> tuple[PluginInfo, ...]:
        """Every registered plugin, in registration order (triggers discovery)."""
        self._ensure_discovered()
        return tuple(self._plugins.values())

    @property
    def failures(self) -> tuple[PluginFailure, ...]:
        """Every failure reported so far, in order (triggers discovery)."""
        self._ensure_discovered()
        return tuple(self._failures)

    @property
    def blocked(self) -> frozenset[str]:
        """The plugin names that are never imported or registered."""
        return frozenset(self._blocked)

    def block_plugin(self, name: str) -> None:
        """Never import or register the plugin ``name``; if it is registered already, remove it
        together with the executors and bundles it offered."""
        with self._lock:
            self._blocked.add(name)
            self._pm.set_blocked(name)
            if self._plugins.pop(name, None) is not None:
                self._executors = {n: e for n, e in self._executors.items() if e.plugin.name != name}
                self._bundles = {n: b for n, b in self._bundles.items() if b[1].name != name}
                self._transforms = {n: t for n, t in self._transforms.items() if t[1].name != name}

    def register_plugin(self, plugin: object, name: str | None = None) -> str | None:
        """Register a plugin at run time: a module or object holding ``@hookimpl`` functions.

        Its hooks are collected at once. Returns the name it was registered under, or ``None`` if
        that name is blocked or the plugin was skipped. A plugin whose hook raises is reported and
        skipped, as at discovery; an invalid plugin (already registered, a malformed hook
        implementation) raises pluggy's error, since the caller can fix it.
        """
        self._ensure_discovered()
        with self._lock:
            name = name or self._pm.get_canonical_name(plugin)
            if self._pm.register(plugin, name=name) is None:
                return None
            return name if self._collect(PluginInfo(name=name)) else None

    def _ensure_discovered(self) -> None:
        if self._discovered:
            return
        # Other threads wait on the lock until discovery is complete. The thread doing it may come
        # back here (a plugin that queries the registry while it is imported): it then sees what
        # has been registered so far instead of recursing.
        with self._lock:
            if self._discovered or self._discovering:
                return
            self._discovering = True
            try:
                for entry_point in self._entry_points():
                    self._load_entry_point(entry_point)
            finally:
                self._discovered = True

    def _entry_points(self) -> list[importlib.metadata.EntryPoint]:
        def is_core(ep: importlib.metadata.EntryPoint) -> bool:
            return _canonical(_distribution_of(ep)[0] or "") == CORE_DISTRIBUTION

        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        selected = [ep for ep in found if self.autoload or is_core(ep)]
        # The core first, so that it wins a name conflict; then by name, for a reproducible order.
        return sorted(selected, key=lambda ep: (not is_core(ep), ep.name, _distribution_of(ep)[0] or ""))

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        distribution, version = _distribution_of(ep)
        info = PluginInfo(ep.name, distribution, version, origin=f"entry point {ep.value}")
        if ep.name in self._blocked:
            return
        if ep.name in self._plugins:
            other = self._plugins[ep.name]
            self._report(info, "register", f"the plugin name is taken by {other.source}", "the plugin was skipped")
            return
        try:
            plugin = ep.load()
        except Exception as exc:
            self._report(info, "import", exc, "the plugin was skipped")
            return
        try:
            self._pm.register(plugin, name=ep.name)
        except Exception as exc:  # pluggy: a malformed hookimpl, or the module registered twice
            self._report(info, "register", exc, "the plugin was skipped")
            return
        self._collect(info)

    def _collect(self, info: PluginInfo) -> bool:
        """Call the discovery hooks of one plugin; keep its offers only if every hook succeeded."""
        try:
            specs = self._call_plugin_hook(info.name, "thunder_executors", ExecutorSpec)
            bundles = self._call_plugin_hook(info.name, "thunder_plugin_bundles", PluginBundle)
            transforms = self._call_plugin_hook(info.name, "thunder_transforms", TransformSpec)
        except _HookFailed as failed:
            self._report(info, f"hook {failed.hook}", failed.error, "the plugin was skipped")
            self._pm.unregister(name=info.name)
            return False
        self._plugins[info.name] = info
        for spec in specs:
            if spec.name in self._executors:
                other = self._executors[spec.name].plugin
                self._report(
                    info,
                    f"executor {spec.name!r}",
                    f"the name is taken by plugin {other.name!r}",
                    "this one was ignored",
                )
            else:
                self._executors[spec.name] = _ExecutorEntry(spec, info)
        for bundle in bundles:
            if bundle.name in self._bundles:
                other = self._bundles[bundle.name][1]
                self._report(
                    info,
                    f"bundle {bundle.name!r}",
                    f"the name is taken by plugin {other.name!r}",
                    "this one was ignored",
                )
            else:
                self._bundles[bundle.name] = (bundle, info)
        for spec in transforms:
            if spec.name in self._transforms:
                other = self._transforms[spec.name][1]
                self._report(info, f"transform {spec.name!r}", f"the name is taken by plugin {other.name!r}",
                             "this one was ignored")  # fmt: skip
            else:
                self._transforms[spec.name] = (spec, info)
        return True

    def _call_plugin_hook(self, plugin_name: str, hook_name: str, item_type: type, **kwargs: object) -> list:
        # The implementations are called one plugin at a time, rather than through pluggy's hook
        # caller, so that each offer is attributed to its plugin and a raising plugin is skipped
        # alone (pluggy aborts the whole call at the first exception).
        items: list = []
        for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
            # A wrapper wraps the other plugins' calls; it offers nothing itself.
            if impl.plugin_name != plugin_name or impl.hookwrapper or getattr(impl, "wrapper", False):
                continue
            try:
                result = impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Exception as exc:
                raise _HookFailed(hook_name, exc) from exc
            if result is None:  # as in pluggy, None means "no contribution"
                continue
            if not isinstance(result, list | tuple) or not all(isinstance(item, item_type) for item in result):
                message = f"returned {result!r}, expected a list of {item_type.__name__}"
                raise _HookFailed(hook_name, message)
            items.extend(result)
        return items

    def _report(self, info: PluginInfo, step: str, error: BaseException | str, consequence: str) -> None:
        failure = PluginFailure(
            plugin=info.name,
            distribution=info.distribution,
            version=info.version,
            step=step,
            error=_describe(error),
            exception=error if isinstance(error, BaseException) else None,
        )
        self._failures.append(failure)
        warnings.warn(f"thunder {failure}; {consequence}", PluginLoadWarning, stacklevel=2)

    # --- executors ---------------------------------------------------------------------------------

    def get_executor(self, name: str) -> object:
        """The executor object named ``name``, loaded on first use and cached.

        Raises :class:`UnknownExecutorError` if no executor has that name or it is unavailable here;
        the message lists the known executors, and why the unavailable ones cannot run here.
        """
        self._ensure_discovered()
        entry = self._executors.get(name)
        if entry is None:
            raise UnknownExecutorError(self._unknown_executor_message(name))
        executor = self._available_executor(entry)
        if executor is None:
            raise UnknownExecutorError(self._unknown_executor_message(name, entry.reason))
        return executor

    def get_all_executors(self) -> list:
        """Every available executor object (loaded), by priority, always-executors included."""
        self._ensure_discovered()
        return self._load_available(sorted(self._executors.values(), key=_sort_key))

    def get_default_executors(self) -> list:
        """The default executor list: executors added by :meth:`add_default_executor` (most recent
        first), then every available executor with ``default=True`` and ``always=False``, by
        priority descending, ties by name. Always-executors are not included."""
        self._ensure_discovered()
        # Snapshots: another thread may register or remove executors meanwhile (reads take no lock)
        executors = dict(self._executors)
        by_priority = sorted(executors.values(), key=_sort_key)
        front = [executors[name] for name in list(self._front_defaults) if name in executors]
        rest = [
            e
            for e in by_priority
            if e.spec.default and not e.spec.always and e.spec.name not in self._removed_defaults and e not in front
        ]
        return self._load_available(front + rest)

    def get_always_executors(self) -> list:
        """The executors appended after every list (``always=True``), by priority, ties by name."""
        self._ensure_discovered()
        entries = list(self._executors.values())  # a snapshot: see get_default_executors
        return self._load_available(sorted((e for e in entries if e.spec.always), key=_sort_key))

    def resolve_executors(self, executors: Iterable[object] | str | None = None) -> list:
        """The executor list to claim operations with, in order.

        ``None`` gives the default list followed by the always-executors. An explicit list of names
        and/or executor objects keeps the caller's order (names are looked up with
        :meth:`get_executor`, objects are used as they are), followed by the always-executors not
        already in it. Duplicates (by name) are dropped, keeping the first. A single name is
        accepted as a list of one.
        """
        if executors is None:
            chosen = self.get_default_executors()
        else:
            if isinstance(executors, str):
                executors = [executors]
            chosen = [self.get_executor(ex) if isinstance(ex, str) else ex for ex in executors]
        return _dedupe_by_name(chosen + self.get_always_executors())

    def register_executor(
        self, ex: object, *, priority: int = 0, always: bool = False, default: bool = False
    ) -> object:
        """Register an executor object (anything with a ``name``) at run time, and return it.

        It replaces an executor of the same name: an explicit registration is the user's choice.
        It joins the default list only with ``default=True`` (or :meth:`add_default_executor`).
        """
        name = _executor_name(ex)
        self._ensure_discovered()
        with self._lock:
            spec = ExecutorSpec(name=name, priority=priority, load=lambda: ex, always=always, default=default)
            self._executors[name] = _ExecutorEntry(spec, _RUNTIME, executor=ex, reason=None)
        return ex

    def deregister_executor(self, ex_or_name: object) -> None:
        """Forget an executor (by object or name) entirely, including its place in the default list."""
        name = _executor_name(ex_or_name)
        self._ensure_discovered()
        with self._lock:
            if self._executors.pop(name, None) is None:
                raise UnknownExecutorError(self._unknown_executor_message(name))
            if name in self._front_defaults:
                self._front_defaults.remove(name)
            self._removed_defaults.discard(name)

    def add_default_executor(self, ex: object) -> None:
        """Put an executor (object or name) at the front of the default list.

        An object not registered yet, or different from the one registered under its name, is
        registered first (keeping the priority and flags of an executor it replaces).
        """
        name = _executor_name(ex)
        self._ensure_discovered()
        with self._lock:
            if isinstance(ex, str):
                self.get_executor(name)  # raises, with the known names, if unknown or unavailable
            elif (entry := self._executors.get(name)) is None or entry.executor is not ex:
                priority, always = (entry.spec.priority, entry.spec.always) if entry else (0, False)
                self.register_executor(ex, priority=priority, always=always)
            if name in self._front_defaults:
                self._front_defaults.remove(name)
            self._front_defaults.insert(0, name)
            self._removed_defaults.discard(name)

    def remove_default_executor(self, ex_or_name: object) -> None:
        """Take an executor out of the default list; it stays usable by name."""
        name = _executor_name(ex_or_name)
        self._ensure_discovered()
        with self._lock:
            if name not in self._executors:
                raise UnknownExecutorError(self._unknown_executor_message(name))
            if name in self._front_defaults:
                self._front_defaults.remove(name)
            self._removed_defaults.add(name)

    def executor_rows(self, load: bool = False) -> list[ExecutorRow]:
        """Every executor offered, available or not, for display: always-executors last, otherwise by
        priority. With ``load=True`` each available executor is also loaded, so that a failing
        ``load()`` shows up as the reason it is unavailable."""
        self._ensure_discovered()
        rows = []
        for entry in sorted(self._executors.values(), key=lambda e: (e.spec.always, *_sort_key(e))):
            reason = entry.reason if load and self._available_executor(entry) is None else self._why_unavailable(entry)
            spec, plugin = entry.spec, entry.plugin
            row = ExecutorRow(
                spec.name,
                plugin.name,
                plugin.distribution,
                plugin.version,
                spec.priority,
                spec.always,
                spec.default,
                reason,
                spec.description,
            )
            rows.append(row)
        return rows

    def _load_available(self, entries: Iterable[_ExecutorEntry]) -> list:
        loaded = (self._available_executor(entry) for entry in entries)
        return [executor for executor in loaded if executor is not None]

    def _available_executor(self, entry: _ExecutorEntry) -> object | None:
        """The loaded executor, or None if it is unavailable (``entry.reason`` then says why)."""
        if self._why_unavailable(entry) is not None:
            return None
        if entry.executor is _UNSET:
            with self._lock:
                if entry.executor is _UNSET:
                    self._load(entry)
        return entry.executor

    def _why_unavailable(self, entry: _ExecutorEntry) -> str | None:
        if entry.reason is _UNSET:
            try:
                reason = entry.spec.why_unavailable()
            except Exception as exc:
                self._report(
                    entry.plugin, f"executor {entry.spec.name!r}: why_unavailable()", exc, "the executor is unavailable"
                )
                reason = f"why_unavailable() raised {_describe(exc)}"
            entry.reason = None if reason is None else str(reason)
        return entry.reason

    def _load(self, entry: _ExecutorEntry) -> None:
        name = entry.spec.name
        try:
            executor = entry.spec.load()
            if (loaded_name := getattr(executor, "name", None)) != name:
                raise TypeError(f"load() returned {executor!r} whose name is {loaded_name!r}, not {name!r}")
        except Exception as exc:
            self._report(entry.plugin, f"executor {name!r}: load()", exc, "the executor is unavailable")
            entry.executor, entry.reason = None, f"load() raised {_describe(exc)}"
            return
        entry.executor = executor

    def _unknown_executor_message(self, name: str, reason: str | None = None) -> str:
        if reason is None:
            lines = [f"no executor is named {name!r}"]
            close = difflib.get_close_matches(name, list(self._executors), n=3)
            if close:
                lines[0] += f" (did you mean {', '.join(map(repr, close))}?)"
        else:
            lines = [f"executor {name!r} is unavailable: {reason}"]
        available, unavailable = [], []
        for entry in sorted(self._executors.values(), key=lambda e: (e.spec.always, *_sort_key(e))):
            why = self._why_unavailable(entry)
            if why is None:
                available.append(entry.spec.name)
            else:
                unavailable.append(f"{entry.spec.name}: {why}")
        lines.append(f"  available executors: {', '.join(available) or '(none)'}")
        if unavailable:
            lines.append(f"  unavailable executors: {'; '.join(unavailable)}")
        if self._failures:
            lines.append(f"  plugins that failed: {'; '.join(map(str, self._failures))}")
        lines.append("  `python -m thunder plugins` lists every executor, its package and its status")
        return "\n".join(lines)

    # --- bundles -----------------------------------------------------------------------------------

    def get_plugin_bundle(self, name: str) -> PluginBundle:
        """The plugin bundle named ``name``; raises :class:`UnknownPluginBundleError` listing the
        known bundle names if there is none."""
        self._ensure_discovered()
        if name not in self._bundles:
            known = ", ".join(sorted(self._bundles)) or "(none)"
            raise UnknownPluginBundleError(f"no plugin bundle is named {name!r}; known bundles: {known}")
        return self._bundles[name][0]

    def get_plugin_bundles(self) -> list[tuple[PluginBundle, PluginInfo]]:
        """Every bundle with the plugin that offered it, by name."""
        self._ensure_discovered()
        return [self._bundles[name] for name in sorted(self._bundles)]


    # --- transforms ------------------------------------------------------------------------------

    def get_transform_spec(self, name: str) -> TransformSpec:
        """The transform offered as ``name``; raises :class:`UnknownTransformError` listing the known names."""
        self._ensure_discovered()
        found = self._transforms.get(name)
        if found is None:
            known = ", ".join(sorted(self._transforms)) or "(none)"
            close = difflib.get_close_matches(name, list(self._transforms), n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise UnknownTransformError(
                f"no plugin offers a transform named {name!r}{hint}; known transforms: {known}. "
                "`python -m thunder plugins` lists them with their packages"
            )
        return found[0]

    def get_transform_specs(self) -> list[tuple[TransformSpec, PluginInfo]]:
        """Every transform offered, with the plugin that offered it, by name."""
        self._ensure_discovered()
        return [self._transforms[name] for name in sorted(self._transforms)]

    def resolve_transforms(self, transforms=None) -> list:
        """Transform objects for ``transforms``: names are built by their plugin's factory, objects are kept,
        in the given order. ``None`` gives the transforms offered with ``default=True``, by name."""
        if transforms is None:
            return [spec.factory() for spec, _ in self.get_transform_specs() if spec.default]
        if isinstance(transforms, str):
            transforms = [transforms]
        return [self.get_transform_spec(t).factory() if isinstance(t, str) else t for t in transforms]


class _HookFailed(Exception):
    def __init__(self, hook: str, error: BaseException | str) -> None:
        super().__init__(hook, error)
        self.hook = hook
        self.error = error


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PluginRegistry:
    """The process-wide registry (created on first use) that the module-level functions of
    :mod:`thunder.extend` and ``thunder.jit`` consult."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PluginRegistry()
    return _default


def set_default_registry(registry: PluginRegistry | None) -> PluginRegistry | None:
    """Replace the process-wide registry (``None``: a fresh one on next use); returns the previous one.

    For tests: ``old = set_default_registry(PluginRegistry(autoload=False))`` ... ``set_default_registry(old)``.
    """
    global _default
    with _default_lock:
        previous, _default = _default, registry
    return previous
