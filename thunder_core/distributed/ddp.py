"""Distributed data parallel (DDP) as a `thunder.Transform`.

At wrap time the parameters and buffers are broadcast from one rank, so every replica starts equal. At the
post-autodiff stage the backward trace gets bucketed all-reduces of the parameter gradients, each issued as soon
as its bucket's last gradient exists and waited for at the end, then divided by the world size, as
`torch.nn.parallel.DistributedDataParallel` averages them. Under `no_sync()` a separate compiled entry skips the
communication, and gradients accumulate locally.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from thunder.distributed.accumulation import DataParallelTransform
from thunder.distributed.passes import bucket_all_reduce_grads, stash_param_grads
from thunder.frontend.module import _python_name


class DDPTransform(DataParallelTransform):
    """Data parallelism over `group` (None: the default process group). See `thunder.distributed.ddp`."""

    wrapper = "thunder.distributed.ddp"

    def __init__(self, *, broadcast_from: int = 0, bucket_size_in_mb: float = 25.0, group=None):
        if bucket_size_in_mb <= 0:
            raise ValueError(f"bucket_size_in_mb must be positive, got {bucket_size_in_mb}")
        super().__init__(group=group, broadcast_from=broadcast_from)
        self.bucket_bytes = int(bucket_size_in_mb * 1024 * 1024)

    def transform_module(self, model: torch.nn.Module) -> None:
        """Broadcasts every parameter and buffer from rank `broadcast_from` (once per module)."""
        src = self.bind_module(model)
        if src is None:
            return
        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                dist.broadcast(t.data, src=src, group=self.group)

    def cache_key(self) -> tuple:
        """Part of the jitted module's cache key: a backward with and one without gradient synchronization."""
        return ("ddp", self.syncing, bool(self.stash))

    def transform_traces_post_autodiff(self, forward_trace, backward_trace, **kwargs):
        if self.module is None:
            raise TypeError("thunder.distributed.ddp applies to an nn.Module (thunder.jit of a module), not a function")
        names = parameter_trace_names(self.module)
        if not self.syncing:
            return forward_trace, stash_param_grads(forward_trace, backward_trace, names, self.stash)
        stash = self.stash if self.stash else None
        bwd = bucket_all_reduce_grads(forward_trace, backward_trace, names, self.bucket_bytes, self.group, self.world,
                                      stash)  # fmt: skip
        return forward_trace, bwd


def parameter_trace_names(model: torch.nn.Module) -> set[str]:
    """The names the parameters of `model` have as inputs of a jitted module's traces."""
    return {_python_name(name) for name, _ in model.named_parameters(remove_duplicate=False)}
