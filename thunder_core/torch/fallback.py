"""Fallback symbols: any torch operator without a `thunder.torch` symbol still traces.

The symbol's meta runs the operator on `meta`-device tensors (torch's own meta kernels give the output
shapes and dtypes; `thunder.torch.fallback_metas` stands in where torch has none); the torch executor runs the operator itself, and autodiff differentiates it through
torch's autograd. `examine` and `thunder.fallback_ops(jfn)` report which operators took this path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from thunder.core.devices import default_device, resolve_device
from thunder.core.proxies import TensorProxy
from thunder.core.pytree import tree_flatten, tree_unflatten
from thunder.core.symbol import Symbol
from thunder.core.trace import get_tracectx
from thunder.torch.fallback_metas import HAND_WRITTEN_METAS

_fallback_symbols: dict[Callable, Callable] = {}
_fallback_names: dict[str, Callable] = {}  # qualified name -> the callable whose fallback symbol has that id


def qualified_name(fn: Callable) -> str:
    """The dotted name of a torch callable, distinct for distinct callables: a fallback symbol's id is made of it,
    and the torch executor runs the callable registered under that id."""
    if getattr(fn, "__name__", "") == "__get__" and hasattr(getattr(fn, "__self__", None), "__objclass__"):
        return f"torch.Tensor.{fn.__self__.__name__}"  # a property's getter (Tensor.mH), not every getter alike
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    if "<locals>" in qualname:
        # a function a factory made (F.adaptive_max_pool2d is boolean_dispatch's `fn`, like its 1-d and 3-d
        # siblings): the name it was given
        qualname = getattr(fn, "__name__", None) or qualname
    if qualname.startswith("TensorBase."):
        qualname = "Tensor." + qualname[len("TensorBase.") :]
    if qualname.startswith("Tensor."):
        return "torch." + qualname
    if qualname.startswith("_VariableFunctionsClass."):
        qualname = qualname[len("_VariableFunctionsClass.") :]
    if module.startswith("torch._C._nn"):
        module = "torch.nn.functional"
    elif module.startswith("torch._C") or module in ("", "builtins"):
        module = "torch"
    return f"{module}.{qualname}"


def _to_meta(x):
    if isinstance(x, torch.Tensor):
        with torch._C.DisableTorchFunction():
            return torch.empty_strided(tuple(x.shape), tuple(x.stride()), dtype=x.dtype, device="meta")
    return x


def _result_device(leaves) -> torch.device | None:
    """Where an operator on these tensors puts its result: with a 0-d CPU tensor among CUDA tensors (a scalar to
    eager), on the CUDA tensors' device."""
    tensors = [x for x in leaves if isinstance(x, torch.Tensor)]
    dimensioned = [t for t in tensors if not (t.device.type == "cpu" and t.ndim == 0)]
    return (dimensioned or tensors)[0].device if tensors else None


class _RandomOpDetector(TorchDispatchMode):
    """Sees the aten kernels a call runs (on meta tensors) and notes whether torch tags any as random."""

    def __init__(self):
        super().__init__()
        self.random = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.random = self.random or torch.Tag.nondeterministic_seeded in getattr(func, "tags", ())
        return func(*args, **(kwargs or {}))


def fallback_symbol(func: Callable) -> Callable | None:
    """The callable that traces `func` through its meta kernel (cached per func)."""
    handler = _fallback_symbols.get(func)
    if handler is not None:
        return handler
    name = qualified_name(func)
    if _fallback_names.setdefault(name, func) is not func:  # two callables, one name: keep their symbols apart
        name = f"{name}_{id(func):x}"
    sym_name = name.replace(".", "_")

    def meta(*args, **kwargs):
        leaves, spec = tree_flatten((args, kwargs))
        device = _result_device(leaves)
        if "device" in kwargs and kwargs["device"] is not None:
            device = resolve_device(kwargs["device"])
        meta_leaves = [_to_meta(x) for x in leaves]
        meta_args, meta_kwargs = tree_unflatten(meta_leaves, spec)
        if "device" in meta_kwargs:
            meta_kwargs["device"] = "meta"
        try:
            with torch._C.DisableTorchFunction(), _RandomOpDetector() as detector:
                out = HAND_WRITTEN_METAS.get(func, func)(*meta_args, **meta_kwargs)
        except Exception as e:
            raise NotImplementedError(
                f"Thunder has no symbol for {name}, and running it on meta tensors to infer its outputs failed "
                f"({type(e).__name__}: {e}). Ask for the op to be supported, or use the torch.compile frontend, "
                "which runs what Thunder cannot on Inductor: torch.compile(fn, backend=thunder.dynamo.ThunderCompiler())."
            ) from e
        device = device or default_device()
        out_leaves, out_spec = tree_flatten(out)
        out_leaves = [
            TensorProxy(like=o, device=device, strides=o.stride()) if isinstance(o, torch.Tensor) else o
            for o in out_leaves
        ]
        return tree_unflatten(out_leaves, out_spec), detector.random

    # Two symbols, one id: the second carries the "random" property, for calls whose aten kernels torch tags as
    # drawing random numbers (what a call draws can depend on its arguments: dropout's training flag)
    sym, random_sym = (Symbol(sym_name, lambda *a, **k: meta(*a, **k)[0], id=f"torch_fallback.{name}", is_prim=True,
                              tags=tags) for tags in (("fallback",), ("fallback", "random")))  # fmt: skip
    for s in (sym, random_sym):
        s.torch_fns = (func,)
        s.qualified_name = name

    def handler(*args, **kwargs):
        out, draws_random = meta(*args, **kwargs)
        if not any(isinstance(x, TensorProxy) for x in tree_flatten(out)[0]):
            return out  # a metadata query: its answer is a constant of this trace
        get_tracectx().record((random_sym if draws_random else sym).bind(*args, output=out, **kwargs))
        return out

    handler.symbol = sym
    handler.name = name
    return _fallback_symbols.setdefault(func, handler)  # thread-safe: the first registration wins


def meta_from_torch(fn: Callable) -> Callable:
    """A meta function computing `fn`'s outputs as proxies by running it on meta tensors."""

    def meta(*args, **kwargs):
        leaves, spec = tree_flatten((args, kwargs))
        device = _result_device(leaves) or default_device()
        meta_args, meta_kwargs = tree_unflatten([_to_meta(x) for x in leaves], spec)
        with torch._C.DisableTorchFunction():
            out = fn(*meta_args, **meta_kwargs)
        out_leaves, out_spec = tree_flatten(out)
        proxies = [TensorProxy(like=o, device=device) if isinstance(o, torch.Tensor) else o for o in out_leaves]
        return tree_unflatten(proxies, out_spec)

    return meta
