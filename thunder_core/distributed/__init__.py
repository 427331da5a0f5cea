"""`thunder.distributed`: data-parallel training on `torch.distributed` (DDP, and FSDP with ZeRO-2 or ZeRO-3).

Launch with `torchrun`, initialize a process group (NCCL on GPUs, gloo on CPUs), then wrap the model before or
after `thunder.jit`:

    jmodel = thunder.jit(thunder.distributed.ddp(model))       # or ddp(thunder.jit(model))
    jmodel = thunder.jit(thunder.distributed.fsdp(model, sharding_strategy=FSDPType.ZERO3))
    with jmodel.no_sync():                                     # gradient accumulation without communication
        jmodel(x).sum().backward()

The communication is made of the prims in `thunder.distributed.prims` (all_reduce, all_gather, reduce_scatter,
wait), which `thunder.last_backward_traces(jmodel)` shows where the transforms placed them.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from thunder.distributed.ddp import DDPTransform
from thunder.distributed.fsdp import FSDPBucketingStrategy, FSDPTransform, FSDPType, ShardInfo, shard_tensor
from thunder.distributed.prims import _all_gather_fn as all_gather_tensor
from thunder.frontend.module import ThunderModule

__all__ = ["ddp", "fsdp", "FSDPType", "FSDPBucketingStrategy", "DDPTransform", "FSDPTransform", "full_state_dict",
           "save_sharded_checkpoint", "load_sharded_checkpoint"]  # fmt: skip

# the attribute through which a module wrapped before thunder.jit hands its transform to jit
MODULE_TRANSFORMS_ATTRIBUTE = "_thunder_module_transforms"


def ddp(model: torch.nn.Module, *, broadcast_from: int = 0, bucket_size_in_mb: float = 25.0, group=None):
    """Data-parallel training: `model` (a module, or the module `thunder.jit` returned) with its parameters and
    buffers broadcast from rank `broadcast_from` of `group` (None: the default process group), and gradients
    all-reduced and averaged across ranks in buckets of about `bucket_size_in_mb` during the backward.

    Returns `model` itself: wrapped before `thunder.jit`, it carries the transform to `jit`."""
    _check_initialized()
    return _attach(model, DDPTransform(broadcast_from=broadcast_from, bucket_size_in_mb=bucket_size_in_mb,
                                       group=group))  # fmt: skip


def fsdp(model: torch.nn.Module, *, sharding_strategy: FSDPType = FSDPType.ZERO2,
         bucketing_strategy: FSDPBucketingStrategy = FSDPBucketingStrategy.NONE, group=None,
         broadcast_from: int = 0):  # fmt: skip
    """Fully sharded data-parallel training: each rank keeps 1/world of every parameter of `model` (a module, or
    the module `thunder.jit` returned), gathers parameters before use and reduce-scatters (averages) gradients.
    ZERO2 keeps the gathered parameters from forward to backward; ZERO3 gathers them again in the backward.

    Returns `model` itself, its parameters replaced by shards: build the optimizer after wrapping."""
    _check_initialized()
    transform = FSDPTransform(sharding_strategy=sharding_strategy, bucketing_strategy=bucketing_strategy,
                              group=group, broadcast_from=broadcast_from)  # fmt: skip
    return _attach(model, transform)


def _attach(model, transform):
    if isinstance(model, ThunderModule):
        if _distributed_transforms(model._jfn.transforms):
            raise ValueError("this module is already wrapped by thunder.distributed.ddp or fsdp")
        transform.transform_module(model._model)
        model._jfn.transforms.append(transform)
        model._jfn._cache.clear()  # entries compiled before wrapping communicate nothing
        model._jfn._same_input_entry = None
        return model
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"thunder.distributed wraps an nn.Module, got {type(model).__name__}")
    existing = getattr(model, MODULE_TRANSFORMS_ATTRIBUTE, [])
    if _distributed_transforms(existing):
        raise ValueError("this module is already wrapped by thunder.distributed.ddp or fsdp")
    transform.transform_module(model)
    object.__setattr__(model, MODULE_TRANSFORMS_ATTRIBUTE, [*existing, transform])
    return model


def _distributed_transforms(transforms) -> list:
    return [t for t in transforms if isinstance(t, (DDPTransform, FSDPTransform))]


def _check_initialized() -> None:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "thunder.distributed needs an initialized process group: launch with torchrun and call "
            "torch.distributed.init_process_group('nccl' on GPUs, 'gloo' on CPUs) first"
        )


def _fsdp_transform(model) -> FSDPTransform:
    transforms = (
        model._jfn.transforms if isinstance(model, ThunderModule) else getattr(model, MODULE_TRANSFORMS_ATTRIBUTE, [])
    )
    found = [t for t in transforms if isinstance(t, FSDPTransform)]
    if not found:
        raise ValueError("this module is not wrapped by thunder.distributed.fsdp")
    return found[0]


def full_state_dict(model, *, rank0_only: bool = False) -> dict[str, torch.Tensor] | None:
    """The state dict of an FSDP module with full (gathered) parameters; every rank must call it. With
    `rank0_only`, ranks other than 0 return None. (`model.state_dict()` holds this rank's shards.)"""
    transform = _fsdp_transform(model)
    state = model.state_dict()
    for key, info in transform.shards.items():
        if key not in state:
            continue
        shard = state[key].detach().contiguous()
        gathered = torch.empty(info.shard_numel * transform.world, dtype=shard.dtype, device=shard.device)
        all_gather_tensor(gathered, shard, group=transform.group)
        state[key] = gathered[: info.numel].reshape(info.shape).clone()
    if rank0_only and dist.get_rank(transform.group) != 0:
        return None
    return state


def save_sharded_checkpoint(model, directory: str) -> None:
    """Each rank writes its shards (and the full shapes) to `directory`; any world size can load them back with
    `load_sharded_checkpoint`."""
    transform = _fsdp_transform(model)
    os.makedirs(directory, exist_ok=True)
    shapes = {key: info.shape for key, info in transform.shards.items()}
    payload = {"world_size": transform.world, "shapes": shapes, "state_dict": model.state_dict()}
    torch.save(payload, os.path.join(directory, f"rank{transform.rank}.pt"))


def load_sharded_checkpoint(model, directory: str) -> None:
    """Loads a checkpoint written by `save_sharded_checkpoint` under any world size into this FSDP module."""
    transform = _fsdp_transform(model)

    def load(rank: int) -> dict:
        return torch.load(os.path.join(directory, f"rank{rank}.pt"), map_location="cpu", weights_only=True)

    first = load(0)
    saved_world = first["world_size"]
    parts = [first] + [load(r) for r in range(1, saved_world)]
    state = dict(first["state_dict"])
    for key, shape in first["shapes"].items():
        info = ShardInfo(tuple(shape), saved_world)
        full = torch.cat([p["state_dict"][key].reshape(-1) for p in parts])[: info.numel].reshape(info.shape)
        state[key] = shard_tensor(full, transform.shards[key], transform.rank) if key in transform.shards else full
    model.load_state_dict(state)
