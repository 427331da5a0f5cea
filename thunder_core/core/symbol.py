"""Symbols and bound symbols.

A `Symbol` is an operation: a name, a meta (which computes output proxies from input proxies and, for
non-primitive symbols, records the decomposition it calls as its subsymbols) and, for executor symbols,
a Python implementation. A `BoundSymbol` is one call of a symbol in a trace: its arguments, its output
and its subsymbols.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from thunder.core.codegen import bsym_line
from thunder.core.proxies import Proxy, TensorProxy
from thunder.core.trace import get_tracectx


class OpTag:
    """Operator properties, declared once on the symbol (`Symbol(..., tags=(OpTag.RANDOM,))`) and read by passes
    from `symbol.tags` (never from a table of names inside a pass, never from the operator's name).

    RANDOM: draws random numbers (never recomputed, never compiled by a fusion executor with its own RNG).
    SIDE_EFFECT: writes into a tensor it reads (never reordered with other readers of that tensor).
    DEVICE_WRITE: a SIDE_EFFECT whose only effect is writing into its first argument, on that tensor's device
        (`prims.copy_to`); it touches no host state, so a CUDA graph may capture it.
    VIEW: returns a view of its input (cheap to recompute in the backward).
    FUSION: made by a fusion executor from a region (left alone by later fusion executors).
    FALLBACK: a torch operator without a Thunder symbol, traced through its meta kernel.
    ELEMENTWISE, SHAPE, REDUCTION, MATMUL: operator families (fusion cost models, rematerialization).
    INPUT_SIZES: binds an input tensor's symbolic sizes (`sizes_of`); kept by dead-code elimination.
    GRAD_FROM_DECOMPOSITION: its outputs require grad only where its decomposition's operations make them: it
        reads only the metadata (zeros_like, type_as's `other`) or the values (linspace's 0-d tensor ends) of
        some inputs, as eager, which does not differentiate through them. Without it, every floating output of a
        call with an input that requires grad does, as an aten op with a derivative formula does in eager.
    """

    RANDOM = "random"
    SIDE_EFFECT = "side_effect"
    DEVICE_WRITE = "device_write"
    VIEW = "view"
    FUSION = "fusion"
    FALLBACK = "fallback"
    ELEMENTWISE = "elementwise"
    SHAPE = "shape"
    REDUCTION = "reduction"
    MATMUL = "matmul"
    INPUT_SIZES = "input_sizes"
    GRAD_FROM_DECOMPOSITION = "grad_from_decomposition"


class Symbol:
    """An operation that records itself in the current trace when called.

    name: how the symbol prints; `namespace`, if given, is `(alias, object)` and the symbol prints as
        `alias.name` with `alias` bound to `object` in the trace's Python context.
    meta: computes the outputs. For a primitive it builds output proxies; for any other symbol it is
        the decomposition, and the symbols it calls become this call's subsymbols.
    id: a stable identifier used to key rules (grad rules, executor implementations).
    python_impl: for symbols made by executors, what runs when the trace executes.
    """

    __slots__ = ("name", "meta", "id", "is_prim", "namespace", "python_impl", "tags", "torch_fns", "__dict__")

    def __init__(
        self,
        name: str,
        meta: Callable | None = None,
        *,
        id: str | None = None,
        is_prim: bool = False,
        namespace: tuple[str, Any] | None = None,
        python_impl: Callable | None = None,
        tags: Sequence[str] = (),
    ):
        self.name = name
        self.meta = meta
        self.id = id if id is not None else (f"{namespace[0]}.{name}" if namespace else name)
        self.is_prim = is_prim
        self.namespace = namespace
        self.python_impl = python_impl
        self.tags = frozenset(tags)
        self.torch_fns: tuple = ()  # torch callables this symbol stands for (set by thunder.torch)

    @property
    def print_name(self) -> str:
        return f"{self.namespace[0]}.{self.name}" if self.namespace else self.name

    def __call__(self, *args, **kwargs):
        trace = get_tracectx()
        if trace is None:
            if self.python_impl is not None:
                return self.python_impl(*args, **kwargs)
            raise RuntimeError(
                f"the Thunder symbol {self.print_name} was called outside a trace; call it inside a function "
                "compiled with thunder.jit"
            )
        if self.is_prim or self.meta is None:
            result = self.meta(*args, **kwargs) if self.meta is not None else None
            subsymbols: list = []
        else:
            with trace.collecting() as subsymbols:
                result = self.meta(*args, **kwargs)
            if _returns_an_input(result, args, kwargs):
                # e.g. `x.contiguous()` on a contiguous x: the call is the identity, keep only its parts
                for sub in subsymbols:
                    trace.record(sub)
                return result
        if "scalar" in self.tags:
            # Arithmetic on number proxies (symbolic sizes) is hoisted out of any decomposition being recorded:
            # the shape of the decomposition's output may hold the number, and later operations read it.
            trace.bound_symbols.append(BoundSymbol(self, args, kwargs, result, ()))
            return result
        trace.record(BoundSymbol(self, args, kwargs, result, tuple(subsymbols)))
        return result

    def bind(self, *args, output=None, subsymbols=(), **kwargs) -> BoundSymbol:
        """A bound symbol of this symbol, without running its meta (used by passes)."""
        return BoundSymbol(self, args, kwargs, output, tuple(subsymbols))

    def __repr__(self) -> str:
        return f"<Symbol {self.id}>"

    def __reduce__(self):
        return (_lookup_unpicklable, (self.id,))


def _lookup_unpicklable(sym_id):
    raise TypeError(f"symbol {sym_id} cannot be unpickled")


def _returns_an_input(result, args, kwargs) -> bool:
    if not isinstance(result, TensorProxy):
        if isinstance(result, (tuple, list)):
            return any(_returns_an_input(r, args, kwargs) for r in result)
        return False
    for a in args:
        if a is result or (isinstance(a, (tuple, list)) and any(x is result for x in a)):
            return True
    return any(v is result for v in kwargs.values())


def flat_proxies(x, out: list | None = None) -> list:
    """The proxies (tensors and numbers) in a nested structure of args (tuples, lists, dicts), in order."""
    if out is None:
        out = []
    if isinstance(x, Proxy):
        out.append(x)
    elif isinstance(x, (tuple, list)):
        for v in x:
            flat_proxies(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            flat_proxies(v, out)
    elif type(x) is slice:  # `x[:n]` with a symbolic bound
        flat_proxies((x.start, x.stop, x.step), out)
    return out


def proxies_read(bsym) -> list[Proxy]:
    """Every proxy a call reads: its arguments, and what its decomposition reads from outside it (a number
    computed by hoisted scalar arithmetic, see `Symbol.__call__`)."""
    reads = list(bsym.flat_args)
    if bsym.subsymbols:
        defined = set()
        for sub in bsym.subsymbols:
            reads.extend(p for p in proxies_read(sub) if p.name not in defined)
            defined.update(o.name for o in sub.flat_outs)
    return reads


class BoundSymbol:
    """One call of a symbol: `output = sym(*args, **kwargs)`, with the subsymbols it decomposed into."""

    __slots__ = ("sym", "args", "kwargs", "output", "subsymbols", "_flat_args", "_flat_outs", "tag")

    def __init__(self, sym: Symbol, args: tuple, kwargs: dict, output: Any, subsymbols: tuple = ()):
        self.sym = sym
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.output = output
        self.subsymbols = subsymbols
        self._flat_args = None
        self._flat_outs = None
        self.tag = None  # set by passes (e.g. "backward", "recomputed")

    @property
    def flat_args(self) -> list[Proxy]:
        """Every proxy this call reads."""
        if self._flat_args is None:
            self._flat_args = flat_proxies(self.args) + flat_proxies(self.kwargs)
        return self._flat_args

    @property
    def flat_outs(self) -> list[Proxy]:
        """Every proxy this call defines."""
        if self._flat_outs is None:
            self._flat_outs = flat_proxies(self.output)
        return self._flat_outs

    def from_bsym(self, **changes) -> BoundSymbol:
        fields = {"sym": self.sym, "args": self.args, "kwargs": self.kwargs, "output": self.output}
        fields["subsymbols"] = self.subsymbols
        fields.update(changes)
        new = BoundSymbol(fields["sym"], fields["args"], fields["kwargs"], fields["output"], fields["subsymbols"])
        new.tag = self.tag
        return new

    def swap_proxies(self, mapping: dict[str, Proxy]) -> BoundSymbol:
        """This call with proxies renamed through `mapping` (by name), in args, output and subsymbols."""
        if not mapping:
            return self

        def swap(x):
            if isinstance(x, Proxy):
                return mapping.get(x.name, x)
            if type(x) is list:
                return [swap(v) for v in x]
            if isinstance(x, tuple):  # namedtuple outputs (topk, max) are rebuilt as plain tuples
                return tuple(swap(v) for v in x)
            if type(x) is dict:
                return {k: swap(v) for k, v in x.items()}
            if type(x) is slice:
                return slice(swap(x.start), swap(x.stop), swap(x.step))
            return x

        return self.from_bsym(
            args=swap(self.args),
            kwargs=swap(self.kwargs),
            output=swap(self.output),
            subsymbols=tuple(s.swap_proxies(mapping) for s in self.subsymbols),
        )

    def __repr__(self) -> str:
        return bsym_line(self, {}, with_comment=False)
