"""The `torch` executor: runs every `thunder.torch` symbol by calling the torch function it mirrors, every
primitive through a small table of torch implementations, and fallback operators as themselves."""

from __future__ import annotations

import operator
from collections.abc import Callable
from numbers import Number

import torch
import torch.nn.functional as F

from thunder.core.symbol import BoundSymbol, Symbol
from thunder.executors.torchex_grads import register_torch_backward_kernels
from thunder.extend.executors import OperatorExecutor
from thunder.torch.fallback import qualified_name


def _scalar_first(fn: Callable) -> Callable:
    """Wraps a torch binary function so a Python number may come first."""

    def impl(a, b):
        if isinstance(a, Number):
            a = torch.scalar_tensor(a, dtype=b.dtype, device=b.device)
        elif isinstance(b, Number) and fn not in _ACCEPTS_SCALAR_SECOND:
            b = torch.scalar_tensor(b, dtype=a.dtype, device=a.device)
        return fn(a, b)

    impl.__name__ = getattr(fn, "__name__", "impl")
    return impl


_ACCEPTS_SCALAR_SECOND = {torch.remainder, torch.fmod, torch.bitwise_left_shift, torch.bitwise_right_shift}


def _full(shape, fill_value, *, dtype, device):
    return torch.full(shape, fill_value, dtype=dtype, device=device)


def _iota(length, *, start, step, dtype, device):
    return torch.arange(start, start + length * step, step, dtype=dtype, device=device)[:length]


def _bernoulli(shape, p, *, dtype, device):
    return torch.empty(shape, dtype=dtype, device=device).bernoulli_(p)


def _randint(shape, low, high, *, dtype, device):
    return torch.randint(low, high, shape, dtype=dtype, device=device)


def _slice(a, start_indices, end_indices, strides=None):
    strides = strides or [1] * a.ndim
    return a[tuple(slice(s, e, st) for s, e, st in zip(start_indices, end_indices, strides))]


def _pad(a, padding_value, padding_config):
    if all(interior == 0 for _, _, interior in padding_config) and all(lo >= 0 and hi >= 0 for lo, hi, _ in padding_config):
        flat = []
        for lo, hi, _ in reversed(padding_config):
            flat += [lo, hi]
        return F.pad(a, flat, value=padding_value)
    shape = [lo + hi + n + max(n - 1, 0) * interior for n, (lo, hi, interior) in zip(a.shape, padding_config)]
    out = torch.full(shape, padding_value, dtype=a.dtype, device=a.device)
    out[tuple(slice(lo, lo + n + max(n - 1, 0) * interior, interior + 1) for n, (lo, _, interior) in zip(a.shape, padding_config))] = a
    return out


def _setitem(a, key, value):
    out = a.clone()
    out[key] = value
    return out


def _var(a, dims, *, correction):
    return torch.var(a, dims, correction=correction) if dims else torch.var(a, (), correction=correction)


def _reduce(fn):
    def impl(a, dims):
        if not dims:
            return a.clone()
        return fn(a, dims)

    return impl


def _sum(a, dims):
    # the prim keeps its input's dtype (torch.sum would widen integers to int64, against the prim's meta)
    return torch.sum(a, dims, dtype=a.dtype) if dims else a.clone()


def _prod(a, dims):
    out = a
    for d in sorted(dims, reverse=True):
        out = torch.prod(out, d, dtype=a.dtype)  # as prims.sum: the input's dtype
    return out if dims else a.clone()


def _copy_to(dst, src):
    with torch.no_grad():
        dst.copy_(src)


def _narrow_offset(start, size, length):
    value = int(start.item())  # eager's narrow reads the value too (torch.narrow with a tensor start)
    if not -size <= value <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], but got {value})")
    value = value + size if value < 0 else value
    if value + length > size:
        raise RuntimeError(f"start ({value}) + length ({length}) exceeds dimension size ({size}).")
    return torch.full((), value, dtype=torch.int64, device=start.device)


def _advanced_index(a, indices):
    return a[tuple(indices)]


