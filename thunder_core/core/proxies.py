"""Proxies: the values a trace computes with.

A `TensorProxy` *is* a `torch.Tensor` to Python code (a storage-less wrapper subclass, in the manner of
FakeTensor): library code that checks `isinstance(x, torch.Tensor)`, reads `.shape`, `.is_cuda`,
`.ndim`, or stores it in an `nn.Module` slot keeps working while we trace. It holds metadata only
(shape, dtype, device, strides, requires_grad) and a name in its trace. Any attempt to reach its data
ends in `__torch_dispatch__`, which raises: the tracer records operations before they get there.

A `NumberProxy` (`IntegerProxy`, `FloatProxy`) is a Python number that is an input of the trace
(`cache="symbolic values"`) or computed from one. Arithmetic on it records scalar prims; tensor operations
that accept a scalar operand take it as is. Anything that needs a concrete answer gets the one seen while
tracing and adds a *guard*: a comparison (`if n > 0`) guards that the comparison has the same outcome,
anything that needs the value itself (`int()`, `range()`, a shape, hashing) guards that the value is the
same. A proxy's `expr` computes its value from the call's flat inputs, so guards are checked per call
without re-tracing; a compiled entry is reused only for calls that pass its guards.
"""

from __future__ import annotations

import itertools
import numbers
import operator
from collections.abc import Callable, Sequence

import torch

from thunder.core.devices import resolve_device
from thunder.core.trace import get_tracectx, torch_tracing

_fallback_names = itertools.count()


def _new_name(prefix: str) -> str:
    trace = get_tracectx()
    if trace is not None:
        return trace.make_name(prefix)
    return f"_{prefix}{next(_fallback_names)}"


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides = []
    running = 1
    for length in reversed(shape):
        strides.append(running)
        running *= max(length, 1)
    return tuple(reversed(strides))


class Proxy:
    """A named value of a trace: a `TensorProxy` or a `NumberProxy`."""

    __slots__ = ()
    name: str


