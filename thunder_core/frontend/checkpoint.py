"""Activation checkpointing: `torch.utils.checkpoint.checkpoint(fn, ...)` in traced code, and a transform
that checkpoints every instance of chosen module classes.

While a function is acquired, torch's checkpoint machinery (both variants: `use_reentrant=False`'s
context generator and `use_reentrant=True`'s autograd function) is replaced by a recorder: `fn` runs
once, as traced code, and the names of every value it computes are added to the trace's
`tags["checkpointed"]`. Rematerialization (transforms/remat.py) may then recompute any of those values
in the backward instead of saving it, whatever its cost, as torch's checkpoint does; random and
side-effecting operations are still never recomputed (the dropout mask is drawn once and saved).
Outside acquisition, or in another thread, the originals run unchanged.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
import torch.utils.checkpoint as torch_checkpoint

from thunder.core.trace import TraceCtx, get_tracectx
from thunder.frontend.transform import Transform

_original_generator = torch_checkpoint._checkpoint_without_reentrant_generator
_original_function = torch_checkpoint.CheckpointFunction
_patch_lock = threading.Lock()
_patch_depth = 0


def _mark_checkpointed(trace: TraceCtx, bsyms: list) -> None:
    names = trace.tags.setdefault("checkpointed", set())
    stack = list(bsyms)
    while stack:
        bsym = stack.pop()
        names.update(o.name for o in bsym.flat_outs)
        stack.extend(bsym.subsymbols)
    for bsym in bsyms:
        trace.record(bsym)


def _recording_generator(function, *args, **kwargs):
    """Stands in for torch's non-reentrant checkpoint generator: checkpoint calls `function` between its
    first and second `next`, so what is recorded in between is the checkpointed region."""
    trace = get_tracectx()
    if trace is None:
        yield from _original_generator(function, *args, **kwargs)
        return
    with trace.collecting() as bsyms:
        yield
    _mark_checkpointed(trace, bsyms)


class _RecordingFunction:
    """Stands in for torch's reentrant `CheckpointFunction`."""

    @staticmethod
    def apply(function, preserve_rng_state, *args):
        trace = get_tracectx()
        if trace is None:
            return _original_function.apply(function, preserve_rng_state, *args)
        with trace.collecting() as bsyms:
            out = function(*args)
        _mark_checkpointed(trace, bsyms)
        return out


@contextmanager
def recording_checkpoints():
    """While acquiring: torch.utils.checkpoint.checkpoint records its region instead of running torch's machinery."""
    global _patch_depth
    with _patch_lock:
        if _patch_depth == 0:
            torch_checkpoint._checkpoint_without_reentrant_generator = _recording_generator
            torch_checkpoint.CheckpointFunction = _RecordingFunction
        _patch_depth += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_depth -= 1
            if _patch_depth == 0:
                torch_checkpoint._checkpoint_without_reentrant_generator = _original_generator
                torch_checkpoint.CheckpointFunction = _original_function


_open_regions = threading.local()  # per thread: the stack of (scope context, recorded list, trace)


def _regions() -> list:
    if not hasattr(_open_regions, "stack"):
        _open_regions.stack = []
    return _open_regions.stack


def _enter_region(module, args):
    trace = get_tracectx()
    if trace is None:
        return  # eager: the hooks do nothing
    scope = trace.collecting()
    _regions().append((module, scope, scope.__enter__(), trace))


def _exit_region(module, args, output):
    stack = _regions()
    if get_tracectx() is None or not stack or stack[-1][0] is not module:
        return
    _, scope, bsyms, trace = stack.pop()
    scope.__exit__(None, None, None)
    _mark_checkpointed(trace, bsyms)


def checkpoint_modules(model: torch.nn.Module, module_classes) -> list:
    """Checkpoints every submodule of `model` that is an instance of `module_classes` (a class or a tuple).

    Adds a forward pre-hook and a forward hook to each matching instance, which mark the instance's
    forward as a checkpointed region while thunder.jit acquires it (in eager they do nothing); the
    model's code, parameters and outputs are unchanged. Returns the hook handles (`handle.remove()`
    undoes it).
    """
    classes = module_classes if isinstance(module_classes, tuple) else (module_classes,)
    if not classes or not all(isinstance(c, type) and issubclass(c, torch.nn.Module) for c in classes):
        raise TypeError(f"checkpoint_modules: expected nn.Module subclasses, got {module_classes!r}")
    handles = []
    for sub in model.modules():
        if isinstance(sub, classes):
            handles.append(sub.register_forward_pre_hook(_enter_region))
            handles.append(sub.register_forward_hook(_exit_region, always_call=True))
    if not handles:
        names = ", ".join(c.__name__ for c in classes)
        raise ValueError(f"checkpoint_modules: the model has no submodule of class {names}")
    return handles


class ActivationCheckpointing(Transform):
    """A thunder.jit transform: checkpoint every instance of `module_classes` in the jitted module.

    `thunder.jit(model, transforms=[ActivationCheckpointing(Block)])` recomputes each Block's activations in
    the backward instead of saving them (see checkpoint_modules).
    """

    def __init__(self, module_classes):
        self.module_classes = module_classes
        self.handles: list = []

    def transform_module(self, model: torch.nn.Module) -> None:
        self.handles = checkpoint_modules(model, self.module_classes)
