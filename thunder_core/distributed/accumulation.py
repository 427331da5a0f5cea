"""Gradient accumulation without communication (`no_sync`).

Under `no_sync()` a backward keeps each rank's local gradients in a `GradientStash` (the transform's, keyed by
parameter) instead of returning them to autograd; the first synchronizing backward adds the stash to its own
gradients before reducing them. So the reduction covers every micro-batch, as torch's DDP reduces the
accumulated `.grad`, and the parameters' `.grad` receives the reduced sum once.
"""

from __future__ import annotations

import torch

from thunder.core.proxies import TensorProxy
from thunder.core.symbol import Symbol


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
