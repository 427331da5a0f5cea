"""The core's own plugin: registers the executors that ship with thunder through the `thunder.plugins`
entry point, exactly like a third-party package. Importing this module is cheap: each executor's module
is imported only when the executor is first used."""

from __future__ import annotations

import importlib
import importlib.util

from thunder.extend.hookspecs import ExecutorSpec, PluginBundle, TransformSpec, hookimpl


def _needs(*modules: str):
    """A why_unavailable check: each module must be importable (probed without importing it)."""

    def why_unavailable() -> str | None:
        for module in modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"{module} is not importable"
        return None

    return why_unavailable


@hookimpl
def thunder_executors():
    return [
        ExecutorSpec("torch", priority=0, load="thunder.executors.torchex:ex", always=True,
                     description="PyTorch eager; runs every operation"),
        ExecutorSpec("python", priority=-10, load="thunder.executors.pythonex:ex", always=True,
                     description="pure-Python bookkeeping symbols"),
        ExecutorSpec("sdpa", priority=100, load="thunder.executors.sdpaex:ex", why_unavailable=_needs("torch"),
                     description="torch.nn.functional.scaled_dot_product_attention (fused attention kernels)"),
        ExecutorSpec("torchcompile", priority=50, load="thunder.executors.torchcompileex:ex", default=False,
                     why_unavailable=_needs("torch"),
                     description="fuses regions of torch operations and compiles each with TorchInductor"),
    ]  # fmt: skip


def _cuda_graphs():
    from thunder.transforms.cudagraph import CUDAGraphTransform  # on first use: discovery stays light (docstring)

    return CUDAGraphTransform()


@hookimpl
def thunder_transforms():
    return [TransformSpec("cudagraphs", factory=_cuda_graphs,
                          description="runs the compiled programs as CUDA graphs (thunder.transforms.cudagraph)")]


@hookimpl
def thunder_plugin_bundles():
    return [PluginBundle("reduce-overhead", transforms=(_cuda_graphs,),
                         description="CUDA graphs for the compiled programs: fewer kernel launches from the CPU")]
