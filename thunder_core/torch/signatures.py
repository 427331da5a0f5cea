"""Torch's own signatures for the callables `thunder.torch` traces, and the mapping of a call's keyword
arguments (named as torch names them) onto the symbol that traces it.

A `thunder.torch` symbol takes its operands in torch's order but may name them differently (`a, b` for
torch's `input, other`). Rather than hold every symbol to torch's spelling, a call made with torch's
keywords is rewritten at dispatch: a keyword that names torch's positional parameter number i becomes the
symbol's parameter number i (by position when the call's positional arguments reach just up to i, by the
symbol's name otherwise). Keyword-only parameters are matched by name; the signature test
(tests/test_torch_signatures.py) holds every symbol to torch's keyword-only names and lists the expected
differences with their reasons.

Torch's signatures come from the Python signature where torch has one (`torch.nn.functional`, the
Python-level `torch` functions and Tensor methods) and from the registered aten schemas for the builtins:
a Tensor `self` is `input` for a function, and is the bound tensor (always first) for a method.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

from thunder.core.symbol import Symbol

_P = inspect.Parameter
_ATEN_MODULES = ("torch._C._linalg", "torch._C._fft", "torch._C._special", "torch._C._nn")


def aten_name(torch_fn: Callable) -> tuple[str | None, bool]:
    """(the aten operator's name, whether torch_fn is a Tensor method) for a builtin torch callable;
    (None, False) for operators (dunders) and callables torch has no schema for."""
    qualname = getattr(torch_fn, "__qualname__", "") or ""
    name = getattr(torch_fn, "__name__", "") or ""
    module = getattr(torch_fn, "__module__", None) or ""
    if name.startswith("__"):
        return None, False
    if qualname.startswith(("TensorBase.", "Tensor.")):
        return name, True
    if module in _ATEN_MODULES or qualname.startswith("_VariableFunctionsClass."):
        return name, False
    return None, False


def _schema_signature(schema, method: bool) -> inspect.Signature:
    params = []
    for arg in schema.arguments:
        if arg.name == "self" and method:
            continue
        # torch's Python API calls a Tensor `self` `input` in functions; a number `self` (`pow.Scalar`) keeps its name
        name = "input" if arg.name == "self" and "Tensor" in str(arg.type) else arg.name
        kind = _P.KEYWORD_ONLY if arg.kwarg_only else _P.POSITIONAL_OR_KEYWORD
        default = arg.default_value if arg.has_default_value() else _P.empty
        params.append((name, kind, default))
    if method:
        params.insert(0, ("self", _P.POSITIONAL_OR_KEYWORD, _P.empty))
    # aten allows a defaulted positional before one without a default (`clamp(self, Scalar? min=None, max=None)`
    # is fine, `where.ScalarSelf` is not); Python's Signature does not: such defaults are dropped.
    seen_default = False
    built = []
    for name, kind, default in reversed(params):
        if kind == _P.POSITIONAL_OR_KEYWORD and default is _P.empty:
            seen_default = True
        elif kind == _P.POSITIONAL_OR_KEYWORD and seen_default:
            default = _P.empty
        built.append(_P(name, kind, default=default))
    return inspect.Signature(list(reversed(built)))


def _is_functional_schema(schema, method: bool) -> bool:
    args = schema.arguments
    if schema.overload_name.endswith("out") or any(a.is_out for a in args):
        return False
    if any("Dimname" in str(a.type) for a in args):  # named tensors: not traced
        return False
    # TorchScript's own overloads on Python numbers and lists (`aten::sub.int(int a, int b)`) are not torch's
    # Python API: a Tensor method needs `self`, a function a tensor operand or a dtype (factories)
    if method:
        return any(a.name == "self" and "Tensor" in str(a.type) for a in args)
    return any("Tensor" in str(a.type) or a.name == "dtype" for a in args)


_SIGNATURES: dict = {}


def torch_signatures(torch_fn: Callable) -> tuple[inspect.Signature, ...]:
    """Every signature torch accepts for torch_fn (one per functional aten overload for a builtin);
    () where torch publishes none (dunders, Tensor.float and the like)."""
    try:
        return _SIGNATURES[torch_fn]
    except (KeyError, TypeError):
        pass
    try:
        found = (inspect.signature(torch_fn),)
    except (ValueError, TypeError):
        name, method = aten_name(torch_fn)
        schemas = torch._C._jit_get_schemas_for_operator("aten::" + name) if name else []
        found = tuple(_schema_signature(s, method) for s in schemas if _is_functional_schema(s, method))
    try:
        _SIGNATURES[torch_fn] = found
    except TypeError:
        pass
    return found


def handler_signature(handler: Callable) -> inspect.Signature | None:
    """The signature a handler (a `thunder.torch` symbol or a plain callable) is called with."""
    fn = handler.meta if isinstance(handler, Symbol) else handler
    try:
        return inspect.signature(fn)
    except (ValueError, TypeError):
        return None


_HANDLER_SHAPES: dict = {}


def _handler_shape(handler: Callable):
    """(names it takes by keyword, its positional parameters, whether it takes *args), cached per handler:
    every traced torch call with keywords asks."""
    try:
        return _HANDLER_SHAPES[handler]
    except KeyError:
        pass
    except TypeError:  # unhashable: not cached
        return _compute_handler_shape(handler)
    shape = _HANDLER_SHAPES[handler] = _compute_handler_shape(handler)
    return shape


def _compute_handler_shape(handler: Callable):
    sig = handler_signature(handler)
    if sig is None:
        return None
    params = list(sig.parameters.values())
    accepted = frozenset(p.name for p in params if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY))
    positional = [p for p in params if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
    return accepted, positional, any(p.kind == _P.VAR_POSITIONAL for p in params)


_POSITIONS: dict = {}


def _keyword_positions(torch_fn: Callable) -> dict[str, int]:
    """torch's positional-or-keyword parameter name -> its position, where every overload agrees on it."""
    try:
        return _POSITIONS[torch_fn]
    except (KeyError, TypeError):
        pass
    found = _compute_keyword_positions(torch_fn)
    try:
        _POSITIONS[torch_fn] = found
    except TypeError:
        pass
    return found


def _compute_keyword_positions(torch_fn: Callable) -> dict[str, int]:
    positions: dict[str, set[int]] = {}
    for sig in torch_signatures(torch_fn):
        index = 0
        for p in sig.parameters.values():
            if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
                positions.setdefault(p.name, set()).add(index)
                index += 1
    return {name: next(iter(found)) for name, found in positions.items() if len(found) == 1}


def adapt_torch_call(torch_fn: Callable, handler: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """(args, kwargs) for calling `handler` where the user called `torch_fn(*args, **kwargs)`: keywords named
    as torch names positional parameters become the handler's (see the module docstring). Unchanged when the
    handler accepts every keyword as it is."""
    if not kwargs:
        return args, kwargs
    shape = _handler_shape(handler)
    if shape is None:
        return args, kwargs
    accepted, positional, varargs = shape
    foreign = [k for k in kwargs if k not in accepted]
    if not foreign:
        return args, kwargs
    positions = _keyword_positions(torch_fn)
    args, kwargs = list(args), dict(kwargs)
    for name in sorted((k for k in foreign if k in positions), key=positions.__getitem__):
        index = positions[name]
        if index == len(args) and (index < len(positional) or varargs):
            args.append(kwargs.pop(name))  # the call's positionals reach just up to it: pass it positionally
        elif index < len(positional) and positional[index].kind == _P.POSITIONAL_OR_KEYWORD:
            target = positional[index].name
            if target not in kwargs:
                kwargs[target] = kwargs.pop(name)
    return tuple(args), kwargs


def positional_call(torch_fn: Callable, handler: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """`adapt_torch_call`, with every argument the handler takes by position moved to its position (what
    code that reads a view op's operands by index, such as the tracer's view records, expects)."""
    args, kwargs = adapt_torch_call(torch_fn, handler, args, kwargs)
    sig = handler_signature(handler)
    if not kwargs or sig is None:
        return args, kwargs
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError:
        return args, kwargs  # the handler reports the bad call itself
    return tuple(bound.args), dict(bound.kwargs)
