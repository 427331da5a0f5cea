"""Per-call guards: what a trace read besides its arguments, recorded while tracing and checked on each call.

`GuardRecorder` watches one acquisition: which user functions ran (a trace function that sees each Python
call), which globals, closure cells and attribute chains their bytecode loads, and which `nn.Module`
attributes were read (a temporary `__getattribute__`/`__getattr__` on `torch.nn.Module`). `build_guard` turns
the records into one generated Python function per cache entry that checks them all inline. The design, and
what is never checked, is described in `thunder.frontend.cache`.
"""

from __future__ import annotations

import dis
import gc
import operator
import os
import struct
import sys
import sysconfig
import threading
import types
from contextlib import contextmanager

import torch

from thunder.core.codegen import compile_source
from thunder.frontend.cache import _any_autocast, _default_dtype, _is_grad_enabled, device_key
from thunder.frontend.script_functions import script_function_of

_MISSING = object()  # "no such entry": a recorded absence, and the default of every lookup
_THUNDER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_STDLIB_DIRS = tuple({os.path.abspath(sysconfig.get_paths()[k]) + os.sep for k in ("stdlib", "platstdlib")})
_LIBRARY_ROOTS = ("torch", "thunder", "thunder_core", "builtins") + tuple(sys.stdlib_module_names)
_MODULE_PY = os.path.abspath(torch.nn.modules.module.__file__)
# the hook tables Module.__call__ consults before running forward
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_MAX_CHAIN = 4  # attribute chains `cfg.model.scale` are followed this deep

fbits = struct.Struct("<d").pack  # floats by their bits: -0.0 is not 0.0, and NaN is NaN


def _is_internal_file(filename: str, cache: dict = {}) -> bool:  # noqa: B006 (a deliberate memo)
    internal = cache.get(filename)
    if internal is None:
        path = os.path.abspath(filename)
        internal = cache[filename] = (
            filename.startswith(("<frozen", "<thunder", "thunder.")) or path.startswith((_THUNDER_DIR, _TORCH_DIR)) or path.startswith(_STDLIB_DIRS)
        )
    return internal


def _is_internal_generated_code(code, f_globals: dict) -> bool:
    """Code compiled from a string by Thunder or torch (a dataclass's generated `__init__` has the filename
    "<string>" and its class's module as globals): internal like their files, so never guarded (asking gc for its
    function objects on every compilation would cost tens of milliseconds in a large heap)."""
    if not code.co_filename.startswith("<"):
        return False
    module = f_globals.get("__name__") or ""
    return module.split(".", 1)[0] in ("thunder", "torch")


def _is_library_module(obj) -> bool:
    return isinstance(obj, types.ModuleType) and obj.__name__.split(".", 1)[0] in _LIBRARY_ROOTS


def _code_loads(code: types.CodeType, cache: dict = {}) -> tuple:  # noqa: B006 (a deliberate memo)
    """(kind, name, attrs) for each global ("global") or closure cell ("cell") the bytecode loads, with the
    attribute chain read from it right after (`cfg.model.scale` gives ("global", "cfg", ("model", "scale")))."""
    loads = cache.get(code)
    if loads is not None:
        return loads
    found: dict = {}
    current = None
    for ins in dis.get_instructions(code):
        if ins.opname == "LOAD_GLOBAL":
            current = ["global", ins.argval, []]
            found.setdefault(("global", ins.argval), current)
        elif ins.opname == "LOAD_DEREF" and ins.argval in code.co_freevars:
            current = ["cell", ins.argval, []]
            found.setdefault(("cell", ins.argval), current)
        elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and current is not None and len(current[2]) < _MAX_CHAIN:
            chain = [current[0], current[1], [*current[2], ins.argval]]
            found.setdefault((chain[0], chain[1], *chain[2]), chain)
            current = chain
        else:
            current = None
    loads = cache[code] = tuple((k, n, tuple(a)) for k, n, a in found.values())
    return loads


def _static_lookup(obj, name: str):
    """([mappings that lack `name`], mapping, value): where `obj.name` lives without running descriptors, and
    the mappings searched before it (a class attribute set later on a subclass, or on the instance, shadows
    it); None when not found, or found on a library class (torch.autograd.Function.apply is not guarded)."""
    searched = []
    instance_dict = getattr(obj, "__dict__", None)
    if isinstance(instance_dict, dict):
        if name in instance_dict:
            return searched, instance_dict, instance_dict[name]
        searched.append(instance_dict)
    mro = obj.__mro__ if isinstance(obj, type) else type(obj).__mro__
    for klass in mro:
        if name in klass.__dict__:
            if klass.__module__.split(".", 1)[0] in _LIBRARY_ROOTS:
                return None
            return searched, klass.__dict__, klass.__dict__[name]
        searched.append(klass.__dict__)
    return None


