"""User `torch.autograd.Function` subclasses inside jitted code: the forward is traced (it becomes the
symbol's decomposition) and the user's own backward is used as the symbol's grad rule."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from thunder.core.proxies import TensorProxy
from thunder.core.symbol import Symbol, flat_proxies
from thunder.core.trace import torch_tracing
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES

# the classmethod object itself (attribute access would give a method bound to the base class)
_original_apply = torch.autograd.Function.__dict__["apply"]
_symbols: dict[type, Symbol] = {}


class TracedFunctionCtx:
    """Stands for the `ctx` of a user autograd.Function while its forward and backward are traced."""

    def __init__(self, args):
        self.saved_tensors: tuple = ()
        self.needs_input_grad = tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        self.materialize_grads = True

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors

    def save_for_forward(self, *tensors):
        pass

    def mark_non_differentiable(self, *args):
        pass

    def mark_dirty(self, *args):
        raise NotImplementedError("autograd.Function forwards that modify inputs in place (mark_dirty) are not supported")

    def set_materialize_grads(self, value: bool):
        self.materialize_grads = value


def _uses_setup_context(cls) -> bool:
    return cls.setup_context is not torch.autograd.function._SingleLevelFunction.setup_context


def _run_forward(cls, ctx, args, kwargs):
    with torch_tracing():
        if _uses_setup_context(cls):
            out = cls.forward(*args, **kwargs)
            cls.setup_context(ctx, args, out)
            return out
        return cls.forward(ctx, *args, **kwargs)


def function_symbol(cls) -> Symbol:
    sym = _symbols.get(cls)
    if sym is not None:
        return sym

    def decomposition(*args, **kwargs):
        return _run_forward(cls, TracedFunctionCtx(args), args, kwargs)

    def grad_rule(*args, **kwargs):
        ctx = TracedFunctionCtx(args)
        out = _run_forward(cls, ctx, args, kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        grads = [get_grad(o) if isinstance(o, TensorProxy) and o.dtype.is_floating_point else None for o in outs]
        with torch_tracing():
            input_grads = cls.backward(ctx, *grads)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        for a, g in zip(args, input_grads):
            if isinstance(a, TensorProxy) and isinstance(g, torch.Tensor):
                put_grad(a, g)
        return out

    name = "".join(c if c.isalnum() else "_" for c in cls.__qualname__)
    sym = Symbol(name, decomposition, id=f"autograd_function.{cls.__module__}.{cls.__qualname__}")
    GRAD_RULES[sym.id] = grad_rule
    _symbols[cls] = sym
    return sym


def _traced_apply(cls, *args, **kwargs):
    if not any(isinstance(a, TensorProxy) for a in flat_proxies((args, kwargs))):
        return _original_apply.__func__(cls, *args, **kwargs)
    return function_symbol(cls)(*args, **kwargs)


@contextmanager
def traced_autograd_functions():
    """While acquiring, `Function.apply` records a symbol instead of running the C++ autograd machinery."""
    torch.autograd.Function.apply = classmethod(_traced_apply)
    try:
        yield
    finally:
        torch.autograd.Function.apply = _original_apply  # the saved classmethod descriptor
