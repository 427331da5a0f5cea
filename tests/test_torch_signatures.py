"""Every torch callable Thunder traces takes its arguments as torch names them.

The signature test walks every registered torch callable (`thunder.torch.TORCH_HANDLERS`) and every signature
torch accepts for it (the Python signature, or one per functional aten overload, read from torch itself), and
calls the handler the way a user may call torch: each parameter passed by keyword, with the required ones
before it passed by keyword too. The call must bind, each value reaching the handler's parameter at torch's
position (or of torch's name, for keyword-only ones), and torch's literal defaults must be the handler's.
Expected differences are listed below with their reasons. The behavioural tests run calls written with torch's
keywords under thunder.jit and compare them with eager.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from ops.opdb import DECOMPOSE_TO_PRIMS

import thunder
from thunder.torch import TORCH_HANDLERS
from thunder.torch.signatures import adapt_torch_call, handler_signature, torch_signatures

_P = inspect.Parameter

# (callable's qualified name, parameter) -> why Thunder's handler differs from torch
_OUT_DTYPE = "the out_dtype overloads (torch 2.9+: a float32 result of half-precision operands, CUDA) are not traced"
_TO = "Tensor.to parses its overloads itself (thunder.torch.creation._parse_to); test_tensor_to_keywords_match_eager"
EXPECTED_DIFFERENCES: dict[tuple[str, str], str] = {
    **{(name, "out_dtype"): _OUT_DTYPE for name in ("addmm", "baddbmm", "bmm", "mm")},
    **{(f"torch.Tensor.{name}", "out_dtype"): _OUT_DTYPE for name in ("addmm", "baddbmm", "bmm", "mm")},
    ("repeat_interleave", "overload"): "torch.repeat_interleave(repeats) sizes its output from the data of `repeats`",
    ("torch.Tensor.expand", "implicit"): "an internal flag of TorchScript's tracer; it changes nothing in the result",
    **{("torch.Tensor.to", name): _TO for name in ("copy", "dtype", "memory_format", "non_blocking")},
}
# entries that exist only with some torch versions (the test must pass with 2.11 and 2.13)
_VERSION_DEPENDENT = {key for key, why in EXPECTED_DIFFERENCES.items() if why is _OUT_DTYPE}


def _qualname(fn) -> str:
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn))
    if qualname.startswith("TensorBase."):
        return "torch.Tensor." + qualname.removeprefix("TensorBase.")
    module = getattr(fn, "__module__", None) or ""
    return f"{module}.{qualname}".removeprefix("torch._VariableFunctionsClass.").replace("_VariableFunctionsClass.", "")


def _is_method(fn, sig: inspect.Signature) -> bool:
    params = list(sig.parameters)
    return bool(params) and params[0] == "self"


def _literal(value) -> bool:
    return isinstance(value, (bool, int, float, str)) and value is not _P.empty


def _reaches(bound: inspect.BoundArguments, marker) -> list[str]:
    """The handler parameters the marker was bound to (directly, or inside *args / **kwargs)."""
    found = []
    for name, value in bound.arguments.items():
        values = value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else (value,)
        if any(v is marker for v in values):
            found.append(name)
    return found


def _keyword_call(torch_fn, handler, tparams, method, names):
    """The handler's binding of `torch_fn(self?, **{name: marker for name in names})`, and the markers."""
    markers = {name: object() for name in names}
    args = (object(),) if method else ()
    call_args, call_kwargs = adapt_torch_call(torch_fn, handler, args, dict(markers))
    return handler_signature(handler).bind(*call_args, **call_kwargs), markers


