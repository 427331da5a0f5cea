"""`thunder.Transform` (defined in thunder.transforms.transform) and how transforms see `state_dict`."""

from __future__ import annotations

from thunder.transforms.transform import Transform  # noqa: F401  (defined below the frontend; re-exported)


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
