"""Value guards: a 0-d tensor argument whose value the program depends on, read while tracing and checked per call.

`torch.arange(n)` with `n` a 0-d tensor is valid eager code: torch reads the tensor's value (a host sync on
CUDA) and the output's length depends on it. A trace cannot express a length that depends on tensor data, so
where such a tensor is one of the traced function's own tensors, unchanged since the call began (an argument, a
module's parameter or buffer, a captured tensor), the tracer reads its value, traces with that number, and
records a **value guard**: each later call reads the tensor's value again (the same sync eager makes) and uses
the compiled program only if it is the same, compiling another entry otherwise. A value computed inside the
function (`torch.arange(x.sum())`) stays a data-dependent error: nothing outside the program holds it.

The same holds for `tensor_split` with a tensor of indices (eager requires it on the CPU) and `repeat_interleave`
with tensor repeats: a 1-d tensor's values are read as a list of ints and guarded together. Only the operations
listed in `_VALUE_ARGUMENTS` read values this way (these arguments fix the output's shape); everywhere else a
tensor's value is data-dependent, as before.
"""

from __future__ import annotations

import torch

from thunder.core.proxies import TensorProxy
from thunder.frontend.guards import same_value

# torch function -> (the names of its arguments, by position, whose tensor values eager reads; the most dims such a
# tensor may have: 0 for a number, 1 for a list of ints); None marks a position that is not read
_ARANGE = (("start", "end", "step"), 0)
_TENSOR_SPLIT = ((None, "indices_or_sections", "tensor_indices_or_sections"), 1)
_REPEATS = ((None, "repeats"), 1)
_VALUE_ARGUMENTS = {
    torch.arange: _ARANGE, torch.tensor_split: _TENSOR_SPLIT, torch.Tensor.tensor_split: _TENSOR_SPLIT,
    torch.repeat_interleave: _REPEATS, torch.Tensor.repeat_interleave: _REPEATS,
}  # fmt: skip


def reads_tensor_values(func) -> bool:
    return func in _VALUE_ARGUMENTS


def with_guarded_values(tracer, func, args: tuple, kwargs: dict, data_dependent_error) -> tuple[tuple, dict]:
    """`args`/`kwargs` of `func` with each tensor in a value position replaced by its value (a number, or a list for
    a 1-d tensor, as eager reads it), guarded per call; tensors elsewhere are left as they are. A tensor computed
    inside the function raises `data_dependent_error(what)` (the tracer's error)."""
    names, max_ndim = _VALUE_ARGUMENTS[func]
    if func is torch.arange and len(args) == 1:  # arange(end)
        names = ("end",)
    elif func is torch.repeat_interleave and len(args) + len(kwargs) == 1:
        return args, kwargs  # repeat_interleave(repeats): its output's length is the sum of the values (data)

    def value(name, x):
        return _value_of(tracer, func, name, x, max_ndim, data_dependent_error)

    if func in (torch.repeat_interleave, torch.Tensor.repeat_interleave):
        return _with_output_size(args, kwargs, value)
    args = tuple(value(names[i] if i < len(names) else None, a) for i, a in enumerate(args))
    kwargs = {k: value(k if k in names else None, v) for k, v in kwargs.items()}
    return args, kwargs


def _with_output_size(args: tuple, kwargs: dict, value) -> tuple[tuple, dict]:
    """repeat_interleave(input, repeats, dim) with tensor repeats: the repeats stay a tensor of the program, and the
    output's length their values give (eager's `output_size`, with which torch reads no value) is passed along."""
    names = ("input", "repeats", "dim")
    bound = {**dict(zip(names, args)), **kwargs}
    repeats = bound.get("repeats")
    if not isinstance(repeats, torch.Tensor) or bound.get("output_size") is not None:
        return args, kwargs
    counts = value("repeats", repeats)
    if isinstance(counts, torch.Tensor):
        return args, kwargs  # not ints: the symbol refuses it
    counts = counts if isinstance(counts, list) else [counts]
    if any(c < 0 for c in counts):
        raise RuntimeError("repeats can not be negative")
    source, dim = bound["input"], bound.get("dim")
    length = source.numel() if dim is None else source.shape[dim]
    size = sum(counts) if len(counts) != 1 else counts[0] * length
    return args, {**kwargs, "output_size": size}


def _value_of(tracer, func, name: str | None, value, max_ndim: int, data_dependent_error):
    if name is None or not isinstance(value, torch.Tensor):
        return value
    op = getattr(func, "__name__", "the operation")
    if max_ndim == 0 and (value.ndim != 0 or value.requires_grad or value.dtype.is_complex):
        # eager's own refusal, with its message: only a 0-d tensor that does not require grad is a number
        raise TypeError(f"{op}(): argument '{name}' must be Number, not Tensor")
    if max_ndim == 1 and (value.ndim > 1 or value.dtype.is_floating_point or value.dtype.is_complex
                          or value.dtype == torch.bool):  # fmt: skip
        return value  # not ints: the symbol refuses it
    source = _source_of(tracer, value)
    if source is None:
        raise data_dependent_error(f"{op}() with a tensor `{name}` computed or changed inside the function (its value)")
    read = _read(source[1])
    tracer.value_guards.append((source[0], read))
    return list(read) if isinstance(read, tuple) else read


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
    """A 0-d tensor's value as a number (a bool as an int, as eager's arange takes it), a 1-d tensor's as a tuple."""
    if tensor.ndim == 1:
        return tuple(tensor.tolist())
    number = tensor.item()
    return int(number) if isinstance(number, bool) else number


def values_hold(guards: tuple, flat_inputs) -> bool:
    """Whether every value guard of an entry holds for this call's flat inputs (floats compared by their bits)."""
    for (kind, where), number in guards:
        tensor = flat_inputs[where] if kind == "input" else where
        try:
            current = _read(tensor)
        except (RuntimeError, ValueError, IndexError):  # not a tensor the traced call could read
            return False
        if not same_value(current, number):
            return False
    return True