def _followed(obj) -> bool:
    """Whether attribute reads on `obj` are guarded: user modules, classes and plain objects, not tensors,
    torch/stdlib modules, functions, or nn.Modules (whose reads are recorded as they happen)."""
    if obj is _MISSING or obj is None or isinstance(obj, (torch.Tensor, torch.nn.Module, int, float, str, bytes)):
        return False
    if isinstance(obj, types.ModuleType):
        return not _is_library_module(obj)
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return False
    return isinstance(obj, type) or hasattr(obj, "__dict__")


def _plain_object(obj) -> bool:
    return _followed(obj) and not isinstance(obj, (type, types.ModuleType))


class GuardRecorder:
    """Records what one acquisition reads besides its arguments (see the module docstring)."""

    # thread id -> that thread's recorders, innermost last: several threads may compile at once
    _active: dict[int, list[GuardRecorder]] = {}
    _patch_lock = threading.Lock()

    def __init__(self):
        self.thread = threading.get_ident()
        self.values: dict = {}  # (mapping id, name) -> (mapping, name, value) for globals and attributes
        self.cells: dict = {}  # (code, freevar) -> value when the code first ran
        self.codes: dict = {}  # user code objects that ran -> their globals
        self.module_reads: dict = {}  # (id(module), name) -> (module, kind, name, value)
        self.hook_modules: dict = {}  # id -> module whose hooks Module.__call__ consulted

    # -- recording --------------------------------------------------------------------------------
    @contextmanager
    def recording(self):
        previous_trace = sys.gettrace()

        def on_call(frame, event, arg):
            if event == "call":
                code = frame.f_code
                if code not in self.codes and not _is_internal_file(code.co_filename) \
                        and not _is_internal_generated_code(code, frame.f_globals):
                    self._record_code(frame)
            return previous_trace(frame, event, arg) if previous_trace is not None else None

        with GuardRecorder._patch_lock:
            if not GuardRecorder._active:
                _install_module_patch()
            GuardRecorder._active.setdefault(self.thread, []).append(self)
        sys.settrace(on_call)
        try:
            yield self
        finally:
            sys.settrace(previous_trace)
            with GuardRecorder._patch_lock:
                mine = GuardRecorder._active[self.thread]
                mine.remove(self)
                if not mine:
                    del GuardRecorder._active[self.thread]
                if not GuardRecorder._active:
                    _remove_module_patch()

    def _record_code(self, frame) -> None:
        code, f_globals = frame.f_code, frame.f_globals
        self.codes[code] = f_globals
        for kind, name, attrs in _code_loads(code):
            if kind == "global":
                value = f_globals.get(name, _MISSING)
                if value is _MISSING:  # a builtin: never checked (see thunder.frontend.cache)
                    continue
                # a ScriptFunction swapped for its Python original while tracing: the name holds the scripted
                # function again on every call, which is what the guard must expect
                value = script_function_of(value)
                self.values.setdefault((id(f_globals), name), (f_globals, name, value))
            else:
                value = frame.f_locals.get(name, _MISSING)
                self.cells.setdefault((code, name), value)
            for attr in attrs:
                if not _followed(value):
                    break
                found = _static_lookup(value, attr)
                if found is None:
                    break
                searched, mapping, value = found
                for lacking in searched:
                    self.values.setdefault((id(lacking), attr), (lacking, attr, _MISSING))
                self.values.setdefault((id(mapping), attr), (mapping, attr, value))

    def record_module_read(self, module, name: str, kind: str, value) -> None:
        caller = sys._getframe(2).f_code.co_filename
        if caller == _MODULE_PY or _is_internal_file(caller) and caller.startswith(_THUNDER_DIR):
            if name in _HOOK_DICTS:
                self.hook_modules[id(module)] = module
            return
        self.module_reads.setdefault((id(module), name), (module, kind, name, value))


_object_getattribute = object.__getattribute__
_saved_getattr = []


def _recording_getattribute(self, name):
    value = _object_getattribute(self, name)
    if name[:2] != "__":
        recorders = GuardRecorder._active.get(threading.get_ident())
        if recorders:
            kind = "dict" if name in _object_getattribute(self, "__dict__") else "class"
            recorders[-1].record_module_read(self, name, kind, value)
    return value


