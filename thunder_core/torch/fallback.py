"""Fallback symbols: any torch operator without a `thunder.torch` symbol still traces.

The symbol's meta runs the operator on `meta`-device tensors (torch's own meta kernels give the output
shapes and dtypes); the torch executor runs the operator itself, and autodiff differentiates it through
torch's autograd. `examine` and `thunder.fallback_ops(jfn)` report which operators took this path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from thunder.core.proxies import TensorProxy
from thunder.core.pytree import tree_flatten, tree_unflatten
from thunder.core.symbol import Symbol
from thunder.core.trace import get_tracectx

_fallback_symbols: dict[Callable, Callable] = {}


def qualified_name(fn: Callable) -> str:
    module = getattr(fn, "__module__", None) or ""
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
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


def fallback_symbol(func: Callable) -> Callable | None:
    """The callable that traces `func` through its meta kernel (cached per func)."""
    handler = _fallback_symbols.get(func)
    if handler is not None:
        return handler
    name = qualified_name(func)
    sym_name = name.replace(".", "_")

    def meta(*args, **kwargs):
        leaves, spec = tree_flatten((args, kwargs))
        device = next((x.device for x in leaves if isinstance(x, torch.Tensor)), None)
        if "device" in kwargs and kwargs["device"] is not None:
            device = torch.device(kwargs["device"])
        meta_leaves = [_to_meta(x) for x in leaves]
        meta_args, meta_kwargs = tree_unflatten(meta_leaves, spec)
        if "device" in meta_kwargs:
            meta_kwargs["device"] = "meta"
        try:
            with torch._C.DisableTorchFunction():
                out = func(*meta_args, **meta_kwargs)
        except Exception as e:
            raise NotImplementedError(
                f"Thunder has no symbol for {name}, and running it on meta tensors to infer its outputs failed "
                f"({type(e).__name__}: {e}). Ask for the op to be supported, or use the torch.compile frontend, "
                "which runs what Thunder cannot on Inductor: torch.compile(fn, backend=thunder.dynamo.ThunderCompiler())."
            ) from e
        device = device or torch.get_default_device()
        out_leaves, out_spec = tree_flatten(out)
        out_leaves = [
            TensorProxy(like=o, device=device, strides=o.stride()) if isinstance(o, torch.Tensor) else o
            for o in out_leaves
        ]
        return tree_unflatten(out_leaves, out_spec)

    sym = Symbol(sym_name, meta, id=f"torch_fallback.{name}", is_prim=True, tags=("fallback",))
    sym.torch_fns = (func,)
    sym.qualified_name = name

    def handler(*args, **kwargs):
        out = meta(*args, **kwargs)
        if not any(isinstance(x, TensorProxy) for x in tree_flatten(out)[0]):
            return out  # a metadata query: its answer is a constant of this trace
        get_tracectx().record(sym.bind(*args, output=out, **kwargs))
        return out

    handler.symbol = sym
    handler.name = name
    _fallback_symbols[func] = handler
    return handler


def meta_from_torch(fn: Callable) -> Callable:
    """A meta function computing `fn`'s outputs as proxies by running it on meta tensors."""

    def meta(*args, **kwargs):
        leaves, spec = tree_flatten((args, kwargs))
        device = next((x.device for x in leaves if isinstance(x, torch.Tensor)), torch.get_default_device())
        meta_args, meta_kwargs = tree_unflatten([_to_meta(x) for x in leaves], spec)
        with torch._C.DisableTorchFunction():
            out = fn(*meta_args, **meta_kwargs)
        out_leaves, out_spec = tree_flatten(out)
        proxies = [TensorProxy(like=o, device=device) if isinstance(o, torch.Tensor) else o for o in out_leaves]
        return tree_unflatten(proxies, out_spec)

    return meta
