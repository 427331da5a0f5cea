"""The plugin module named by the entry point: offers the transform by name without importing it."""

from __future__ import annotations

from thunder.extend import TransformSpec, hookimpl


def _cpu_offload():
    from thunder_cpu_offload.transform import CPUOffload

    return CPUOffload()


@hookimpl
def thunder_transforms():
    return [
        TransformSpec(
            name="cpu_offload",
            factory=_cpu_offload,
            description="cpu_offload plugin: activations saved for the backward wait in pinned CPU memory",
        )
    ]
