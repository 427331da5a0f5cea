"""`thunder.Transform`: the base class of user transforms, with optional stages."""

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


def transform_state_dict(transforms, model, state_dict: dict, prefix: str = "") -> dict:
    """`state_dict` (of `model`, keys under `prefix`) through every transform's transform_state_dict_for_submodule."""
    hooks = [t.transform_state_dict_for_submodule for t in transforms
             if hasattr(t, "transform_state_dict_for_submodule")]  # fmt: skip
    if not hooks:
        return state_dict
    for name, submodule in model.named_modules():
        base = f"{prefix}{name}." if name else prefix
        local_names = [*submodule._parameters, *submodule._buffers]
        own = {local: state_dict[base + local] for local in local_names if base + local in state_dict}
        if not own:
            continue
        for hook in hooks:
            own = hook(model, name, own)
        for local in local_names:
            state_dict.pop(base + local, None)
        state_dict.update({base + local: value for local, value in own.items()})
    return state_dict
