"""Value guards: a 0-d tensor argument whose value the program depends on, read while tracing and checked per call.

`torch.arange(n)` with `n` a 0-d tensor is valid eager code: torch reads the tensor's value (a host sync on
CUDA) and the output's length depends on it. A trace cannot express a length that depends on tensor data, so
where such a tensor is one of the traced function's own tensors, unchanged since the call began (an argument, a
module's parameter or buffer, a captured tensor), the tracer reads its value, traces with that number, and
records a **value guard**: each later call reads the tensor's value again (the same sync eager makes) and uses
the compiled program only if it is the same, compiling another entry otherwise. A value computed inside the
function (`torch.arange(x.sum())`) stays a data-dependent error: nothing outside the program holds it.

Only the operations listed in `_VALUE_ARGUMENTS` read values this way (their number arguments fix the output's
shape); everywhere else a tensor's value is data-dependent, as before.
"""

from __future__ import annotations

import torch

from thunder.core.proxies import TensorProxy
from thunder.frontend.guards import same_value

# torch function -> the names of its arguments, in order, that eager converts from a 0-d tensor to a number
_VALUE_ARGUMENTS = {torch.arange: ("start", "end", "step")}


def reads_tensor_values(func) -> bool:
    return func in _VALUE_ARGUMENTS


def with_guarded_values(tracer, func, args: tuple, kwargs: dict, data_dependent_error) -> tuple[tuple, dict]:
    """`args`/`kwargs` of `func` with each 0-d tensor in a value position replaced by its value (as eager's
    argument parser does), guarded per call; tensors elsewhere are left as they are. A tensor computed inside
    the function raises `data_dependent_error(what)` (the tracer's error)."""
    names = _VALUE_ARGUMENTS[func]
    if func is torch.arange and len(args) == 1:  # arange(end)
        names = ("end",)

    def number(name, value):
        return _number_of(tracer, func, name, value, data_dependent_error)

    args = tuple(number(names[i] if i < len(names) else None, a) for i, a in enumerate(args))
    kwargs = {k: number(k if k in names else None, v) for k, v in kwargs.items()}
    return args, kwargs


def _number_of(tracer, func, name: str | None, value, data_dependent_error):
    if name is None or not isinstance(value, torch.Tensor):
        return value
    op = getattr(func, "__name__", "the operation")
    if value.ndim != 0 or value.requires_grad or value.dtype.is_complex:
        # eager's own refusal, with its message: only a 0-d tensor that does not require grad is a number
        raise TypeError(f"{op}(): argument '{name}' must be Number, not Tensor")
    source = _source_of(tracer, value)
    if source is None:
        raise data_dependent_error(f"{op}() with a tensor `{name}` computed or changed inside the function (its value)")
    number = _read(source[1])
    tracer.value_guards.append((source[0], number))
    return number


def _source_of(tracer, value) -> tuple | None:
    """((kind, where), the real tensor) for a tensor the function holds unchanged since the call began: kind
    "input" with its position among the call's flat inputs, or "object" with a captured tensor; else None."""
    current = tracer.resolve(value)
    if isinstance(value, TensorProxy):
        entry = tracer.input_tensors.get(id(value))
        if entry is None or current is not value:  # computed here, or written to before this read
            return None
        position, tensor = entry
        return ("input", position), tensor
    proxy = tracer.constant_proxy(value)
    if current is not proxy:
        return None
    return ("object", value), value


def _read(tensor: torch.Tensor):
    number = tensor.item()
    return int(number) if isinstance(number, bool) else number


def values_hold(guards: tuple, flat_inputs) -> bool:
    """Whether every value guard of an entry holds for this call's flat inputs (floats compared by their bits)."""
    for (kind, where), number in guards:
        tensor = flat_inputs[where] if kind == "input" else where
        try:
            current = _read(tensor)
        except (RuntimeError, ValueError, IndexError):  # no longer a one-element tensor: not the traced call
            return False
        if not same_value(current, number):
            return False
    return True
