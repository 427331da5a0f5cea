"""Executor classes: what an executor can run, how, and (optionally) how to differentiate it.

An `OperatorExecutor` claims bound symbols one at a time: `register_implementation(symbol, checker=...,
execution_transform=..., grad_transform=...)` claims an existing symbol, `register_operator(name, ...)`
creates a new one. A `FusionExecutor` says which bound symbols it can fuse; the core partitions the
trace into regions (transforms/fusion.py) and the executor turns each region into one callable.

Every executor may also declare typed options (`ExecutorOption`, validated at `thunder.jit` time from
`executor_options={"name": {...}}`) and contribute trace passes (`register_pass`, see
:mod:`thunder.extend.passes`) that run when it is in the executor list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from thunder.core.symbol import BoundSymbol, Symbol, flat_proxies
from thunder.core.trace import get_tracectx, torch_tracing
from thunder.extend.passes import TracePass
from thunder.torch import torch_handler
from thunder.torch.fallback import fallback_symbol


class ExecutorOptionError(TypeError):
    """An option given in `thunder.jit(..., executor_options=...)` is unknown or of the wrong type."""


@dataclass(frozen=True)
class ExecutorOption:
    """One option an executor accepts, declared by the executor (`Executor(name, options=[...])`).

    Attributes:
        name: the key users write in `executor_options={"<executor>": {"<name>": value}}`.
        type: the accepted type, or a tuple of types (`int` also accepts a bool only if `bool` is listed).
        default: the value when the user gives none.
        help: one line, shown by `python -m thunder plugins --options`.
    """

    name: str
    type: type | tuple
    default: Any
    help: str = ""

    def check(self, executor_name: str, value: Any) -> Any:
        """`value`, or an ExecutorOptionError naming the executor, the option and the expected type."""
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        is_bool = isinstance(value, bool)
        ok = isinstance(value, types) and not (is_bool and bool not in types)
        if not ok and float in types and isinstance(value, int) and not is_bool:
            return float(value)  # an int where a float goes, as Python does
        if not ok:
            expected = " or ".join(t.__name__ for t in types)
            raise ExecutorOptionError(
                f"executor {executor_name!r}: option {self.name!r} must be {expected}, got {type(value).__name__} "
                f"{value!r} ({self.help})"
            )
        return value


@dataclass
class ImplInfo:
    """How an executor runs one symbol."""

    symbol: Symbol | None = None  # the executor symbol that runs it (its python_impl is called)
    checker: Callable[..., bool] | None = None
    execution_transform: Callable | None = None
    grad_transform: Callable | None = None
    grad_checker: Callable[..., bool] | None = None  # when the grad_transform applies (default: checker)


class Executor:
    """Base class: a named, versioned provider of implementations.

    What every executor can contribute, beyond claiming operations (OperatorExecutor) or fusing regions
    (FusionExecutor):

    * Options: `Executor(name, options=[ExecutorOption("block_size", int, 128, "tile size")])` (or
      `declare_option`). Users set them with `thunder.jit(fn, executor_options={name: {...}})`; they are
      validated there (unknown names and wrong types are errors that list the options), shown by
      `python -m thunder plugins --options`, handed to `can_fuse`/`fuse` and to this executor's passes
      (`context.options`), and fixed for the jitted function (so every compiled entry uses them).
    * Trace passes: `register_pass(fn, stage=BEFORE_AUTODIFF)` and the other stages of
      :mod:`thunder.extend.passes`. A pass runs only when this executor is in the executor list, after the
      passes of executors before it in that list. Typical passes are pattern rewrites into this executor's
      operators: `linear` followed by `cross_entropy` into one fused loss, `silu(a) * b` into a SwiGLU
      kernel. Rewrite before autodiff when the new operator has a grad_transform (autodiff then uses it);
      before fusion when it needs no gradient or replaces a forward or backward piece.
    """

    def __init__(self, name: str, version: Any = None, *, options: Sequence[ExecutorOption] = ()):
        if not isinstance(name, str) or not name:
            raise ValueError("an executor needs a non-empty string name")
        self.name = name
        self.version = version
        self.implmap: dict[str, ImplInfo] = {}
        # torch callables this executor's operators replace while tracing (`register_operator(replaces=)`)
        self.replacements: dict[Callable, Callable] = {}
        self.declared_options: dict[str, ExecutorOption] = {}
        for option in options:
            self.declare_option(option)
        self.trace_passes: list[TracePass] = []

    # -- options ------------------------------------------------------------------------------------
    def declare_option(self, option: ExecutorOption) -> ExecutorOption:
        """Declares an option users may pass as `executor_options={self.name: {option.name: value}}`."""
        if not isinstance(option, ExecutorOption):
            raise TypeError(f"executor {self.name!r}: declare_option takes an ExecutorOption, got {option!r}")
        if option.name in self.declared_options:
            raise ValueError(f"executor {self.name!r} declares the option {option.name!r} twice")
        self.declared_options[option.name] = option
        return option

    def validate_options(self, given: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """Every declared option with its value (given, else its default), read-only; an ExecutorOptionError
        names this executor and lists its options when a key is unknown or a value has the wrong type."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.declared_options))
        if unknown:
            raise ExecutorOptionError(
                f"executor {self.name!r} has no option {', '.join(map(repr, unknown))}; its options are: "
                f"{self.describe_options()}"
            )
        values = {name: option.check(self.name, given[name]) if name in given else option.default
                  for name, option in self.declared_options.items()}  # fmt: skip
        return MappingProxyType(values)

    def describe_options(self) -> str:
        """`name (type, default ...): help` for each declared option, or `(none)`."""
        if not self.declared_options:
            return "(none)"
        parts = []
        for option in self.declared_options.values():
            types = option.type if isinstance(option.type, tuple) else (option.type,)
            parts.append(f"{option.name} ({'|'.join(t.__name__ for t in types)}, default {option.default!r}): "
                         f"{option.help}")  # fmt: skip
        return "; ".join(parts)

    # -- trace passes -------------------------------------------------------------------------------
    def register_pass(self, fn: Callable, *, stage: str, name: str | None = None) -> TracePass:
        """Contributes a trace pass that runs at `stage` whenever this executor is in the executor list.

        Passes of different executors run in the order of the executor list (priority order); one
        executor's passes run in registration order. See :class:`thunder.extend.TracePass` for `fn`'s
        signature at each stage and :mod:`thunder.extend.passes` for the stages. A typical pass is a
        pattern rewrite: find `silu(a) * b` and replace it by one operator of this executor (registered
        with `register_operator` and, to be differentiable, a grad_transform), before autodiff.
        """
        trace_pass = TracePass(name or getattr(fn, "__name__", "pass"), stage, fn)
        self.trace_passes.append(trace_pass)
        return trace_pass

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
        """The grad rule this executor supplies for `bsym` (a function with the symbol's signature), or None.

        Torch operations the rule calls on proxies (`fwd = a * b`) are recorded as their symbols.
        """
        info = self.implmap.get(bsym.sym.id)
        if info is None or info.grad_transform is None:
            return None
        user_rule = info.grad_transform

        def rule(*args, **kwargs):
            with torch_tracing():
                return user_rule(*args, **kwargs)

        rule.__wrapped__ = user_rule
        return rule

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

        meta: computes output proxies from input proxies (`TensorProxy(like=a)`); the symbol is a primitive,
            opaque to autodiff unless a grad_transform is registered for it. like: a function whose trace gives
            the outputs: a torch callable (`torch.nn.functional.gelu`), a Thunder symbol, or any Python function
            of torch operations; the symbol decomposes into it, so it is differentiable through `like`.
            replaces: a torch callable, or a Python function of the user's (a module-level, local or closure
            function: see thunder/frontend/function_replacements.py for what counts as its call), that inside
            `thunder.jit` with this executor active traces as this symbol.

        The symbol carries `fn` as its implementation: wherever it is recorded it runs `fn`, whether or not
        this executor is in the jitted function's executor list (nothing else can run it), and it prints as
        `name(...)` in execution traces.
        """
        if (meta is None) == (like is None):
            raise TypeError(f"register_operator({name!r}) needs exactly one of meta= or like=")
        if unused:
            raise TypeError(f"register_operator got unexpected arguments {sorted(unused)}")
        if not callable(fn):
            raise TypeError(f"register_operator({name!r}): fn must be the callable that runs the operation")
        sym_id = f"{self.name}.{name}"
        if like is not None:
            sym = Symbol(name, _decomposition_like(like), id=sym_id, python_impl=fn, tags=tags)
        else:
            sym = Symbol(name, meta, id=sym_id, is_prim=True, python_impl=fn, tags=tags)
        sym.executor = self
        self.implmap[sym.id] = ImplInfo(symbol=sym)
        if replaces is not None:
            self.replacements[replaces] = sym
        return sym

    def register_implementation(
        self,
        symbol: Symbol | str,
        op: Symbol | None = None,
        *,
        checker: Callable[..., bool] | None = None,
        execution_transform: Callable | None = None,
        grad_transform: Callable | None = None,
        grad_checker: Callable[..., bool] | None = None,
    ) -> None:
        """Claims an existing symbol (e.g. `thunder.torch.mul`, or its id) when `checker(*args, **kwargs)` is true.

        execution_transform: called with the symbol's arguments inside a trace; the operations it calls
            (usually this executor's operators) replace the claimed call. op: an operator of this executor
            that takes the same arguments (shorthand for an execution transform calling it).
            grad_transform: computes the forward with traced operations and the backward with
            `get_grad`/`put_grad` (thunder.core.transforms); used by autodiff instead of the symbol's rule.
            grad_checker: when the grad_transform applies, if that differs from when the executor runs the
            op (for example, a backward kernel with narrower support); default: `checker`.
        """
        if op is not None and execution_transform is None:
            execution_transform = op
        if execution_transform is None and grad_transform is None:
            raise TypeError("register_implementation needs op=, execution_transform= or grad_transform=")
        sym_id = symbol.id if isinstance(symbol, Symbol) else symbol
        previous = self.implmap.get(sym_id)
        # An operator of this executor keeps running as itself when a grad_transform is added for it.
        self.implmap[sym_id] = ImplInfo(
            symbol=previous.symbol if previous is not None else None,
            checker=checker,
            execution_transform=execution_transform,
            grad_transform=grad_transform,
            grad_checker=grad_checker,
        )

    def can_execute(self, bsym: BoundSymbol) -> bool:
        info = self.implmap.get(bsym.sym.id)
        if info is not None and info.symbol is None and info.execution_transform is None:
            return False  # only a grad_transform: autodiff uses it, execution falls through
        return super().can_execute(bsym)


class FusionExecutor(Executor):
    """An executor that compiles regions of fusible operations into one callable each.

    Subclasses implement:

    * `can_fuse(bsym)` (or `can_fuse(bsym, *, options)`): whether this operation may join a region.
    * `fuse(region, fusion_index)` (or `fuse(region, fusion_index, *, options)`): the core has cut the
      trace into maximal regions of fusible operations (`thunder.extend.Region`); return

      - one bound symbol that runs the whole region (typically a new `Symbol` with `python_impl` set to a
        `thunder.extend.CompileOnFirstCall`, tagged `OpTag.FUSION`, bound to `region.inputs` with
        `output=tuple(region.outputs)`);
      - `None` to decline it: its operations stay as they are, for the executors after this one;
      - a list of bound symbols, to split it (by a cost check, say): `region.split_at([...])` gives
        sub-regions, each of which may be fused or returned as its own `bound_symbols`.

    `options` is this executor's validated options (`Executor.validate_options`). The two-argument forms
    keep working; a method that declares an `options` parameter (or `**kwargs`) receives them.
    A fusion executor may also carry operator implementations (implmap) like an OperatorExecutor.
    """

    def can_fuse(self, bsym: BoundSymbol) -> bool:
        raise NotImplementedError(f"{type(self).__name__}.can_fuse")

    def fuse(self, region, fusion_index: int) -> BoundSymbol | list[BoundSymbol] | None:
        raise NotImplementedError(f"{type(self).__name__}.fuse")


def _decomposition_like(like: Callable) -> Callable:
    """The meta of an operator registered with `like=`: what `like` records, as the operator's subsymbols."""
    if isinstance(like, Symbol):
        return like
    module = getattr(like, "__module__", None) or ""

    def decomposition(*args, **kwargs):
        # A torch callable is traced through its own handler, not through the tracer: with `replaces=like`
        # the tracer would map it back to this very operator, forever.
        handler = torch_handler(like)
        if handler is None and module.startswith("torch"):
            handler = fallback_symbol(like)
        if handler is not None:
            return handler(*args, **kwargs)
        with torch_tracing():
            return like(*args, **kwargs)

    decomposition.__name__ = getattr(like, "__name__", "like")
    return decomposition


def _trace_replacement(transform: Callable, bsym: BoundSymbol) -> list[BoundSymbol]:
    """Runs `transform` on bsym's arguments inside the current trace; its outputs take bsym's names.

    Torch operations the transform calls on proxies (`a.contiguous()`) are recorded as their symbols.
    """
    trace = get_tracectx()
    with trace.collecting() as recorded, torch_tracing():
        out = transform(*bsym.args, **bsym.kwargs)

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