def _recording_getattr(self, name):
    try:
        value = _saved_getattr[0](self, name)
    except AttributeError:
        value, kind = _MISSING, "absent"
    else:
        d = _object_getattribute(self, "__dict__")
        kind = next((k for k in ("_parameters", "_buffers", "_modules") if name in d.get(k, ())), "absent")
    recorders = GuardRecorder._active.get(threading.get_ident())
    if recorders:
        recorders[-1].record_module_read(self, name, kind, value)
    if value is _MISSING:
        return _saved_getattr[0](self, name)  # raises the module's own AttributeError
    return value


def _install_module_patch() -> None:
    _saved_getattr.append(torch.nn.Module.__getattr__)
    torch.nn.Module.__getattribute__ = _recording_getattribute
    torch.nn.Module.__getattr__ = _recording_getattr


def _remove_module_patch() -> None:
    del torch.nn.Module.__getattribute__
    torch.nn.Module.__getattr__ = _saved_getattr.pop()


# -- value checks ---------------------------------------------------------------------------------
_IMMUTABLE_BY_VALUE = (int, str, bytes, bool, complex, torch.dtype, torch.device)


def same_value(current, recorded) -> bool:
    """Identity, else equality for immutable values (floats by bits); tuples element by element."""
    if current is recorded:
        return True
    kind = type(recorded)
    if type(current) is not kind:
        return False
    if kind is float:
        return fbits(current) == fbits(recorded)
    if kind is complex:
        return fbits(current.real) == fbits(recorded.real) and fbits(current.imag) == fbits(recorded.imag)
    if kind in _IMMUTABLE_BY_VALUE:
        return current == recorded
    if kind is tuple:
        return len(current) == len(recorded) and all(map(same_value, current, recorded))
    return False


def same_items(current, snapshot: tuple) -> bool:
    """A list's or dict's elements are the recorded objects (shallow: identity, length)."""
    if isinstance(current, dict):
        return len(current) == len(snapshot) and all(
            k is a and v is b for (k, v), (a, b) in zip(current.items(), snapshot)
        )
    return len(current) == len(snapshot) and all(map(operator.is_, current, snapshot))


class _Source:
    """The source of one generated guard function, with its constants."""

    def __init__(self):
        self.lines: list[str] = []
        self.namespace: dict = {"_M": _MISSING, "_same_value": same_value, "_same_items": same_items, "_fbits": fbits}
        self._names: dict[int, str] = {}

    def const(self, obj) -> str:
        name = self._names.get(id(obj))
        if name is None:
            name = self._names[id(obj)] = f"k{len(self._names)}"
            self.namespace[name] = obj
        return name

    def require(self, condition: str) -> None:
        self.lines.append(f"if not ({condition}): return False")

    def require_value(self, source: str, value) -> None:
        """`source` (an expression) still gives `value`: identity first, then by value (see same_value)."""
        c = self.const(value)
        kind = type(value)
        if value is _MISSING or value is None or kind is bool:
            self.require(f"{source} is {c}")
        elif kind is float:
            self.require(f"(_v := {source}) is {c} or (type(_v) is float and _fbits(_v) == {self.const(fbits(value))})")
        elif kind in _IMMUTABLE_BY_VALUE or kind is tuple:
            self.require(f"(_v := {source}) is {c} or _same_value(_v, {c})")
        elif kind is list or isinstance(value, dict):
            snapshot = tuple(value.items()) if isinstance(value, dict) else tuple(value)
            if not snapshot:
                self.require(f"(_v := {source}) is {c} and not _v")
            else:
                self.require(f"(_v := {source}) is {c} and _same_items(_v, {self.const(snapshot)})")
        else:
            self.require(f"{source} is {c}")

    def compile(self, name: str, params: str = "", passed: str = "True", failed: str = "False", then: str = ""):
        """def name(params): `passed` if every check holds (an exception is a failed check), else `failed`;
        `then` (statements) runs after the checks passed, outside the try."""
        body = "".join(f"        {line}\n" for line in self.lines).replace("return False", f"return {failed}")
        tail = "".join(f"    {line}\n" for line in then.splitlines()) or f"    return {passed}\n"
        body = body or "        pass\n"
        text = f"def {name}({params}):\n    try:\n{body}    except Exception:\n        return {failed}\n{tail}"
        exec(compile_source(text, f"<thunder guard {name}>"), self.namespace)
        fn = self.namespace[name]
        fn.source = text
        return fn


# -- from records to checks -----------------------------------------------------------------------
def _unwrap(fn):
    while True:
        if isinstance(fn, types.MethodType):
            fn = fn.__func__
        elif hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__
        elif hasattr(fn, "func") and callable(fn.func):  # functools.partial
            fn = fn.func
        else:
            return fn


