"""Symbolic tensor sizes under ``cache="symbolic values"``: one program for many sequence lengths and batch sizes.

Design
------

**Which sizes are symbols.** Under ``"symbolic values"`` every dimension of a tensor *argument* whose length is
2 or more is a symbol of the trace; lengths 0 and 1 stay constants (as in torch.compile's 0/1 specialization:
they decide broadcasting and emptiness, and are part of the cache key). A non-contiguous argument keeps all its
sizes and strides constant (its strides would be functions of sizes the key cannot express). A module's
parameters and buffers, and tensors captured from outside (globals, closures, attributes), keep constant sizes.
The cache key of a tensor argument is therefore its rank, which dims are 0 or 1, contiguity, dtype, device and
``requires_grad`` (`symbolic_tensor_key`).

**How symbols appear in the trace.** A symbolic size is an ``IntegerProxy`` (see ``thunder.core.proxies``) whose
``expr`` reads ``inputs[i].shape[d]``. The trace binds them with one ``sizes_of`` call per argument,
``(s0, _, s1) = sizes_of(x)``, so the program computes them from its inputs. A ``TensorProxy`` keeps its sizes
seen while tracing in the wrapper (what torch's C++ sees: layouts, meta kernels) and its symbolic shape in
``_thunder_shape``; ``.shape``, ``.size()``, ``.numel()`` and ``len()`` answer with the symbols, so user code and
the metas of ``thunder.torch`` and ``thunder.prims`` compute symbolic output shapes by plain Python arithmetic on
them, recorded as scalar prims (``scalar_mul(s0, s1)``).

**Guards.** Whatever needs a concrete answer gets the value seen while tracing and records a guard, an
``(Expr, outcome)`` pair checked on each call before the entry is used (``thunder.frontend.jit``):
a comparison (``s0 == 1`` in a broadcast, ``s0 == s1`` between two operands, ``numel % known == 0`` in a
reshape, ``if x.shape[1] > 4`` in the user's code) guards its outcome; ``int(s0)``, ``range(s0)``, an index
or a C call that takes the number (``__index__``) guards its value. Guards are structural, so a relation met
twice is checked once. A failed guard compiles a new entry beside the old ones: never a wrong result.

**Arithmetic on sizes is hoisted.** A scalar prim recorded while a decomposition is being recorded goes to the
top level of the trace (``Symbol.__call__``), before the operation that needed it: the output's shape may hold
the number, and later operations read it. Passes that follow data flow therefore read a call's decomposition
too (``thunder.core.symbol.proxies_read``), and dead-code elimination keeps ``sizes_of`` and the sizes of the
values it keeps, so that autodiff's grad rules, which build operations on those shapes, find them; the
backward receives the sizes it needs as saved numbers.

**What accepts symbols.** Torch calls listed in `SYMBOLIC_SIZE_FNS` (view, reshape, expand, slicing, arange, the
factories) take number proxies as sizes and record them in the trace. Torch's C argument parser would turn a
symbol into an int (``__index__``, a value guard) or refuse it among varargs before the tracer sees the call,
so the size-taking ``Tensor`` methods are Python methods of ``TensorProxy`` and, while such a function is
traced, ``torch.zeros``/``ones``/``empty``/``full``/``rand``/``randn`` are wrappers that hand calls with
symbols to the tracer (`factories_taking_symbolic_sizes`). Any other call gets concrete numbers, each value
guarded (correct, but specialized: it recompiles for another value). Metadata queries that torch answers from
the wrapper's sizes (``torch.numel``, ``Tensor.size`` called as a function) answer with the symbols; those
derived from sizes (``stride()``, ``is_contiguous()``) guard the value of every size of the tensor first.
Layout decisions made while tracing (which eager results are views, their strides) use the sizes seen while
tracing without a guard (`concrete_shape`): they never change what the program computes.

**Executors.** The torch and python executors run the trace as it is: sizes are Python ints computed on each
call. A fusion executor that compiles for static shapes (Inductor, nvFuser) declines operations that take number
proxies, and compiles each region on its first call per input metadata (``thunder.extend.CompileOnFirstCall``),
so a new length compiles the region again underneath while the trace, its guards and every other region are
reused.

**For other frontends** (ThunderFX with Dynamo's dynamic shapes): `symbolic_input_proxy(tensor, position,
dims, name)` builds an input proxy whose listed dims are symbols reading ``inputs[position].shape[d]``, and
records its ``sizes_of``; call it inside a trace under ``thunder.frontend.tracer.collecting_guards(guards)``
with ``guards = GuardList()``, and `compile_guards(guards)` gives the per-call check of the flat inputs.
``thunder.frontend.tracer.acquire_trace(..., symbolic_sizes_from=i)`` does all of it for the tensor leaves
from index ``i`` on.

**Not covered.** Tensors captured from outside the function and a module's parameters keep constant sizes;
calls that parse sizes in C other than those above specialize (guarded); a fusion executor that wants
symbolic shapes itself (nvFuser's dynamic shapes) is not given them yet: regions with symbolic sizes are
compiled per concrete shape.
"""

