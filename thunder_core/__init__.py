"""Thunder: a deep learning compiler for PyTorch.

`thunder.jit(fn_or_module)` acquires the program as a trace, transforms it (autograd, fusion, user
passes) and runs each operation on the best available executor. This module is the public facade.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch as pytorch  # `thunder.torch` is the ltorch subpackage: the name `torch` here is taken

import thunder.core.transforms as _core_transforms
import thunder.examine  # noqa: F401  (thunder.examine.examine after a bare `import thunder`)
import thunder.extend  # noqa: F401  (thunder.extend.get_executor(...) after a bare `import thunder`, as documented)
import thunder.frontend.tracer  # noqa: F401  (registers torch tracing for lower layers)
from thunder.frontend.functional import grad, jvp, vjp, vmap
from thunder.frontend.jit import ThunderFunction, jit_options_check
from thunder.frontend.module import ThunderModule
from thunder.frontend.transform import Transform

# The API documents the functional transforms in thunder.core.transforms too; they need the tracer (a higher
# layer), so they are defined in thunder.frontend.functional and named there from here.
_core_transforms.grad, _core_transforms.vjp, _core_transforms.jvp, _core_transforms.vmap = grad, vjp, jvp, vmap

__version__ = "0.1.0"

__all__ = [
    "jit", "compile", "last_traces", "last_backward_traces", "last_prologue_traces", "cache_hits", "cache_misses",
    "cache_option", "compile_stats", "ThunderModule", "Transform", "get_default_executors", "get_always_executors",
    "add_default_executor", "fallback_ops", "grad", "vjp", "jvp", "vmap",
]  # fmt: skip


def jit(
    fn: Callable | pytorch.nn.Module,
    /,
    *,
    executors: Sequence | None = None,
    cache: Any = None,
    transforms: Sequence | None = None,
    plugins: Sequence[str] | str | None = None,
    disable_torch_autograd: bool = False,
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

        transforms: `thunder.Transform` objects.
        plugins: names of plugin bundles; their executors go first and their transforms run too.
        disable_torch_autograd: never build a backward, even for inputs that require grad.
        **options: ``show_progress=True`` prints the compilation stages; ``debug_verify=True`` checks every
            trace with the trace verifier (also turned on by the environment variable
            ``THUNDER_DEBUG_VERIFY=1``). Unknown options are an error.
    """
    if isinstance(fn, (ThunderFunction, ThunderModule)):
        raise TypeError("this function is already compiled by thunder.jit; pass the original")
    jit_options_check(options)
    executors, transforms = _apply_plugins(plugins, executors, transforms)
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


def _apply_plugins(plugins, executors, transforms):
    if plugins is None:
        return executors, transforms
    from thunder.extend import get_default_executors as defaults
    from thunder.extend import get_plugin_bundle

    names = [plugins] if isinstance(plugins, str) else list(plugins)
    bundle_executors, bundle_transforms = [], []
    for name in names:
        bundle = get_plugin_bundle(name)
        bundle_executors.extend(bundle.executors)
        bundle_transforms.extend(factory() for factory in bundle.transforms)
    base = list(executors) if executors is not None else defaults()
    return [*bundle_executors, *base], [*bundle_transforms, *(transforms or ())]


def compile(fn, plugins=None, **kwargs):
    """`jit` with recommended settings (plugins such as "reduce-overhead", "ddp", "fsdp" when installed)."""
    return jit(fn, plugins=plugins, **kwargs)


def _jitted(fn) -> ThunderFunction:
    if isinstance(fn, ThunderModule):
        return fn._jfn
    if isinstance(fn, ThunderFunction):
        return fn
    if isinstance(getattr(fn, "_jitted", None), ThunderFunction):  # grad/vjp/jvp/vmap, compiled on first call
        return fn._jitted
    raise TypeError(f"expected a function or module returned by thunder.jit, got {type(fn).__name__}")


def last_traces(fn) -> list:
    """Every trace of the last compilation, first = acquired, last = executed (the forward, under autograd)."""
    traces = _jitted(fn).stats.last_traces
    if not traces:
        raise RuntimeError("the function has not been compiled yet: call it first")
    return traces


def last_backward_traces(fn) -> list:
    """The backward's traces of the last compilation (empty when no backward was built)."""
    return _jitted(fn).stats.last_backward_traces


def last_prologue_traces(fn) -> list:
    """Always an empty list, kept for code written against Lightning Thunder's API.

    Lightning Thunder checks each call's inputs with a generated *prologue* program. This project matches a
    call to a compiled entry with a hashed cache key and per-entry guards instead (see
    `thunder.frontend.cache`), so there is no prologue trace to return. `thunder.cache_hits`,
    `thunder.cache_misses` and `thunder.compile_stats` say how calls were matched.
    """
    _jitted(fn)
    return []


def cache_hits(fn) -> int:
    """How many calls of the jitted function reused a compiled entry."""
    return _jitted(fn).stats.cache_hits


def cache_misses(fn) -> int:
    """How many calls of the jitted function compiled a new entry."""
    return _jitted(fn).stats.cache_misses


def cache_option(fn) -> str:
    """The cache option the function was compiled with (see `jit`), as a string."""
    return _jitted(fn).cache_option


def compile_stats(fn):
    """Timings of the last compilation (trace, transform and total compile time, in ms) and cache counters."""
    return _jitted(fn).stats


def fallback_ops(fn) -> set[str]:
    """The torch operators that ran through the meta-kernel fallback rather than a Thunder symbol."""
    return set(_jitted(fn).stats.fallback_ops)


def get_default_executors() -> list:
    """The executors `jit` uses when `executors` is None: every available default executor, by priority."""
    from thunder.extend import get_default_executors as impl

    return impl()


def get_always_executors() -> list:
    """The executors appended to every list (`torch`, `python`): they run whatever no other executor claims."""
    from thunder.extend import get_always_executors as impl

    return impl()


def add_default_executor(ex) -> None:
    """Puts an executor (an object, registered if it is not yet, or a registered name) first in the default list."""
    from thunder.extend import add_default_executor as impl

    impl(ex)
