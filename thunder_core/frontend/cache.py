"""The cache key and the per-call guards: how a jitted callable decides that a compiled program still applies.

A trace is Python run once with proxies; every other value it touched was baked into the program. Each
call must therefore prove that the program is still the one eager PyTorch would run. Thunder splits that
proof in two: a **key**, hashed and looked up in one dict, for everything that comes from the arguments
and global torch state, and **guards**, checked on each call of an entry, for everything else the trace
read. A silently stale result is the worst bug a compiler can have, so whatever the trace specialized on
is in one of the two, except the few things listed under "Never checked" below.

What is keyed
-------------

- **Tensor arguments**: shape, strides, dtype, device, ``requires_grad``. A module's parameters and
  buffers: shape, dtype, device, ``requires_grad``, in the order they are registered (the trace takes the
  tensors themselves as inputs, so replacing a parameter by another of the same metadata reuses the
  program).
- **Aliasing between tensor inputs**: ``None`` when no two share storage, else which input shares storage
  with which, and which are the same object (``alias_pattern`` in ``thunder.frontend.guards``). ``f(t, t)``
  is compiled with one proxy for both, so ``a.add_(1)`` shows in ``b`` as in eager; distinct tensors that
  share memory (a base and its view) are compiled as separate inputs when the function only reads them,
  and are refused with a clear error when it writes into one of them.
- **Python scalars**: by type and value; floats and complex numbers **by their bits**, so ``-0.0`` is not
  ``0.0`` (``x / s`` gives ``-inf``) and NaN finds its own entry. ``True`` is not ``1``. Under
  ``cache="symbolic values"`` ints and floats are inputs of the trace and keyed by type only, and tensor
  arguments' lengths of 2 or more are symbols (``thunder.frontend.symbolic_shapes``); the relations the program
  relied on (``n > 0``, ``x.shape[1] == y.shape[0]``) are checked per entry, floats again by bits.
- **Other hashable leaves** (strings, dtypes, enums) by value; unhashable objects by identity (the entry
  keeps the object alive, so its id cannot be reused).
- **Global torch state**: grad mode, autocast state, default dtype; a module's ``training`` flags.

What is checked on each call
----------------------------

While the function is traced a ``GuardRecorder`` notes every user function that runs (a trace function
sees each Python call) and every ``nn.Module`` attribute read (a temporary ``__getattribute__`` and
``__getattr__`` on ``torch.nn.Module``). From these it derives, and checks per call:

- **Globals** the bytecode of each user function loads (``LOAD_GLOBAL``), with the **attribute chains**
  read from them (``cfg.model.scale`` where ``cfg`` is an object, a class or a user module; a class
  attribute is checked on the class that defines it and as absent on the classes and instance before it).
- **Closure cells** those functions load (``LOAD_DEREF``): a ``nonlocal`` float or tensor, a closed-over
  list; and their ``__defaults__`` and ``__kwdefaults__``.
- **Module attributes** read by ``forward`` and everything it calls: plain values (``self.scale``, an int
  used as a shape, a flag), plain tensor attributes, class attributes, submodule identity
  (``m.act = nn.Tanh()``), whether a parameter or buffer is present or ``None`` (``lin.bias = None``,
  ``del m.extra``), and attributes read but absent (``getattr(self, "p", None)``).
- **Hooks**: each called module's forward, pre-forward and backward hook tables, and torch's global
  module hook tables.
- **Arguments that are plain objects**: their ``__dict__``, shallowly.

A value is checked by identity first (the common case: nothing changed), then by value for immutable
values (ints, strings, floats by their bits, tuples element by element), and shallowly for lists and
dicts (the same object, the same length, the same elements by identity). All checks of an entry are one
generated Python function with the recorded objects bound as constants; a call with plain tensor
arguments runs one generated function that checks metadata (with torch's C++ ``TensorGuards`` where
available), aliasing, global state and the guards, then the program. A failed check compiles a new entry
beside the old ones, so changing a value back finds its program again. The same guards apply under
``cache="symbolic values"`` (a changed global number recompiles); ``cache="same input"`` checks nothing,
as its name promises, and ``"no caching"`` compiles every call.

Never checked, and why
----------------------

- **Library internals**: code, globals and attributes of torch, Thunder and the standard library
  (``torch.nn.functional.gelu`` patched after ``jit``, ``torch.autograd.Function.apply``). The trace
  records torch operations by what they are, and checking every internal read would cost more than the
  call; patch before ``jit``.
- **Builtins** (``len``, ``range``) and a global that later shadows one.
- **Deeper contents**: elements of a list or dict are compared by identity only, so a list of lists
  changed in place, or ``LAYERS[0].scale`` (an attribute of an element), is not seen. Attribute chains are
  followed four deep.
- **Attributes read by name at run time** on objects that are neither modules, arguments nor reached by
  a static chain (``getattr(obj, name)``), objects with ``__slots__`` passed as arguments, and values read
  by C extensions.
- **Tensor data**: captured tensors are passed to the program on each call, so changes to their values
  are seen; changes to their metadata in place (``resize_``) are not.
- **Reads from other threads** while one thread traces, and functions created while tracing.

Beside Lightning Thunder and torch.compile
------------------------------------------

Lightning Thunder interprets the function's bytecode itself and records where each value came from; its
*prologue*, a trace run before the computation on each call, unpacks every such value (arguments,
globals, closure cells, module attributes) and checks tensor metadata and the values of numbers and
strings. Here the tracer runs the user's Python directly, so provenance comes from the bytecode and module
reads recorded above, and the checks are a generated function rather than a trace. Under
``"symbolic values"`` both make numbers inputs of the program.

torch.compile's Dynamo also traces bytecode (PEP 523 frame evaluation) and installs guards on everything
the frame read: tensor matches (dtype, device, shape, strides, dispatch keys), identity and equality of
Python values, dict keys, global torch state, and the absence of aliasing between tensor inputs, compiled
into a C++ guard tree. Its failed guards also recompile, up to a limit per code object. The main difference here: Thunder guards what ran
during tracing at the granularity of whole functions' loads and module attribute reads, without a
bytecode interpreter, and keeps its fast path in Python.
"""

