"""`thunder.jit`: acquire, transform, claim and compile; cache the result by the call's key."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from thunder.core.proxies import TensorProxy
from thunder.core.pytree import _LEAF, TreeSpec, tree_flatten, tree_unflatten
from thunder.extend import resolve_executors
from thunder.frontend.autograd import run_with_autograd
from thunder.frontend.cache import (
    flatten_and_key,
    global_state_key,
    input_tensors,
    is_symbolic_number,
    resolve_cache_option,
    sparse_argument_error,
)
from thunder.frontend.compile import compile_entry
from thunder.frontend.guards import MISS, GuardRecorder, alias_pattern, build_guard, build_hot_call, same_value
from thunder.frontend.object_write_back import changed, pytree_objects, snapshot, write_back
from thunder.frontend.symbolic_shapes import compile_guards
from thunder.frontend.tensor_values import values_hold
from thunder.frontend.tracer import (
    DataDependentError,
    GuardList,
    _tracers,
    acquire_trace,
    collecting_guards,
    current_tracer,
)
from thunder.frontend.train_step import MISSING as MISSING_STATE
from thunder.frontend.train_step import note_nested_jit_call

log = logging.getLogger("thunder")
_Tensor = torch.Tensor

JIT_OPTIONS = {"show_progress", "debug_verify"}


class CompilePathFallbackWarning(UserWarning):
    """thunder.jit traced a library's eager path (`torch.compiler.is_compiling()` False) because the path the
    library takes under torch.compile failed to trace; the message names the error."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


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
                 "fast", "differentiable_outputs", "guards", "check", "check_source", "input_index",
                 "hot_call", "hot_arity", "write_back", "guard_check", "program_state", "n_side_outputs",
                 "value_guards")  # fmt: skip

    def __init__(self):
        self.backward = None
        # cache="symbolic values": (expr, outcome) pairs; the entry serves the calls whose flat inputs give
        # every expr its outcome (see thunder.core.proxies)
        self.guards: tuple = ()
        self.guard_check = None  # the guards as one generated function (thunder.frontend.symbolic_shapes)
        self.needs_autograd = False
        self.constants: list[torch.Tensor] = []
        self.fallback_ops: set[str] = set()
        self.fast = False  # callable with the plain arguments alone (no autograd, no captured constants)
        # per-call guards of everything else the trace read (globals, closures, attributes; see
        # thunder.frontend.cache): a generated function returning True while they hold, or None
        self.check = None
        self.check_source = None
        # tensors whose values the trace used (torch.arange(n)): see thunder.frontend.tensor_values
        self.value_guards: tuple = ()
        # inputs passed twice (f(t, t)) are one input of the trace: the positions of the flat inputs it takes
        self.input_index: list[int] | None = None
        self.hot_call = None  # the whole call with plain tensor arguments, checks included (see __call__)
        self.hot_arity = -1
        # paths, in (args, kwargs), of the objects passed in that the program updates (see object_write_back)
        self.write_back: list[tuple] = []
        # a training step (thunder.frontend.train_step): what the program reads and writes besides its arguments,
        # and how many of its outputs are such writes (after the function's own)
        self.program_state = None
        self.n_side_outputs = 0


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
        self._hot_entry: CacheEntry | None = None
        self._arg_names = _argument_names(fn)
        self.replacements = {}
        for ex in reversed(self.executors):  # higher priority last: it wins
            self.replacements.update(getattr(ex, "replacements", {}))
        functools.update_wrapper(self, fn, updated=())

    # -- the hot path -------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        # The hot path: the entry the last call with plain tensor arguments used, checked by one generated
        # function (metadata, aliasing, global state and the entry's guards; see build_hot_check)
        hot = self._hot_entry
        if hot is not None and not kwargs and len(args) == hot.hot_arity:
            try:
                result = hot.hot_call(*args)
            except RuntimeError as error:  # a sparse argument has no strides: say so, by name
                sparse = sparse_argument_error(args, kwargs)
                if sparse is not None:
                    raise sparse from error
                raise
            if result is not MISS:
                self.stats.cache_hits += 1
                return result
        return self.call_with_state((), args, kwargs, ())

    def call_with_state(self, state: Sequence[torch.Tensor], args, kwargs, state_key: tuple):
        """Calls with leading tensors `state` (a module's parameters and buffers) before the arguments.

        The trace's inputs are `state`, the call's tensors (and, under "symbolic values", its numbers) in
        order, then the constants the trace captured."""
        if _tracers:  # called while another function is acquired (a jitted module inside a jitted step)
            note_nested_jit_call()
        extra = ()
        same_input = self._same_input_entry
        if self.cache_option == "same input" and same_input is not None and (
            not same_input.value_guards or values_hold(same_input.value_guards, [*state, *input_tensors(args, kwargs)])
        ):  # (a tensor's value the program used is no metadata: checked even here)
            entry = same_input
            inputs = input_tensors(args, kwargs)
            self.stats.cache_hits += 1
            if entry.program_state is not None:
                extra = _read_program_state(entry, "cache='same input' promised every call looks like the first")
        else:
            symbolic = self.cache_option == "symbolic values"
            try:
                key, inputs = flatten_and_key(args, kwargs, symbolic=symbolic)
            except RuntimeError as error:  # sparse CSR/CSC/BSR tensors have no strides
                sparse = sparse_argument_error(args, kwargs)
                if sparse is not None:
                    raise sparse from error
                raise
            tensors = [x for x in inputs if isinstance(x, _Tensor)] if symbolic else inputs
            key = (key, state_key, global_state_key(), alias_pattern([*state, *tensors] if state else tensors))
            entries = self._cache.get(key) if self.cache_option != "no caching" else None
            if entries is None:
                entries = []
                if self.cache_option != "no caching":
                    self._cache[key] = entries
            flat = [*state, *inputs] if state else inputs
            for entry in entries:
                if (entry.check is None or entry.check()) and (not symbolic or _passes(entry, flat)) and (
                    not entry.value_guards or values_hold(entry.value_guards, flat)
                ):
                    if entry.program_state is not None:
                        extra = entry.program_state.read()
                        if extra is MISSING_STATE:  # a .grad, optimizer state or group no longer as traced
                            continue
                    self.stats.cache_hits += 1
                    break
            else:
                entry = self._compile(state, args, kwargs)
                self.stats.cache_misses += 1
                entries.append(entry)
                if self.cache_option == "same input":
                    self._same_input_entry = entry
                if entry.program_state is not None:
                    extra = _read_program_state(entry, "the objects changed while the step was compiled")
            if entry.hot_call is not None:
                self._hot_entry = entry
        if entry.input_index is not None:
            inputs = [([*state, *inputs] if state else inputs)[i] for i in entry.input_index]
            state = ()
        flat_inputs = [*state, *inputs, *entry.constants] if (state or entry.constants) else inputs
        if entry.program_state is not None:
            outs = _run_training_step(entry, [*flat_inputs, *extra])
        elif entry.needs_autograd:
            outs = run_with_autograd(entry, flat_inputs)
        else:
            outs = entry.forward(*flat_inputs)
        if entry.single_output:
            return outs[0]
        if entry.write_back:
            result, rebuilt = tree_unflatten(outs, entry.out_spec)
            write_back((args, kwargs), entry.write_back, rebuilt)
            return result
        return tree_unflatten(outs, entry.out_spec)

    # -- compilation --------------------------------------------------------------------------------
    def _compile(self, state, args, kwargs) -> CacheEntry:
        start = time.perf_counter()
        sparse = sparse_argument_error(args, kwargs)  # (COO tensors report strides: met here, not in the key)
        if sparse is not None:
            raise sparse
        symbolic = self.cache_option == "symbolic values"
        leaves, spec = tree_flatten((args, kwargs))
        names = [*self.state_names()] + _leaf_names(self._arg_names, args, kwargs, symbolic)
        all_leaves = [*state, *leaves]
        n_state = len(state)

        write_back_paths: list[tuple] = []

        def traced_fn(*flat):
            state_proxies = flat[:n_state]
            a, k = tree_unflatten(list(flat[n_state:]), spec)
            objects = pytree_objects((a, k))
            before = snapshot(objects)
            result = self.trace_call(state_proxies, a, k)
            updated = changed(objects, before, current_tracer().resolve) if objects else []
            if not updated:
                return result
            write_back_paths.extend(path for path, _ in updated)  # the objects become extra outputs
            return result, tuple(obj for _, obj in updated)

        flat_spec = TreeSpec("tuple", None, (TreeSpec("tuple", None, (_LEAF,) * len(all_leaves)),
                                             TreeSpec("dict", (dict, ()), ())))  # fmt: skip
        guards = GuardList()
        duplicates = _duplicate_tensors(all_leaves)
        with collecting_guards(guards) if symbolic else contextlib.nullcontext():
            t0 = time.perf_counter()
            options = dict(names=names, replacements=self.replacements, symbolic_numbers=symbolic,
                           duplicates=duplicates, symbolic_sizes_from=n_state if symbolic else None,
                           executors=self.executors)  # fmt: skip
            trace, tracer, out_spec, recorder = self._acquire(traced_fn, all_leaves, flat_spec, options, guards,
                                                              write_back_paths)  # fmt: skip
            _refuse_mutated_overlaps(all_leaves, duplicates, tracer, names)
            trace.duration_ms = (time.perf_counter() - t0) * 1e3
            self.stats.last_trace_time_ms = trace.duration_ms
            self._progress(f"traced in {trace.duration_ms:.1f} ms ({len(trace.bound_symbols)} operations)")
            entry = compile_entry(self, trace, tracer, out_spec, CacheEntry())
        entry.guards = tuple(guards)
        entry.value_guards = tuple(tracer.value_guards)
        entry.write_back = write_back_paths
        if symbolic:
            entry.guard_check = compile_guards(entry.guards)
        entry.fast = not entry.needs_autograd and not entry.constants and n_state == 0 and not duplicates
        if duplicates:
            entry.input_index = _input_index(all_leaves, duplicates, symbolic)
        self._add_checks(entry, recorder, args, kwargs, leaves)
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

    def _acquire(self, traced_fn, leaves, spec, options: dict, guards: list, write_back_paths: list):
        """acquire_trace on the path libraries take under torch.compile (`torch.compiler.is_compiling()` True,
        see tracer._compiling); should that path fail for a reason other than needing tensor values, acquires
        again on the path eager takes (the flag False), with a warning. Both failing raises the first error.
        Returns the trace, the tracer, the output spec and the guard recorder of the acquisition that worked."""
        first_error = None
        for compiling in (True, False):
            recorder = GuardRecorder()
            guards.clear()  # what a failed attempt recorded does not guard the trace that works
            write_back_paths.clear()
            try:
                with recorder.recording():
                    trace, tracer, out_spec = acquire_trace(traced_fn, leaves, spec, compiling=compiling, **options)
            except DataDependentError:
                raise  # the eager path reads tensor values wherever the compile path does
            except Exception as error:
                if first_error is None:
                    first_error = error
                    continue
                first_error.add_note(
                    "thunder.jit also traced the path eager takes (torch.compiler.is_compiling() False); it failed "
                    f"too: {type(error).__name__}: {_first_line(error)}"
                )
                raise first_error from None
            if first_error is not None:
                warnings.warn(
                    f"thunder.jit of {getattr(self.fn, '__qualname__', type(self.fn).__name__)}: tracing with "
                    "torch.compiler.is_compiling() True (the path libraries take under torch.compile) failed with "
                    f"{type(first_error).__name__}: {_first_line(first_error)}; traced the path eager takes instead",
                    CompilePathFallbackWarning,
                    stacklevel=2,
                )
            return trace, tracer, out_spec, recorder
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _add_checks(self, entry: CacheEntry, recorder: GuardRecorder, args, kwargs, leaves) -> None:
        if self.cache_option in ("same input", "no caching"):  # nothing changes, as promised / nothing is reused
            return
        objects = [x for x in leaves if not isinstance(x, (_Tensor, *_SCALARS))]
        entry.check, entry.check_source = build_guard(recorder, self.fn, objects)
        if (
            self.cache_option == "constant values"
            and entry.fast
            and not entry.value_guards
            and not kwargs
            and all(type(a) is _Tensor for a in args)
            and alias_pattern(list(args)) is None
        ):
            unpack = None if entry.single_output else functools.partial(_unflatten, spec=entry.out_spec)
            source = entry.check_source if entry.check else None
            entry.hot_call = build_hot_call(args, source, global_state_key(), entry.forward, unpack)
            entry.hot_arity = len(args) if entry.hot_call is not None else -1

    def trace_call(self, state_proxies, args, kwargs):
        return self.fn(*args, **kwargs)

    def state_names(self) -> list[str]:
        return []

    def _progress(self, message: str) -> None:
        if self.options.get("show_progress"):
            print(f"[thunder] {getattr(self.fn, '__name__', 'function')}: {message}", flush=True)
        log.info("%s: %s", getattr(self.fn, "__name__", "function"), message)


