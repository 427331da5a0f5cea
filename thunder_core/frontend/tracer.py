"""Acquisition: run the user's Python with proxies and record every torch call.

A `TorchFunctionMode` intercepts every torch callable (functions, Tensor methods, operators, property
getters) while the user's function runs with `TensorProxy` inputs. Each call is mapped to the
`thunder.torch` symbol that traces it, to an executor's replacement, or, for any other operator, to a
fallback symbol built from torch's meta kernel. In-place operations are functionalized here: the
proxy object the user holds is rebound to the new value, views of a mutated tensor are re-derived, and
an in-place op on a view is written back to its base.
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

import thunder.torch as ltorch
from thunder import prims
from thunder.core.context import ContextStack
from thunder.core.proxies import (
    Expr,
    NumberProxy,
    TensorProxy,
    concrete_shape,
    is_symbolic,
    number_proxy,
    proxy_like_tensor,
    register_concretization_hook,
)
from thunder.core.pytree import tree_flatten, tree_unflatten
from thunder.core.trace import TraceCtx, get_tracectx, register_torch_tracing, tracectx
from thunder.frontend import eager_layout
from thunder.frontend.autocast import apply_autocast, autocast_state
from thunder.frontend.autograd_function import traced_autograd_functions
from thunder.frontend.cache import is_symbolic_number
from thunder.frontend.certain_comparisons import certain_truth
from thunder.frontend.checkpoint import recording_checkpoints
from thunder.frontend.dropped_arguments import with_dropped_arguments
from thunder.frontend.optimizers import intercepting_optimizer_steps
from thunder.frontend.script_functions import python_originals_of_script_functions
from thunder.frontend.seeding import seeding_in_the_program
from thunder.frontend.symbolic_shapes import (
    SYMBOLIC_SIZE_FNS,
    factories_taking_symbolic_sizes,
    symbolic_dims,
    symbolic_input_proxy,
)
from thunder.frontend.tensor_values import reads_tensor_values, with_guarded_values
from thunder.frontend.train_step import NOT_HANDLED, TrainingTracer, handle_training_call, uses_training
from thunder.torch import fallback
from thunder.torch.signatures import adapt_torch_call, positional_call
from thunder.torch.views import VIEW_OPS

_THUNDER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


class DataDependentError(RuntimeError):
    """Tracing needed a tensor's values (`.item()`, `bool(t)`, data-dependent shapes)."""