from __future__ import annotations

import struct

import torch

from thunder.core.pytree import tree_flatten
from thunder.frontend.symbolic_shapes import symbolic_tensor_key

CACHE_OPTIONS = ("no caching", "same input", "constant values", "symbolic values")
_Tensor = torch.Tensor
_float_bits = struct.Struct("<d").pack


def resolve_cache_option(option) -> str:
    if option is None:
        return "constant values"
    value = getattr(option, "value", option)  # accept an enum-like object
    if isinstance(value, str):
        normalized = value.replace("_", " ").lower()
        if normalized in CACHE_OPTIONS:
            return normalized
    raise ValueError(f"unknown cache option {option!r}; valid options are {', '.join(repr(o) for o in CACHE_OPTIONS)}")


_is_grad_enabled = torch.is_grad_enabled
_any_autocast = torch._C._is_any_autocast_enabled
_default_dtype = torch.get_default_dtype


def autocast_key():
    """False when no autocast is active (the common case, one cheap call), else the active state."""
    if not _any_autocast():
        return False
    return tuple(
        (device, torch.get_autocast_dtype(device)) for device in ("cpu", "cuda") if torch.is_autocast_enabled(device)
    )


def device_key():
    """Where a device without an index resolves (see thunder.core.devices): the innermost default-device mode
    (`torch.set_default_device`, `with torch.device(...)`) and, once CUDA is initialized, the current CUDA device.
    A trace that created `torch.zeros(3)` or `device="cuda"` tensors is valid only there."""
    # before CUDA is initialized the current device is 0 (setting another one initializes it)
    cuda = _cuda.current_device() if _cuda._initialized else 0
    if not _function_mode_stack_len():  # the common case: no mode, factories use the CPU
        return cuda
    from torch.overrides import _get_current_function_mode_stack
    from torch.utils._device import DeviceContext

    modes = _get_current_function_mode_stack()
    _refuse_user_function_modes(modes, DeviceContext)
    for mode in reversed(modes):
        if isinstance(mode, DeviceContext):
            return (str(mode.device), cuda)
    return cuda


def _refuse_user_function_modes(modes: list, device_context: type) -> None:
    """A user's own `TorchFunctionMode` active around a call of a jitted function: eager would hand every torch
    call of the function to its `__torch_function__`, but the compiled program makes other calls (decompositions,
    fused kernels that no mode sees) and was traced without it, so its result could silently differ from eager's.
    Thunder's own modes (the tracer's, for a jitted function called while another is traced) and torch's device
    context (`with torch.device(...)`, part of the key) are not the user's."""
    for mode in modes:
        kind = type(mode)
        if kind is device_context or issubclass(kind, device_context) or kind.__module__.startswith("thunder"):
            continue
        raise RuntimeError(
            f"a jitted function was called under the TorchFunctionMode {kind.__module__}.{kind.__qualname__}: "
            "Thunder's compiled program does not run the mode's __torch_function__ for each torch call as eager does "
            "(its operations are decomposed and fused), so the result could differ from eager's. Enter the mode inside "
            "the jitted function instead (`with MyMode(): ...` in its body: the tracer records what the mode does, and "
            "Python side effects in the mode then happen once, while tracing), or call the jitted function outside "
            "the mode (or the original function, eagerly, under it)."
        )


_function_mode_stack_len = torch._C._len_torch_function_stack
_cuda = torch.cuda  # `_initialized`: torch.cuda.is_initialized() without its fork check, read on every call