class TensorProxy(torch.Tensor, Proxy):
    """A tensor's metadata and its name in a trace.

    `TensorProxy(like=t)` makes a proxy with `t`'s metadata (shape, dtype, device, requires_grad);
    keyword arguments override individual fields. Used by metas: `TensorProxy(like=a, dtype=torch.bool)`.
    """

    # Operations on proxies are intercepted by the tracer's TorchFunctionMode, never by the subclass.
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(
        cls,
        name: str | None = None,
        *,
        like: torch.Tensor | None = None,
        shape: Sequence[int] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        requires_grad: bool | None = None,
        strides: Sequence[int] | None = None,
        prefix: str = "t",
    ):
        if like is not None:
            shape = tuple(like.shape) if shape is None else shape
            dtype = like.dtype if dtype is None else dtype
            device = like.device if device is None else device
            requires_grad = like.requires_grad if requires_grad is None else requires_grad
        if shape is None or dtype is None or device is None:
            raise TypeError("TensorProxy needs `like=` or all of shape, dtype and device")
        symbolic = None
        if type(shape) is not torch.Size and any(isinstance(s, NumberProxy) for s in shape):
            # a symbol stays one; a float proxy (an error below, as in eager) or a constant proxy gives its value
            symbolic = SymbolicShape(s if isinstance(s, IntegerProxy) and s.expr is not None else int(s)
                                     for s in shape)
            if not any(isinstance(s, NumberProxy) for s in symbolic):
                symbolic = None
        shape = tuple(int(_value(s)) for s in shape)
        if strides is None:
            strides = contiguous_strides(shape)
        requires_grad = bool(requires_grad) and (dtype.is_floating_point or dtype.is_complex)
        proxy = torch.Tensor._make_wrapper_subclass(
            cls, shape, strides=tuple(strides), dtype=dtype, device=resolve_device(device), requires_grad=requires_grad
        )
        proxy._thunder_name = name if name is not None else _new_name(prefix)
        if symbolic is not None:
            proxy._thunder_shape = symbolic
        return proxy

    # -- symbolic sizes (cache="symbolic values"; see thunder.core.symbolic_shapes) ------------------------
    # None: every dim is a plain int (the wrapper's own sizes). Otherwise a SymbolicShape whose entries are
    # ints or IntegerProxies; the wrapper holds their values seen while tracing.
    _thunder_shape = None

    @property
    def shape(self):
        symbolic = self._thunder_shape
        return _concrete_size(self) if symbolic is None else symbolic

    def size(self, dim=None):
        shape = self.shape
        if dim is None:
            return shape
        return shape[dim]

    def numel(self):
        symbolic = self._thunder_shape
        if symbolic is None:
            return _concrete_numel(self)
        return symbolic.numel()

    nelement = numel

    # Methods that take sizes: torch's argument parser would turn a symbolic size into an int (`__index__`, a
    # value guard) before the tracer sees the call; handing the call to the torch-function machinery directly
    # keeps the symbol.
    def _with_symbolic_sizes(method):
        def call(self, *args, **kwargs):
            if has_number_proxy(args) or has_number_proxy(kwargs):
                return torch.overrides.handle_torch_function(method, (self,), self, *args, **kwargs)
            return method(self, *args, **kwargs)

        call.__name__ = method.__name__
        call.__doc__ = method.__doc__
        return call

    for _method in (torch.Tensor.reshape, torch.Tensor.view, torch.Tensor.expand, torch.Tensor.__getitem__,
                    torch.Tensor.new_zeros, torch.Tensor.new_ones, torch.Tensor.new_empty, torch.Tensor.new_full,
                    torch.Tensor.broadcast_to, torch.Tensor.unflatten):  # fmt: skip
        locals()[_method.__name__] = _with_symbolic_sizes(_method)
    del _method, _with_symbolic_sizes

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return int(self.shape[0])
    # torch.Tensor.name is a read-only C attribute; a trace value's name shadows it.
    @property
    def name(self) -> str:
        return self._thunder_name

    def replace_name(self, name: str) -> TensorProxy:
        """A proxy with the same metadata and another name."""
        return TensorProxy(name, like=self, strides=self.stride())


    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(
            f"{func} reached a Thunder proxy outside the tracer: a proxy holds no data. "
            "This is a bug in Thunder or an operation executed outside `thunder.jit`'s tracing."
        )

    def __repr__(self, *args, **kwargs) -> str:
        return f'<TensorProxy {self.name}: "{type_string(self)}">'

    def __format__(self, spec) -> str:
        return repr(self)

    def __reduce_ex__(self, protocol):
        raise TypeError("a TensorProxy cannot be pickled or deep-copied: it stands for a tensor during tracing")

    def __deepcopy__(self, memo):
        raise TypeError("a TensorProxy cannot be pickled or deep-copied: it stands for a tensor during tracing")


def _recorded_by_the_tracer(method):
    """`method` (a Tensor operator or value read) run where torch calls on proxies record into the current trace.

    While the tracer's TorchFunctionMode handles a call it is off (torch pops a mode while it runs), so an
    operator that a symbol's decomposition applies to a tensor argument (`end - start`, `start < 0` where torch
    accepts a 0-d tensor for a number) would reach `__torch_dispatch__`. Here it records the torch-level op like
    any call in user code, and a value read (`bool(t)`, `int(t)`) raises the tracer's data-dependence error
    that names the user's line. Outside any trace nothing changes.
    """

    def call(self, *args):
        # Fast path: with the tracer's mode on top, the call is in user code, where that mode sees it. Another
        # mode on top (torch's DeviceContext of `torch.set_default_device`, which stays on while a symbol runs)
        # would hand the call to torch: the tracer's mode goes on top of it.
        depth = torch._C._len_torch_function_stack()
        if (depth and torch._C._is_torch_function_mode_enabled()
                and getattr(torch._C._get_function_stack_at(depth - 1), "records_into_thunder_traces", False)):
            return method(self, *args)
        with torch_tracing():
            return method(self, *args)

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call


