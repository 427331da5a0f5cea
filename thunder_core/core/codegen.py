"""Printing traces as Python source, and the namespace that source runs in."""

from __future__ import annotations

import functools
import math
import re
from types import CodeType
from typing import Any

import torch

from thunder.core.proxies import Proxy, SymbolicShape, type_string

_MEMOIZED_SOURCE_CHARS = 50_000  # a large model's program is rarely compiled twice: not worth keeping its code


def compile_source(source: str, filename: str) -> CodeType:
    """`compile(source, filename, "exec")`, memoized for small sources: code objects are immutable, and the same
    small program recurs (every sample of an op test, every guard of the same shape), so each is compiled once;
    `exec` of the code object in a fresh namespace then defines a fresh function."""
    if len(source) > _MEMOIZED_SOURCE_CHARS:
        return compile(source, filename, "exec")
    return _compile_small_source(source, filename)


@functools.lru_cache(maxsize=256)
def _compile_small_source(source: str, filename: str) -> CodeType:
    return compile(source, filename, "exec")


class _Context(dict):
    """The names a trace's source refers to, plus objects registered as constants."""

    def add_object(self, obj: Any, hint: str = "_obj") -> str:
        for name, value in self.items():
            if value is obj and name.startswith(hint):
                return name
        name = f"{hint}{len(self)}"
        self[name] = obj
        return name


def value_source(x: Any, ctx: _Context) -> str:
    """Python source that evaluates to `x` in `ctx` (proxies print as their names)."""
    if isinstance(x, Proxy):
        return x.name
    if x is None or x is Ellipsis or isinstance(x, (bool, int, str)):
        return "..." if x is Ellipsis else repr(x)
    if isinstance(x, float):
        if math.isfinite(x):
            return repr(x)
        return f"float('{x}')"
    if isinstance(x, complex):
        return f"complex({value_source(x.real, ctx)}, {value_source(x.imag, ctx)})"
    if type(x) is tuple or isinstance(x, (torch.Size, SymbolicShape)):
        inner = ", ".join(value_source(v, ctx) for v in x)
        return f"({inner},)" if len(x) == 1 else f"({inner})"
    if type(x) is list:
        return "[" + ", ".join(value_source(v, ctx) for v in x) + "]"
    if type(x) is dict:
        return "{" + ", ".join(f"{value_source(k, ctx)}: {value_source(v, ctx)}" for k, v in x.items()) + "}"
    if isinstance(x, slice):
        return f"slice({value_source(x.start, ctx)}, {value_source(x.stop, ctx)}, {value_source(x.step, ctx)})"
    if isinstance(x, (torch.dtype, torch.memory_format, torch.layout)):
        ctx["torch"] = torch
        return str(x)
    if isinstance(x, torch.device):
        ctx["torch"] = torch
        return f"torch.device({str(x)!r})"
    return ctx.add_object(x)


def _output_pattern(out: Any) -> str:
    if isinstance(out, Proxy):
        return out.name
    if isinstance(out, (tuple, list)):
        parts = [_output_pattern(o) for o in out]
        if len(parts) == 1:
            return f"({parts[0]},)"
        return "(" + ", ".join(parts) + ")"
    return "_"


def _has_proxy(out: Any) -> bool:
    if isinstance(out, Proxy):
        return True
    if isinstance(out, (tuple, list)):
        return any(_has_proxy(o) for o in out)
    return False


def symbol_reference(sym, ctx: _Context) -> str:
    """The name a symbol's call prints with, registering what it refers to in ctx."""
    if sym.namespace is not None:
        alias, obj = sym.namespace
        ctx[alias] = obj
        return f"{alias}.{sym.name}"
    impl = sym.python_impl if sym.python_impl is not None else sym
    if not sym.name.isidentifier():
        return ctx.add_object(impl, hint=re.sub(r"\W", "_", sym.name) + "_")
    existing = ctx.get(sym.name)
    if existing is not None and existing is not impl:
        return ctx.add_object(impl, hint=f"{sym.name}_")
    ctx[sym.name] = impl
    return sym.name


def bsym_line(bsym, ctx: _Context, *, with_comment: bool = True) -> str:
    printer = getattr(bsym.sym, "printer", None)
    if printer is not None:
        return printer(bsym, ctx)
    fn = symbol_reference(bsym.sym, ctx)
    parts = [value_source(a, ctx) for a in bsym.args]
    parts += [f"{k}={value_source(v, ctx)}" for k, v in bsym.kwargs.items()]
    call = f"{fn}({', '.join(parts)})"
    line = f"{_output_pattern(bsym.output)} = {call}" if _has_proxy(bsym.output) else call
    if with_comment and bsym.flat_outs:
        line += "  # " + ", ".join(f'{t.name}: "{type_string(t)}"' for t in bsym.flat_outs)
    return line


def _unused_name(base: str, trace, arg_names: list[str]) -> str:
    taken = set(arg_names) | {p.name for bsym in trace.bound_symbols for p in bsym.flat_outs if isinstance(p, Proxy)}
    name = base
    while name in taken:
        name += "_"
    return name


def trace_source(trace, *, with_comments: bool = True) -> tuple[str, dict]:
    ctx = _Context()
    ctx["torch"] = torch
    arg_names = [a.name if isinstance(a, Proxy) else str(a) for a in trace.args]
    lines = []
    if with_comments:
        lines.append(f"# Constructed by {trace.provenance or 'tracing'}")
        if trace.stage:
            lines[-1] += f", stage {trace.stage!r}"
        if trace.duration_ms is not None:
            lines[-1] += f" (took {trace.duration_ms:.2f} ms)"
    decorator = trace.tags.get("decorator")
    if decorator:
        lines.append(decorator)
    if trace.tags.get("unpack_args"):
        # one list argument, cleared after unpacking: the callee holds the only references (saved tensors
        # are then freed as soon as their last use is done)
        packed = _unused_name("args", trace, arg_names)  # a user's input may be called `args` too
        lines.append(f"def {trace.fn_name}({packed}):")
        lines.append(f"  ({', '.join(arg_names)}{',' if len(arg_names) == 1 else ''}) = {packed}")
        lines.append(f"  {packed}.clear()")
    else:
        lines.append(f"def {trace.fn_name}({', '.join(arg_names)}):")
    if with_comments:
        for a in trace.args:
            if isinstance(a, Proxy):
                lines.append(f'  # {a.name}: "{type_string(a)}"')
    for bsym in trace.bound_symbols:
        lines.append("  " + bsym_line(bsym, ctx, with_comment=with_comments))
    lines.append(f"  return {value_source(trace.output, ctx)}")
    return "\n".join(lines) + "\n", dict(ctx)