def _read_program_state(entry: CacheEntry, why: str) -> list:
    extra = entry.program_state.read()
    if extra is MISSING_STATE:
        raise RuntimeError(f"thunder.jit: the compiled training step does not match the parameters' gradients or "
                           f"the optimizer's state and groups ({why}); call it again, or use the default cache")
    return extra


def _run_training_step(entry: CacheEntry, flat_inputs: list) -> list:
    """Runs a program that contains its own backward (thunder.frontend.train_step): without torch autograd, then
    stores the gradients and optimizer state it made where eager keeps them."""
    with torch.no_grad():
        outs = entry.forward(*flat_inputs)
    n = entry.n_side_outputs
    if n:
        entry.program_state.write(outs[len(outs) - n:])
        return outs[: len(outs) - n]
    entry.program_state.write(())
    return outs


def _argument_names(fn) -> list[str] | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [p.name for p in sig.parameters.values()]


def _unflatten(outs, spec):
    return tree_unflatten(outs, spec)


_SCALARS = (int, float, bool, complex, str, bytes, type(None), torch.dtype, torch.device)


def _duplicate_tensors(leaves: list) -> dict[int, int]:
    """leaf index -> index of the first leaf that is the same tensor object (f(t, t), or m(m.weight))."""
    first: dict[int, int] = {}
    duplicates = {}
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, _Tensor):
            j = first.setdefault(id(leaf), i)
            if j != i:
                duplicates[i] = j
    return duplicates