from __future__ import annotations

import operator
import struct
import threading
from contextlib import contextmanager

import torch

from thunder.core.codegen import compile_source
from thunder.core.proxies import Expr, IntegerProxy, TensorProxy, has_number_proxy, proxy_like_tensor
from thunder.core.scalar_ops import sizes_of
from thunder.core.trace import get_tracectx

_Tensor = torch.Tensor

#: torch callables that take symbolic sizes (number proxies) as they are: their thunder.torch symbols compute
#: with them. Every other call gets concrete numbers, each value guarded.
SYMBOLIC_SIZE_FNS = frozenset({
    _Tensor.reshape, torch.reshape, _Tensor.view, _Tensor.expand, _Tensor.__getitem__, torch.zeros, torch.ones,
    torch.empty, torch.full, _Tensor.new_zeros, _Tensor.new_ones, _Tensor.new_empty, _Tensor.new_full,
    torch.broadcast_to, _Tensor.broadcast_to, torch.unflatten, _Tensor.unflatten, torch.arange, torch.rand,
    torch.randn,
})  # fmt: skip


# torch's factories parse their sizes in C, which refuses a number proxy among varargs (`torch.zeros(b, t)`)
# before any torch-function hook runs: while a function with symbolic sizes is traced, these names in the torch
# module are wrappers that hand such calls to the tracer directly (process-wide, like torch.compile's own
# patches; a call without number proxies goes straight to torch).
_FACTORY_NAMES = ("zeros", "ones", "empty", "full", "rand", "randn")
_factories_lock = threading.Lock()
_factories_state = {"depth": 0, "originals": {}}


def _factory_taking_symbolic_sizes(fn):
    def factory(*args, **kwargs):
        if has_number_proxy(args) or has_number_proxy(kwargs):
            relevant = [x for x in (*args, *kwargs.values()) if has_number_proxy(x)]
            return torch.overrides.handle_torch_function(fn, relevant, *args, **kwargs)
        return fn(*args, **kwargs)

    factory.__name__ = fn.__name__
    factory.__doc__ = fn.__doc__
    factory.__wrapped_factory__ = fn
    return factory


@contextmanager
def factories_taking_symbolic_sizes():
    """Inside, `torch.zeros(b, t)` and the like accept symbolic sizes (see above)."""
    with _factories_lock:
        if _factories_state["depth"] == 0:
            for name in _FACTORY_NAMES:
                original = getattr(torch, name)
                _factories_state["originals"][name] = original
                setattr(torch, name, _factory_taking_symbolic_sizes(original))
        _factories_state["depth"] += 1
    try:
        yield
    finally:
        with _factories_lock:
            _factories_state["depth"] -= 1
            if _factories_state["depth"] == 0:
                for name, original in _factories_state["originals"].items():
                    setattr(torch, name, original)


def symbolic_dims(t: torch.Tensor) -> tuple[int, ...]:
    """The dims of a tensor argument that become symbols: lengths >= 2 of a contiguous tensor."""
    if not t.is_contiguous() or t.layout is not torch.strided:
        return ()
    return tuple(d for d, length in enumerate(t.shape) if length >= 2)