def user_location() -> str:
    """`file:line` of the innermost frame of user code (not Thunder's, not torch's)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith((_THUNDER_DIR, _TORCH_DIR)) and not filename.startswith("<frozen"):
            return f"{frame.f_code.co_filename}:{frame.f_lineno} (in {frame.f_code.co_name})"
        frame = frame.f_back
    return "<unknown location>"


def data_dependent_error(what: str) -> DataDependentError:
    return DataDependentError(
        f"{what} at {user_location()} needs the value of a tensor, but thunder.jit traces with proxies that hold "
        "only metadata (shape, dtype, device). Data-dependent control flow cannot be traced: compute it outside "
        "the jitted function, express it with tensor ops (torch.where), or use the torch.compile frontend, which "
        "splits the program at such points: torch.compile(fn, backend=thunder.dynamo.ThunderCompiler()) or "
        "thunder.dynamo.thunderfx(fn)."
    )


_Tensor = torch.Tensor
# metadata queries answered by the proxy itself
_PASSTHROUGH = {
    _Tensor.dim, _Tensor.size, _Tensor.stride, _Tensor.numel, _Tensor.nelement, _Tensor.element_size,
    _Tensor.is_contiguous, _Tensor.is_floating_point, _Tensor.is_complex, _Tensor.__len__, _Tensor.__hash__,
    _Tensor.get_device, _Tensor.storage_offset, _Tensor.is_signed, _Tensor.__format__, _Tensor.ndimension,
    _Tensor.type, _Tensor.__reduce_ex__,
    torch.is_floating_point, torch.is_complex, torch.numel, torch.is_tensor, torch.result_type, torch.is_signed,
    torch.is_same_size,
    # global state and plain objects: `with torch.no_grad()` sets the grad mode for real (the tracer reads it,
    # see `Tracer.stop_gradients`); `torch.device(...)` builds a device
    torch._C._set_grad_enabled, torch.device,
}  # fmt: skip
_PASSTHROUGH_GETTERS_EXCEPT = {"T", "mT", "H", "mH", "data", "real", "imag", "grad", "__get__"}
_DATA_DEPENDENT = {
    _Tensor.item: "Tensor.item()", _Tensor.tolist: "Tensor.tolist()", _Tensor.__bool__: "bool(tensor)",
    _Tensor.__int__: "int(tensor)", _Tensor.__float__: "float(tensor)", _Tensor.__index__: "using a tensor as an index",
    _Tensor.numpy: "Tensor.numpy()", _Tensor.nonzero: "Tensor.nonzero() (data-dependent shape)",
    torch.nonzero: "torch.nonzero (data-dependent shape)", torch.unique: "torch.unique (data-dependent shape)",
    _Tensor.unique: "Tensor.unique (data-dependent shape)", torch.masked_select: "torch.masked_select (data-dependent shape)",
    _Tensor.masked_select: "Tensor.masked_select (data-dependent shape)", _Tensor.__contains__: "`in` on a tensor",
    torch.is_nonzero: "torch.is_nonzero", _Tensor.data_ptr: "Tensor.data_ptr()", _Tensor.__complex__: "complex(tensor)",
    torch.argwhere: "torch.argwhere (data-dependent shape)", _Tensor.untyped_storage: "Tensor.untyped_storage()",
}  # fmt: skip
_RNN_FLATTEN_PARAMETERS = torch.nn.RNNBase.flatten_parameters.__code__


def _asked_by_rnn_flatten_parameters() -> bool:
    """Whether the torch call being handled comes from `nn.RNNBase.flatten_parameters` (directly or through its
    set comprehension, a frame of its own before Python 3.12), which LSTM/GRU/RNN forwards call on CUDA."""
    frame = sys._getframe(2)  # the frame that made the torch call
    for _ in range(3):
        if frame is None:
            return False
        if frame.f_code is _RNN_FLATTEN_PARAMETERS:
            return True
        frame = frame.f_back
    return False


_INPLACE_DUNDERS = {
    "__iadd__": "__add__", "__isub__": "__sub__", "__imul__": "__mul__", "__itruediv__": "__truediv__",
    "__ifloordiv__": "__floordiv__", "__imod__": "__mod__", "__ipow__": "__pow__", "__iand__": "__and__",
    "__ior__": "__or__", "__ixor__": "__xor__", "__ilshift__": "__lshift__", "__irshift__": "__rshift__",
    "__imatmul__": "__matmul__",
}  # fmt: skip

# in-place operations whose result need not depend on the old value
_OVERWRITES = frozenset({"Tensor.zero_", "Tensor.fill_", "Tensor.copy_"})
# in-place operations that change a tensor's metadata (shape, strides), not its values
_METADATA_INPLACE = frozenset({
    "t_", "transpose_", "swapdims_", "swapaxes_", "unsqueeze_", "squeeze_", "as_strided_", "resize_", "resize_as_",
})  # fmt: skip


@dataclass
class _View:
    base: torch.Tensor  # the object the view was taken from (as the user holds it)
    derive: Callable  # base value -> view value
    scatter: Callable | None  # (base value, new view value) -> new base value; None: not writable
    derived_from: torch.Tensor  # the base value the current view value was derived from
    op_name: str
    # a `detach()`/`.data` alias written in grad mode: it has gradients of its own (its base does not), which it
    # keeps when its data changes through its base (see `Tracer.resolve`)
    own_gradient: bool = False
    # where the view's first element lies in its base's memory, in elements from the base's first; None: unknown
    offset: int | None = None


class Tracer:
    """Records one function's trace; owns the functionalization state of the objects the user holds."""

    def __init__(self, trace: TraceCtx, replacements: dict[Callable, Callable] | None = None):
        self.trace = trace
        self.replacements = replacements or {}
        self.current: dict[int, torch.Tensor] = {}  # id(object the user holds) -> its latest value
        self.views: dict[int, _View] = {}
        self.keepalive: list = []  # objects whose ids key the tables above
        self.constant_tensors: list[torch.Tensor] = []  # real tensors met while tracing (closures, globals)
        self._constant_proxies: dict[int, TensorProxy] = {}
        self.input_proxies: list[TensorProxy | NumberProxy] = []
        self.input_tensors: dict[int, tuple] = {}  # id(input proxy) -> (position, the real tensor)
        self.value_guards: list[tuple] = []  # tensors whose values the trace used (thunder.frontend.tensor_values)
        # Under torch.no_grad() inside a function called with grad enabled, values must not carry gradients:
        # the ops' operands are detached, as eager records no graph for them.
        self.grad_enabled_at_start = torch.is_grad_enabled()
        self._detached: dict[int, TensorProxy] = {}
        # id(value) -> the strides eager gives that value, where they differ from its proxy's (see eager_layout)
        self.layouts: dict[int, tuple[int, ...]] = {}
        self.executors: tuple = ()  # whose grad rules a backward inside the function uses
        self.training = None  # the training step's state during acquisition (thunder.frontend.train_step)

    # -- values -------------------------------------------------------------------------------------
    def resolve(self, x):
        """The current value of a tensor object; real tensors become trace inputs (constants)."""
        if isinstance(x, TensorProxy):
            view = self.views.get(id(x))
            if view is not None:
                base_value = self.resolve(view.base)
                if base_value is not view.derived_from:
                    derived = view.derive(base_value)
                    if view.own_gradient and self._may_require_grad(derived):
                        # eager: the alias is another tensor object, whose data is its base's (one memory) and
                        # whose autograd identity is its own; a write into the base changes the data only
                        derived = ltorch.with_data(self.current[id(x)], derived)
                    self.current[id(x)] = derived
                    # the view object keeps its layout when its base's values change: later calls on it (its
                    # `contiguous()` copies or not) must see eager's strides, not the re-derivation's
                    self.set_eager_strides(derived, self.eager_strides(x))
                    view.derived_from = base_value
            value = self.current.get(id(x), x)
            while value is not x and id(value) in self.current:  # a value handed out earlier was mutated in turn
                x, value = value, self.current[id(value)]
            return value
        if isinstance(x, torch.Tensor):
            return self.resolve(self.constant_proxy(x))  # its latest value, if the function mutated it
        if type(x) is tuple or type(x) is list:
            return type(x)(self.resolve(v) for v in x)
        if isinstance(x, dict) and type(x) is dict:
            return {k: self.resolve(v) for k, v in x.items()}
        return x

    def stop_gradients(self, x):
        """x with every proxy that requires grad replaced by its detached value (one detach per value)."""
        if isinstance(x, TensorProxy):
            # (an intermediate's proxy does not say whether it requires grad, autodiff decides from the data flow:
            # every floating value of a function with inputs that require grad may, and is detached)
            if not (x.requires_grad or self._may_require_grad(x)):
                return x
            detached = self._detached.get(id(x))
            if detached is None:
                detached = self._detached[id(x)] = ltorch.detach(x)
                self.set_eager_strides(detached, self.eager_strides(x))  # eager's detach keeps the layout
                self.keepalive.append(x)
            return detached
        if type(x) is tuple or type(x) is list:
            return type(x)(self.stop_gradients(v) for v in x)
        if type(x) is dict:
            return {k: self.stop_gradients(v) for k, v in x.items()}
        return x

    def eager_strides(self, value: torch.Tensor) -> tuple[int, ...]:
        strides = self.layouts.get(id(value))
        return strides if strides is not None else tuple(value.stride())

    def set_eager_strides(self, value: torch.Tensor, strides: tuple[int, ...]) -> None:
        if strides != tuple(value.stride()):
            self.layouts[id(value)] = tuple(strides)
            self.keepalive.append(value)

    def constant_proxy(self, t: torch.Tensor) -> TensorProxy:
        proxy = self._constant_proxies.get(id(t))
        if proxy is None:
            if isinstance(t, torch.nn.Parameter) or t.requires_grad:
                # a tensor that requires grad captured from outside: its gradient would be lost
                pass
            proxy = proxy_like_tensor(t, self.trace.make_name("c"))
            self._constant_proxies[id(t)] = proxy
            self.constant_tensors.append(t)
            self.keepalive.append(t)
        return proxy

    def mutate(self, obj: torch.Tensor, new_value: torch.Tensor, op_name: str, untracked: bool = False) -> None:
        """Rebinds the object the user holds to new_value; writes through to its base if it is a view.

        `untracked`: eager's autograd does not record the write (it came through `detach()` or `.data`); so is a
        write under torch.no_grad(). Such a write changes the data of a tensor that requires grad and keeps its
        autograd identity (a leaf stays the leaf, a computed value keeps its grad_fn): the new value is
        `with_data(old, new)`, whose gradient goes to the old value, as eager's does."""
        untracked = untracked or not torch.is_grad_enabled()
        if not isinstance(obj, TensorProxy):
            # A real tensor met while tracing (a closure, a global, a tensor held by an object such as a static KV
            # cache): its constant proxy takes the new value, which is copied into the tensor after each call.
            obj = self.constant_proxy(obj)
        if obj.requires_grad and any(obj is p for p in self.input_proxies) and not untracked:
            raise RuntimeError(
                f"a leaf tensor that requires grad is used in the in-place operation {op_name} at {user_location()}; "
                "PyTorch forbids this too. Use the out-of-place form or wrap the update in torch.no_grad()."
            )
        if tuple(new_value.shape) != tuple(obj.shape):
            raise RuntimeError(
                f"in-place {op_name} at {user_location()}: the result's shape {tuple(new_value.shape)} differs from "
                f"the destination's {tuple(obj.shape)}"
            )
        if new_value.device != obj.device:  # an in-place op never moves its destination
            raise RuntimeError(
                f"in-place {op_name} at {user_location()}: the result is on {new_value.device}, the destination on "
                f"{obj.device}; move the operand first (`.to({str(obj.device)!r})`)"
            )
        is_input = any(obj is p for p in (*self.input_proxies, *self._constant_proxies.values()))
        if is_input and eager_layout.has_internal_overlap(concrete_shape(obj), obj.stride()):
            # (a NotImplementedError is a RuntimeError, as eager raises for most such writes; eager allows a few,
            # fill_ for one, whose effect through shared memory a functional trace cannot express)
            raise NotImplementedError(
                f"unsupported operation: more than one element of the written-to tensor refers to a single memory "
                f"location. {op_name} at {user_location()} writes into an input whose expanded (stride 0) dims share "
                "memory; Thunder, like eager for most such writes, refuses it. Please clone() the tensor before "
                "performing the operation."
            )
        if new_value.dtype != obj.dtype:
            new_value = prims.convert_element_type(new_value, obj.dtype)
        old_value = self.resolve(obj)
        if untracked:
            if self._may_require_grad(old_value):
                # `new_value` detached: the write's operands (`x.data.copy_(y)` with y requiring grad) give the
                # tensor no gradient connection, only its old value does (the autodiff makes an output require grad
                # when any argument does). Detaching also makes the result another tensor object than `new_value`
                # at run time (with_data's forward is a no-op conversion): both may be outputs, `a` and `a.data`,
                # and only the first requires grad.
                new_value = ltorch.with_data(old_value, ltorch.detach(new_value))
        elif op_name in _OVERWRITES and self._inputs_require_grad():
            # eager: a tensor that requires grad still does after an overwrite (zero_, fill_, copy_ of a constant),
            # its gradient through the old value being zero. (Proxies made by operations do not say whether they
            # require grad: autodiff decides, from this dependence.)
            never = prims.full(tuple(new_value.shape), False, dtype=torch.bool, device=new_value.device)
            new_value = prims.where(never, old_value, new_value)
        self.set_eager_strides(new_value, self.eager_strides(old_value))
        view = self.views.get(id(obj))
        if view is not None:
            if view.scatter is None:
                raise NotImplementedError(
                    f"in-place {op_name} at {user_location()} writes into a view made by {view.op_name}, which Thunder "
                    "cannot write back to its base. Clone the view first (x = x.clone()) or use out-of-place ops."
                )
            base_value = self.resolve(view.base)
            new_base = view.scatter(base_value, new_value)
            alias = view.op_name in ("detach", "data")
            view.own_gradient |= alias and not untracked
            self.mutate(view.base, new_base, op_name, untracked or alias)
            view.derived_from = self.resolve(view.base)
        self.current[id(obj)] = new_value
        self.keepalive.append(obj)

    def _may_require_grad(self, value) -> bool:
        """Whether `value` may require grad (a floating value, in a function with inputs that require grad, acquired
        with grad mode on): an untracked write into it must keep its gradient connection (see `mutate`), and an
        operation under torch.no_grad() must not take its gradient (see `stop_gradients`). After a backward inside
        the function (a training step, which runs without torch autograd) the later writes are the optimizer's, and
        a later backward differentiates with respect to the updated value, as eager."""
        training = self.training
        if training is not None and training.backward_done:
            return False
        return (
            self.grad_enabled_at_start
            and isinstance(value, TensorProxy)
            and (value.dtype.is_floating_point or value.dtype.is_complex)
            and self._inputs_require_grad()
        )

    def _inputs_require_grad(self) -> bool:
        return any(isinstance(p, TensorProxy) and p.requires_grad for p in self.input_proxies)

    def record_view(self, op_name: str, base, out, derive: Callable, scatter: Callable | None,
                    offset: int | None = None) -> None:  # fmt: skip
        if isinstance(base, TensorProxy) and isinstance(out, TensorProxy) and out is not base:
            self.views[id(out)] = _View(base, derive, scatter, self.resolve(base), op_name, offset=offset)
            self.keepalive.append(out)

    def _memory(self, obj) -> tuple[Any, int] | None:
        """(the object whose memory a tensor object lies in, its first element's offset there), following views;
        None where a view's offset is unknown."""
        offset = 0
        while (view := self.views.get(id(obj))) is not None:
            if view.offset is None:
                return None
            offset += view.offset
            obj = view.base
        return obj, offset

    def check_operands_do_not_overlap(self, target, operands, op_name: str, key=None) -> None:
        """Refuses an in-place op that reads a tensor sharing memory with the one it writes where eager's kernel reads
        elements it has already written (`x.sub_(x[0])`, `x.mul_(x.t())`, `x[1:] = x[:-1]`; eager refuses the cases
        it detects, not all): the functional trace reads every operand before the write. The same memory element for
        element (`x.add_(x.detach())`), elements read before eager writes them (`x[:, :-1] = x[:, 1:]`), or disjoint
        memory are fine. `key`: a `__setitem__`'s, which writes `target[key]` only."""
        if not isinstance(target, TensorProxy):
            return
        dest = self._memory(target)
        for o in operands:
            if dest is None or not isinstance(o, TensorProxy) or o is target:
                continue
            src = self._memory(o)
            if src is None or src[0] is not dest[0] or not self._overlaps(target, dest[1], o, src[1], key):
                continue
            raise NotImplementedError(
                f"in-place {op_name} at {user_location()} reads a tensor that shares memory with the tensor it writes "
                "(a view of it, such as x[0] or x.t()) other than element for element: eager's result then depends on "
                "the order its kernel visits the elements (eager refuses most such calls), which a traced program "
                "does not follow. Thunder does not support it: clone the operand first (`.clone()`)."
            )

    def _overlaps(self, target, target_offset: int, operand, operand_offset: int, key=None) -> bool:
        """Whether an elementwise write into `target` (`target[key]`) reads through `operand`, broadcast to the
        written shape, an element of the memory it writes other than the one it writes there (see
        `check_operands_do_not_overlap`). Where that cannot be told cheaply: whether their memory ranges meet."""
        shape, strides = concrete_shape(target), self.eager_strides(target)
        o_shape, o_strides = concrete_shape(operand), self.eager_strides(operand)
        if 0 in shape or 0 in o_shape:
            return False

        def extent(offset, shape, strides):
            return (offset + sum((n - 1) * s for n, s in zip(shape, strides) if s < 0),
                    offset + sum((n - 1) * s for n, s in zip(shape, strides) if s > 0))  # fmt: skip

        (lo, hi), (o_lo, o_hi) = extent(target_offset, shape, strides), extent(operand_offset, o_shape, o_strides)
        if hi < o_lo or o_hi < lo:
            return False
        if target.dtype.itemsize != operand.dtype.itemsize or math.prod(shape) > 1 << 22:
            return True  # (the exact question costs memory of the size of the tensor)

        def addresses(offset, shape, strides):
            index = torch.full((), offset, dtype=torch.int64)
            for d, (n, s) in enumerate(zip(shape, strides)):
                index = index + (torch.arange(n, dtype=torch.int64) * s).reshape((n,) + (1,) * (len(shape) - d - 1))
            return index.expand(shape)

        written = addresses(target_offset, shape, strides)
        if key is not None:
            if any(isinstance(k, torch.Tensor) for k in tree_flatten(key)[0]):
                return True  # (indices known at run time only)
            try:
                written = written[concrete_numbers(key)]
            except (IndexError, TypeError, RuntimeError):
                return True
            while len(o_shape) > written.ndim and o_shape[0] == 1:  # as eager strips them (see _setitem)
                o_shape, o_strides = o_shape[1:], o_strides[1:]
        try:
            read = addresses(operand_offset, o_shape, o_strides).expand(written.shape)
        except RuntimeError:  # not broadcastable to the written shape: not elementwise
            return True
        # an element read at one place and written at another: eager's kernel visits the written elements in memory
        # order (TensorIterator orders the dims by the output's strides), on one thread below its grain size
        # (32,768 elements): it reads the old value, as the functional trace does, where the element is written
        # after it is read, at a higher address (`x[:, :-1] = x[:, 1:]`, which eager runs); a lower one, or another
        # thread, reads the new value
        read, written = read.contiguous(), written.contiguous()  # (isin views its operands flat)
        conflict = torch.isin(read, written) & (read != written)
        if written.numel() > 32768:
            return bool(conflict.any())
        return bool((conflict & (read < written)).any())

    def mutated_inputs(self) -> list[tuple[TensorProxy, TensorProxy]]:
        """(input proxy, its final value) for every input the function mutated."""
        pairs = []
        extra = [p for p, _ in self.training.state.inputs] if self.training is not None else []
        for p in [*self.input_proxies, *self._constant_proxies.values(), *extra]:
            if not isinstance(p, TensorProxy):
                continue
            value = self.resolve(p)
            if value is not p:
                pairs.append((p, value))
        return pairs


