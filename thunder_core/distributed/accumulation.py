"""Gradient accumulation without communication (`no_sync`).

Under `no_sync()` a backward keeps each rank's local gradients in a `GradientStash` (the transform's, keyed by
parameter) instead of returning them to autograd; the first synchronizing backward adds the stash to its own
gradients before reducing them. So the reduction covers every micro-batch, as torch's DDP reduces the
accumulated `.grad`, and the parameters' `.grad` receives the reduced sum once.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist

from thunder.core.proxies import TensorProxy
from thunder.core.symbol import Symbol
from thunder.frontend.transform import Transform


class GradientStash:
    """Local gradients accumulated by backward passes under no_sync, by key; emptied by the next synchronizing one."""

    def __init__(self):
        self.gradients: dict[str, torch.Tensor] = {}

    def __bool__(self) -> bool:
        return bool(self.gradients)

    def __repr__(self) -> str:
        return f"GradientStash({len(self.gradients)} gradients)"


def _stash_meta(stash, key, grad):
    return None


def _stash_impl(stash: GradientStash, key: str, grad: torch.Tensor) -> None:
    held = stash.gradients.get(key)
    stash.gradients[key] = grad if held is None else held + grad


stash_gradient = Symbol("stash_gradient", _stash_meta, id="distributed.stash_gradient", is_prim=True,
                        python_impl=_stash_impl, tags=("side_effect",))  # fmt: skip


def _take_meta(stash, key, like):
    return TensorProxy(like=like, requires_grad=False)


def _take_impl(stash: GradientStash, key: str, like: torch.Tensor) -> torch.Tensor:
    held = stash.gradients.pop(key, None)
    return torch.zeros_like(like) if held is None else held


take_stashed_gradient = Symbol("take_stashed_gradient", _take_meta, id="distributed.take_stashed_gradient",
                               is_prim=True, python_impl=_take_impl, tags=("side_effect",))  # fmt: skip


class DataParallelTransform(Transform):
    """What DDP and FSDP share: the process group, one module per transform object, the source rank of the
    wrap-time broadcast, and `no_sync` (a mode that is part of the jitted module's cache key)."""

    wrapper = ""  # the thunder.distributed function that makes the transform, named in errors

    def __init__(self, *, group, broadcast_from: int):
        self.group = group
        self.broadcast_from = broadcast_from
        self.world = dist.get_world_size(group)
        self.module: torch.nn.Module | None = None
        self.syncing = True
        self.stash = GradientStash()

    def bind_module(self, model: torch.nn.Module) -> int | None:
        """The global rank to broadcast `model`'s state from, when `model` is new to this transform; None when the
        transform already serves it. A second module is an error: each transform keeps one module's state."""
        if self.module is model:
            return None
        if self.module is not None:
            raise ValueError(f"a {type(self).__name__} serves one module; make a new one with {self.wrapper}")
        self.module = model
        return dist.get_global_rank(self.group, self.broadcast_from) if self.group is not None else self.broadcast_from

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes of forwards run inside skip the gradient reduction: each rank accumulates its local
        gradients (held by the transform, not in `.grad`), and the first synchronizing backward reduces them with
        its own."""
        previous, self.syncing = self.syncing, False
        try:
            yield
        finally:
            self.syncing = previous
