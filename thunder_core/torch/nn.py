"""Neural-network operations (torch.nn.functional and friends)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thunder import prims
from thunder.torch.base import torchsymbol

__all__ = ["relu"]


@torchsymbol(torch.relu, torch.Tensor.relu, F.relu, tags=("elementwise",))
def relu(a, inplace=False):
    return prims.where(prims.gt(a, 0), a, prims.full(tuple(a.shape), 0, dtype=a.dtype, device=a.device))
