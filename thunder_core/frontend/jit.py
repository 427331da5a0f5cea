"""`thunder.jit`: acquire, transform, claim and compile; cache the result by the call's key."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from thunder.core.pytree import _LEAF, TreeSpec, tree_flatten, tree_unflatten
from thunder.frontend.cache import (
    _default_dtype,
    _is_grad_enabled,
    autocast_key,
    flatten_and_key,
    global_state_key,
    input_tensors,
    is_symbolic_number,
    resolve_cache_option,
)
from thunder.frontend.compile import compile_entry
from thunder.frontend.tracer import acquire_trace, collecting_guards

log = logging.getLogger("thunder")
_Tensor = torch.Tensor

JIT_OPTIONS = {"show_progress", "debug_verify"}


@dataclass
class CompileStats:
    """Timings and counters of a jitted callable."""

    cache_hits: int = 0
    cache_misses: int = 0
    last_trace_time_ms: float = 0.0  # acquisition
    last_transform_time_ms: float = 0.0  # every pass after acquisition
    last_compile_time_ms: float = 0.0  # the whole first call: trace + transforms + python compile
    last_traces: list = field(default_factory=list)
    last_backward_traces: list = field(default_factory=list)
    fallback_ops: set = field(default_factory=set)
    saved_for_backward: int = 0  # tensors the last compiled forward saves for the backward
    saved_for_backward_bytes: int = 0


class CacheEntry:
    """One compiled specialization: the forward callable, and the backward when autograd is involved."""

    __slots__ = ("forward", "backward", "out_spec", "constants", "traces", "backward_traces",
                 "needs_autograd", "fallback_ops", "single_output", "forward_trace", "backward_trace",
                 "fast", "differentiable_outputs", "guards")  # fmt: skip

    def __init__(self):
        self.backward = None
        # cache="symbolic values": (expr, outcome) pairs; the entry serves the calls whose flat inputs give
        # every expr its outcome (see thunder.core.proxies)
        self.guards: tuple = ()
        self.needs_autograd = False
        self.constants: list[torch.Tensor] = []
        self.fallback_ops: set[str] = set()
        self.fast = False  # callable with the plain arguments alone (no autograd, no captured constants)


class ThunderFunction:
    """A jitted callable. Call it like the original; inspect it with thunder.last_traces & co."""

    def __init__(
        self,
        fn: Callable,
        *,
        executors=None,
        cache=None,
        transforms: Sequence | None = None,
        disable_torch_autograd: bool = False,
        options: dict | None = None,
        module: torch.nn.Module | None = None,
    ):
        from thunder.extend import resolve_executors

        self.fn = fn
        self.executors = resolve_executors(executors)
        self.cache_option = resolve_cache_option(cache)
        self.transforms = list(transforms or ())
        self.disable_torch_autograd = disable_torch_autograd
        self.options = dict(options or {})
        self.module = module
        self.stats = CompileStats()
        self._cache: dict = {}
        self._same_input_entry: CacheEntry | None = None
        self._arg_names = _argument_names(fn)
        self.replacements = {}
        for ex in reversed(self.executors):  # higher priority last: it wins
            self.replacements.update(getattr(ex, "replacements", {}))
        functools.update_wrapper(self, fn, updated=())

    # -- the hot path -------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        # The hot path, inlined: plain tensor arguments, a cached inference entry. Same key as call_with_state.
        if not kwargs and self.cache_option == "constant values":
            for a in args:
                if type(a) is not _Tensor:
                    break
            else:
                key = (
                    tuple([(a.shape, a.stride(), a.dtype, a.device, a.requires_grad) for a in args]),
                    (),
                    (_is_grad_enabled(), autocast_key(), _default_dtype()),
                )
                entry = self._cache.get(key)
                if entry is not None and entry.fast:
                    self.stats.cache_hits += 1
                    outs = entry.forward(*args)
                    return outs[0] if entry.single_output else tree_unflatten(outs, entry.out_spec)
        return self.call_with_state((), args, kwargs, ())

    def call_with_state(self, state: Sequence[torch.Tensor], args, kwargs, state_key: tuple):
        """Calls with leading tensors `state` (a module's parameters and buffers) before the arguments.

        The trace's inputs are `state`, the call's tensors (and, under "symbolic values", its numbers) in
        order, then the constants the trace captured."""
        if self.cache_option == "same input" and self._same_input_entry is not None:
            entry = self._same_input_entry
            inputs = input_tensors(args, kwargs)
            self.stats.cache_hits += 1
        elif self.cache_option == "symbolic values":
            key, inputs = flatten_and_key(args, kwargs, symbolic=True)
            key = (key, state_key, global_state_key())
            entries = self._cache.setdefault(key, [])
            flat = [*state, *inputs] if state else inputs
            for entry in entries:
                if _passes(entry.guards, flat):
                    self.stats.cache_hits += 1
                    break
            else:
                entry = self._compile(state, args, kwargs)
                self.stats.cache_misses += 1
                entries.append(entry)
        else:
            key, inputs = flatten_and_key(args, kwargs)
            key = (key, state_key, global_state_key())
            entry = self._cache.get(key) if self.cache_option != "no caching" else None
            if entry is None:
                entry = self._compile(state, args, kwargs)
                self.stats.cache_misses += 1
                if self.cache_option != "no caching":
                    self._cache[key] = entry
                if self.cache_option == "same input":
                    self._same_input_entry = entry
            else:
                self.stats.cache_hits += 1
        flat_inputs = [*state, *inputs, *entry.constants] if (state or entry.constants) else inputs
        if entry.needs_autograd:
            from thunder.frontend.autograd import run_with_autograd

            outs = run_with_autograd(entry, flat_inputs)
        else:
            outs = entry.forward(*flat_inputs)
        if entry.single_output:
            return outs[0]
        return tree_unflatten(outs, entry.out_spec)

    # -- compilation --------------------------------------------------------------------------------
    def _compile(self, state, args, kwargs) -> CacheEntry:
        start = time.perf_counter()
        symbolic = self.cache_option == "symbolic values"
        leaves, spec = tree_flatten((args, kwargs))
        names = [*self.state_names()] + _leaf_names(self._arg_names, args, kwargs, symbolic)
        all_leaves = [*state, *leaves]
        n_state = len(state)

        def traced_fn(*flat):
            state_proxies = flat[:n_state]
            a, k = tree_unflatten(list(flat[n_state:]), spec)
            return self.trace_call(state_proxies, a, k)

        flat_spec = TreeSpec("tuple", None, (TreeSpec("tuple", None, (_LEAF,) * len(all_leaves)),
                                             TreeSpec("dict", (dict, ()), ())))  # fmt: skip
        guards: list = []
        with collecting_guards(guards) if symbolic else contextlib.nullcontext():
            t0 = time.perf_counter()
            trace, tracer, out_spec = acquire_trace(traced_fn, all_leaves, flat_spec, names=names,
                                                    replacements=self.replacements, symbolic_numbers=symbolic)  # fmt: skip
            trace.duration_ms = (time.perf_counter() - t0) * 1e3
            self.stats.last_trace_time_ms = trace.duration_ms
            self._progress(f"traced in {trace.duration_ms:.1f} ms ({len(trace.bound_symbols)} operations)")
            entry = compile_entry(self, trace, tracer, out_spec, CacheEntry())
        entry.guards = tuple(guards)
        entry.fast = not entry.needs_autograd and not entry.constants and n_state == 0
        self.stats.last_compile_time_ms = (time.perf_counter() - start) * 1e3
        self.stats.last_transform_time_ms = self.stats.last_compile_time_ms - self.stats.last_trace_time_ms
        self.stats.last_traces = entry.traces
        self.stats.last_backward_traces = entry.backward_traces
        self.stats.fallback_ops |= entry.fallback_ops
        saved = entry.forward_trace.output[1] if entry.needs_autograd else []
        saved = [t for t in saved if isinstance(t, torch.Tensor)]
        self.stats.saved_for_backward = len(saved)
        self.stats.saved_for_backward_bytes = sum(t.numel() * t.element_size() for t in saved)
        self._progress(f"compiled in {self.stats.last_compile_time_ms:.1f} ms")
        return entry

    def trace_call(self, state_proxies, args, kwargs):
        return self.fn(*args, **kwargs)

    def state_names(self) -> list[str]:
        return []

    def _progress(self, message: str) -> None:
        if self.options.get("show_progress"):
            print(f"[thunder] {getattr(self.fn, '__name__', 'function')}: {message}", flush=True)
        log.info("%s: %s", getattr(self.fn, "__name__", "function"), message)


def _argument_names(fn) -> list[str] | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [p.name for p in sig.parameters.values()]


def _passes(guards, flat_inputs) -> bool:
    for expr, outcome in guards:
        try:
            value = expr(flat_inputs)
        except ArithmeticError:  # e.g. a division by zero with these inputs: compile again (and fail as eager does)
            return False
        if value != outcome and not (value != value and outcome != outcome):  # NaN is one value for the cache
            return False
    return True


def _leaf_names(arg_names, args, kwargs, symbolic: bool) -> list[str | None]:
    """Readable, unique names for the input leaves (tensors, and numbers when `symbolic`): the parameter
    names where an argument is itself such a leaf."""

    def is_input(x) -> bool:
        return isinstance(x, torch.Tensor) or (symbolic and is_symbolic_number(x))

    names: list[str | None] = []
    used = set()
    for i, a in enumerate(args):
        for x in tree_flatten(a)[0]:
            if is_input(x):
                base = arg_names[i] if arg_names is not None and i < len(arg_names) and is_input(a) else None
                names.append(_unique(base, used))
    for k, v in kwargs.items():
        for x in tree_flatten(v)[0]:
            if is_input(x):
                names.append(_unique(k if arg_names is not None and is_input(v) else None, used))
    return names


_RESERVED = {"torch", "ltorch", "prims", "del", "return", "def", "lambda", "class", "None", "True", "False"}


def _unique(base: str | None, used: set) -> str | None:
    if base is None or not base.isidentifier() or base in _RESERVED or base.startswith(("t", "c", "n", "_")) and base[1:].isdigit():
        return None
    name = base
    i = 0
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def jit_options_check(options: dict[str, Any]) -> None:
    unknown = set(options) - JIT_OPTIONS
    if unknown:
        raise TypeError(
            f"thunder.jit got unknown options {sorted(unknown)}; valid options are executors, cache, transforms, "
            f"plugins, disable_torch_autograd and {sorted(JIT_OPTIONS)}"
        )
