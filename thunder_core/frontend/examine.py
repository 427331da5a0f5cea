"""`thunder.examine`: which torch operations a program uses, which Thunder supports, and does it match eager.

`examine(fn_or_module, *args, **kwargs)` runs the program three ways: eagerly under a `TorchFunctionMode`
that records every torch callable it calls (with the user's file and line), through `thunder.jit`, and
finally compares the two results. Each operation is classified as

* ``native``: a `thunder.torch` symbol traces it (or the tracer functionalizes it, for in-place ops);
* ``executor``: an active executor replaces it (`register_operator(replaces=...)`) or claims the symbol that
  traces it (`register_implementation`); the report names the executor;
* ``fallback``: no symbol, but torch's meta kernel gives its outputs; PyTorch eager runs it;
* ``unsupported``: tracing it fails; the report names the call site and the reason.

`get_fusions(trace)` lists the fusion regions of an execution trace.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

import thunder.torch as ltorch
from thunder.core.pytree import tree_flatten, tree_unflatten
from thunder.core.trace import TraceCtx
from thunder.extend import get_always_executors, resolve_executors
from thunder.frontend import tracer as _tracer
from thunder.frontend.api import jit
from thunder.frontend.module import ThunderModule
from thunder.torch.fallback import fallback_symbol, qualified_name

# torch's C namespaces whose functions carry a prefixed name (`torch._C._fft.fft_fft` is `torch.fft.fft`)
_PUBLIC_NAMESPACES = {"_fft": "fft", "_linalg": "linalg", "_special": "special", "_nested": "nested",
                      "_sparse": "sparse", "_nn": "nn.functional"}  # fmt: skip

__all__ = ["ExamineResult", "OperationReport", "examine", "get_fusion_symbols", "get_fusions"]

NATIVE, EXECUTOR, FALLBACK, UNSUPPORTED = "native", "executor", "fallback", "unsupported"
_MAX_CALL_SITES = 3


@dataclass
class OperationReport:
    """One torch callable the program called: how often, from where, and how Thunder handles it."""

    name: str  # e.g. "torch.nn.functional.gelu", "torch.Tensor.add_"
    calls: int = 0
    call_sites: list[str] = field(default_factory=list)  # the user's `file:line (in function)`, first few
    support: str = NATIVE  # NATIVE, EXECUTOR, FALLBACK or UNSUPPORTED
    detail: str = ""  # the executor's name, or why the operation is unsupported


@dataclass
class ExamineResult:
    """What `examine` found. `ok` is True when every operation is supported and the jitted run matches eager."""

    operations: dict[str, OperationReport] = field(default_factory=dict)
    eager_error: str | None = None  # the program failed without Thunder
    jit_error: str | None = None  # tracing, compiling or running the jitted program failed
    failed_operation: str | None = None  # the operation being traced when it failed, if one was
    failed_at: str | None = None  # the user's file:line where it failed
    matches_eager: bool | None = None  # None: the comparison did not run
    mismatch: str | None = None
    fallback_ops: set[str] = field(default_factory=set)  # as reported by thunder.fallback_ops(jfn)
    fusions: list[str] = field(default_factory=list)
    execution_trace: TraceCtx | None = None
    thunderfx: str | None = None  # where thunder.jit failed: whether thunder.dynamo.thunderfx runs it, and why

    def names(self, support: str) -> list[str]:
        return sorted(name for name, op in self.operations.items() if op.support == support)

    @property
    def supported(self) -> list[str]:
        return sorted(n for n, op in self.operations.items() if op.support in (NATIVE, EXECUTOR, FALLBACK))

    @property
    def unsupported(self) -> list[str]:
        return self.names(UNSUPPORTED)

    @property
    def fallback(self) -> list[str]:
        return self.names(FALLBACK)

    @property
    def ok(self) -> bool:
        return not self.unsupported and self.jit_error is None and bool(self.matches_eager)

    def report(self) -> str:
        return "\n".join(_report_lines(self))

    __str__ = report


def examine(fn_or_module: Callable | torch.nn.Module, /, *args, **kwargs) -> ExamineResult:
    """Reports the torch operations `fn_or_module(*args, **kwargs)` uses, which ones Thunder supports (natively,
    through an executor, or through the meta-kernel fallback), and whether `thunder.jit` matches eager.

    Prints the report and returns it as an `ExamineResult`. Never raises for a failure of the program: the
    result says what failed, where, and why. Inputs are not mutated by the eager run (it runs on copies).
    """
    result = ExamineResult()
    if not callable(fn_or_module):
        result.eager_error = f"examine expects a function or an nn.Module, got {type(fn_or_module).__name__}"
        print(result.report())
        return result
    rng_state = torch.get_rng_state()
    try:
        expected, recorder = _run_eager(fn_or_module, args, kwargs, rng_state)
    except Exception as e:
        result.eager_error = f"{type(e).__name__}: {e}"
        print(result.report())
        return result
    torch.set_rng_state(rng_state)  # random operations draw the same numbers in the jitted run
    result.operations = _classify(recorder.calls)
    actual = _run_jitted(fn_or_module, args, kwargs, result)
    if result.jit_error is None:
        _compare(actual, expected, result)
    else:
        torch.set_rng_state(rng_state)
        result.thunderfx = _thunderfx_verdict(fn_or_module, args, kwargs, expected)
    print(result.report())
    return result


# -- recording the eager run -------------------------------------------------------------------------------


@dataclass
class _Calls:
    func: Callable
    count: int = 0
    sites: list[str] = field(default_factory=list)
    inplace: str | None = None  # for an in-place operation: "" if the tracer functionalizes it, else why not
    meta_error: str | None = None  # set when the fallback's meta kernel failed on one of these calls


class _TorchCallRecorder(TorchFunctionMode):
    """Counts every torch callable called (but metadata queries), by qualified name, with its call sites."""

    def __init__(self):
        super().__init__()
        self.calls: dict[str, _Calls] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not _is_metadata_query(func) and not _is_functorch_wrapper(func):
            name = _operation_name(func)
            calls = self.calls.get(name)
            if calls is None:
                calls = self.calls[name] = _Calls(func, inplace=_inplace_status(func, args))
            calls.count += 1
            if len(calls.sites) < _MAX_CALL_SITES:
                site = _tracer.user_location()
                if site not in calls.sites:
                    calls.sites.append(site)
            if calls.meta_error is None and calls.inplace is None and _needs_fallback(func):
                calls.meta_error = _fallback_meta_error(func, args, kwargs)
        return func(*args, **kwargs)


def _is_functorch_wrapper(func) -> bool:
    # An autograd.Function applied inside eager's torch.vmap reaches the mode as this higher-order operator; under
    # thunder.jit the Function is traced (its forward's operations, recorded here too, are what runs), and
    # torch.vmap itself is Thunder's (thunder.frontend.torch_func_calls).
    return func is getattr(torch.ops.higher_order, "custom_function_call", None)


def _is_metadata_query(func) -> bool:
    # The tracer answers these from the proxy itself: nothing is recorded, they are always supported.
    if func in _tracer._PASSTHROUGH:
        return True
    if getattr(func, "__name__", "") == "__get__":
        owner = getattr(getattr(func, "__self__", None), "__name__", "")
        return owner not in _tracer._PASSTHROUGH_GETTERS_EXCEPT
    return func in (torch.Tensor.__repr__, torch.Tensor.__format__, torch.Tensor.__str__)


def _operation_name(func) -> str:
    """The name users write for `func`: `torch.fft.fft` (not torch's internal `torch._C._fft.fft_fft`),
    `torch.Tensor.T` for a property (recorded as its getter), `torch.nn.functional.gelu`."""
    if getattr(func, "__name__", "") == "__get__":  # a property such as Tensor.T, seen as its getter
        owner = func.__self__
        return f"torch.Tensor.{owner.__name__}"
    public = _public_namespace_name(func)
    return public if public is not None else qualified_name(func)


def _public_namespace_name(func) -> str | None:
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__name__", None) or ""
    if not module.startswith("torch._C._"):
        return None
    namespace = _PUBLIC_NAMESPACES.get(module[len("torch._C.") :])
    if namespace is None:
        return None
    prefix = namespace.split(".")[0] + "_"
    short = name[len(prefix) :] if name.startswith(prefix) and namespace != "nn.functional" else name
    public_module = torch
    for part in namespace.split("."):
        public_module = getattr(public_module, part, None)
    # Only a name that resolves back to the same function is reported: never a made-up one.
    if public_module is not None and getattr(public_module, short, None) is func:
        return f"torch.{namespace}.{short}"
    return None


def _inplace_status(func, args) -> str | None:
    """None if func is not an in-place operation; else "" if the tracer can functionalize it, or why not."""
    name = getattr(func, "__name__", "")
    if func is torch.Tensor.__setitem__:
        return ""
    dunders = _tracer._INPLACE_DUNDERS
    if name not in dunders and not (ltorch.is_inplace_name(name) and args and isinstance(args[0], torch.Tensor)):
        return None
    if name in ltorch.INPLACE_SPECIAL:
        return ""
    out_of_place = dunders.get(name, name[:-1])
    functional = getattr(torch.Tensor, out_of_place, None) or getattr(torch, out_of_place, None)
    if functional is not None and ltorch.torch_handler(functional) is not None:
        return ""
    return f"the in-place operation has no functional form in Thunder (no symbol for {out_of_place})"


def _needs_fallback(func) -> bool:
    return ltorch.torch_handler(func) is None and func not in _tracer._DATA_DEPENDENT


def _fallback_meta_error(func, args, kwargs) -> str | None:
    """Why torch's meta kernel cannot give func's outputs for these arguments (None when it can)."""
    symbol = fallback_symbol(func).symbol
    try:
        symbol.meta(*args, **kwargs)
    except Exception as e:
        cause = e.__cause__ or e  # the fallback wraps the meta kernel's own error
        return f"{type(cause).__name__}: {cause}"
    return None


def _run_eager(fn, args, kwargs, rng_state) -> tuple[Any, _TorchCallRecorder]:
    """The eager run (on copies), recording every torch call, on the paths the tracer takes: libraries branch on
    torch.compiler.is_compiling() (see tracer._compiling), and the data-dependent checks they skip then must not
    be reported. Where that path fails, thunder.jit traces the path eager takes (flag False), and so does this."""
    for compiling in (True, False):
        recorder = _TorchCallRecorder()
        eager_fn, eager_args, eager_kwargs = _eager_copies(fn, args, kwargs)
        torch.set_rng_state(rng_state)
        try:
            with recorder, _tracer._compiling(compiling):
                return eager_fn(*eager_args, **eager_kwargs), recorder
        except Exception:
            if not compiling:
                raise
    raise AssertionError("unreachable: the second run returns or raises")


def _eager_copies(fn, args, kwargs):
    """The function and arguments for the eager run: copies, so that in-place updates (of inputs, of a module's
    buffers) do not leak into the jitted run."""

    def clone(x):
        if isinstance(x, torch.Tensor):
            return x.detach().clone().requires_grad_(x.requires_grad)
        return x

    leaves, spec = tree_flatten((args, kwargs))
    eager_args, eager_kwargs = tree_unflatten([clone(x) for x in leaves], spec)
    if isinstance(fn, torch.nn.Module):
        try:
            fn = copy.deepcopy(fn)
        except Exception:
            pass  # an uncopyable module: run the original (its buffers may then be updated twice)
    return fn, eager_args, eager_kwargs


# -- classification ----------------------------------------------------------------------------------------


def _classify(calls: dict[str, _Calls]) -> dict[str, OperationReport]:
    replaced_by = {}
    for ex in reversed(resolve_executors(None)):  # the highest priority wins, as in thunder.jit
        for torch_fn in getattr(ex, "replacements", {}):
            replaced_by[torch_fn] = ex.name
    operations = {}
    for name, seen in calls.items():
        op = OperationReport(name, seen.count, list(seen.sites))
        func, inplace = seen.func, seen.inplace
        if func in replaced_by:
            op.support, op.detail = EXECUTOR, replaced_by[func]
        elif func in _tracer._DATA_DEPENDENT:
            op.support = UNSUPPORTED
            op.detail = (
                f"{_tracer._DATA_DEPENDENT[func]} needs the values of a tensor, and a trace holds only metadata: "
                "compute it outside the jitted function, or use the torch.compile frontend, which splits the "
                "program there: torch.compile(fn, backend=thunder.dynamo.ThunderCompiler())"
            )
        elif ltorch.torch_handler(func) is not None or inplace == "":
            op.support = NATIVE
        elif inplace:
            op.support, op.detail = UNSUPPORTED, inplace
        elif seen.meta_error is not None:
            op.support = UNSUPPORTED
            op.detail = f"no Thunder symbol, and torch's meta kernel failed: {seen.meta_error}"
        else:
            op.support = FALLBACK
        operations[name] = op
    return operations


# -- the jitted run ----------------------------------------------------------------------------------------


def _run_jitted(fn, args, kwargs, result: ExamineResult) -> Any:
    try:
        jfn = jit(fn)
        out = jfn(*args, **kwargs)
    except Exception as e:
        result.jit_error = f"{type(e).__name__}: {e}"
        func, site = _failure_point(e)
        if func is not None:
            name = _operation_name(func)
            result.failed_operation = name
            op = result.operations.setdefault(name, OperationReport(name, 0, [site] if site else []))
            if op.support != UNSUPPORTED:  # the eager run's classification, when it has one, is more precise
                op.support, op.detail = UNSUPPORTED, (str(e).splitlines() or [type(e).__name__])[0]
        result.failed_at = site
        return None
    stats = jfn._jfn.stats if isinstance(jfn, ThunderModule) else jfn.stats
    acquired = stats.last_traces[0]
    result.fallback_ops = {_operation_name(func) for func in _fallback_functions(acquired.bound_symbols)}
    for name in result.fallback_ops:
        op = result.operations.setdefault(name, OperationReport(name))
        op.support = FALLBACK
    _report_claims(acquired, _executors_of(jfn), result)
    result.execution_trace = stats.last_traces[-1]
    result.fusions = [name for name, _ in get_fusions(result.execution_trace)]
    return out


def _fallback_functions(bsyms) -> list[Callable]:
    """The torch callables that bsyms (and their decompositions) run through the meta-kernel fallback."""
    found = []
    for bsym in bsyms:
        if "fallback" in bsym.sym.tags:
            found.extend(getattr(bsym.sym, "torch_fns", ())[:1])
        found.extend(_fallback_functions(bsym.subsymbols))
    return found


def _executors_of(jfn) -> list:
    inner = getattr(jfn, "_jfn", jfn)  # a ThunderModule wraps the jitted function
    return list(getattr(inner, "executors", ()))


def _report_claims(acquired: TraceCtx, executors: list, result: ExamineResult) -> None:
    """Marks the operations that an executor other than the always-executors claims, as claiming will: the
    first executor in the list whose checker accepts the call. Claims are per symbol: `torch.add` and
    `torch.Tensor.add` share one, so an operation some of whose symbol's calls stay native says so."""
    always = {ex.name for ex in get_always_executors()}
    claimers = [ex for ex in executors if ex.name not in always and hasattr(ex, "can_execute")]
    claimed: dict[str, set[str]] = {}
    unclaimed: set[str] = set()
    for bsym in acquired.bound_symbols:
        torch_fns = getattr(bsym.sym, "torch_fns", ())
        if not torch_fns or "fallback" in bsym.sym.tags:
            continue
        names = {_operation_name(fn) for fn in torch_fns} & result.operations.keys()
        claimer = next((ex.name for ex in claimers if _claims(ex, bsym)), None)
        for name in names:
            if claimer is None:
                unclaimed.add(name)
            else:
                claimed.setdefault(name, set()).add(claimer)
    for name, executor_names in claimed.items():
        op = result.operations[name]
        if op.support not in (NATIVE, EXECUTOR):
            continue
        detail = ", ".join(sorted(executor_names | ({op.detail} if op.detail else set())))
        if name in unclaimed:  # the checker declined some calls of the symbol that traces this operation
            detail += " for some calls, natively for others (the checker decides by the arguments)"
        op.support, op.detail = EXECUTOR, detail


def _claims(ex, bsym) -> bool:
    try:
        return bool(ex.can_execute(bsym))
    except Exception:  # a checker that fails does not claim, as in the pipeline, where the error surfaces
        return False


def _thunderfx_verdict(fn, args, kwargs, expected) -> str:
    """Whether the torch.compile frontend (thunder.dynamo.thunderfx) runs what thunder.jit could not, and why."""
    from thunder.dynamo import thunderfx  # on first use: `import thunder` need not load the Dynamo frontend

    fx_fn, fx_args, fx_kwargs = _eager_copies(fn, args, kwargs)
    try:
        compiled = thunderfx(fx_fn, fallback="eager")
        actual = compiled(*fx_args, **fx_kwargs)
    except Exception as e:
        return f"thunderfx cannot run it either: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    check = ExamineResult()
    _compare(actual, expected, check)
    outcome = "matches eager" if check.matches_eager else f"does NOT match eager ({check.mismatch})"
    regions = len(compiled.compiler.thunder_regions)
    lines = [
        f"thunderfx runs it and {outcome}: Dynamo captured {len(compiled.compiler.graphs)} FX graph(s), Thunder "
        f"compiled {regions} region(s). Use: thunder.dynamo.thunderfx(model) or "
        "torch.compile(model, backend=thunder.dynamo.ThunderCompiler()). Why parts run outside Thunder:"
    ]
    lines += [f"  {reason}" for reason in compiled.split_reasons[:8]] or ["  (nothing: every graph ran under Thunder)"]
    return "\n".join(lines)


def _failure_point(error: BaseException) -> tuple[Callable | None, str | None]:
    """The torch callable the tracer was handling when `error` was raised, and the user's file:line."""
    func, site = None, None
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code is _tracer.TracingMode.__torch_function__.__code__:
            func = frame.f_locals.get("func")
        elif _is_user_frame(frame.f_code.co_filename):
            site = f"{frame.f_code.co_filename}:{tb.tb_lineno} (in {frame.f_code.co_name})"
        tb = tb.tb_next
    return func, site


_THUNDER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))