_EMBEDDING = torch.nn.functional.embedding  # (traced with max_norm as eager runs it: see _embedding_with_max_norm)
_EMBEDDING_SIGNATURE = inspect.signature(_EMBEDDING)

_tracers = ContextStack("thunder_tracers")  # per thread (see thunder.core.context)


def current_tracer() -> Tracer:
    return _tracers[-1]


class TracingMode(TorchFunctionMode):
    """Maps every torch call made while tracing to the symbol that records it."""

    records_into_thunder_traces = True  # what proxies' operators look for on top of the mode stack

    def __init__(self, tracer: Tracer):
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.tracer.training is not None:
            result = handle_training_call(self.tracer.training, func, args, kwargs)
            if result is not NOT_HANDLED:
                return result
        if func in _PASSTHROUGH:
            if _guard_sinks:  # torch itself cannot take number proxies (`x.size(n)`)
                args, kwargs = concrete_numbers((args, kwargs))
                if args and is_symbolic(args[0]):
                    return _symbolic_size_query(func, args, kwargs)
            return func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name == "__get__":
            owner_name = getattr(getattr(func, "__self__", None), "__name__", "")
            if owner_name not in _PASSTHROUGH_GETTERS_EXCEPT:
                return func(*args, **kwargs)
        what = _DATA_DEPENDENT.get(func)
        if what is not None:
            if func is _Tensor.data_ptr and _asked_by_rnn_flatten_parameters():
                # One answer for every weight: flatten_parameters then sees aliased weights and leaves them as they
                # are (its own early return). Packing the weights into one cuDNN buffer changes only their memory
                # layout, which the traced program does not depend on; the real weights stay packed.
                return 0
            if func is _Tensor.__bool__:  # `torch.rand([]) < layerdrop` with layerdrop 0 is always False
                known = certain_truth(self.tracer.resolve(args[0]))
                if known is not None:
                    return known
            raise data_dependent_error(what)
        if func is _Tensor.__setitem__:
            return self._setitem(*args)
        if name.startswith("_foreach_"):
            return self._foreach(name, args, kwargs)
        if name in _INPLACE_DUNDERS or (
            ltorch.is_inplace_name(name) and args and isinstance(args[0], torch.Tensor)
        ):
            return self._inplace(func, name, args, kwargs)
        if kwargs.get("requires_grad") is True:
            raise NotImplementedError(
                f"{getattr(func, '__name__', func)}(..., requires_grad=True) at {user_location()} creates a leaf tensor "
                "that requires grad inside a jitted function, whose gradient Thunder cannot accumulate into it. Create "
                "the tensor outside and pass it in (or make it a parameter of the module)."
            )
        if reads_tensor_values(func):  # torch.arange(n) with a 0-d tensor n: its value, guarded per call
            args, kwargs = with_guarded_values(self.tracer, func, args, kwargs, data_dependent_error)
        if func is _EMBEDDING:
            bound = _EMBEDDING_SIGNATURE.bind(*args, **kwargs)
            if bound.arguments.get("max_norm") is not None:
                return self._embedding_with_max_norm(bound)
        handler = self.tracer.replacements.get(func) or ltorch.torch_handler(func)
        kwargs = with_dropped_arguments(func, kwargs)
        resolved_args, resolved_kwargs = self._operands(args, kwargs)
        if _guard_sinks and func not in ltorch.SYMBOLIC_SCALAR_FNS and func not in SYMBOLIC_SIZE_FNS:
            resolved_args, resolved_kwargs = concrete_numbers((resolved_args, resolved_kwargs))
        if handler is None:
            handler = fallback.fallback_symbol(func)
            if handler is None:
                raise NotImplementedError(f"Thunder cannot trace {func} (called at {user_location()})")
        autocast = autocast_state()  # read per op: a `with torch.autocast(...)` inside the function changes it
        if autocast:
            resolved_args, resolved_kwargs = apply_autocast(
                getattr(handler, "name", ""), autocast, resolved_args, resolved_kwargs
            )
        call_args, call_kwargs = adapt_torch_call(func, handler, resolved_args, resolved_kwargs)
        out = handler(*call_args, **call_kwargs)
        return self._alias_like_eager(func, args, kwargs, resolved_args, resolved_kwargs, out)

    def _alias_like_eager(self, func, args, kwargs, resolved_args, resolved_kwargs, out):
        """The result as eager aliases it: `self` for a no-op (`a.float()` on float32), a view recorded where eager
        returns a view, and never an object the caller holds where eager copies (`x[idx]`, `x.t().reshape(-1)`)."""
        view_info = VIEW_OPS.get(func)
        self_arg = args[0] if args and isinstance(args[0], torch.Tensor) else None
        outs = out if isinstance(out, (tuple, list)) else (out,)
        operands = [x for x in tree_flatten((resolved_args, resolved_kwargs))[0] if isinstance(x, TensorProxy)]
        returns_operand = any(any(o is x for x in operands) for o in outs)
        tracer = self.tracer
        if not (
            view_info is not None
            or returns_operand
            or func in eager_layout.MAYBE_SELF
            or any(not eager_layout.is_contiguous_layout(concrete_shape(x), tracer.eager_strides(x)) for x in operands)
        ):
            return out
        meta = eager_layout.run_on_meta(func, resolved_args, resolved_kwargs, tracer.eager_strides)
        if self_arg is None and operands and not (resolved_args and isinstance(resolved_args[0], torch.Tensor)):
            # a number first (`torch.mul(3, x)`): run_on_meta reads the device from args[0], so it is handed the
            # first tensor operand in front, which the call drops. The result's layout is eager's (transposed for
            # a transposed x); there is no `self` it may alias.
            first = operands[0]
            meta = eager_layout.run_on_meta(lambda _first, *a, **k: func(*a, **k), (first, *resolved_args),
                                            resolved_kwargs, tracer.eager_strides)  # fmt: skip
            if meta is not None:
                self._set_eager_strides(outs, meta[1])
            meta = None
        if meta is None or self_arg is None:  # eager's layout unknown: a view op stays a view, the rest copies
            if view_info is not None and self_arg is not None:
                self._record_view(func, view_info, args, kwargs, out)
            may_be_self = view_info is not None or func in eager_layout.MAYBE_SELF
            if self_arg is not None and out is resolved_args[0] and may_be_self:
                return self_arg
            return self._copies_of_operands(out, operands) if returns_operand else out
        meta_self, meta_out = meta
        meta_outs = self._set_eager_strides(outs, meta_out)
        if meta_out is meta_self or (view_info is not None and out is resolved_args[0]):
            return self_arg  # eager returns the operand itself (or a view equal to it): the same object
        if view_info is not None and all(eager_layout.aliases(mo, meta_self) for mo in meta_outs):
            self._record_view(func, view_info, args, kwargs, out, (meta_self, meta_outs))
            return out
        return self._copies_of_operands(out, operands) if returns_operand else out

    def _set_eager_strides(self, outs, meta_out) -> tuple:
        """Records the strides eager gives the outputs (those of `meta_out`, run on meta); returns the meta outputs."""
        meta_outs = meta_out if isinstance(meta_out, (tuple, list)) else (meta_out,)
        for o, mo in zip(outs, meta_outs):
            if isinstance(o, TensorProxy) and isinstance(mo, torch.Tensor) and tuple(mo.shape) == concrete_shape(o):
                self.tracer.set_eager_strides(o, tuple(mo.stride()))
        return meta_outs

    @staticmethod
    def _copies_of_operands(out, operands):
        """out, where eager made a new tensor but the traced symbol returned one of its operands."""
        outs = out if isinstance(out, (tuple, list)) else (out,)
        copies = [ltorch.clone(o) if any(o is x for x in operands) else o for o in outs]
        return type(out)(copies) if isinstance(out, (tuple, list)) else copies[0]

    def _operands(self, args, kwargs):
        """The current values of args and kwargs; without gradients under torch.no_grad() (see Tracer)."""
        resolved = self.tracer.resolve(args), self.tracer.resolve(kwargs)
        if self.tracer.grad_enabled_at_start and not torch.is_grad_enabled():
            resolved = self.tracer.stop_gradients(resolved)
        return resolved

    def _record_view(self, func, view_info, args, kwargs, out, meta=None) -> None:
        """`meta`: (meta self, meta outputs) as eager_layout.run_on_meta ran the call, where it could: where the
        views lie in their base's memory."""
        if not isinstance(args[0], TensorProxy):  # a view of a captured tensor: writes through it reach the tensor
            args = (self.tracer.constant_proxy(args[0]), *args[1:])
        handler = ltorch.torch_handler(func)
        args, kwargs = positional_call(func, handler, args, kwargs)  # the scatter rules read operands by index
        rest = args[1:]
        scatter_factory = view_info
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for i, o in enumerate(outs):
            if isinstance(out, (tuple, list)):
                derive = lambda base, i=i: handler(base, *concrete_numbers(self.tracer.resolve(rest)), **kwargs)[i]
            else:
                derive = lambda base: handler(base, *concrete_numbers(self.tracer.resolve(rest)), **kwargs)
            scatter = scatter_factory(args[0], rest, kwargs, i) if scatter_factory is not True else None
            name = "data" if func == torch.Tensor.data.__get__ else getattr(func, "__name__", str(func))
            offset = 0 if name in ("detach", "data") else None
            if meta is not None and isinstance(meta[1][i], torch.Tensor):
                offset = meta[1][i].storage_offset() - meta[0].storage_offset()
            self.tracer.record_view(name, args[0], o, derive, scatter, offset)

    def _embedding_with_max_norm(self, bound: inspect.BoundArguments):
        """F.embedding(input, weight, max_norm=...) as eager runs it: first `torch.embedding_renorm_` of the rows
        `input` names, on `weight.detach()` under torch.no_grad() (the weight's data changes, the parameter stays
        the leaf), then the lookup."""
        arguments = {**bound.arguments}
        input, weight = arguments.pop("input"), arguments.pop("weight")
        max_norm, norm_type = arguments.pop("max_norm"), arguments.pop("norm_type", 2.0)
        with torch.no_grad():
            detached = self.__torch_function__(torch.Tensor.detach, (torch.Tensor,), (weight,), {})
            self.__torch_function__(torch.embedding_renorm_, (torch.Tensor,), (detached, input, max_norm, norm_type), {})
        return self.__torch_function__(_EMBEDDING, (torch.Tensor,), (input, weight),
                                       {**arguments, "norm_type": norm_type})  # fmt: skip

    def _foreach(self, name: str, args, kwargs):
        """`torch._foreach_<op>(tensors, ...)` (optimizers, clip_grad_norm_, zero_grad with foreach=True): the
        operation on each tensor in turn; an in-place form updates each tensor in place and returns None."""
        op = name[len("_foreach_"):]
        if op == "norm":
            per_tensor = torch.linalg.vector_norm
        else:
            per_tensor = getattr(torch.Tensor, op, None) if op.endswith("_") else getattr(torch, op, None)
        if per_tensor is None:
            raise NotImplementedError(f"torch.{name} (at {user_location()}) has no per-tensor form Thunder knows")
        count = len(args[0])

        def nth(x, i):
            return x[i] if isinstance(x, (list, tuple)) and len(x) == count else x

        results = []
        for i in range(count):
            nth_args = tuple(nth(a, i) for a in args)
            nth_kwargs = {k: nth(v, i) for k, v in kwargs.items()}
            results.append(self.__torch_function__(per_tensor, (), nth_args, nth_kwargs))
        return None if op.endswith("_") else results

    def _setitem(self, target, key, value):
        self.tracer.check_operands_do_not_overlap(target, [value], "__setitem__", key)
        (resolved, key, value), _ = concrete_numbers(self._operands((target, key, value), {}))
        if isinstance(value, TensorProxy):
            # eager strips the value's leading size-1 dims before broadcasting it to the indexed region (a [1, 2]
            # value into a [2] region; `slicePrefix1sSize` in torch's python_variable_indexing.cpp): so do we,
            # else the gradient of the value cannot be summed back to its shape
            shape = tuple(value.shape)  # (a symbolic size's comparison with 1 is guarded)
            lead = next((i for i, n in enumerate(shape) if n != 1), len(shape))
            if lead:
                value = ltorch.reshape(value, tuple(value.shape[lead:]))
        new_value = ltorch.setitem_functional(resolved, key, value)
        self.tracer.mutate(target, new_value, "__setitem__")
        return None

    def _inplace(self, func, name, args, kwargs):
        target = args[0]
        self.tracer.check_operands_do_not_overlap(target, tree_flatten((args[1:], kwargs))[0], f"Tensor.{name}")
        resolved, resolved_kwargs = self._operands(args, kwargs)
        special = ltorch.INPLACE_SPECIAL.get(name)
        if special is not None:
            if _guard_sinks:
                resolved, resolved_kwargs = concrete_numbers((resolved, resolved_kwargs))
            new_value = special(*resolved, **resolved_kwargs)
        else:
            out_of_place_name = _INPLACE_DUNDERS.get(name, name[:-1])
            oop = (
                getattr(torch.Tensor, out_of_place_name, None)
                or getattr(torch, out_of_place_name, None)
                or getattr(torch.nn.functional, out_of_place_name, None)
            )
            if _guard_sinks and oop not in ltorch.SYMBOLIC_SCALAR_FNS:
                resolved, resolved_kwargs = concrete_numbers((resolved, resolved_kwargs))
            handler = ltorch.torch_handler(oop) if oop is not None else None
            if handler is None:
                raise NotImplementedError(
                    f"the in-place operation Tensor.{name} (at {user_location()}) has no functional form in Thunder; "
                    f"use an out-of-place equivalent"
                )
            resolved, resolved_kwargs = adapt_torch_call(oop, handler, resolved, resolved_kwargs)
            new_value = handler(*resolved, **resolved_kwargs)
        if name == "requires_grad_":
            return target
        if name in _METADATA_INPLACE:
            unchanged = tuple(new_value.shape) == tuple(target.shape)
            if unchanged and (name in ("squeeze_", "unsqueeze_") or target.ndim < 2):
                return target  # eager changes nothing
            raise NotImplementedError(
                f"Tensor.{name} at {user_location()} changes the shape or strides of the tensor object in place, "
                f"which Thunder does not support; use the out-of-place form and rebind the name: "
                f"x = x.{name[:-1]}(...)"
            )
        self.tracer.mutate(target, new_value, f"Tensor.{name}")
        return target


