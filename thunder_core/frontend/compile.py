"""The compilation pipeline: from the acquired trace to the callables that run (forward, and backward).

Compilation is a fixed sequence of named stages (the constants of :mod:`thunder.extend.passes`). Every
trace a stage produces is appended to ``thunder.last_traces(jfn)`` (the backward's to
``thunder.last_backward_traces(jfn)``), labelled with the pass that made it (``trace.provenance``), its
stage (``trace.stage``) and how long it took (``trace.duration_ms``); under ``THUNDER_DEBUG_VERIFY=1`` (or
``jit(..., debug_verify=True)``) the trace verifier checks each one.

1. ``acquired``: the user's program, run with proxies (the first trace).
2. ``before autodiff``, on the computation trace: ``Transform.transform_traces_pre_prologue`` of each
   transform, then the executors' passes for this stage (pattern rewrites whose result autodiff should
   differentiate), then dead-code elimination.
3. ``after autodiff``, only when a backward is needed: autodiff builds the forward/backward pair, then
   ``Transform.transform_traces_post_autodiff(forward_trace, backward_trace, **kwargs) -> (fwd, bwd)`` of
   each transform and the executors' passes for this stage act on the pair (gradient scaling,
   communication, offloading, checkpointing go here).
4. ``before fusion``, on each execution trace (the forward, then the backward): the executors' passes.
5. ``fusion and claiming``: each fusion executor, in priority order, partitions the trace into regions
   (``FusionExecutor.can_fuse``/``fuse``, with its options); in-place write-backs move up to just after their
   values and operations reading only inputs down to just before their readers (``schedule_writes``); then
   every remaining operation is claimed by the first executor that can run it, or decomposed.
6. ``after claiming``: the executors' passes, then ``Transform.transform_trace_post_optimization``.
7. ``before execution``: values are freed after their last use; this is the trace that runs.

Transforms are ``thunder.Transform`` objects or names offered by plugins (``thunder_transforms`` hook);
executors contribute passes with ``Executor.register_pass`` and take options validated here against
what they declare (``executor_options={"name": {...}}``). A stage's executor passes run in the order of
the executor list (priority order).
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Mapping

import torch

from thunder.core.pytree import _LEAF
from thunder.core.trace import TraceCtx
from thunder.core.verify import verify_trace
from thunder.extend.passes import (
    ACQUIRED,
    AFTER_AUTODIFF,
    AFTER_CLAIMING,
    BEFORE_AUTODIFF,
    BEFORE_EXECUTION,
    BEFORE_FUSION,
    FUSION_AND_CLAIMING,
    PassContext,
)
from thunder.transforms.autodiff import forward_and_backward
from thunder.transforms.claim_operators import claim_operators
from thunder.transforms.dce import dce
from thunder.transforms.del_last_used import del_last_used
from thunder.transforms.fusion import fuse_regions
from thunder.transforms.schedule_writes import schedule_writes


def _label(result, name: str, stage: str, start: float):
    duration = (time.perf_counter() - start) * 1e3
    for t in result if isinstance(result, tuple) else (result,):
        if isinstance(t, TraceCtx):
            if t.provenance == "" or stage != FUSION_AND_CLAIMING:
                t.provenance = name
            t.stage = stage
            t.duration_ms = duration
    return result


def _run_pass(name: str, stage: str, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    # A pass that changed nothing returns its input: record a copy, so that each stage output is its own entry
    inputs = {id(a) for a in args if isinstance(a, TraceCtx)}
    if isinstance(result, tuple):
        result = tuple(t.from_trace(name) if id(t) in inputs else t for t in result)
    elif id(result) in inputs:
        result = result.from_trace(name)
    return _label(result, name, stage, start)


def _maybe_verify(jfn, *traces: TraceCtx) -> None:
    if jfn.options.get("debug_verify") or os.environ.get("THUNDER_DEBUG_VERIFY") == "1":
        for trace in traces:
            verify_trace(trace)


def _call_accepting(method: Callable, *args, **kwargs):
    """Calls method with the keyword arguments it accepts (user transforms written before a keyword existed
    keep working)."""
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return method(*args, **kwargs)
    if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in parameters}
    return method(*args, **kwargs)


def executor_options(jfn) -> Mapping[str, Mapping]:
    """The validated options of every executor in jfn's list (see thunder.jit's executor_options)."""
    given = jfn.options.get("executor_options") or {}
    return {ex.name: given.get(ex.name) or _defaults(ex) for ex in jfn.executors}


def _defaults(executor) -> Mapping:
    validate = getattr(executor, "validate_options", None)
    return validate(None) if validate is not None else {}


def _options_of(executor, options: Mapping[str, Mapping]) -> Mapping:
    # an executor a transform added to the list after validation gets its defaults, as executor_options gives it
    return options[executor.name] if executor.name in options else _defaults(executor)


def _executor_passes(jfn, stage: str, options: Mapping[str, Mapping]):
    """(label, pass, context) for the passes registered at `stage` by executors in the list, in list order;
    `options` is `executor_options(jfn)`, validated once per compilation."""
    for ex in jfn.executors:
        for trace_pass in getattr(ex, "trace_passes", ()):
            if trace_pass.stage == stage:
                yield f"{ex.name}: {trace_pass.name}", trace_pass, _options_of(ex, options)


def _single_trace_stage(jfn, stage: str, trace: TraceCtx, traces: list, all_options: Mapping[str, Mapping], *,
                        is_backward: bool = False) -> TraceCtx:  # fmt: skip
    """Runs the executors' passes registered at a single-trace `stage` on `trace`."""
    for label, trace_pass, options in _executor_passes(jfn, stage, all_options):
        context = PassContext(executors=tuple(jfn.executors), options=options, is_backward=is_backward)
        trace = _run_pass(label, stage, trace_pass.fn, trace, context)
        traces.append(trace)
        _maybe_verify(jfn, trace)
    return trace


