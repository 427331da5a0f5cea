"""Arguments torch leaves out when it hands a call to `__torch_function__`.

`F.l1_loss(input, target, weight=w)` dispatches as `l1_loss(input, target, size_average=..., reduce=...,
reduction=...)`: its `handle_torch_function` call omits `weight` (torch 2.11 and 2.13; `mse_loss` and
`huber_loss` pass theirs), so a tracer would compute the unweighted loss where eager computes the weighted
one. The dropped value is still a local of the torch function's own frame, a few frames up: it is read from
there. A torch version that passes it along wins (the keyword is then present).
"""

from __future__ import annotations

import sys

import torch.nn.functional as F

# torch callable -> the parameters its `handle_torch_function` call drops
_DROPPED = {F.l1_loss: ("weight",)}
_FRAMES_TO_SEARCH = 8  # __torch_function__ <- handle_torch_function <- the torch function, plus slack


def with_dropped_arguments(func, kwargs: dict) -> dict:
    """kwargs with the arguments torch dropped for `func` put back (unchanged for every other callable)."""
    names = _DROPPED.get(func)
    if names is None or all(name in kwargs for name in names):
        return kwargs
    code = func.__code__
    frame = sys._getframe(1)
    for _ in range(_FRAMES_TO_SEARCH):
        if frame is None:
            break
        if frame.f_code is code:  # the innermost call of func: the one being dispatched
            found = {name: frame.f_locals.get(name) for name in names if name not in kwargs}
            return {**kwargs, **{k: v for k, v in found.items() if v is not None}}
        frame = frame.f_back
    return kwargs