def acquire_trace(
    fn: Callable,
    leaves: list,
    spec,
    *,
    names: list[str] | None = None,
    replacements: dict | None = None,
    symbolic_numbers: bool = False,
    duplicates: dict[int, int] | None = None,
    symbolic_sizes_from: int | None = None,
    executors: tuple = (),
    compiling: bool = True,
) -> tuple[TraceCtx, Tracer, Any]:
    """Traces `fn(*args, **kwargs)`, where `(args, kwargs) = tree_unflatten(leaves, spec)`.

    Every tensor leaf becomes an input proxy (named from `names` where given), and so does every int and
    float leaf when `symbolic_numbers`. Returns the trace, whose output is the flat list of result leaves
    and whose inputs are those input proxies followed by the real tensors met while tracing (closures,
    globals); the tracer; and the result's tree spec. `duplicates` maps a leaf's index to that of an earlier
    leaf that is the same tensor object: both get one proxy, so a write through one shows in the other. Number proxies record their guards into the
    innermost `collecting_guards` list, which the caller opens.

    A function that takes part in a training step (`loss.backward()`, `.grad`, `optimizer.step()`, see
    thunder.frontend.train_step) has further inputs after those (gradients, optimizer state, learning rates)
    and further outputs after its own; `trace.tags["program_state"]` says how to read and write them.

    `compiling`: whether `torch.compiler.is_compiling()` answers True meanwhile (see `_compiling`).
    """
    from thunder.frontend.batchnorm_forward import traceable_cumulative_batch_norm  # a cycle: it imports this module
    from thunder.frontend.function_replacements import replacing_python_functions  # a cycle: it imports this module
    from thunder.frontend.torch_func_calls import thunder_torch_func_transforms  # a cycle: it imports this module

    trace = TraceCtx()
    tracer = Tracer(trace, replacements)
    tracer.executors = tuple(executors)
    tracer.training = TrainingTracer(tracer)
    _tracers.append(tracer)
    try:
        with tracectx(trace), _compiling(compiling), intercepting_optimizer_steps(tracer.training):
            proxied = _proxy_leaves(leaves, names, trace, tracer, symbolic_numbers, duplicates or {},
                                    symbolic_sizes_from)
            args, kwargs = tree_unflatten(proxied, spec)
            symbolic_factories = factories_taking_symbolic_sizes() if symbolic_sizes_from is not None else nullcontext()
            with TracingMode(tracer), traced_autograd_functions(), python_originals_of_script_functions(), \
                    recording_checkpoints(), seeding_in_the_program(), thunder_torch_func_transforms(), \
                    replacing_python_functions(tracer.replacements), traceable_cumulative_batch_norm(), symbolic_factories:
                result = fn(*args, **kwargs)
            if inspect.isgenerator(result) or inspect.iscoroutine(result) or inspect.isasyncgen(result):
                getattr(result, "close", lambda: None)()
                raise NotImplementedError(
                    f"thunder.jit of {getattr(fn, '__qualname__', fn)}: the function is a generator (or async) "
                    "function, which Thunder does not support: its body runs lazily, after the call returns. Jit a "
                    "function that returns the values (a list) instead, or jit the work done for each item."
                )
            out_leaves, out_spec = tree_flatten(result)
            out_leaves = [tracer.resolve(x) if isinstance(x, torch.Tensor) else x for x in out_leaves]
            training = tracer.training if uses_training(tracer.training) else None
            differentiable = torch.is_grad_enabled() and any(
                p.requires_grad for p in [*tracer.input_proxies, *tracer._constant_proxies.values()]
                if isinstance(p, TensorProxy))  # fmt: skip
            side_outputs = training.finish(differentiable) if training is not None else []
            for proxy, value in tracer.mutated_inputs():
                prims.copy_to(proxy, value)
    finally:
        _tracers.pop()
        tracer.input_tensors.clear()  # the call's tensors: not kept alive by a cache entry that holds the tracer
    extra_inputs = [p for p, _ in training.state.inputs] if training is not None else []
    trace.args = [*tracer.input_proxies, *tracer._constant_proxies.values(), *extra_inputs]
    if training is not None:
        trace.tags["program_state"] = training.state
    trace.output = [*out_leaves, *side_outputs]
    trace.provenance = "acquisition"
    return trace, tracer, out_spec