_PRIM_IMPLS: dict[str, Callable] = {
    "convert_element_type": lambda a, dtype: a.to(dtype),
    "to_device": lambda a, device, non_blocking=False: a.to(device, non_blocking=non_blocking),
    "where": lambda pred, a, b: torch.where(pred, a, b),
    "full": _full,
    "empty": lambda shape, *, dtype, device: torch.empty(shape, dtype=dtype, device=device),
    "uniform": lambda shape, *, dtype, device: torch.rand(shape, dtype=dtype, device=device),
    "randn": lambda shape, *, dtype, device: torch.randn(shape, dtype=dtype, device=device),
    "bernoulli": _bernoulli,
    "randint": _randint,
    "iota": _iota,
    "broadcast_in_dim": lambda a, shape, dims: a.reshape([a.shape[dims.index(i)] if i in dims else 1 for i in range(len(shape))]).expand(shape),
    "reshape": torch.reshape,
    "permute": torch.permute,
    "slice": _slice,
    "pad": _pad,
    "squeeze": lambda a, dims: torch.squeeze(a, dims),
    "cat": torch.cat,
    "flip": torch.flip,
    "take": lambda a, indices, dim: torch.index_select(a, dim, indices),
    "narrow_offset": _narrow_offset,
    "take_along_axis": lambda a, index, dim: torch.gather(a, dim, index),
    "scatter_add": lambda a, index, value, dim: torch.scatter_add(a, dim, index, value),
    "scatter": lambda a, index, value, dim: torch.scatter(a, dim, index, value),
    "index_add": lambda a, index, value, dim: torch.index_add(a, dim, index, value),
    "index_put": lambda a, indices, values, accumulate: torch.ops.aten.index_put(a, list(indices), values, accumulate),
    "advanced_index": _advanced_index,
    "setitem": _setitem,
    "sum": _sum,
    "amax": _reduce(torch.amax),
    "amin": _reduce(torch.amin),
    "prod": _prod,
    "var": _var,
    "argmax": lambda a, dim: torch.argmax(a, dim),
    "argmin": lambda a, dim: torch.argmin(a, dim),
    "cumsum": lambda a, dim: torch.cumsum(a, dim),
    "cumprod": lambda a, dim: torch.cumprod(a, dim),
    "topk": lambda a, k, dim, largest, sorted: tuple(torch.topk(a, k, dim, largest, sorted)),
    "sort": lambda a, dim, descending, stable: tuple(torch.sort(a, dim=dim, descending=descending, stable=stable)),
    "matmul": torch.matmul,
    "linear": F.linear,
    "convolution": torch.convolution,
    "embedding": lambda indices, weight, padding_idx: F.embedding(indices, weight, padding_idx),
    "embedding_backward": lambda grad, indices, num_weights, padding_idx, scale_grad_by_freq, sparse: torch.ops.aten.embedding_backward(
        grad, indices, num_weights, -1 if padding_idx is None else padding_idx, scale_grad_by_freq, sparse
    ),
    "copy_to": _copy_to,
    "convolution_backward": lambda grad, a, weight, bias_shape, stride, padding, dilation, transposed, output_padding, groups: tuple(
        torch.ops.aten.convolution_backward(grad, a, weight, bias_shape, stride, padding, dilation, transposed,
                                            output_padding, groups, [True, True, bias_shape is not None])
    ),
    "pow": _scalar_first(torch.pow),
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "floor_divide": _scalar_first(torch.floor_divide),
    "real": torch.real,
    "imag": torch.imag,
    "bitwise_not": torch.bitwise_not,
    "logical_not": torch.logical_not,
}  # fmt: skip
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    _PRIM_IMPLS[_name] = getattr(operator, _name)
for _name in (
    "abs", "neg", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "asin", "acos",
    "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "reciprocal", "sigmoid", "erf",
    "erfc", "erfinv", "floor", "ceil", "round", "trunc", "sign", "lgamma", "digamma", "signbit", "isnan", "isinf",
    "isfinite",
):  # fmt: skip
    _PRIM_IMPLS[_name] = getattr(torch, _name)
for _name in (
    "remainder", "fmod", "maximum", "minimum", "atan2", "bitwise_and", "bitwise_or", "bitwise_xor",
    "bitwise_left_shift", "bitwise_right_shift", "copysign", "nextafter", "logical_and", "logical_or", "logical_xor",
):  # fmt: skip
    _PRIM_IMPLS[_name] = _scalar_first(getattr(torch, _name))

# thunder.torch symbols the torch executor runs through another torch callable than their first one
def _l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    # Under any TorchFunctionMode (torch.set_default_device's included) torch's l1_loss hands its call on without
    # `weight` and computes the unweighted loss; run with the modes off, as eager without a mode runs it.
    if weight is None:
        return torch.nn.functional.l1_loss(input, target, size_average, reduce, reduction)
    with torch._C.DisableTorchFunction():
        return torch.nn.functional.l1_loss(input, target, size_average, reduce, reduction, weight=weight)