_TRACED_TENSOR_OPERATORS = (
    "add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv", "floordiv", "rfloordiv", "mod", "rmod",
    "pow", "rpow", "matmul", "rmatmul", "and", "rand", "or", "ror", "xor", "rxor", "lshift", "rlshift", "rshift",
    "rrshift", "neg", "pos", "abs", "invert", "lt", "le", "gt", "ge", "eq", "ne",
    "bool", "int", "float", "complex", "index",
)  # fmt: skip
for _name in _TRACED_TENSOR_OPERATORS:
    _method = getattr(torch.Tensor, f"__{_name}__", None)
    if _method is not None:
        setattr(TensorProxy, f"__{_name}__", _recorded_by_the_tracer(_method))
for _name in ("item", "tolist"):
    setattr(TensorProxy, _name, _recorded_by_the_tracer(getattr(torch.Tensor, _name)))
# defining __eq__ would otherwise leave the class unhashable; a tensor hashes by identity
TensorProxy.__hash__ = torch.Tensor.__hash__
del _name, _method

_concrete_size = torch.Tensor.size
_concrete_numel = torch.Tensor.numel


def concrete_shape(t) -> tuple[int, ...]:
    """A tensor's sizes as seen while tracing, with no guard: only for decisions that do not shape the program
    (memory layouts, printing). Anything the program's result depends on reads `t.shape`."""
    return tuple(_concrete_size(t))


def is_symbolic(t) -> bool:
    """Whether a tensor proxy has a symbolic size (cache="symbolic values"): an executor that compiles for static
    shapes compiles again per concrete shape (see `thunder.extend.CompileOnFirstCall`'s `static_shapes`)."""
    return getattr(t, "_thunder_shape", None) is not None


def has_number_proxy(x) -> bool:
    """Whether x (a number, or a tuple, list, dict or slice of them) holds a number proxy."""
    if isinstance(x, NumberProxy):
        return True
    if isinstance(x, (tuple, list)):
        return any(has_number_proxy(v) for v in x)
    if type(x) is dict:
        return any(has_number_proxy(v) for v in x.values())
    if type(x) is slice:
        return has_number_proxy((x.start, x.stop, x.step))
    return False


def _value(x):
    return x.value if isinstance(x, NumberProxy) else x


class SymbolicShape(tuple):
    """A tensor proxy's shape with symbolic entries (ints and IntegerProxies); torch.Size's `numel()` too."""

    __slots__ = ()

    def numel(self):
        n = None  # no `1 * s0` in the trace
        for s in self:
            n = s if n is None else n * s
        return 1 if n is None else n

    def __repr__(self) -> str:
        return f"SymbolicShape([{', '.join(getattr(s, 'name', None) or repr(s) for s in self)}])"


_short_dtype = {
    torch.float32: "f32",
    torch.float64: "f64",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "b8",
    torch.complex64: "c64",
    torch.complex128: "c128",
}


def type_string(t) -> str:
    """`cpu f32[2, 3]`: the comment printed beside a tensor in a trace (`int`, `float` beside a number)."""
    if isinstance(t, NumberProxy):
        return t.python_type.__name__
    dtype = _short_dtype.get(t.dtype, str(t.dtype).removeprefix("torch."))
    shape = getattr(t, "_thunder_shape", None)
    if shape is not None:
        return f"{t.device} {dtype}[{', '.join(s.name if isinstance(s, NumberProxy) else str(s) for s in shape)}]"
    return f"{t.device} {dtype}{list(t.shape)}"


def proxy_like_tensor(t: torch.Tensor, name: str | None = None) -> TensorProxy:
    """A proxy for a real tensor: same shape, strides, dtype, device and requires_grad."""
    return TensorProxy(name, like=t, strides=t.stride())