def _functions_of(codes, seeds) -> dict:
    """code -> the function objects with that code, found among `seeds` (and what they reach), else by gc."""
    found: dict = {}
    todo = [_unwrap(s) for s in seeds]
    seen: set = set()
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (staticmethod, classmethod)):
            todo.append(obj.__func__)
        elif isinstance(obj, property):
            todo.extend(f for f in (obj.fget, obj.fset) if f is not None)
        elif isinstance(obj, types.FunctionType):
            found.setdefault(obj.__code__, []).append(obj)
            for cell in obj.__closure__ or ():
                try:
                    todo.append(cell.cell_contents)
                except ValueError:
                    pass
        elif isinstance(obj, type) and not obj.__module__.startswith(("torch", "builtins")):
            todo.extend(obj.__dict__.values())
    for code in codes:
        if code not in found and code.co_freevars and code.co_name not in _COMPREHENSIONS:
            # not reachable from what the trace read (a closure handed around by other means): ask gc
            found[code] = [f for f in gc.get_referrers(code) if isinstance(f, types.FunctionType)]
    return found


_COMPREHENSIONS = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")  # cells are the enclosing frame's


def build_guard(recorder: GuardRecorder, fn, argument_objects: list, name: str = "guard"):
    """One generated function that returns True while everything `recorder` saw is unchanged; None if nothing
    needs checking. `fn` is the traced callable; `argument_objects` the non-tensor objects among the arguments
    (their `__dict__` is checked shallowly)."""
    source = _Source()
    for mapping, key, value in recorder.values.values():
        source.require_value(f"{source.const(mapping)}.get({key!r}, _M)", value)
    seeds = [fn, *(v for *_, v in recorder.values.values())]
    seeds += [type(m) for m, *_ in recorder.module_reads.values()]
    seeds += [type(m) for m in recorder.hook_modules.values()]
    seeds += [v for v in recorder.cells.values() if v is not _MISSING]
    functions = _functions_of(recorder.codes, seeds)
    _require_functions(source, recorder, functions)
    _require_module_reads(source, recorder)
    # plain objects held by modules (a Hugging Face `self.config`) are checked like object arguments
    held = [v for _, kind, _, v in recorder.module_reads.values() if kind == "dict" and _plain_object(v)]
    for obj in {id(o): o for o in [*argument_objects, *held]}.values():
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict) and not isinstance(obj, (types.ModuleType, type)):
            # the same attributes (none added or removed), each the same object or value
            source.require(f"{source.const(obj)}.__dict__ is {source.const(attributes)}")
            source.require(f"len({source.const(attributes)}) == {len(attributes)}")
            for key, value in attributes.items():
                source.require_value(f"{source.const(attributes)}.get({key!r}, _M)", value)
    if not source.lines:
        return None, source
    return source.compile(name), source


def _require_functions(source: _Source, recorder: GuardRecorder, functions: dict) -> None:
    for code in recorder.codes:
        for function in functions.get(code, ()):
            f = source.const(function)
            if function.__defaults__ is not None or function.__kwdefaults__ is not None:
                source.require_value(f"{f}.__defaults__", function.__defaults__)
                source.require_value(f"{f}.__kwdefaults__", function.__kwdefaults__)
            for i, var in enumerate(code.co_freevars):
                value = recorder.cells.get((code, var), _MISSING)
                if value is _MISSING:
                    continue
                try:
                    current = function.__closure__[i].cell_contents
                except ValueError:
                    continue
                if current is not value and not same_value(current, value):
                    continue  # another closure of the same code (made while tracing, or elsewhere)
                source.require_value(f"{source.const(function.__closure__[i])}.cell_contents", value)


def _require_module_reads(source: _Source, recorder: GuardRecorder) -> None:
    for module, kind, name, value in recorder.module_reads.values():
        attributes = source.const(module.__dict__)
        if kind == "dict":
            source.require_value(f"{attributes}.get({name!r}, _M)", value)
        elif kind == "class":
            source.require(f"type({source.const(module)}) is {source.const(type(module))}")
            source.require_value(f"{attributes}.get({name!r}, _M)", _MISSING)  # not shadowed by the instance
            for klass in type(module).__mro__:
                if klass.__module__.split(".", 1)[0] in _LIBRARY_ROOTS:
                    break  # torch.nn.Module's own methods are not guarded
                source.require_value(f"{source.const(klass.__dict__)}.get({name!r}, _M)", klass.__dict__.get(name, _MISSING))
                if name in klass.__dict__:
                    break
        elif kind == "_modules":
            source.require_value(f"{source.const(module._modules)}.get({name!r}, _M)", value)
        elif kind in ("_parameters", "_buffers"):
            table = source.const(module.__dict__[kind])
            # the tensor itself is an input of the trace (a parameter may be replaced); whether it is None is not
            state = "is None" if value is None else "is not None"
            source.require(f"{table}.get({name!r}, _M) {state} and {name!r} in {table}")
        else:  # absent: not an attribute, parameter, buffer or submodule
            tables = [attributes] + [source.const(module.__dict__[t]) for t in ("_parameters", "_buffers", "_modules")]
            source.require(" and ".join(f"{name!r} not in {t}" for t in tables))
    if recorder.hook_modules:
        from torch.nn.modules import module as torch_module

        for hooks in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                      "_global_backward_pre_hooks"):  # fmt: skip
            source.require_value(f"{source.const(torch_module.__dict__)}.get({hooks!r}, _M)", getattr(torch_module, hooks))
        for module in recorder.hook_modules.values():
            for hooks in _HOOK_DICTS:
                source.require_value(f"{source.const(module.__dict__)}.get({hooks!r}, _M)", module.__dict__[hooks])