def _variance_family(fn: Callable) -> Callable:
    """torch.var/std/var_mean/std_mean called in the form every torch version takes: torch 2.11 has no overload
    for `unbiased=None` passed by position, which is how the symbol's arguments come."""

    def impl(a, dim=None, unbiased=None, keepdim=False, *, correction=None):
        if isinstance(dim, bool):  # `var(x, True)`: the bool is `unbiased`, every dim is reduced
            dim, unbiased = None, dim
        if correction is None and unbiased is not None:
            correction = 1 if unbiased else 0
        return fn(a, dim, keepdim=keepdim, correction=correction)

    impl.__name__ = fn.__name__
    return impl


_OVERRIDES: dict[str, Callable] = {
    **{f"ltorch.{fn.__name__}": _variance_family(fn) for fn in (torch.var, torch.std, torch.var_mean, torch.std_mean)},
    "ltorch.view": torch.Tensor.reshape,  # traces are functional: a view of a non-contiguous value is a copy
    "ltorch.l1_loss": _l1_loss,
}


def _is_prim_id(sym: Symbol) -> bool:
    # user-made symbols may have non-string ids (an Enum member, as in Lightning's tutorials)
    return isinstance(sym.id, str) and sym.id.startswith("prims.")


def _is_method(fn) -> bool:
    return qualified_name(fn).startswith("torch.Tensor.")


class TorchExecutor(OperatorExecutor):
    """Runs operations with PyTorch eager: always available, always last but for `python`."""

    def __init__(self):
        super().__init__("torch", version=torch.__version__)
        self._impl_symbols: dict[str, Symbol] = {}

    def _torch_callable(self, bsym: BoundSymbol) -> Callable | None:
        sym = bsym.sym
        if sym.is_prim and _is_prim_id(sym):
            return _PRIM_IMPLS.get(sym.name)
        override = _OVERRIDES.get(sym.id)
        if override is not None:
            return override
        if not sym.torch_fns:
            return None
        fn = sym.torch_fns[0]
        if "fallback" not in sym.tags and not _is_method(fn) and bsym.args and not isinstance(bsym.args[0], torch.Tensor):
            if not isinstance(bsym.args[0], (list, tuple)) and sym.name not in _CREATION:
                return None  # e.g. add(2, t) from `2 + t`: torch.add needs a tensor first; decompose
        return fn

    def _runs_own_operator(self, bsym: BoundSymbol) -> bool:
        # an implmap entry with only a grad_transform (torchex_grads) does not change how the op runs
        info = self.implmap.get(bsym.sym.id)
        return info is not None and (info.symbol is not None or info.execution_transform is not None)

    def can_execute(self, bsym: BoundSymbol) -> bool:
        if self._runs_own_operator(bsym):
            return super().can_execute(bsym)
        return self._torch_callable(bsym) is not None

    def lower(self, bsym: BoundSymbol) -> list[BoundSymbol]:
        if self._runs_own_operator(bsym):
            return super().lower(bsym)
        fn = self._torch_callable(bsym)
        impl = self._impl_symbols.get(bsym.sym.id)
        if impl is None:
            impl = _impl_symbol(bsym.sym, fn)
            self._impl_symbols[bsym.sym.id] = impl
        lowered = impl.bind(*bsym.args, output=bsym.output, **bsym.kwargs)
        lowered.tag = bsym.tag
        return [lowered]


_CREATION = {
    "full", "zeros", "ones", "empty", "arange", "linspace", "rand", "randn", "randint", "eye", "tensor",
    "scalar_tensor",
}  # fmt: skip


def _impl_symbol(sym: Symbol, fn: Callable) -> Symbol:
    # The implementation keeps the properties of the symbol it runs (random, side effect...): passes after
    # claiming (CUDA graphs) read them from the executed trace.
    name = qualified_name(fn) if not _is_prim_id(sym) else ""
    if name.startswith("torch.") and _resolves_to(name, fn):
        return Symbol(name[len("torch.") :], python_impl=fn, namespace=("torch", torch), id=f"torchex.{sym.id}",
                      tags=sym.tags)  # fmt: skip
    return Symbol(f"torch_{sym.name}_impl" if _is_prim_id(sym) else f"torch_{sym.name}", python_impl=fn,
                  id=f"torchex.{sym.id}", tags=sym.tags)  # fmt: skip


def _resolves_to(qualified: str, fn) -> bool:
    obj = torch
    for part in qualified.split(".")[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return obj is fn



ex = TorchExecutor()
torchex = ex
register_torch_backward_kernels(ex)
