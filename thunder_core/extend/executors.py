"""Executor classes: what an executor can run, how, and (optionally) how to differentiate it.

An `OperatorExecutor` claims bound symbols one at a time: `register_implementation(symbol, checker=...,
execution_transform=..., grad_transform=...)` claims an existing symbol, `register_operator(name, ...)`
creates a new one. A `FusionExecutor` says which bound symbols it can fuse; the core partitions the
trace into regions (transforms/fusion.py) and the executor turns each region into one callable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from thunder.core.symbol import BoundSymbol, Symbol
from thunder.core.trace import get_tracectx, torch_tracing


@dataclass
class ImplInfo:
    """How an executor runs one symbol."""

    symbol: Symbol | None = None  # the executor symbol that runs it (its python_impl is called)
    checker: Callable[..., bool] | None = None
    execution_transform: Callable | None = None
    grad_transform: Callable | None = None


class Executor:
    """Base class: a named, versioned provider of implementations."""

    def __init__(self, name: str, version: Any = None):
        if not isinstance(name, str) or not name:
            raise ValueError("an executor needs a non-empty string name")
        self.name = name
        self.version = version
        self.implmap: dict[str, ImplInfo] = {}
        # torch callables this executor's operators replace while tracing (`register_operator(replaces=)`)
        self.replacements: dict[Callable, Callable] = {}

    # -- claiming -----------------------------------------------------------------------------------
    def can_execute(self, bsym: BoundSymbol) -> bool:
        info = self.implmap.get(bsym.sym.id)
        if info is None:
            return False
        if info.checker is None:
            return True
        try:
            return bool(info.checker(*bsym.args, **bsym.kwargs))
        except Exception as e:
            raise RuntimeError(f"the checker of executor {self.name!r} for {bsym.sym.id} raised {e!r}") from e

    def lower(self, bsym: BoundSymbol) -> list[BoundSymbol]:
        """The bound symbols that run `bsym` on this executor (called only when can_execute is True)."""
        info = self.implmap[bsym.sym.id]
        if info.execution_transform is not None:
            return _trace_replacement(info.execution_transform, bsym)
        if info.symbol is None:
            raise RuntimeError(f"executor {self.name!r} registered {bsym.sym.id} without an implementation")
        lowered = info.symbol.bind(*bsym.args, output=bsym.output, **bsym.kwargs)
        lowered.tag = bsym.tag
        return [lowered]

    def grad_transform(self, bsym: BoundSymbol) -> Callable | None:
        info = self.implmap.get(bsym.sym.id)
        return None if info is None else info.grad_transform

    def __repr__(self) -> str:
        version = f" {self.version}" if self.version is not None else ""
        return f"<{type(self).__name__} {self.name}{version}>"


class OperatorExecutor(Executor):
    """An executor that runs individual operations (Lightning Thunder's extension API)."""

    def register_operator(
        self,
        name: str,
        *,
        meta: Callable | None = None,
        like: Callable | None = None,
        fn: Callable,
        replaces: Callable | None = None,
        tags: Sequence[str] = (),
        **unused,
    ) -> Symbol:
        """A new symbol `name`, run by calling `fn` on real tensors.

        meta: computes output proxies from input proxies (the symbol is then opaque to autodiff unless a
            grad_transform is registered). like: a torch-level function whose trace gives the outputs; the
            symbol decomposes into it, so it is differentiable through `like`. replaces: a torch callable
            that, inside `thunder.jit` with this executor active, traces as this symbol.
        """
        if (meta is None) == (like is None):
            raise TypeError(f"register_operator({name!r}) needs exactly one of meta= or like=")
        if unused:
            raise TypeError(f"register_operator got unexpected arguments {sorted(unused)}")
        if like is not None:
            def decomposition(*args, **kwargs):
                with torch_tracing():
                    return like(*args, **kwargs)

            sym = Symbol(name, decomposition, id=f"{self.name}.{name}", tags=tags)
        else:
            sym = Symbol(name, meta, id=f"{self.name}.{name}", is_prim=True, tags=tags)
        impl = Symbol(f"{self.name}_{name}" if not name.startswith(self.name) else name, python_impl=fn,
                      id=f"{self.name}.{name}.impl")  # fmt: skip
        sym.python_impl_for_eager = fn
        self.implmap[sym.id] = ImplInfo(symbol=impl)
        if replaces is not None:
            self.replacements[replaces] = sym
        return sym

    def register_implementation(
        self,
        symbol: Symbol,
        op: Symbol | None = None,
        *,
        checker: Callable[..., bool] | None = None,
        execution_transform: Callable | None = None,
        grad_transform: Callable | None = None,
    ) -> None:
        """Claims an existing symbol (e.g. `thunder.torch.mul`) when `checker(*args, **kwargs)` is true.

        execution_transform: called with the symbol's arguments inside a trace; the operations it calls
            (usually this executor's operators) replace the claimed call. op: an operator of this executor
            that takes the same arguments (shorthand for an execution transform calling it).
            grad_transform: computes the forward with traced operations and the backward with
            `get_grad`/`put_grad` (thunder.core.transforms); used by autodiff instead of the symbol's rule.
        """
        if op is not None and execution_transform is None:
            execution_transform = op
        if execution_transform is None and grad_transform is None:
            raise TypeError("register_implementation needs op=, execution_transform= or grad_transform=")
        self.implmap[symbol.id] = ImplInfo(
            checker=checker, execution_transform=execution_transform, grad_transform=grad_transform
        )

    def can_execute(self, bsym: BoundSymbol) -> bool:
        info = self.implmap.get(bsym.sym.id)
        if info is not None and info.symbol is None and info.execution_transform is None:
            return False  # only a grad_transform: autodiff uses it, execution falls through
        return super().can_execute(bsym)


class FusionExecutor(Executor):
    """An executor that compiles regions of fusible operations into one callable each.

    Subclasses implement `can_fuse(bsym)` and `fuse(region)` (see transforms/fusion.py). A fusion executor
    may also carry operator implementations (implmap) like an OperatorExecutor.
    """

    def can_fuse(self, bsym: BoundSymbol) -> bool:
        raise NotImplementedError(f"{type(self).__name__}.can_fuse")

    def fuse(self, region, fusion_index: int) -> BoundSymbol:
        raise NotImplementedError(f"{type(self).__name__}.fuse")


def _trace_replacement(transform: Callable, bsym: BoundSymbol) -> list[BoundSymbol]:
    """Runs `transform` on bsym's arguments inside the current trace; its outputs take bsym's names."""
    trace = get_tracectx()
    with trace.collecting() as recorded:
        out = transform(*bsym.args, **bsym.kwargs)
    from thunder.core.symbol import flat_proxies

    new_outs, old_outs = flat_proxies(out), bsym.flat_outs
    if len(new_outs) != len(old_outs):
        raise RuntimeError(
            f"the execution transform for {bsym.sym.id} returned {len(new_outs)} tensors, expected {len(old_outs)}"
        )
    mapping = {n.name: o for n, o in zip(new_outs, old_outs) if n is not o}
    lowered = [b.swap_proxies(mapping) for b in recorded]
    for b in lowered:
        b.tag = bsym.tag
    return lowered
