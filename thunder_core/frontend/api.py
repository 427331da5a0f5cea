"""`thunder.jit`: validates what the user asked for (executors, transforms, executor options, plugin bundles) and
builds the jitted callable. Re-exported as `thunder.jit`; here so that the frontend's own tools (examine) can
compile without importing the `thunder` facade above them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch as pytorch

import thunder.extend as extend
from thunder.frontend.jit import ThunderFunction, jit_options_check
from thunder.frontend.module import ThunderModule

__all__ = ["jit"]


def jit(
    fn: Callable | pytorch.nn.Module,
    /,
    *,
    executors: Sequence | None = None,
    cache: Any = None,
    transforms: Sequence | None = None,
    plugins: Sequence[str] | str | None = None,
    disable_torch_autograd: bool = False,
    executor_options: dict[str, dict] | None = None,
    **options,
) -> Callable:
    """Compiles a function or module; returns a callable (or a `ThunderModule` for modules).

    Compilation happens on the first call and again whenever a call does not match a cached entry.

    Args:
        fn: the function or `torch.nn.Module` to compile.
        executors: executor names and/or executor objects in priority order; None means the default list
            (`thunder.get_default_executors()`). The always-executors (`torch`, `python`) are appended.
        cache: how calls are matched to compiled entries, one of

            * ``"constant values"`` (the default): the key holds every input tensor's metadata (shape,
              strides, dtype, device, requires_grad), the values of Python scalars, module training flags,
              grad mode, autocast state and the default dtype (`thunder.frontend.cache` says what else is
              checked).
            * ``"symbolic values"``: like ``"constant values"``, but int and float arguments become inputs
              of the trace, so a new value does not recompile; a branch on such a number is guarded by its
              outcome, a number used as a size by its value.
            * ``"same input"``: the caller promises every call looks like the first one; nothing is
              checked (the lowest overhead, and a stale result when the promise is broken).
            * ``"no caching"``: every call traces and compiles anew.

        transforms: `thunder.Transform` objects and/or names of transforms offered by plugins
            (`python -m thunder plugins` lists them); None: the transforms plugins offer as default.
        plugins: names of plugin bundles; their executors go first and their transforms run too.
        disable_torch_autograd: never build a backward, even for inputs that require grad.
        executor_options: ``{"executor name": {"option": value}}``, validated against the options each
            executor declares (`python -m thunder plugins --options`); fixed for this jitted function, so
            every compiled entry uses them.
        **options: ``show_progress=True`` prints the compilation stages; ``debug_verify=True`` checks every
            trace with the trace verifier (also turned on by the environment variable
            ``THUNDER_DEBUG_VERIFY=1``). Unknown options are an error.
    """
    if isinstance(fn, (ThunderFunction, ThunderModule)):
        raise TypeError("this function is already compiled by thunder.jit; pass the original")
    jit_options_check(options)
    executors, transforms = _apply_plugins(plugins, executors, transforms)
    executors = extend.resolve_executors(executors)
    transforms = extend.resolve_transforms(transforms)
    if isinstance(fn, pytorch.nn.Module):  # transforms attached by a wrapper applied before jit (thunder.distributed)
        transforms = [*getattr(fn, "_thunder_module_transforms", ()), *transforms]
    options = {**options, "executor_options": _validated_executor_options(executors, executor_options)}
    kwargs = dict(executors=executors, cache=cache, transforms=transforms,
                  disable_torch_autograd=disable_torch_autograd, options=options)  # fmt: skip
    if isinstance(fn, pytorch.nn.Module):
        for transform in transforms or ():
            if hasattr(transform, "transform_module"):
                transform.transform_module(fn)
        return ThunderModule(fn, **kwargs)
    if not callable(fn):
        raise TypeError(f"thunder.jit expects a function or an nn.Module, got {type(fn).__name__}")
    return ThunderFunction(fn, **kwargs)


def _validated_executor_options(executors: list, given: dict | None) -> dict:
    """Every listed executor's options, validated (unknown executor names and options are errors)."""
    given = dict(given or {})
    by_name = {ex.name: ex for ex in executors}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise extend.ExecutorOptionError(
            f"executor_options names {', '.join(map(repr, unknown))}, not in the executor list "
            f"[{', '.join(by_name)}]; add it to executors=[...] or drop its options"
        )
    validated = {}
    for name, ex in by_name.items():
        if not isinstance(given.get(name, {}), dict):
            raise extend.ExecutorOptionError(f"executor_options[{name!r}] must be a dict of options")
        validate = getattr(ex, "validate_options", None)
        if validate is None:  # an executor object not derived from extend.Executor declares no options
            if given.get(name):
                raise extend.ExecutorOptionError(f"executor {name!r} declares no options")
            continue
        validated[name] = validate(given.get(name))
    return validated


def _apply_plugins(plugins, executors, transforms):
    if plugins is None:
        return executors, transforms
    names = [plugins] if isinstance(plugins, str) else list(plugins)
    bundle_executors, bundle_transforms = [], []
    for name in names:
        bundle = extend.get_plugin_bundle(name)
        bundle_executors.extend(bundle.executors)
        bundle_transforms.extend(factory() for factory in bundle.transforms)
    base = list(executors) if executors is not None else extend.get_default_executors()
    return [*bundle_executors, *base], [*bundle_transforms, *(transforms or ())]
