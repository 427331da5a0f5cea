"""Fully sharded data parallel (FSDP, ZeRO-2 and ZeRO-3) as a `thunder.Transform`.

At wrap time every parameter is broadcast from rank 0, flattened, padded to a multiple of the world size and
replaced by this rank's 1/world slice: the module's parameters *are* the shards, so an optimizer built on the
module updates shards, and `state_dict()` holds shards. A forward pre-hook on each module that owns parameters
records, while thunder traces, the all_gather (and wait, slice, reshape) that rebuilds each full parameter just
before the module runs; autodiff turns each all_gather into a reduce_scatter of its gradient. At the post-autodiff
stage the gradients are divided by the world size (averaged, as DDP does), waits move to the first use of their
results, all-gathers are prefetched one ahead, and under ZeRO-3 the forward saves shards and the backward gathers
the parameters again instead of keeping them gathered from forward to backward (ZeRO-2).
"""

from __future__ import annotations

import enum
import math

import torch
import torch.distributed as dist

from thunder import prims
from thunder.core.proxies import TensorProxy
from thunder.core.trace import tracectx
from thunder.distributed import prims as dist_prims
from thunder.distributed.accumulation import DataParallelTransform
from thunder.distributed.passes import (
    add_stashed_to_reduce_scatters,
    prefetch_all_gathers,
    regather_saved_parameters,
    sink_waits,
    stash_reduce_scatters,
)
from thunder.frontend.module import _python_name


class FSDPType(enum.Enum):
    """ZERO2: gathered parameters live from forward to backward. ZERO3: they are freed after use and gathered
    again in the backward (less memory, one more all_gather per parameter)."""

    ZERO2 = enum.auto()
    ZERO3 = enum.auto()


class FSDPBucketingStrategy(enum.Enum):
    """NONE: one all_gather and one reduce_scatter per parameter, prefetched one ahead."""

    NONE = enum.auto()


