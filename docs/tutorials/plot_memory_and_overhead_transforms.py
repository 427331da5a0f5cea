"""
Memory and overhead: checkpointing, CPU offloading, CUDA graphs
===============================================================

Three transforms trade one resource for another in a training step:

* **activation checkpointing** recomputes activations in the backward instead of keeping them;
* **CPU offloading** (the `thunder-cpu-offload` package) keeps them in pinned CPU memory in between;
* **CUDA graphs** replay the whole compiled program with one launch, removing the CPU's per-operation cost.

This page runs on the CPU while the documentation is built: it shows how each is asked for and what it does
to the traces; the numbers that matter (peak memory, step time) come from a GPU (see `benchmarks/`).
"""

# %%
# Activation checkpointing
# ------------------------
# `torch.utils.checkpoint.checkpoint` inside a jitted model works as in eager; the `ActivationCheckpointing`
# transform checkpoints every instance of a module class without changing the model's code.
import warnings

import torch

import thunder
from thunder.frontend.checkpoint import ActivationCheckpointing


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(16, 64), torch.nn.Linear(64, 16)

    def forward(self, x):
        return x + self.down(torch.tanh(self.up(x)).sin())


torch.manual_seed(0)
model = torch.nn.Sequential(*[Block() for _ in range(4)])
x = torch.randn(32, 16)

plain = thunder.jit(model)
plain(x).square().sum().backward()
saved_plain = thunder.compile_stats(plain).saved_for_backward_bytes

checkpointing = ActivationCheckpointing(Block)
checkpointed = thunder.jit(model, transforms=[checkpointing])
checkpointed(x).square().sum().backward()
saved_checkpointed = thunder.compile_stats(checkpointed).saved_for_backward_bytes
print(f"saved for the backward: {saved_plain} bytes plain, {saved_checkpointed} bytes checkpointed")
# The transform marks the blocks with hooks on the model itself; remove them before compiling it again without.
for handle in checkpointing.handles:
    handle.remove()

# %%
# CPU offloading
# --------------
# `transforms=["cpu_offload"]` (once `thunder-cpu-offload` is installed) moves the tensors saved for the backward
# to pinned CPU memory as the forward makes them, and brings each back just before the backward uses it, on a
# side CUDA stream. On the CPU there is nothing to move, and the transform says so. To show the rewrite here,
# a subclass offloads CPU tensors as well (a plain copy each way; it saves nothing on a CPU).
from thunder_cpu_offload import CPUOffload  # noqa: E402


class OffloadEvenOnTheCPU(CPUOffload):
    def should_offload(self, t):
        return t.numel() * t.element_size() >= self.min_bytes


offload = OffloadEvenOnTheCPU(min_bytes=4096)
jmodel = thunder.jit(model, transforms=[offload])
jmodel(x).square().sum().backward()
print(f"offloaded {len(offload.offloaded)} tensors, {offload.offloaded_bytes} bytes")
print(thunder.last_traces(jmodel)[-1])  # cpu_offload_to_host after each saved activation
print(thunder.last_backward_traces(jmodel)[-1])  # cpu_offload_prefetch one ahead, cpu_offload_ready before use

# %%
# CUDA graphs
# -----------
# `transforms=["cudagraphs"]` (or `thunder.compile(model, plugins="reduce-overhead")`) captures each compiled
# program, forward and backward, into CUDA graphs. Operations a graph cannot hold (CPU tensors, random numbers,
# operators without a Thunder symbol) split it. Outputs are copies, so a later call never changes an earlier
# result. On a CPU program it warns once and runs without graphs:
from thunder.transforms.cudagraph import CUDAGraphTransform, CUDAGraphWarning  # noqa: E402

device = "cuda" if torch.cuda.is_available() else "cpu"
graphs = CUDAGraphTransform()
gmodel = thunder.jit(model.to(device), transforms=[graphs])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", CUDAGraphWarning)
    for _ in range(3):
        gmodel(x.to(device)).square().sum().backward()
print([str(w.message)[:90] for w in caught])
print(graphs.stats)  # on a GPU: 2 captures (forward, backward), then replays

# %%
# Where the graphs go: the rewrite that `CUDAGraphTransform` makes, run here with each region executed as plain
# code instead of a graph (`graph_regions` takes any runner). The random dropout mask is drawn outside the
# regions, so a seeded run draws what eager draws.
from thunder.transforms.cudagraph import graph_regions, graphable  # noqa: E402


class ShowRegions(thunder.Transform):
    def transform_trace_post_optimization(self, trace, **kwargs):
        return graph_regions(trace, lambda b: graphable(b, torch.device(device)),
                             lambda region, i: region.as_trace(f"region{i}").python_callable())


def with_dropout(x, w):
    h = torch.tanh(x @ w)
    return torch.nn.functional.dropout(h, 0.1) @ w.T


shown = thunder.jit(with_dropout, transforms=[ShowRegions()])
shown(torch.randn(4, 8, device=device), torch.randn(8, 8, device=device))
print(thunder.last_traces(shown)[-1])
