"""Replaying a `FusionPlan` on nvFuser: the only module that imports `nvfuser_direct`.

`build_fusion(plan, inputs)` defines the fusion for inputs with these sizes and strides (nvFuser reads the
layout from the tensor descriptors, so a non-contiguous or expanded input is read in place) and returns a
callable `run(tensors, scalars) -> list of tensors` (scalars: the values of the plan's scalar inputs, numbers
then RNG seeds and offsets). nvFuser compiles on the first run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from thunder_executors_nvfuser.translation import DType, FusionPlan, Ref


def build_fusion(plan: FusionPlan, inputs: list[torch.Tensor]) -> Callable:
    """The fusion of `plan` for inputs laid out as `inputs` (their data is not read)."""
    import nvfuser_direct as nvfd

    fd = nvfd.FusionDefinition()
    with fd:
        values: list = []
        for t, (_, dtype_name) in zip(inputs, plan.inputs):
            values.append(
                fd.define_tensor(
                    sizes=list(t.size()), strides=list(t.stride()), dtype=getattr(nvfd.DataType, dtype_name),
                    static_sizes=False, is_cpu=False,
                )
            )  # fmt: skip
        for call in plan.calls:
            values.append(_emit_call(fd, nvfd, call, values))
        for index in plan.outputs:
            fd.add_output(values[index])

    def run(tensors: list[torch.Tensor], scalars: list) -> list[torch.Tensor]:
        return fd.execute([*tensors, *scalars])

    run.fusion_definition = fd
    return run


def _emit_call(fd, nvfd, call, values: list):
    def resolve(x):
        if isinstance(x, Ref):
            return values[x.index]
        if isinstance(x, DType):
            return getattr(nvfd.DataType, x.name)
        if isinstance(x, tuple):
            return [resolve(v) for v in x]
        return x

    args = [resolve(a) for a in call.args]
    kwargs = {k: resolve(v) for k, v in call.kwargs}
    if call.fn == "rng_scalar":
        # A symbolic scalar is an input of the fusion, given at each execute (after the tensors, in order).
        return fd.define_scalar(None, dtype=nvfd.DataType.Int)
    if call.fn == "number_input":
        return fd.define_scalar(None, **kwargs)
    if call.fn == "define_scalar":
        return fd.define_scalar(*args, **kwargs)
    return getattr(fd.ops, call.fn)(*args, **kwargs)


def fusion_repr(run: Callable) -> str:
    """nvFuser's own Python rendering of a built fusion (for error reports and repro scripts)."""
    fd = getattr(run, "fusion_definition", None)
    try:
        return repr(fd) if fd is not None else "<not an nvFuser fusion>"
    except Exception as e:  # rendering is best effort: it must never hide the error being reported
        return f"<nvFuser could not print the fusion: {type(e).__name__}: {e}>"