# -- numbers -------------------------------------------------------------------------------------------
# Set by the frontend: called as hook(expr, value, proxy) when the traced program needs `expr`'s outcome
# (a function of the flat inputs) to be `value`; it records the guard, or raises where that is not
# allowed (in a pass after acquisition: the cache key is fixed by then).
_concretization_hook = None


def register_concretization_hook(hook) -> None:
    global _concretization_hook
    _concretization_hook = hook


class NumberProxy(Proxy):
    """A Python number in a trace: `value` is the one seen while tracing; `expr(inputs)` (an `Expr`) computes it
    from a call's flat inputs (None: the number depends on no input)."""

    __slots__ = ("name", "value", "expr")
    python_type: type = object

    def __init__(self, name: str | None = None, *, value, expr=None, prefix: str = "n"):
        self.name = name if name is not None else _new_name(prefix)
        self.value = value
        self.expr = expr

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        # Having it makes torch's argument parser accept a number proxy where a number goes (`t * n`,
        # `torch.full(shape, n)`) and hand the call to the tracer's TorchFunctionMode, which records it.
        # Reached only outside tracing, where a proxy has no use.
        return NotImplemented

    def concrete(self):
        """The value, for code that needs it: guards that it is the same (see the module docstring)."""
        if _concretization_hook is not None and self.expr is not None:
            _concretization_hook(self.expr, self.value, self)
        return self.value

    def replace_name(self, name: str) -> NumberProxy:
        return type(self)(name, value=self.value, expr=self.expr)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.value!r}>"

    # Python needs the value: guard it
    def __bool__(self):
        return bool(self != 0)  # guards the truth value only (`if n:` holds for every non-zero n)

    def __int__(self):
        return int(self.concrete())

    def __float__(self):
        return float(self.concrete())

    def __complex__(self):
        return complex(self.concrete())

    def __hash__(self):
        return hash(self.concrete())

    def __format__(self, spec):
        return format(self.concrete(), spec)

    def __round__(self, ndigits=None):
        return round(self.concrete(), ndigits)

    def __trunc__(self):
        return self.concrete().__trunc__()

    def __floor__(self):
        return self.concrete().__floor__()

    def __ceil__(self):
        return self.concrete().__ceil__()

    def is_integer(self):
        return float(self.concrete()).is_integer()

    def __reduce_ex__(self, protocol):
        raise TypeError("a NumberProxy cannot be pickled or deep-copied: it stands for a number during tracing")


class Expr:
    """A number as a function of a call's flat inputs: `expr(inputs)`. Compared and hashed by structure, so the
    same relation reached twice is one guard. `op` is "input" (args: position), "size" (position, dim), "const"
    (value) or a Python operator applied to the argument expressions."""

    __slots__ = ("op", "args", "_key")

    def __init__(self, op, *args):
        self.op = op
        self.args = args
        if op == "const":
            value = args[0]
            self._key = ("const", type(value), repr(value))  # by type and repr: -0.0 is not 0.0, True is not 1
        else:
            self._key = (op, *args)

    def __call__(self, inputs):
        op = self.op
        if op == "size":
            return inputs[self.args[0]].shape[self.args[1]]
        if op == "input":
            return inputs[self.args[0]]
        if op == "const":
            return self.args[0]
        return op(*[a(inputs) for a in self.args])

    def __eq__(self, other):
        return type(other) is Expr and self._key == other._key

    def __hash__(self):
        return hash(self._key)

    def __repr__(self) -> str:
        if self.op == "size":
            return f"inputs[{self.args[0]}].shape[{self.args[1]}]"
        if self.op == "input":
            return f"inputs[{self.args[0]}]"
        if self.op == "const":
            return repr(self.args[0])
        return f"{getattr(self.op, '__name__', self.op)}({', '.join(map(repr, self.args))})"


def value_getter(x) -> Expr:
    """An Expr of the flat inputs giving x's value: a number proxy's expr, or a constant."""
    if isinstance(x, NumberProxy) and x.expr is not None:
        return x.expr
    return Expr("const", x.value if isinstance(x, NumberProxy) else x)