def before_autodiff(jfn, trace: TraceCtx, traces: list, options: Mapping[str, Mapping]) -> TraceCtx:
    """Stage 2: transforms' transform_traces_pre_prologue, executors' passes, dead-code elimination."""
    for transform in jfn.transforms:
        pre = getattr(transform, "transform_traces_pre_prologue", None)
        if pre is not None:
            label = f"{type(transform).__name__}.transform_traces_pre_prologue"
            _, trace, _ = _run_pass(label, BEFORE_AUTODIFF, _call_accepting, pre, None, trace, None,
                                    executors_list=jfn.executors)  # fmt: skip
            traces.append(trace)
            _maybe_verify(jfn, trace)
    trace = _single_trace_stage(jfn, BEFORE_AUTODIFF, trace, traces, options)
    trace = _run_pass("dead code elimination", BEFORE_AUTODIFF, dce, trace)
    traces.append(trace)
    return trace


def after_autodiff(jfn, fwd: TraceCtx, bwd: TraceCtx, traces: list, backward_traces: list,
                   all_options: Mapping[str, Mapping]):  # fmt: skip
    """Stage 3: the forward/backward pair through transforms' transform_traces_post_autodiff and executors' passes."""
    steps = []
    for transform in jfn.transforms:
        post = getattr(transform, "transform_traces_post_autodiff", None)
        if post is not None:
            steps.append((f"{type(transform).__name__}.transform_traces_post_autodiff",
                          lambda f, b, post=post: _call_accepting(post, f, b, executors_list=jfn.executors)))  # fmt: skip
    for label, trace_pass, options in _executor_passes(jfn, AFTER_AUTODIFF, all_options):
        context = PassContext(executors=tuple(jfn.executors), options=options)
        steps.append((label, lambda f, b, fn=trace_pass.fn, context=context: fn(f, b, context)))
    for label, step in steps:
        result = _run_pass(label, AFTER_AUTODIFF, step, fwd, bwd)
        if not (isinstance(result, tuple) and len(result) == 2 and all(isinstance(t, TraceCtx) for t in result)):
            raise TypeError(f"{label} must return the pair (forward_trace, backward_trace), got {result!r}")
        fwd, bwd = result
        traces.append(fwd)
        backward_traces.append(bwd)
        _maybe_verify(jfn, fwd, bwd)
    return fwd, bwd


