"""`thunder.Transform`: the base class of user transforms, with optional stages."""

from __future__ import annotations


class Transform:
    """Subclass and implement any of the stages; jit calls those present.

    transform_module(model): once, on the user's module, before jit wraps it.
    transform_traces_pre_prologue(prologue, computation, epilogue, **kwargs): on the acquired trace
        (Thunder has no prologue or epilogue traces: they are passed as None); returns the triple.
    transform_trace_post_optimization(trace, **kwargs): on each execution trace (forward and backward).
    transform_state_dict_for_submodule(model, submodule_name, state_dict): for distributed transforms.
    """
