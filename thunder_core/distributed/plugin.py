"""The distributed package's plugin module (entry point `distributed` in the `thunder.plugins` group): offers
the `ddp` and `fsdp` plugin bundles, so that `thunder.compile(model, plugins="ddp")` works. Importing it costs
nothing beyond its package, thunder.distributed, which Python imports first."""

from __future__ import annotations

from thunder.distributed import DDPTransform, FSDPTransform
from thunder.extend.hookspecs import PluginBundle, hookimpl


def _distributed_transform(kind: str):
    def make():
        return DDPTransform() if kind == "ddp" else FSDPTransform()

    return make


@hookimpl
def thunder_plugin_bundles():
    return [
        PluginBundle("ddp", transforms=(_distributed_transform("ddp"),),
                     description="data-parallel training on torch.distributed (thunder.distributed.ddp)"),
        PluginBundle("fsdp", transforms=(_distributed_transform("fsdp"),),
                     description="fully sharded data parallel, ZeRO-2 (thunder.distributed.fsdp)"),
    ]  # fmt: skip