class ShardInfo:
    """What a shard stands for: the full parameter's shape, and how many elements it has."""

    __slots__ = ("shape", "numel", "shard_numel")

    def __init__(self, shape: tuple[int, ...], world: int):
        self.shape = tuple(shape)
        self.numel = math.prod(shape)
        self.shard_numel = -(-self.numel // world)  # padded so that every rank holds as many elements


def shard_tensor(full: torch.Tensor, info: ShardInfo, rank: int) -> torch.Tensor:
    """This rank's slice of `full` (flattened, zero-padded at the end), a new tensor."""
    flat = full.detach().reshape(-1)
    start = rank * info.shard_numel
    piece = flat[start : start + info.shard_numel]
    shard = torch.zeros(info.shard_numel, dtype=full.dtype, device=full.device)
    shard[: piece.numel()] = piece
    return shard


def unshard_proxy(shard: TensorProxy, info: ShardInfo, group) -> TensorProxy:
    """Records the gather of a full parameter from its shard into the current trace."""
    flat = dist_prims.wait(dist_prims.all_gather(shard, group))
    if flat.shape[0] != info.numel:
        flat = prims.slice(flat, [0], [info.numel])
    return prims.reshape(flat, info.shape)


class FSDPTransform(DataParallelTransform):
    """Fully sharded data parallelism over `group` (None: the default group). See `thunder.distributed.fsdp`.

    Under `no_sync()` the stash holds each rank's unsharded local gradients: a full copy of the gradients, as
    torch's FSDP no_sync costs."""

    wrapper = "thunder.distributed.fsdp"

    def __init__(self, *, sharding_strategy: FSDPType = FSDPType.ZERO2,
                 bucketing_strategy: FSDPBucketingStrategy = FSDPBucketingStrategy.NONE, group=None,
                 broadcast_from: int = 0):  # fmt: skip
        if not isinstance(sharding_strategy, FSDPType):
            raise TypeError(f"sharding_strategy must be FSDPType.ZERO2 or FSDPType.ZERO3, got {sharding_strategy!r}")
        if not isinstance(bucketing_strategy, FSDPBucketingStrategy):
            raise TypeError(f"bucketing_strategy must be an FSDPBucketingStrategy, got {bucketing_strategy!r}")
        super().__init__(group=group, broadcast_from=broadcast_from)
        self.sharding_strategy = sharding_strategy
        self.bucketing_strategy = bucketing_strategy
        self.rank = dist.get_rank(group)
        self.shards: dict[str, ShardInfo] = {}  # qualified parameter name -> what its shard stands for

    # -- wrap time ---------------------------------------------------------------------------------
    def transform_module(self, model: torch.nn.Module) -> None:
        """Replaces every parameter by this rank's shard and installs the hooks that gather them while tracing."""
        src = self.bind_module(model)
        if src is None:
            return
        shard_of: dict[int, torch.nn.Parameter] = {}  # tied parameters share one shard
        with torch.no_grad():
            for t in model.buffers():
                dist.broadcast(t.data, src=src, group=self.group)
            for module_name, module in model.named_modules(remove_duplicate=False):
                infos = {}
                for name, p in list(module._parameters.items()):
                    if p is None:
                        continue
                    info = ShardInfo(p.shape, self.world)
                    if id(p) not in shard_of:
                        dist.broadcast(p.data, src=src, group=self.group)
                        shard_of[id(p)] = torch.nn.Parameter(shard_tensor(p, info, self.rank),
                                                             requires_grad=p.requires_grad)  # fmt: skip
                    setattr(module, name, shard_of[id(p)])
                    infos[name] = info
                    self.shards[f"{module_name}.{name}" if module_name else name] = info
                if infos:
                    _install_gather_hooks(module, infos, self.group)
                    module.register_load_state_dict_pre_hook(self._shard_loaded_tensors)

    def _shard_loaded_tensors(self, module, state_dict, prefix, *args) -> None:
        """load_state_dict accepts full tensors (shards them) as well as this world size's shards."""
        for name in module._parameters:
            key = prefix + name
            info = self.shards.get(key)
            value = state_dict.get(key)
            if info is None or value is None:
                continue
            if tuple(value.shape) == info.shape:
                state_dict[key] = shard_tensor(value, info, self.rank)
            elif tuple(value.shape) != (info.shard_numel,):
                raise ValueError(
                    f"{key}: got shape {tuple(value.shape)}, expected the full parameter {info.shape} or a shard of "
                    f"({info.shard_numel},) for world size {self.world}; a checkpoint sharded for another world size "
                    "loads with thunder.distributed.load_sharded_checkpoint"
                )

    # -- compile time ------------------------------------------------------------------------------
    def cache_key(self) -> tuple:
        return ("fsdp", self.sharding_strategy, self.syncing, bool(self.stash))

    def transform_traces_post_autodiff(self, forward_trace, backward_trace, **kwargs):
        if self.module is None:
            raise TypeError(
                "thunder.distributed.fsdp applies to an nn.Module (thunder.jit of a module), not a function"
            )
        shard_names = {_python_name(q) for q in self.shards}
        bwd = backward_trace
        if not self.syncing:
            positions = [i for i, a in enumerate(forward_trace.args) if getattr(a, "name", None) in shard_names]
            bwd = stash_reduce_scatters(bwd, positions, self.stash)
        elif self.stash:
            bwd = add_stashed_to_reduce_scatters(bwd, self.stash)
        fwd, bwd = forward_trace, _average_shard_grads(forward_trace, bwd, shard_names, self.world)
        if self.sharding_strategy is FSDPType.ZERO3:
            fwd, bwd = regather_saved_parameters(fwd, bwd, shard_names)
        fwd = prefetch_all_gathers(sink_waits(fwd))
        bwd = prefetch_all_gathers(sink_waits(bwd))
        return fwd, bwd


def _average_shard_grads(fwd, bwd, shard_names: set[str], world: int):
    new = bwd.from_trace("fsdp: gradients averaged over ranks")
    outputs = list(bwd.output)
    with tracectx(new):
        for i, (a, g) in enumerate(zip(fwd.args, outputs)):
            if isinstance(g, TensorProxy) and getattr(a, "name", None) in shard_names:
                outputs[i] = prims.div(g, float(world))
    new.output = outputs
    return new


def _install_gather_hooks(module: torch.nn.Module, infos: dict[str, ShardInfo], group) -> None:
    """While thunder traces `module`, its parameter slots hold the gathered parameters, then the shards again."""
    held: list[dict] = []

    def gather(mod, args):
        shards = {name: mod._parameters[name] for name in infos}
        for shard in shards.values():
            if not isinstance(shard, TensorProxy):
                raise RuntimeError(
                    f"{type(mod).__name__} is sharded by thunder.distributed.fsdp: it runs only under thunder.jit "
                    "(call the module thunder.jit returned, not the original)"
                )
        held.append(shards)
        for name, shard in shards.items():
            mod._parameters[name] = unshard_proxy(shard, infos[name], group)

    def restore(mod, args, output):
        if held:
            mod._parameters.update(held.pop())

    module.register_forward_pre_hook(gather)
    module.register_forward_hook(restore, always_call=True)
