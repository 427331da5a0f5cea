"""The pass pipeline from an acquired trace to executable callables (forward, and backward when needed)."""

from __future__ import annotations

import os
import time

import torch

from thunder.core.pytree import _LEAF
from thunder.core.trace import TraceCtx
from thunder.transforms.claim_operators import claim_operators
from thunder.transforms.dce import dce
from thunder.transforms.del_last_used import del_last_used


def _run_pass(name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    duration = (time.perf_counter() - start) * 1e3
    for t in result if isinstance(result, tuple) else (result,):
        if isinstance(t, TraceCtx):
            t.provenance = t.provenance or name
            t.duration_ms = duration
    return result


def _maybe_verify(jfn, trace: TraceCtx) -> None:
    if jfn.options.get("debug_verify") or os.environ.get("THUNDER_DEBUG_VERIFY") == "1":
        from thunder.core.verify import verify_trace

        verify_trace(trace)


def execution_passes(jfn, trace: TraceCtx, traces: list, *, keep: frozenset = frozenset()) -> TraceCtx:
    """Fusion, claiming, user post-optimization transforms, and freeing: the trace that runs."""
    from thunder.transforms.fusion import fuse_regions

    for ex in jfn.executors:
        if hasattr(ex, "can_fuse"):
            trace = _run_pass("fusion", fuse_regions, trace, ex, jfn.executors, progress=jfn._progress)
            traces.append(trace)
            _maybe_verify(jfn, trace)
    trace = _run_pass("claim operators", claim_operators, trace, jfn.executors)
    traces.append(trace)
    _maybe_verify(jfn, trace)
    for transform in jfn.transforms:
        post = getattr(transform, "transform_trace_post_optimization", None)
        if post is not None:
            start = time.perf_counter()
            trace = post(trace, executors_list=jfn.executors)
            trace.provenance = f"{type(transform).__name__}.transform_trace_post_optimization"
            trace.duration_ms = (time.perf_counter() - start) * 1e3
            traces.append(trace)
            _maybe_verify(jfn, trace)
    trace = _run_pass("delete last used", del_last_used, trace, keep=keep)
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


def compile_entry(jfn, trace: TraceCtx, tracer, out_spec):
    from thunder.frontend.jit import CacheEntry

    entry = CacheEntry()
    entry.constants = list(tracer.constant_tensors)
    entry.fallback_ops = _fallback_ops(trace.bound_symbols, set())
    entry.out_spec = out_spec
    entry.single_output = out_spec is _LEAF
    traces = [trace]
    _maybe_verify(jfn, trace)
    for transform in jfn.transforms:
        pre = getattr(transform, "transform_traces_pre_prologue", None)
        if pre is not None:
            start = time.perf_counter()
            _, trace, _ = pre(None, trace, None)
            trace.provenance = f"{type(transform).__name__}.transform_traces_pre_prologue"
            trace.duration_ms = (time.perf_counter() - start) * 1e3
            traces.append(trace)
    trace = _run_pass("dead code elimination", dce, trace)
    traces.append(trace)

    needs_grad = (
        torch.is_grad_enabled()
        and not jfn.disable_torch_autograd
        and any(isinstance(a, torch.Tensor) and a.requires_grad for a in trace.args)
    )
    entry.backward_traces = []
    if needs_grad:
        from thunder.transforms.autodiff import forward_and_backward

        start = time.perf_counter()
        fwd, bwd = forward_and_backward(trace, jfn.executors)
        for transform in jfn.transforms:
            post = getattr(transform, "transform_traces_post_autodiff", None)
            if post is not None:
                fwd, bwd = post(fwd, bwd, executors_list=jfn.executors)
        duration = (time.perf_counter() - start) * 1e3
        fwd.duration_ms = bwd.duration_ms = duration
        traces.append(fwd)
        entry.backward_traces.append(bwd)
        _maybe_verify(jfn, fwd)
        _maybe_verify(jfn, bwd)
        fwd_exec = execution_passes(jfn, fwd, traces)
        bwd_exec = execution_passes(jfn, bwd, entry.backward_traces)
        entry.forward = fwd_exec.python_callable()
        entry.backward = bwd_exec.python_callable()
        entry.needs_autograd = True
        entry.differentiable_outputs = fwd.tags["differentiable_outputs"]
        entry.forward_trace, entry.backward_trace = fwd_exec, bwd_exec
    else:
        exec_trace = execution_passes(jfn, trace, traces)
        entry.forward = exec_trace.python_callable()
        entry.forward_trace = exec_trace
    entry.traces = traces
    return entry