def global_state_key() -> tuple:
    return (_is_grad_enabled(), autocast_key(), _default_dtype(), device_key())


def scalar_key(x):
    """A Python scalar's key: floats (and complex numbers) by their bits, so that -0.0 is not 0.0 (`x / s` gives
    -inf) and NaN finds its entry (NaN != NaN would miss every time); True is not 1 (the type is part of it)."""
    kind = type(x)
    if kind is float:
        return (float, _float_bits(x))
    if kind is complex:
        return (complex, _float_bits(x.real), _float_bits(x.imag))
    return (kind, x)


def _leaf_key(x):
    if isinstance(x, _Tensor):
        return (x.shape, x.stride(), x.dtype, x.device, x.requires_grad)
    if type(x) is float or type(x) is complex:
        return scalar_key(x)
    try:
        hash(x)
    except TypeError:
        return ("id", type(x), id(x))
    return (type(x), x)


def is_symbolic_number(x) -> bool:
    """Whether a leaf is an input number under cache="symbolic values": ints and floats, not bools (flags)."""
    return type(x) is int or type(x) is float


def _symbolic_leaf_key(x):
    if is_symbolic_number(x):
        return ("number", type(x))
    if isinstance(x, _Tensor):
        return symbolic_tensor_key(x)
    return _leaf_key(x)


def _plain_tensors(args: tuple, kwargs: dict) -> bool:
    return not kwargs and all(type(a) is _Tensor for a in args)


_SCALAR_TYPES = (int, float, bool, type(None))


def flatten_and_key(args: tuple, kwargs: dict, symbolic: bool = False) -> tuple[tuple, list]:
    """(key, inputs) for one call: inputs are the tensors, and under `symbolic` the numbers too, in order."""
    if symbolic:  # tensor sizes are symbols too: see thunder.frontend.symbolic_shapes
        if not kwargs and all(type(a) is _Tensor or type(a) in _SCALAR_TYPES for a in args):
            # plain tensors and scalars: no tree to flatten (a spec-less key, unlike the tree path's)
            key = tuple([_symbolic_leaf_key(a) if type(a) is not bool and a is not None else (type(a), a)
                         for a in args])  # fmt: skip
            return key, [a for a in args if type(a) is _Tensor or is_symbolic_number(a)]
        leaves, spec = tree_flatten((args, kwargs))
        key = (spec, tuple(_symbolic_leaf_key(x) for x in leaves))
        return key, [x for x in leaves if isinstance(x, _Tensor) or is_symbolic_number(x)]
    if _plain_tensors(args, kwargs):  # the hot path: plain tensors only
        key = tuple([(a.shape, a.stride(), a.dtype, a.device, a.requires_grad) for a in args])
        return key, list(args)
    if not kwargs and all(type(a) is _Tensor or type(a) in _SCALAR_TYPES for a in args):
        # tensors and Python scalars side by side (`f(x, 0.5)`): no tree to flatten. Its key holds a scalar's
        # entry, so it never equals a key of the plain-tensor path; nor of the tree path, which starts with a spec.
        key, inputs = [], []
        for a in args:
            if type(a) is _Tensor:
                key.append((a.shape, a.stride(), a.dtype, a.device, a.requires_grad))
                inputs.append(a)
            else:
                key.append((float, _float_bits(a)) if type(a) is float else (type(a), a))
        return tuple(key), inputs
    leaves, spec = tree_flatten((args, kwargs))
    key = (spec, tuple(_leaf_key(x) for x in leaves))
    return key, [x for x in leaves if isinstance(x, _Tensor)]


def sparse_argument_error(args: tuple, kwargs: dict) -> NotImplementedError | None:
    """The error for a call with a sparse tensor argument (COO, CSR, CSC, BSR, BSC), naming the argument; None
    where every tensor is strided. Asked only when reading the arguments' metadata failed (sparse tensors have
    no strides), so the hot path pays nothing."""
    named = [(f"argument {i}", a) for i, a in enumerate(args)] + [(f"argument {k!r}", v) for k, v in kwargs.items()]
    for name, value in named:
        for leaf in tree_flatten(value)[0]:
            if isinstance(leaf, _Tensor) and leaf.layout != torch.strided:
                return NotImplementedError(
                    f"sparse tensors are not supported: {name} of the jitted function is a {leaf.layout} tensor "
                    f"of shape {tuple(leaf.shape)}. Convert it with .to_dense() before the call, or call the "
                    "function without thunder.jit."
                )
    return None


def input_tensors(args: tuple, kwargs: dict) -> list:
    """The call's tensors, without a key (cache="same input" promises the metadata is the first call's)."""
    if _plain_tensors(args, kwargs):
        return list(args)
    return [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, _Tensor)]