def _call_problems(torch_fn, handler, sig: inspect.Signature) -> list[tuple[str, str]]:
    """(parameter, problem) for each parameter of `sig` a keyword call cannot pass to the handler."""
    hsig = handler_signature(handler)
    if hsig is None:
        return []
    if any(p.kind in (_P.POSITIONAL_ONLY, _P.VAR_POSITIONAL) for p in sig.parameters.values()):
        return []  # operators and `*args` functions (einsum, __getitem__): nothing to pass by keyword
    method = _is_method(torch_fn, sig)
    tparams = [p for p in sig.parameters.values() if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)]
    hparams = list(hsig.parameters.values())
    hpositional = [p for p in hparams if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD, _P.VAR_POSITIONAL)]
    callable_by_keyword = [
        (i, p) for i, p in enumerate(tparams) if p.kind != _P.POSITIONAL_ONLY and not (method and i == 0)
    ]
    required = [p.name for i, p in callable_by_keyword if p.default is _P.empty]
    try:  # the overload's required parameters alone, each by keyword
        _keyword_call(torch_fn, handler, tparams, method, required)
    except TypeError as e:
        args = (object(),) if method else ()
        _, leftover = adapt_torch_call(torch_fn, handler, args, dict.fromkeys(required))
        unknown = [name for name in leftover if name not in hsig.parameters] or ["overload"]
        return [(unknown[0], f"the overload {sig} does not bind a keyword call of its required parameters: {e}")]
    problems = []
    for index, param in callable_by_keyword:
        names = dict.fromkeys([*required, param.name])
        try:
            bound, markers = _keyword_call(torch_fn, handler, tparams, method, names)
        except TypeError as e:
            problems.append((param.name, f"a keyword call does not bind: {e}"))
            continue
        where = _reaches(bound, markers[param.name])
        # a positional parameter must reach the handler's parameter at torch's position, or one of torch's name
        at_position = hpositional[min(index, len(hpositional) - 1)].name if hpositional else None
        if at_position is not None and hpositional[min(index, len(hpositional) - 1)].kind != _P.VAR_POSITIONAL:
            at_position = hpositional[index].name if index < len(hpositional) else None
        fine = [param.name] if param.kind == _P.KEYWORD_ONLY else [param.name, at_position]
        if not (len(where) == 1 and where[0] in fine):
            problems.append((param.name, f"reaches {where}, not {' or '.join(map(str, fine))}"))
        if _literal(param.default) and param.name in hsig.parameters:
            ours = hsig.parameters[param.name].default
            if _literal(ours) and ours != param.default and type(ours) is type(param.default):
                problems.append((param.name, f"default {ours!r}, torch's is {param.default!r}"))
    return problems


# Parameters only the named-tensor overloads have (Dimname arguments): torch 2.11 lists those overloads, 2.13 no
# longer does, and named tensors are not supported under thunder.jit (an error says so).
_NAMED_TENSOR_PARAMETERS = frozenset({"names", "outdim", "out_dim"})


def _all_problems() -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for torch_fn, handler in TORCH_HANDLERS.items():
        for sig in torch_signatures(torch_fn):
            if _NAMED_TENSOR_PARAMETERS & {name for name, p in sig.parameters.items() if p.default is _P.empty}:
                continue
            for name, problem in _call_problems(torch_fn, handler, sig):
                found.setdefault((_qualname(torch_fn), name), f"{problem}; torch: {sig}")
    return found


def test_every_traced_torch_callable_takes_torchs_keywords():
    problems = _all_problems()
    unexpected = {k: v for k, v in problems.items() if k not in EXPECTED_DIFFERENCES}
    assert not unexpected, "\n".join(f"{fn} {param}: {why}" for (fn, param), why in sorted(unexpected.items()))


def test_expected_differences_are_still_differences():
    problems = _all_problems()
    stale = [k for k in EXPECTED_DIFFERENCES if k not in problems and k not in _VERSION_DEPENDENT]
    assert not stale, f"these listed differences are fixed; remove them from EXPECTED_DIFFERENCES: {stale}"


def test_signatures_come_from_torch():
    # the walk covers the builtins through their aten schemas, not only the Python-level functions
    assert any(str(s) == "(input, batch1, batch2, *, beta=1, alpha=1)" for s in torch_signatures(torch.baddbmm))
    assert any(str(s) == "(self, batch1, batch2, *, beta=1, alpha=1)" for s in torch_signatures(torch.Tensor.baddbmm))
    assert len([fn for fn in TORCH_HANDLERS if torch_signatures(fn)]) > 500


# -- behaviour: calls written with torch's keywords, against eager ----------------------------------------
def _baddbmm(x, b1, b2):
    return torch.baddbmm(x, batch1=b1, batch2=b2, beta=0.5, alpha=2.0)


def _all_keywords(x, b1, b2):
    return torch.baddbmm(input=x, batch1=b1, batch2=b2, alpha=0.25)


def _method_keywords(x, b1, b2):
    return x.baddbmm(batch1=b1, batch2=b2, beta=2.0) + x.add(other=b1 @ b2, alpha=3)


def _reductions(x, b1, b2):
    s = torch.sum(input=x, dim=1, keepdim=True)
    m = torch.max(x, dim=2, keepdim=True).values
    v = torch.var(x, dim=(1, 2), correction=0, keepdim=True)
    return s + m + v + torch.amax(input=x, dim=-1, keepdim=True)


def _shapes(x, b1, b2):
    a = x.view(size=(2, 9)).reshape(shape=(2, 3, 3))
    b = torch.transpose(input=x, dim0=1, dim1=2)
    c = torch.swapaxes(x, axis0=1, axis1=2)
    d = torch.cat(tensors=[x, x], dim=1).narrow(dim=1, start=0, length=3)
    return a + b + c + d + x.expand(size=(2, 3, 3))