def _input_index(leaves: list, duplicates: dict, symbolic: bool) -> list[int]:
    """The positions, among the call's flat inputs, of those the trace takes (each tensor object once)."""
    index, position = [], 0
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, _Tensor) or (symbolic and is_symbolic_number(leaf)):
            if i not in duplicates:
                index.append(position)
            position += 1
    return index


def _refuse_mutated_overlaps(leaves: list, duplicates: dict, tracer, names: list) -> None:
    """Distinct tensors that share memory (a base and its view passed together) are separate inputs of the trace;
    writing into one would not show in the other. Refuse that, rather than return a wrong result."""
    tensors = [(i, x) for i, x in enumerate(leaves) if isinstance(x, _Tensor) and i not in duplicates]
    tensors += [(None, t) for t in tracer.constant_tensors]
    by_storage: dict[int, list] = {}
    for i, t in tensors:
        try:
            by_storage.setdefault(id(t.untyped_storage()), []).append((i, t))
        except Exception:  # no storage (sparse): nothing to overlap
            pass
    overlapping = [group for group in by_storage.values() if len(group) > 1]
    if not overlapping:
        return
    proxies = [p for p in [*tracer.input_proxies, *tracer._constant_proxies.values()] if isinstance(p, TensorProxy)]
    # the same order as the proxies: unique input tensors, then constants
    proxy_of = {id(t): p for (_, t), p in zip(tensors, proxies)}
    mutated = {id(p) for p, _ in tracer.mutated_inputs()}
    positions = _input_positions(leaves)
    for group in overlapping:
        if any(id(proxy_of.get(id(t))) in mutated for _, t in group):
            described = ", ".join(
                _describe_input(names, positions.get(i)) if i is not None
                else "a tensor captured from outside (a global, closure or attribute)"
                for i, _ in group
            )
            raise NotImplementedError(
                f"thunder.jit: the tensors {described} share memory (one is a view of the other, or both view one "
                "base) and the function writes into one of them in place; Thunder compiles them as separate "
                "inputs, so the write would not show in the other. Pass a clone of one of them (x.clone()), or "
                "pass only the base and take the view inside the function."
            )


def _input_positions(leaves: list) -> dict[int, int]:
    positions, position = {}, 0
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, _Tensor) or is_symbolic_number(leaf):
            positions[i] = position
            position += 1
    return positions


def _describe_input(names: list, position: int | None) -> str:
    name = names[position] if position is not None and position < len(names) else None
    return repr(name) if name else f"input {position}"


def _passes(entry: CacheEntry, flat_inputs) -> bool:
    if entry.guard_check is not None:
        return entry.guard_check(flat_inputs)
    for expr, outcome in entry.guards:
        try:
            value = expr(flat_inputs)
        except ArithmeticError:  # e.g. a division by zero with these inputs: compile again (and fail as eager does)
            return False
        if not same_value(value, outcome):  # floats by bits: -0.0 is not 0.0; NaN is one value for the cache
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
