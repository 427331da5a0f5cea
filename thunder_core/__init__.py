"""Thunder: a deep learning compiler for PyTorch.

`thunder.jit(fn_or_module)` acquires the program as a trace, transforms it (autograd, fusion, user
passes) and runs each operation on the best available executor. This module is the public facade.
"""

from __future__ import annotations

import thunder.core.transforms as _core_transforms
import thunder.distributed  # noqa: F401  (thunder.distributed.ddp(...) after a bare `import thunder`)
import thunder.examine  # noqa: F401  (thunder.examine.examine after a bare `import thunder`)
import thunder.extend  # noqa: F401  (thunder.extend.get_executor(...) after a bare `import thunder`, as documented)
import thunder.frontend.tracer  # noqa: F401  (registers torch tracing for lower layers)
from thunder.extend import add_default_executor, get_always_executors, get_default_executors
from thunder.frontend.api import jit
from thunder.frontend.functional import grad, jvp, vjp, vmap
from thunder.frontend.jit import ThunderFunction
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


def compile(fn, plugins=None, **kwargs):
    """`jit` with the plugin bundles named in `plugins` (see `python -m thunder plugins` for those installed;
    the core ships "reduce-overhead" (CUDA graphs), "ddp" and "fsdp"); other arguments as for `jit`."""
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


def __getattr__(name: str):
    # `thunder.dynamo` (ThunderFX) after a bare `import thunder`, without importing it (and torch.fx's passes) eagerly
    if name == "dynamo":
        import importlib

        return importlib.import_module("thunder.dynamo")
    raise AttributeError(f"module 'thunder' has no attribute {name!r}")