@contextmanager
def _compiling(active: bool = True):
    """`torch.compiler.is_compiling()` answers True while we acquire, as under torch.compile and torch.export.

    Libraries guard their data-dependent fast paths and checks with it (Hugging Face's mask creation calls
    `bool(mask.all())` unless it is tracing), and take a traceable path instead. torch.export's non-strict
    mode sets the same flag (torch/_export/utils.py). A library's compile path can be wrong where its eager
    path is not (transformers 4.5x's BART without a decoder mask, under torch.compile too): thunder.jit then
    acquires again with `active=False`, which leaves the flag alone (see `JittedFunction._acquire`).
    """
    if not active:
        yield
        return
    # The flag is process-wide: with several threads acquiring at once, the last one out restores it.
    with _compiling_lock:
        if _compiling_state["depth"] == 0:
            _compiling_state["previous"] = torch.compiler._is_compiling_flag
            torch.compiler._is_compiling_flag = True
        _compiling_state["depth"] += 1
    try:
        yield
    finally:
        with _compiling_lock:
            _compiling_state["depth"] -= 1
            if _compiling_state["depth"] == 0:
                torch.compiler._is_compiling_flag = _compiling_state["previous"]


_compiling_lock = threading.Lock()
_compiling_state = {"depth": 0, "previous": False}


