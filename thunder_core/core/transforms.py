"""The grad-rule API: `get_grad` and `put_grad(s)`, used inside grad rules and executors' grad_transforms.

A grad rule is a function with the operation's signature. It computes the forward with traced
operations and returns its outputs; then `get_grad(out)` gives the cotangent of an output, and the
operations after it form the backward, which ends by `put_grad(input, grad)` for each input (and
`mark_non_differentiable(out)` declares an output that never requires grad):

    def mul_rule(a, b):
        out = prims.mul(a, b)
        g = get_grad(out)
        put_grad(a, prims.mul(g, b))
        put_grad(b, prims.mul(g, a))
        return out

The autodiff transform (thunder/transforms/autodiff.py) runs rules forward in program order and places
each rule's backward part in reverse order, with gradients accumulated across uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from thunder.core.context import ContextStack
from thunder.core.proxies import TensorProxy
from thunder.core.trace import get_tracectx

_grad_contexts = ContextStack("thunder_grad_rules")  # per thread (see thunder.core.context)


class GradRuleContext:
    """The state of one rule being applied: cotangent placeholders and the gradients it put."""

    def __init__(self):
        self.placeholders: dict[str, TensorProxy] = {}  # forward output name -> cotangent placeholder
        self.puts: list[tuple[TensorProxy, TensorProxy]] = []
        self.backward_bsyms: list = []
        self.in_backward = False
        self.nondifferentiable: list[TensorProxy] = []  # outputs whose gradient the rule never asks for

    def __enter__(self):
        _grad_contexts.append(self)
        return self

    def __exit__(self, *exc):
        _grad_contexts.pop()


def _context() -> GradRuleContext:
    if not _grad_contexts:
        raise RuntimeError("get_grad/put_grad can only be called inside a grad rule or grad_transform")
    return _grad_contexts[-1]


def get_grad(t: torch.Tensor) -> TensorProxy:
    """The cotangent of the forward output `t`; what the rule records after this is its backward."""
    ctx = _context()
    if not ctx.in_backward:
        ctx.in_backward = True
        trace = get_tracectx()
        trace._scopes[-1] = ctx.backward_bsyms  # from here on, operations record into the backward part
    placeholder = ctx.placeholders.get(t.name)
    if placeholder is None:
        placeholder = TensorProxy(like=t, requires_grad=False, prefix="g")
        ctx.placeholders[t.name] = placeholder
    return placeholder


def put_grad(t: torch.Tensor, grad: torch.Tensor | None) -> None:
    """Accumulates `grad` into the gradient of the forward input `t` (None: no contribution)."""
    if grad is None or not isinstance(t, TensorProxy):
        return
    _context().puts.append((t, grad))


def mark_non_differentiable(*outputs: torch.Tensor) -> None:
    """Declares forward outputs that do not require grad whatever the inputs do (as
    `torch.autograd.Function`'s `ctx.mark_non_differentiable`): eager's indices, statistics or permutations that
    autograd does not differentiate. Their values never carry gradients in the program that follows.

    Call it inside a grad rule or an executor's `grad_transform` (exported as `thunder.extend.mark_non_differentiable`),
    on outputs the rule computed, before it returns them:

        def sort_rule(x):
            values, indices = my_sort(x)
            mark_non_differentiable(indices)
            put_grad(x, my_unsort(get_grad(values), indices))
            return values, indices

    Without it an output computed from an input that requires grad requires grad too, where eager's does not.
    Outside a grad rule it raises a RuntimeError; arguments that are not traced tensors are ignored."""
    ctx = _context()
    ctx.nondifferentiable.extend(t for t in outputs if isinstance(t, TensorProxy))


def put_grads(ts: Sequence, grads: Sequence) -> None:
    for t, g in zip(ts, grads):
        put_grad(t, g)