def execution_passes(jfn, trace: TraceCtx, traces: list, options: Mapping[str, Mapping], *,
                     is_backward: bool = False, keep: frozenset = frozenset()) -> TraceCtx:  # fmt: skip
    """Stages 4 to 7 on one trace: executors' passes, fusion, claiming, post-optimization transforms, freeing."""
    trace = _single_trace_stage(jfn, BEFORE_FUSION, trace, traces, options, is_backward=is_backward)
    for ex in jfn.executors:
        if hasattr(ex, "can_fuse"):
            trace = _run_pass(f"fusion ({ex.name})", FUSION_AND_CLAIMING, fuse_regions, trace, ex, jfn.executors,
                              progress=jfn._progress, options=_options_of(ex, options))  # fmt: skip
            traces.append(trace)
            _maybe_verify(jfn, trace)
    # in-place write-backs right after their values, input-only operations right before their readers: what
    # each keeps alive is freed early (before claiming: the operations still carry their symbols' tags)
    trace = _run_pass("schedule writes", FUSION_AND_CLAIMING, schedule_writes, trace)
    traces.append(trace)
    _maybe_verify(jfn, trace)
    trace = _run_pass("claim operators", FUSION_AND_CLAIMING, claim_operators, trace, jfn.executors)
    traces.append(trace)
    _maybe_verify(jfn, trace)
    trace = _single_trace_stage(jfn, AFTER_CLAIMING, trace, traces, options, is_backward=is_backward)
    for transform in jfn.transforms:
        post = getattr(transform, "transform_trace_post_optimization", None)
        if post is not None:
            label = f"{type(transform).__name__}.transform_trace_post_optimization"
            trace = _run_pass(label, AFTER_CLAIMING, _call_accepting, post, trace, executors_list=jfn.executors)
            traces.append(trace)
            _maybe_verify(jfn, trace)
    trace = _run_pass("delete last used", BEFORE_EXECUTION, del_last_used, trace, keep=keep)
    traces.append(trace)
    _maybe_verify(jfn, trace)
    return trace


def _fallback_ops(bsyms, found: set) -> set:
    """The names of the fallback operators in bsyms and their decompositions (a symbol may send some of its
    calls to the fallback, as interpolate does with modes it has no decomposition for)."""
    for bsym in bsyms:
        if "fallback" in bsym.sym.tags:
            found.add(bsym.sym.qualified_name)
        _fallback_ops(bsym.subsymbols, found)
    return found


def compile_entry(jfn, trace: TraceCtx, tracer, out_spec, entry):
    """Fills the cache entry `entry` with the compiled program for the acquired `trace` (see the module docstring)."""
    entry.constants = list(tracer.constant_tensors)
    entry.fallback_ops = _fallback_ops(trace.bound_symbols, set())
    entry.out_spec = out_spec
    entry.single_output = out_spec is _LEAF
    trace.stage = ACQUIRED
    traces = [trace]
    _maybe_verify(jfn, trace)
    options = executor_options(jfn)
    trace = before_autodiff(jfn, trace, traces, options)

    program_state = trace.tags.get("program_state")  # a training step: its backward is in the program already
    if program_state is not None:
        entry.program_state = program_state
        entry.n_side_outputs = len(program_state.outputs)
    needs_grad = (
        program_state is None
        and torch.is_grad_enabled()
        and not jfn.disable_torch_autograd
        and any(isinstance(a, torch.Tensor) and a.requires_grad for a in trace.args)
    )
    entry.backward_traces = []
    if needs_grad:
        fwd, bwd = _run_pass("autodiff", AFTER_AUTODIFF, forward_and_backward, trace, jfn.executors)
        traces.append(fwd)
        entry.backward_traces.append(bwd)
        _maybe_verify(jfn, fwd, bwd)
        fwd, bwd = after_autodiff(jfn, fwd, bwd, traces, entry.backward_traces, options)
        fwd_exec = execution_passes(jfn, fwd, traces, options)
        bwd_exec = execution_passes(jfn, bwd, entry.backward_traces, options, is_backward=True)
        entry.forward = fwd_exec.python_callable()
        entry.backward = bwd_exec.python_callable()
        entry.needs_autograd = True
        entry.differentiable_outputs = fwd.tags["differentiable_outputs"]
        entry.forward_trace, entry.backward_trace = fwd_exec, bwd_exec
    else:
        exec_trace = execution_passes(jfn, trace, traces, options)
        entry.forward = exec_trace.python_callable()
        entry.forward_trace = exec_trace
    entry.traces = traces
    return entry
