"""`thunder.Transform`: the base class of user transforms, with optional stages (re-exported as `thunder.Transform`;
defined here, below the frontend, so that the core's own transforms, such as CUDA graphs, can derive from it)."""

from __future__ import annotations


class Transform:
    """Subclass and implement any of the stages; jit calls those present (see thunder.frontend.compile for
    the whole pipeline). A transform may also be offered by a plugin under a name (`thunder_transforms` hook)
    and asked for as `thunder.jit(fn, transforms=["name"])`.

    transform_module(model): once, on the user's module, before jit wraps it.
    transform_traces_pre_prologue(prologue, computation, epilogue, **kwargs): on the acquired trace, before
        autodiff (Thunder has no prologue or epilogue traces: they are passed as None); returns the triple.
    transform_traces_post_autodiff(forward_trace, backward_trace, **kwargs): on the forward/backward pair,
        when a backward is built (gradient scaling, communication, offloading); returns the pair.
    transform_trace_post_optimization(trace, **kwargs): on each execution trace (forward and backward) after
        fusion and claiming; returns the trace.
    transform_state_dict_for_submodule(model, submodule_name, state_dict): called by
        `ThunderModule.state_dict()` for each submodule (`""` is the root) with that submodule's own entries
        (keys without the submodule's prefix); returns the entries to report instead.

    The keyword arguments passed today: `executors_list` (the executor list, in priority order); a method
    that does not take **kwargs receives only the keywords it names.
    """