# the dtype of a 0-d tensor that holds a number proxy's value exactly, by the type of its value
_NUMBER_TENSOR_DTYPES = {float: torch.float64, int: torch.int64, bool: torch.bool}


def number_tensor_dtype(p: NumberProxy) -> torch.dtype | None:
    """The dtype of a 0-d tensor holding the number proxy's value exactly and of its type category (float64, int64
    or bool), as fusion executors pass a number input on to a compiler that should not specialize on its value;
    None for a complex number."""
    return _NUMBER_TENSOR_DTYPES.get(type(p.value))


def guarded_predicate(predicate: Callable, x) -> bool:
    """predicate(x) for a number or a number proxy (its value seen while tracing). For a proxy, the program is
    guarded on the outcome, not on the value: `guarded_predicate(math.isnan, lr)` retraces when lr becomes NaN,
    not when it changes from 0.1 to 0.05."""
    if not isinstance(x, NumberProxy):
        return predicate(x)
    result = predicate(x.value)
    if _concretization_hook is not None and x.expr is not None:
        _concretization_hook(Expr(predicate, x.expr), result, x)
    return result


# what a number proxy's operators take; anything else (a tensor: its reflected operator records the tensor op)
# gets NotImplemented
_NUMBER_OPERANDS = (NumberProxy, int, float, complex)


def _comparison(op):
    def compare(self, other):
        if not isinstance(other, _NUMBER_OPERANDS):
            return NotImplemented
        result = op(self.value, other.value if isinstance(other, NumberProxy) else other)
        if _concretization_hook is not None:
            a, b = value_getter(self), value_getter(other)
            # a number compared with itself gives one outcome for every input, except a float that may be NaN
            same = a == b and not isinstance(self.value, float)
            if not same and (a.op != "const" or b.op != "const"):  # else the outcome holds for every input
                _concretization_hook(Expr(op, a, b), result, self)
        return result

    return compare


def _arithmetic(name: str, reflected: bool = False):
    def method(self, other):
        if not isinstance(other, _NUMBER_OPERANDS):
            return NotImplemented
        from thunder.core.scalar_ops import scalar_symbols  # a real cycle: scalar_ops builds on this module

        a, b = (other, self) if reflected else (self, other)
        if get_tracectx() is None:  # a cost model or a printer outside tracing: the values seen while tracing
            return scalar_symbols[f"scalar_{name}"].python_impl(_value(a), _value(b))
        return scalar_symbols[f"scalar_{name}"](a, b)

    return method


def _unary_arithmetic(name: str):
    def method(self):
        from thunder.core.scalar_ops import scalar_symbols  # a real cycle: scalar_ops builds on this module

        if get_tracectx() is None:
            return scalar_symbols[f"scalar_{name}"].python_impl(self.value)
        return scalar_symbols[f"scalar_{name}"](self)

    return method


for _name, _op in (("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt), ("le", operator.le),
                   ("gt", operator.gt), ("ge", operator.ge)):  # fmt: skip
    setattr(NumberProxy, f"__{_name}__", _comparison(_op))
for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow"):
    setattr(NumberProxy, f"__{_name}__", _arithmetic(_name))
    setattr(NumberProxy, f"__r{_name}__", _arithmetic(_name, reflected=True))
for _name in ("neg", "pos", "abs"):
    setattr(NumberProxy, f"__{_name}__", _unary_arithmetic(_name))


class IntegerProxy(NumberProxy):
    __slots__ = ()
    python_type = int

    def __index__(self):
        return self.concrete()


class FloatProxy(NumberProxy):
    __slots__ = ()
    python_type = float


numbers.Integral.register(IntegerProxy)
numbers.Real.register(FloatProxy)


def number_proxy(value, name: str | None = None, *, expr=None) -> NumberProxy:
    """The proxy for a Python int or float (bool is not proxied: flags specialize)."""
    cls = IntegerProxy if isinstance(value, int) else FloatProxy
    return cls(name, value=value, expr=expr)
