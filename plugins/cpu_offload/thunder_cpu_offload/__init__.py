"""thunder-cpu-offload: `thunder.jit(model, transforms=["cpu_offload"])` keeps the activations saved for the backward
in pinned CPU memory between the forward and the backward (see `thunder_cpu_offload.transform`)."""

from thunder_cpu_offload.transform import CPUOffload, OffloadedTensor

__all__ = ["CPUOffload", "OffloadedTensor"]