def _is_user_frame(filename: str) -> bool:
    path = os.path.abspath(filename)
    return not path.startswith((_THUNDER_DIR, _TORCH_DIR)) and not filename.startswith(("<frozen", "thunder."))


def _compare(actual, expected, result: ExamineResult) -> None:
    actual_leaves, actual_spec = tree_flatten(actual)
    expected_leaves, expected_spec = tree_flatten(expected)
    if actual_spec != expected_spec:
        result.matches_eager = False
        result.mismatch = "the jitted function returns a differently structured result than eager"
        return
    for i, (a, e) in enumerate(zip(actual_leaves, expected_leaves)):
        try:
            if isinstance(e, torch.Tensor) or isinstance(a, torch.Tensor):
                torch.testing.assert_close(a, e, equal_nan=True)  # NaN where eager has NaN matches
            elif a != e:
                raise AssertionError(f"{a!r} != {e!r}")
        except (AssertionError, TypeError, ValueError, RuntimeError) as err:  # examine never raises
            result.matches_eager = False
            where = f"output {i}" if len(expected_leaves) > 1 else "the output"
            result.mismatch = f"{where} differs from eager: {str(err).strip()}"
            return
    result.matches_eager = True


# -- fusions -----------------------------------------------------------------------------------------------


def get_fusion_symbols(trace: TraceCtx) -> list:
    """The bound symbols of `trace` that are fusion regions (their symbol is tagged "fusion")."""
    return [bsym for bsym in trace.bound_symbols if "fusion" in bsym.sym.tags]