def _proxy_leaves(
    leaves: list, names: list | None, trace: TraceCtx, tracer: Tracer, symbolic_numbers: bool, duplicates: dict,
    symbolic_sizes_from: int | None = None,
) -> list:
    """The leaves with input proxies in place of tensors (and numbers when `symbolic_numbers`). Tensor leaves
    from index `symbolic_sizes_from` on get symbolic sizes (see thunder.frontend.symbolic_shapes)."""
    is_input = [isinstance(x, torch.Tensor) or (symbolic_numbers and is_symbolic_number(x)) for x in leaves]
    # user names first: the names made for sizes below must not take one of them
    leaf_names: dict[int, str | None] = {}
    for i in (i for i in range(len(leaves)) if is_input[i] and i not in duplicates):
        name = names[len(leaf_names)] if names and len(leaf_names) < len(names) else None
        if name is not None:
            trace.add_name(name)
        leaf_names[i] = name
    proxied = []
    position = 0  # among the call's flat inputs (duplicates included): what a guard's Expr reads
    for i, leaf in enumerate(leaves):
        if i in duplicates:
            proxied.append(proxied[duplicates[i]])
        elif is_input[i]:
            name = leaf_names[i]
            if not isinstance(leaf, torch.Tensor):
                proxy = number_proxy(leaf, name or trace.make_name("n"), expr=Expr("input", position))
            elif symbolic_sizes_from is not None and i >= symbolic_sizes_from:
                proxy = symbolic_input_proxy(leaf, position, symbolic_dims(leaf), name)
            else:
                proxy = proxy_like_tensor(leaf, name or trace.make_name("t"))
            if isinstance(leaf, torch.Tensor):
                tracer.input_tensors[id(proxy)] = (position, leaf)
            tracer.input_proxies.append(proxy)
            proxied.append(proxy)
        else:
            proxied.append(leaf)
        position += is_input[i]
    return proxied


