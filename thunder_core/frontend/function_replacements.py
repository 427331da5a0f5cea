"""`register_operator(..., replaces=f)` for a Python function `f` of the user's (not a torch callable): calls of
`f` inside the traced program trace as the operator.

Torch callables are replaced where the tracer meets them (`__torch_function__`); a plain Python function is
not seen there, only the torch calls in its body. So while a trace is recorded, the function's code is swapped
for a trampoline with the same parameters and free variables, which hands the call to the operator when the
thread is tracing with that replacement active, and otherwise runs the original code.

What "calls of f" means (the identity a replacement matches):

* the function object `f` itself, however the program reaches it: a module attribute, an imported alias, a
  local function or closure stored somewhere and called later;
* a function made anew from the same `def` (a local function or closure created on every call of its
  enclosing function, as model code builds mask functions): the enclosing function is found from `f`'s
  `__qualname__` and its code carries the trampoline too, so the new function is matched when it captures the
  very objects `f` captured (each free variable's value, by identity). A new closure capturing other values may
  compute something else, which the operator (it receives only the call's arguments) cannot know: tracing
  stops with an error that says so, rather than replace it wrongly or run it unreplaced without a word.
* Where the enclosing function cannot be found (a `def` inside a lambda or a comprehension), functions made
  anew are not replaced and `jit` warns once, by name, when the replacement is registered for it.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Callable
from contextlib import contextmanager

import thunder.torch as ltorch
from thunder.frontend.tracer import _tracers

_SENTINEL = "__thunder_replacement_dispatch__"
_VARARGS, _VARKEYWORDS = 0x04, 0x08
_warned: set[int] = set()


def is_python_function_replacement(fn: Callable) -> bool:
    """Whether `replaces=fn` needs the code swap (a user's Python function, not a torch callable)."""
    module = getattr(fn, "__module__", None) or ""
    return isinstance(fn, types.FunctionType) and ltorch.torch_handler(fn) is None and not module.startswith("torch")


def _parameter_source(code: types.CodeType) -> tuple[str, str, str]:
    """(the def's parameter list, the tuple expression of its positional values, the dict of its keywords)."""
    names = code.co_varnames
    argcount, posonly, kwonly = code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount
    positional = list(names[:argcount])
    keyword_only = list(names[argcount : argcount + kwonly])
    index = argcount + kwonly
    varargs = names[index] if code.co_flags & _VARARGS else None
    index += bool(varargs)
    varkw = names[index] if code.co_flags & _VARKEYWORDS else None
    params = positional[:posonly] + (["/"] if posonly else []) + positional[posonly:]
    params += [f"*{varargs}"] if varargs else (["*"] if keyword_only else [])
    params += keyword_only + ([f"**{varkw}"] if varkw else [])
    values = "(" + "".join(f"{n}, " for n in positional) + (f"*{varargs}" if varargs else "") + ")"
    keywords = "{" + "".join(f"{n!r}: {n}, " for n in keyword_only) + (f"**{varkw}" if varkw else "") + "}"
    return ", ".join(params), values, keywords


def trampoline_code(original: types.CodeType, dispatch: Callable) -> types.CodeType:
    """Code with `original`'s parameters and free variables whose body returns
    `dispatch(positional values, keyword values, free variable values)`."""
    params, values, keywords = _parameter_source(original)
    freevars = original.co_freevars
    lines = ["def _factory():"]
    lines += [f"    {name} = None" for name in freevars]
    lines += [f"    def _trampoline({params}):"]
    captured = "(" + "".join(f"{n}, " for n in freevars) + ")"
    lines += [f"        return {_SENTINEL!r}({values}, {keywords}, {captured})"]
    lines += ["    return _trampoline"]
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)  # calling a str constant: it becomes `dispatch` below
        exec(compile("\n".join(lines), original.co_filename, "exec"), namespace)
    (inner,) = [c for c in namespace["_factory"].__code__.co_consts if isinstance(c, types.CodeType)]
    if inner.co_freevars != freevars:
        raise AssertionError(f"trampoline free variables {inner.co_freevars} differ from {freevars}")
    consts = tuple(dispatch if c == _SENTINEL else c for c in inner.co_consts)
    return inner.replace(co_consts=consts, co_name=original.co_name, co_qualname=original.co_qualname,
                         co_firstlineno=original.co_firstlineno)  # fmt: skip