def get_fusions(trace: TraceCtx) -> list[tuple[str, Callable]]:
    """The fusion regions of an execution trace, as `(name, callable)` pairs in program order."""
    fusions = []
    ctx = None
    for bsym in get_fusion_symbols(trace):
        fn = bsym.sym.python_impl
        if fn is None:
            ctx = ctx if ctx is not None else trace.python_ctx()
            fn = ctx.get(bsym.sym.name)
        fusions.append((bsym.sym.name, fn))
    return fusions


# -- the report --------------------------------------------------------------------------------------------


def _report_lines(result: ExamineResult) -> list[str]:
    if result.eager_error is not None:
        return [
            "examine: the program fails without Thunder; check that it runs eagerly first.",
            f"  {result.eager_error}",
        ]
    ops = result.operations
    lines = []
    if not ops:
        lines.append("examine: found no torch operations.")
    else:
        counts = {s: len(result.names(s)) for s in (NATIVE, EXECUTOR, FALLBACK, UNSUPPORTED)}
        supported = len(ops) - counts[UNSUPPORTED]
        lines.append(
            f"examine: found {len(ops)} distinct torch operations, {supported} supported "
            f"({100 * supported / len(ops):.0f}%): {counts[NATIVE]} natively, {counts[EXECUTOR]} by an executor, "
            f"{counts[FALLBACK]} through the fallback; {counts[UNSUPPORTED]} unsupported."
        )
        width = max(len(name) for name in ops)
        for name in sorted(ops):
            op = ops[name]
            detail = f" ({op.detail})" if op.support == EXECUTOR else ""
            lines.append(
                f"  {name.ljust(width)}  {op.calls:>4} call{'s' if op.calls != 1 else ' '}  {op.support}{detail}"
            )
    if result.fallback:
        lines.append(
            "Through the fallback (shapes from torch's meta kernels, run by PyTorch eager, differentiated by torch "
            "autograd; Thunder cannot fuse them):"
        )
        lines += [
            f"  {name}  at {', '.join(ops[name].call_sites) or 'an unknown location'}" for name in result.fallback
        ]
    if result.unsupported:
        lines.append("Unsupported (please report them, with the call sites):")
        for name in result.unsupported:
            op = ops[name]
            lines.append(f"  {name}  at {', '.join(op.call_sites) or 'an unknown location'}")
            lines.append(f"    {op.detail}")
    lines += _outcome_lines(result)
    return lines


def _outcome_lines(result: ExamineResult) -> list[str]:
    if result.jit_error is not None:
        where = f" at {result.failed_at}" if result.failed_at else ""
        what = f" while tracing {result.failed_operation}" if result.failed_operation else ""
        first_line = result.jit_error.splitlines()[0]
        lines = [f"thunder.jit failed{what}{where}:", f"  {first_line}"]
        return lines + ([result.thunderfx] if result.thunderfx else [])
    lines = []
    if result.fusions:
        lines.append(f"The execution trace has {len(result.fusions)} fusion regions: {', '.join(result.fusions)}.")
    if result.matches_eager:
        lines.append("The jitted function runs and its result matches eager (torch.testing.assert_close).")
    else:
        lines.append(f"The jitted function runs, but its result does not match eager: {result.mismatch}")
    return lines