def _symbolic_size_query(func, args, kwargs):
    """A metadata query on a proxy with symbolic sizes: sizes answer with the symbols; anything else computed
    from the sizes (strides, contiguity) guards every size's value first."""
    query = _SIZE_QUERIES.get(func)
    if query is not None:
        return query(*args, **kwargs)
    for length in args[0].shape:
        int(length)
    return func(*args, **kwargs)


_SIZE_QUERIES = {
    _Tensor.size: TensorProxy.size, _Tensor.numel: TensorProxy.numel, _Tensor.nelement: TensorProxy.numel,
    torch.numel: TensorProxy.numel, _Tensor.__len__: TensorProxy.__len__, _Tensor.dim: TensorProxy.dim,
    _Tensor.ndimension: TensorProxy.dim, _Tensor.is_floating_point: TensorProxy.is_floating_point,
    _Tensor.is_complex: TensorProxy.is_complex, torch.is_floating_point: TensorProxy.is_floating_point,
    torch.is_complex: TensorProxy.is_complex, torch.is_tensor: torch.is_tensor, _Tensor.get_device: _Tensor.get_device,
    _Tensor.element_size: _Tensor.element_size, _Tensor.is_signed: _Tensor.is_signed, torch.is_signed: torch.is_signed,
    _Tensor.type: _Tensor.type, torch.result_type: torch.result_type, torch._C._set_grad_enabled:
    torch._C._set_grad_enabled, torch.device: torch.device, _Tensor.__format__: _Tensor.__format__,
    _Tensor.__hash__: _Tensor.__hash__,  # by identity
}  # fmt: skip