def _tensor_guard(args):
    """A C++ check of the tensors' type, dtype, device, requires_grad, sizes and strides (the one Dynamo uses), or
    None where this torch lacks it; the caller then checks in Python."""
    try:
        from torch._C._dynamo.guards import TensorGuards

        check = TensorGuards(*args, dynamic_dims_sizes=[list(a.shape) for a in args],
                             dynamic_dims_strides=[list(a.stride()) for a in args])  # fmt: skip
        return check if check.check(*args) else None
    except Exception:  # another torch's signature: the Python check below serves
        return None


MISS = object()  # what a hot call returns when its checks fail


def build_hot_call(args: tuple, source: _Source | None, global_state: tuple, forward, unpack):
    """The whole cached call with plain tensor arguments as one generated function of those arguments: check
    their metadata, that no two share storage, the global state and the entry's guards, then run `forward` and
    return `unpack(outputs)`; MISS (running nothing) when a check fails."""
    hot = _Source()
    if source is not None:
        hot.namespace.update(source.namespace)
        hot._names = dict(source._names)
    params = [f"a{i}" for i in range(len(args))]
    tensor_check = _tensor_guard(args)
    if tensor_check is not None and args:
        hot.require(f"{hot.const(tensor_check.check)}({', '.join(params)})")
    for p, a in zip(params, args):
        if tensor_check is None:
            meta = (a.shape, a.stride(), a.dtype, a.device, a.requires_grad)
            hot.require(f"type({p}) is {hot.const(torch.Tensor)}")
            hot.require(f"({p}.shape, {p}.stride(), {p}.dtype, {p}.device, {p}.requires_grad) == {hot.const(meta)}")
    grad, autocast, dtype, device = global_state
    if autocast is not False:
        return None
    hot.require(f"{hot.const(_is_grad_enabled)}() is {grad!r} and not {hot.const(_any_autocast)}()")
    hot.require(f"{hot.const(_default_dtype)}() is {hot.const(dtype)}")
    # where `device="cuda"` and factories without a device resolve (thunder.core.devices)
    hot.require(f"{hot.const(device_key)}() == {hot.const(device)}")
    if len(params) == 2:
        hot.require("a0.untyped_storage() is not a1.untyped_storage()")
    elif len(params) > 2:
        storages = ", ".join(f"id({p}.untyped_storage())" for p in params)
        hot.require(f"len({{{storages}}}) == {len(params)}")
    if source is not None:
        hot.lines.extend(source.lines)
    call = f"{hot.const(forward)}({', '.join(params)})"
    then = f"return {call}[0]" if unpack is None else f"return {hot.const(unpack)}({call})"
    return hot.compile("hot_call", ", ".join(params), failed=hot.const(MISS), then=then)


def alias_pattern(tensors: list):
    """None when no two tensors share storage (the common case), else for each tensor (the first tensor in its
    storage, the first identical object): which inputs alias is part of the cache key, as in torch.compile."""
    if len(tensors) < 2:
        return None
    try:
        if len({id(t.untyped_storage()) for t in tensors}) == len(tensors):
            return None
    except Exception:  # a tensor without storage (sparse): only identity can alias it
        pass
    storages = [_storage_or_object_id(t) for t in tensors]
    if len(set(storages)) == len(storages):
        return None
    first_storage: dict = {}
    first_object: dict = {}
    return tuple(
        (first_storage.setdefault(s, i), first_object.setdefault(id(t), i)) for i, (t, s) in enumerate(zip(tensors, storages))
    )


def _storage_or_object_id(t) -> int:
    try:
        return id(t.untyped_storage())
    except Exception:
        return id(t)
