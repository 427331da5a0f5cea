"""The cache key: everything a trace specialized on, computed per call and looked up in one dict.

Tensors contribute (shape, strides, dtype, device, requires_grad); Python scalars and other hashable
leaves their values ("constant values"); the global state the trace depends on contributes grad mode,
autocast state and the default dtype. Under "symbolic values" an int or float argument contributes only its
type: it is an input of the trace, and the entries under one key differ by the values their programs
pinned (see `CacheEntry.guards` in jit.py).
"""

from __future__ import annotations

import struct

import torch

from thunder.core.pytree import tree_flatten

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


def global_state_key() -> tuple:
    return (_is_grad_enabled(), autocast_key(), _default_dtype())


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
    return _leaf_key(x)


def _plain_tensors(args: tuple, kwargs: dict) -> bool:
    return not kwargs and all(type(a) is _Tensor for a in args)


_SCALAR_TYPES = (int, float, bool, type(None))


def flatten_and_key(args: tuple, kwargs: dict, symbolic: bool = False) -> tuple[tuple, list]:
    """(key, inputs) for one call: inputs are the tensors, and under `symbolic` the numbers too, in order."""
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
            elif symbolic and is_symbolic_number(a):
                key.append(_symbolic_leaf_key(a))
                inputs.append(a)
            else:
                key.append((float, _float_bits(a)) if type(a) is float else (type(a), a))
        return tuple(key), inputs
    leaves, spec = tree_flatten((args, kwargs))
    if symbolic:
        key = (spec, tuple(_symbolic_leaf_key(x) for x in leaves))
        return key, [x for x in leaves if isinstance(x, _Tensor) or is_symbolic_number(x)]
    key = (spec, tuple(_leaf_key(x) for x in leaves))
    return key, [x for x in leaves if isinstance(x, _Tensor)]


def input_tensors(args: tuple, kwargs: dict) -> list:
    """The call's tensors, without a key (cache="same input" promises the metadata is the first call's)."""
    if _plain_tensors(args, kwargs):
        return list(args)
    return [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, _Tensor)]