def concrete_numbers(x):
    """x with every number proxy replaced by its value (each value guarded, see thunder.core.proxies)."""
    if isinstance(x, NumberProxy):
        return x.concrete()
    if type(x) is tuple or type(x) is list:
        return type(x)(concrete_numbers(v) for v in x)
    if type(x) is dict:
        return {k: concrete_numbers(v) for k, v in x.items()}
    if isinstance(x, slice):
        return slice(concrete_numbers(x.start), concrete_numbers(x.stop), concrete_numbers(x.step))
    return x


# cache="symbolic values": while a function is compiled, the (expr, outcome) pairs its program depends on
# (see thunder.core.proxies) are collected here, from acquisition and from every later pass (a user
# autograd.Function's backward may branch on a number when autodiff traces it).
_guard_sinks = ContextStack("thunder_guard_sinks")


@contextmanager
def collecting_guards(guards: list):
    """Guards recorded inside are appended to `guards`; number proxies may flow through torch calls."""
    _guard_sinks.append(guards)
    try:
        yield guards
    finally:
        _guard_sinks.pop()


class GuardList(list):
    """(expr, outcome) pairs, each once: the same relation met twice is checked once."""

    def __init__(self):
        super().__init__()
        self._seen: set = set()

    def append(self, guard) -> None:
        expr, outcome = guard
        try:
            key = (expr, type(outcome), repr(outcome))
            if key in self._seen:
                return
            self._seen.add(key)
        except TypeError:  # an unhashable expression (made by other code): kept as it is
            pass
        super().append(guard)

    def clear(self) -> None:
        super().clear()
        self._seen.clear()  # else a guard met again after clearing would be dropped as already present


def _guard(expr: Callable, outcome, proxy: NumberProxy) -> None:
    """The concretization hook: the program depends on `expr(inputs) == outcome`."""
    if _guard_sinks:
        _guard_sinks[-1].append((expr, outcome))
    elif _tracers or get_tracectx() is not None:
        # no compilation collects guards: a value used here would be an unguarded specialization
        raise RuntimeError(
            f"the value of the symbolic number {proxy.name} was needed outside a compilation that guards it; "
            "this is a bug in the component that asked. Use cache='constant values' meanwhile."
        )


register_concretization_hook(_guard)


def _torch_tracing_context():
    """Torch calls on proxies record into the current trace (see core.trace.torch_tracing).

    During acquisition that is the acquiring tracer's mode; in a later pass (an execution transform, a
    grad rule, an operator defined `like=` a Python function) a tracer for the pass's trace.
    """
    if any(isinstance(m, TracingMode) for m in _active_modes()):
        return nullcontext()
    if _tracers:
        return TracingMode(_tracers[-1])
    trace = get_tracectx()
    return nullcontext() if trace is None else _tracing_in_a_pass(trace)


@contextmanager
def _tracing_in_a_pass(trace: TraceCtx):
    tracer = Tracer(trace)
    _tracers.append(tracer)
    try:
        with TracingMode(tracer):
            yield
    finally:
        _tracers.pop()


def _active_modes() -> list:
    from torch.overrides import _get_current_function_mode_stack

    return _get_current_function_mode_stack()


register_torch_tracing(_torch_tracing_context)
