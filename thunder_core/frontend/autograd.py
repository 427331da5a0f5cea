"""Wiring a forward/backward pair into PyTorch autograd through a `torch.autograd.Function`."""

from __future__ import annotations

import torch


class ThunderAutogradFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, entry, *flat_inputs):
        outputs, saved = entry.forward(*flat_inputs)
        ctx.entry = entry
        ctx.saved = saved  # held on ctx (not save_for_backward): the backward trace frees them one by one
        # integer outputs, and outputs that depend on nothing requiring grad (zeros_like(x), x.detach())
        seen: set[int] = set()
        non_differentiable = []
        for o, differentiable in zip(outputs, entry.differentiable_outputs):
            if isinstance(o, torch.Tensor) and not differentiable and id(o) not in seen:
                seen.add(id(o))
                non_differentiable.append(o)
        if non_differentiable:
            ctx.mark_non_differentiable(*non_differentiable)
        return tuple(outputs)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        saved = ctx.saved
        if saved is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time: Thunder freed the saved tensors after the first "
                "backward. Recompute the forward, or call backward(retain_graph=True) on a non-jitted graph."
            )
        ctx.saved = None
        args = [*saved, *grads]
        del saved
        input_grads = ctx.entry.backward(args)
        return (None, *input_grads)


def run_with_autograd(entry, flat_inputs: list) -> list:
    outputs = ThunderAutogradFunction.apply(entry, *flat_inputs)
    return list(outputs)