def symbolic_tensor_key(t: torch.Tensor) -> tuple:
    """A tensor argument's cache key under "symbolic values": symbolic lengths are -1 (see the module docstring)."""
    if not t.is_contiguous() or t.layout is not torch.strided:
        return ("static", t.shape, t.stride(), t.dtype, t.device, t.requires_grad)
    return (tuple(s if s < 2 else -1 for s in t.shape), t.dtype, t.device, t.requires_grad)


def symbolic_input_proxy(t: torch.Tensor, position: int, dims, name: str | None = None) -> TensorProxy:
    """A proxy for the input tensor `t`, at `position` among the call's flat inputs, whose `dims` are symbols.

    Records `sizes_of(proxy)` into the current trace, binding the symbols to names. With no dims it is a plain
    proxy (constant sizes)."""
    trace = get_tracectx()
    dims = tuple(dims)
    if not dims:
        return proxy_like_tensor(t, name or trace.make_name("t"))
    name = name or trace.make_name("t")
    shape = []
    for d, length in enumerate(t.shape):
        if d in dims:
            shape.append(IntegerProxy(trace.make_name("s"), value=int(length), expr=Expr("size", position, d)))
        else:
            shape.append(int(length))
    proxy = TensorProxy(name, like=t, shape=tuple(shape))
    trace.record(sizes_of.bind(proxy, output=tuple(shape)))
    return proxy


# -- guards as one generated function ------------------------------------------------------------------
_INFIX = {operator.eq: "==", operator.ne: "!=", operator.lt: "<", operator.le: "<=", operator.gt: ">",
          operator.ge: ">=", operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
          operator.floordiv: "//", operator.mod: "%", operator.pow: "**"}  # fmt: skip
_float_bits = struct.Struct("<d").pack


def compile_guards(guards):
    """`check(inputs) -> bool`: whether the call's flat inputs give every guard's Expr its outcome (floats by
    their bits); an arithmetic error (a division by zero with these inputs) is a failed guard. One generated
    function, so that a call checks its relations in one pass. None when a guard's expression is not an Expr."""
    if not all(isinstance(expr, Expr) for expr, _ in guards):
        return None
    namespace: dict = {"_bits": _float_bits}
    shapes: dict = {}
    lines = []

    def source(expr: Expr) -> str:
        if expr.op == "size":
            position, dim = expr.args
            if position not in shapes:
                shapes[position] = f"s{position}"
                lines.append(f"s{position} = inputs[{position}].shape")
            return f"s{position}[{dim}]"
        if expr.op == "input":
            return f"inputs[{expr.args[0]}]"
        if expr.op == "const":
            name = f"c{len(namespace)}"
            namespace[name] = expr.args[0]
            return name
        args = [source(a) for a in expr.args]
        infix = _INFIX.get(expr.op)
        if infix is not None and len(args) == 2:
            return f"({args[0]} {infix} {args[1]})"
        name = f"f{len(namespace)}"
        namespace[name] = expr.op
        return f"{name}({', '.join(args)})"

    for expr, outcome in guards:
        value = source(expr)
        if type(outcome) is bool:
            lines.append(f"if {'not ' if outcome else ''}{value}: return False")
        elif type(outcome) is float:
            name = f"c{len(namespace)}"
            namespace[name] = _float_bits(outcome)
            lines.append(f"if type(_v := {value}) is not float or _bits(_v) != {name}: return False")
        else:
            name = f"c{len(namespace)}"
            namespace[name] = outcome
            lines.append(f"if type(_v := {value}) is not type({name}) or _v != {name}: return False")
    text = "def check(inputs):\n  try:\n" + "\n".join("    " + line for line in lines) + "\n    return True\n"
    text += "  except ArithmeticError:\n    return False\n"
    exec(compile_source(text, "<thunder symbolic guards>"), namespace)
    check = namespace["check"]
    check.source = text
    return check