def _enclosing_function(fn: types.FunctionType, code: types.CodeType):
    """The function whose body defines `fn` (from `__qualname__`; `code` is fn's own), or None where it cannot be
    found."""
    parts = fn.__qualname__.split(".")
    if "<locals>" not in parts:
        return None
    outer_path = parts[: len(parts) - 1 - parts[::-1].index("<locals>")]
    if any(p.startswith("<") for p in outer_path):  # a lambda, comprehension or a deeper local: no attribute path
        return None
    obj = sys.modules.get(fn.__module__)
    for part in outer_path:
        obj = getattr(obj, part, None)
    obj = getattr(obj, "__func__", obj)  # a classmethod or staticmethod
    if isinstance(obj, types.FunctionType) and any(c is code for c in obj.__code__.co_consts):
        return obj
    return None


class _Swap:
    """The code swaps for one replaced function (restored by `undo`)."""

    def __init__(self, fn: types.FunctionType, symbol):
        self.fn, self.symbol = fn, symbol
        self.original = fn.__code__
        self.captured = tuple(c.cell_contents for c in fn.__closure__ or ())
        self.undo_list: list[tuple[types.FunctionType, types.CodeType]] = []

    def apply(self) -> None:
        trampoline = trampoline_code(self.original, self.dispatch)
        self._set(self.fn, trampoline)
        enclosing = _enclosing_function(self.fn, self.original)
        if enclosing is not None:
            consts = tuple(trampoline if c is self.original else c for c in enclosing.__code__.co_consts)
            self._set(enclosing, enclosing.__code__.replace(co_consts=consts))
        elif "<locals>" in self.fn.__qualname__ and id(self.original) not in _warned:
            _warned.add(id(self.original))
            warnings.warn(
                f"register_operator(replaces={self.fn.__qualname__}): Thunder cannot find the function that defines "
                "it, so only calls of this very function object are replaced, not of functions made anew from the "
                "same def; define it at module level (or inside a module-level function) to replace those too",
                stacklevel=2,
            )

    def _set(self, fn, code) -> None:
        self.undo_list.append((fn, fn.__code__))
        fn.__code__ = code

    def undo(self) -> None:
        for fn, code in reversed(self.undo_list):
            fn.__code__ = code
        self.undo_list.clear()

    def run_original(self, positional, keywords, captured):
        cells = tuple(types.CellType(v) for v in captured)
        globals_ = sys._getframe(2).f_globals  # the trampoline's frame: the function's module
        original = types.FunctionType(self.original, globals_, self.original.co_name, None, cells or None)
        return original(*positional, **keywords)

    def dispatch(self, positional, keywords, captured):
        tracer = _tracers[-1] if _tracers else None
        if tracer is None or tracer.replacements.get(self.fn) is not self.symbol or _inside(self.symbol):
            return self.run_original(positional, keywords, captured)
        if len(captured) != len(self.captured) or any(a is not b for a, b in zip(captured, self.captured)):
            raise NotImplementedError(
                f"{self.fn.__qualname__} (in {self.original.co_filename}) was replaced with the operator "
                f"{self.symbol.name} for the closure registered with replaces=, but the traced program called a "
                "closure made anew from the same def that captures other values; the operator receives only the "
                "call's arguments and cannot know them. Register the replacement for a function that takes those "
                "values as arguments, or create the closure once and call that one"
            )
        _replacing.add(self.symbol)
        try:
            positional, keywords = tracer.resolve(positional), tracer.resolve(keywords)
            return self.symbol(*positional, **keywords)
        finally:
            _replacing.discard(self.symbol)


# symbols whose decomposition is being traced: a `like=f` operator traces f's original body
_replacing: set = set()


def _inside(symbol) -> bool:
    return symbol in _replacing


@contextmanager
def replacing_python_functions(replacements: dict):
    """Within the block, the Python functions among `replacements` (function -> operator symbol) carry the
    trampoline code (see the module docstring); restored on exit."""
    swaps = [_Swap(fn, sym) for fn, sym in replacements.items() if is_python_function_replacement(fn)]
    try:
        for swap in swaps:
            swap.apply()
        yield
    finally:
        for swap in reversed(swaps):
            swap.undo()