def _elementwise(x, b1, b2):
    a = torch.where(condition=x > 0, input=x, other=torch.zeros_like(input=x))
    b = torch.addcmul(x, tensor1=x, tensor2=x, value=0.5) + torch.clamp(input=x, min=-0.5, max=0.5)
    c = torch.lerp(input=x, end=x * 2, weight=0.3) + torch.maximum(input=x, other=-x)
    return a + b + c + torch.pow(self=2.0, exponent=x) + x.masked_fill(mask=x > 0.5, value=1.0)


def _nn(x, b1, b2):
    a = F.softmax(input=x, dim=-1) + F.gelu(input=x, approximate="tanh")
    b = F.layer_norm(input=x, normalized_shape=(3,), eps=1e-6)
    c = F.linear(input=x, weight=b1[0, :, :3].T.contiguous())
    return a + b + c.sum() + torch.softmax(x, dim=1, dtype=torch.float64).float()


@pytest.mark.parametrize(
    "fn", [_baddbmm, _all_keywords, _method_keywords, _reductions, _shapes, _elementwise, _nn], ids=lambda f: f.__name__
)
def test_torch_keyword_calls_match_eager(fn):
    torch.manual_seed(0)
    args = (torch.randn(2, 3, 3), torch.randn(2, 3, 4), torch.randn(2, 4, 3))
    torch.testing.assert_close(thunder.jit(fn)(*args), fn(*args))


def test_keyword_inplace_method_matches_eager():
    def fn(x, y):
        x.add_(other=y, alpha=2)
        return x.mul_(other=3)

    x, y = torch.randn(3), torch.randn(3)
    expected = fn(x.clone(), y)
    torch.testing.assert_close(thunder.jit(fn)(x.clone(), y), expected)


def test_tensor_to_keywords_match_eager():
    def fn(x):
        a = x.to(dtype=torch.float64, copy=True)
        b = x.to(device="cpu", dtype=torch.float16, non_blocking=False)
        return a.sum() + b.float().sum() + x.to(torch.float64, memory_format=torch.preserve_format).sum()

    x = torch.randn(3, 4)
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x))


def test_overloads_with_shifted_names_match_eager():
    # torch.arange(end=...), torch.randint(high=..., size=...): the one-bound overloads name their first argument
    # differently from the two-bound ones
    def fn(x):
        torch.manual_seed(1)
        r = torch.randint(high=7, size=(3,)) + torch.randint_like(x, high=5).long()
        return torch.arange(end=3) + torch.arange(start=1, end=4, step=1) + r

    x = torch.randn(3)
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x))


def test_generator_keyword_is_refused_clearly():
    def fn(x):
        return torch.rand_like(x, generator=torch.Generator())

    with pytest.raises(NotImplementedError, match="torch.manual_seed"):
        thunder.jit(fn)(torch.randn(3))


_EXPLICIT_NONE_DEFAULTS = {
    # torch's default is None where the handler's is a value: passing None explicitly must mean the default
    "nan_to_num": lambda x: torch.nan_to_num(x, nan=None, posinf=None),
    "clone": lambda x: torch.clone(x, memory_format=None) + x.clone(memory_format=None),
    "zeros": lambda x: x + torch.zeros(4, layout=None, pin_memory=None, dtype=None, device=None),
    "full_like": lambda x: torch.full_like(x, 2.0, memory_format=None, pin_memory=None),
    "zeros_like": lambda x: torch.zeros_like(x, memory_format=None) + torch.ones_like(x, pin_memory=None),
    "arange": lambda x: x + torch.arange(4, layout=None, pin_memory=None),
    "new_full": lambda x: x.new_zeros(4, pin_memory=None) + x.new_full((4,), 1.0, pin_memory=None),
    "eye": lambda x: torch.eye(4, layout=None, pin_memory=None) @ x.nan_to_num(),
}


@pytest.mark.parametrize("name", list(_EXPLICIT_NONE_DEFAULTS))
def test_explicit_none_for_torchs_none_defaults_matches_eager(name):
    fn = _EXPLICIT_NONE_DEFAULTS[name]
    x = torch.tensor([1.0, float("nan"), float("inf"), -float("inf")])
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x), equal_nan=True)
    # decomposed (as a fusion executor runs it: nvFuser on CUDA), the explicit None must mean the default too
    torch.testing.assert_close(thunder.jit(fn, executors=[DECOMPOSE_TO_PRIMS])(x), fn(x), equal_nan=True)
