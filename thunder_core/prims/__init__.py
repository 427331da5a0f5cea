"""`thunder.prims`: the small, closed set of primitive operations every executor understands.

Each primitive has a meta that validates its inputs and builds output proxies. Primitives are strict:
tensor operands of elementwise primitives have equal shapes and dtypes (`thunder.torch` inserts the
broadcasts and conversions). Grad rules for primitives live in `thunder.prims.grads`, beside this table.
Executors map primitives to implementations by `sym.id` ("prims.<name>").
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Sequence
from numbers import Number

import torch

from thunder.core.proxies import NumberProxy, TensorProxy
from thunder.core.scalar_ops import SCALAR_BINARY, SCALAR_UNARY, scalar_symbols  # noqa: F401  (re-exported)
from thunder.core.symbol import Symbol

_module = sys.modules[__name__]
all_prims: dict[str, Symbol] = {}


def make_prim(name: str, meta, *, tags: Sequence[str] = ()) -> Symbol:
    sym = Symbol(name, meta, is_prim=True, namespace=("prims", _module), tags=tags)
    all_prims[name] = sym
    setattr(_module, name, sym)
    return sym


def check(cond: bool, msg, exc=RuntimeError) -> None:
    if not cond:
        raise exc(msg() if callable(msg) else msg)


def _out(like: torch.Tensor, **changes) -> TensorProxy:
    return TensorProxy(like=like, requires_grad=False, **changes)


# -- elementwise -------------------------------------------------------------------------------------
# name -> output is boolean
UNARY_ELEMENTWISE = {
    "abs": False, "neg": False, "exp": False, "exp2": False, "expm1": False, "log": False, "log1p": False,
    "log2": False, "log10": False, "sin": False, "cos": False, "tan": False, "asin": False, "acos": False,
    "atan": False, "sinh": False, "cosh": False, "tanh": False, "asinh": False, "acosh": False, "atanh": False,
    "sqrt": False, "rsqrt": False, "reciprocal": False, "sigmoid": False, "erf": False, "erfc": False,
    "erfinv": False, "floor": False, "ceil": False, "round": False, "trunc": False, "sign": False,
    "lgamma": False, "digamma": False, "bitwise_not": False, "real": False, "imag": False,
    "signbit": True, "isnan": True, "isinf": True, "isfinite": True, "logical_not": True,
}  # fmt: skip

BINARY_ELEMENTWISE = {
    "add": False, "sub": False, "mul": False, "div": False, "floor_divide": False, "remainder": False,
    "fmod": False, "pow": False, "maximum": False, "minimum": False, "atan2": False, "bitwise_and": False,
    "bitwise_or": False, "bitwise_xor": False, "bitwise_left_shift": False, "bitwise_right_shift": False,
    "copysign": False, "nextafter": False,
    "eq": True, "ne": True, "lt": True, "le": True, "gt": True, "ge": True,
    "logical_and": True, "logical_or": True, "logical_xor": True,
}  # fmt: skip


def _elementwise_meta(name: str, to_bool: bool):
    def meta(*args):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        check(len(tensors) > 0, lambda: f"prims.{name} needs at least one tensor operand")
        first = tensors[0]
        for t in tensors[1:]:
            check(t.shape == first.shape, lambda t=t: f"prims.{name}: shapes {first.shape} and {t.shape} differ")
            check(t.dtype == first.dtype, lambda t=t: f"prims.{name}: dtypes {first.dtype} and {t.dtype} differ")
            check(t.device == first.device, lambda t=t: f"prims.{name}: devices {first.device} and {t.device} differ")
        for a in args:
            check(isinstance(a, (torch.Tensor, Number)), lambda a=a: f"prims.{name}: unexpected operand {a!r}")
        if name in ("real", "imag", "abs") and first.dtype.is_complex:
            return _out(first, dtype={torch.complex64: torch.float32}.get(first.dtype, torch.float64))
        return _out(first, dtype=torch.bool if to_bool else first.dtype)

    return meta


for _name, _to_bool in UNARY_ELEMENTWISE.items():
    make_prim(_name, _elementwise_meta(_name, _to_bool), tags=("elementwise",))
for _name, _to_bool in BINARY_ELEMENTWISE.items():
    make_prim(_name, _elementwise_meta(_name, _to_bool), tags=("elementwise",))


def _where_meta(pred, a, b):
    tensors = [x for x in (pred, a, b) if isinstance(x, torch.Tensor)]
    shape = tensors[0].shape
    check(all(t.shape == shape for t in tensors), "prims.where: operand shapes differ")
    check(not isinstance(pred, torch.Tensor) or pred.dtype == torch.bool, "prims.where: predicate must be bool")
    value = a if isinstance(a, torch.Tensor) else b
    check(isinstance(value, torch.Tensor), "prims.where: one of the values must be a tensor")
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        check(a.dtype == b.dtype, "prims.where: value dtypes differ")
    return _out(value, shape=shape)


make_prim("where", _where_meta, tags=("elementwise",))


def _convert_element_type_meta(a, dtype):
    return _out(a, dtype=dtype)


make_prim("convert_element_type", _convert_element_type_meta, tags=("elementwise",))


def _to_device_meta(a, device, non_blocking=False):
    check(isinstance(a, torch.Tensor), lambda: f"prims.to_device moves a tensor, got {a!r}")
    return _out(a, device=device)


# A copy of `a` on another device (`Tensor.to(device)`); not elementwise: a fusion region stays on one device.
make_prim("to_device", _to_device_meta)


# -- creation and randomness -------------------------------------------------------------------------
def _creation_meta(shape, *args, dtype, device, **kwargs):
    return TensorProxy(shape=tuple(shape), dtype=dtype, device=device)


make_prim("full", lambda shape, fill_value, *, dtype, device: _creation_meta(shape, dtype=dtype, device=device))
make_prim("empty", _creation_meta)
make_prim("uniform", lambda shape, *, dtype, device: _creation_meta(shape, dtype=dtype, device=device), tags=("random",))
make_prim("randn", lambda shape, *, dtype, device: _creation_meta(shape, dtype=dtype, device=device), tags=("random",))
make_prim(
    "bernoulli", lambda shape, p, *, dtype, device: _creation_meta(shape, dtype=dtype, device=device), tags=("random",)
)
make_prim(
    "randint",
    lambda shape, low, high, *, dtype, device: _creation_meta(shape, dtype=dtype, device=device),
    tags=("random",),
)


def _iota_meta(length, *, start, step, dtype, device):
    length = length if isinstance(length, NumberProxy) else int(length)  # a symbolic length stays a symbol
    return TensorProxy(shape=(length,), dtype=dtype, device=device)


make_prim("iota", _iota_meta)


# -- shapes ------------------------------------------------------------------------------------------
def _broadcast_in_dim_meta(a, shape, broadcast_dimensions):
    check(len(broadcast_dimensions) == a.ndim, "prims.broadcast_in_dim: one broadcast dimension per input dim")
    for i, d in enumerate(broadcast_dimensions):
        check(
            a.shape[i] == 1 or a.shape[i] == shape[d],
            lambda: f"prims.broadcast_in_dim: cannot broadcast {tuple(a.shape)} to {tuple(shape)}",
        )
    return _out(a, shape=tuple(shape))


make_prim("broadcast_in_dim", _broadcast_in_dim_meta, tags=("shape", "view"))


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _reshape_meta(a, shape):
    check(
        _numel(shape) == a.numel(), lambda: f"prims.reshape: cannot reshape {tuple(a.shape)} into {tuple(shape)}"
    )
    return _out(a, shape=tuple(shape))


make_prim("reshape", _reshape_meta, tags=("shape", "view"))


def _permute_meta(a, perm):
    check(sorted(perm) == list(range(a.ndim)), lambda: f"prims.permute: {perm} is not a permutation")
    return _out(a, shape=tuple(a.shape[p] for p in perm))


make_prim("permute", _permute_meta, tags=("shape", "view"))


def _slice_meta(a, start_indices, end_indices, strides=None):
    strides = strides or [1] * a.ndim
    check(len(start_indices) == len(end_indices) == len(strides) == a.ndim, "prims.slice: one index per dim")
    shape = []
    for s, e, st, length in zip(start_indices, end_indices, strides, a.shape):
        check(0 <= s <= e <= length and st >= 1, lambda: f"prims.slice: bad bounds {start_indices}..{end_indices}")
        shape.append((e - s + st - 1) // st)
    return _out(a, shape=tuple(shape))


make_prim("slice", _slice_meta, tags=("shape", "view"))


def _pad_meta(a, padding_value, padding_config):
    shape = []
    for length, (lo, hi, interior) in zip(a.shape, padding_config):
        check(interior >= 0, "prims.pad: interior padding must be non-negative")
        shape.append(lo + hi + length + max(length - 1, 0) * interior)
    return _out(a, shape=tuple(shape))


make_prim("pad", _pad_meta, tags=("shape",))


def _squeeze_meta(a, dims):
    check(all(a.shape[d] == 1 for d in dims), "prims.squeeze: squeezed dims must have length 1")
    return _out(a, shape=tuple(s for i, s in enumerate(a.shape) if i not in dims))


make_prim("squeeze", _squeeze_meta, tags=("shape", "view"))


def _cat_meta(tensors, dim):
    first = tensors[0]
    for t in tensors:
        check(t.ndim == first.ndim and t.dtype == first.dtype, "prims.cat: tensors differ in rank or dtype")
        check(
            all(t.shape[i] == first.shape[i] for i in range(first.ndim) if i != dim),
            "prims.cat: shapes differ outside the concatenated dim",
        )
    shape = list(first.shape)
    shape[dim] = builtins.sum(t.shape[dim] for t in tensors)
    return _out(first, shape=tuple(shape))


make_prim("cat", _cat_meta, tags=("shape",))
make_prim("flip", lambda a, dims: _out(a), tags=("shape",))


def _take_meta(a, indices, dim):
    shape = list(a.shape)
    shape[dim : dim + 1] = [indices.shape[0]] if indices.ndim else []
    return _out(a, shape=tuple(shape))


make_prim("take", _take_meta)  # index_select


def _narrow_offset_meta(start, size, length):
    check(start.ndim == 0 and not start.dtype.is_floating_point and not start.dtype.is_complex,
          "start must be an 0-dim integral Tensor.")  # fmt: skip
    return _out(start, dtype=torch.int64)


# The offset `narrow(a, dim, start, length)` reads from for a 0-d tensor `start` (negative counts from the end),
# checked when it runs as eager checks it: it reads the value to the host (a sync, as eager's narrow), so that
# an out-of-range start raises eager's error instead of reaching a gather (a device-side assert on CUDA, which
# poisons the process's context). Tagged "python": it is never compiled into a fusion or captured in a graph.
make_prim("narrow_offset", _narrow_offset_meta, tags=("python",))
make_prim("take_along_axis", lambda a, index, dim: _out(a, shape=tuple(index.shape)))  # gather
make_prim("scatter_add", lambda a, index, value, dim: _out(a))
make_prim("scatter", lambda a, index, value, dim: _out(a))
make_prim("index_add", lambda a, index, value, dim: _out(a))
make_prim("index_put", lambda a, indices, values, accumulate: _out(a))


def _advanced_index_meta(a, indices):
    # `a[indices]` with a tuple of index tensors / None / slices, by torch's rules
    shape = _advanced_index_shape(a, indices)
    if shape is None:  # slices that are not whole dims: torch's meta computes it (symbolic sizes: value guards)
        with torch._C.DisableTorchFunction():
            fake_a = torch.empty(tuple(a.shape), dtype=a.dtype, device="meta")
            fake_idx = [
                torch.empty(tuple(i.shape), dtype=i.dtype, device="meta") if isinstance(i, torch.Tensor) else i
                for i in indices
            ]
            shape = tuple(fake_a[tuple(fake_idx)].shape)
    return _out(a, shape=shape)


def _advanced_index_shape(a, indices) -> tuple | None:
    """The result's shape in Python (symbolic sizes stay symbols), for whole-dim slices, None and integer index
    tensors: the index tensors broadcast together; their shape takes their place when they are adjacent, else
    it comes first. None where other keys are involved."""
    parts, index_shapes, index_parts = [], [], []
    dim = 0
    for k in indices:
        if k is None:
            parts.append((1,))
        elif isinstance(k, builtins.slice) and k == builtins.slice(None):
            parts.append((a.shape[dim],))
            dim += 1
        elif isinstance(k, torch.Tensor) and not k.dtype.is_floating_point and k.dtype != torch.bool:
            index_shapes.append(tuple(k.shape))
            index_parts.append(len(parts))
            parts.append(None)
            dim += 1
        else:
            return None
    parts.extend((s,) for s in tuple(a.shape)[dim:])
    broadcast = ()
    for s in index_shapes:
        broadcast = _broadcast_batch(broadcast, s)
    adjacent = index_parts == list(range(index_parts[0], index_parts[0] + len(index_parts))) if index_parts else True
    kept = [p for p in parts if p is not None]
    if adjacent and index_parts:
        first = index_parts[0]
        before = [p for p in parts[:first] if p is not None]
        after = [p for p in parts[first:] if p is not None]
        return tuple(s for p in before for s in p) + broadcast + tuple(s for p in after for s in p)
    return broadcast + tuple(s for p in kept for s in p)


make_prim("advanced_index", _advanced_index_meta)


# -- reductions --------------------------------------------------------------------------------------
def _reduction_shape(a, dims) -> tuple[int, ...]:
    return tuple(s for i, s in enumerate(a.shape) if i not in dims)


def _reduction_meta(name):
    def meta(a, dims, **kwargs):
        check(all(0 <= d < max(a.ndim, 1) for d in dims), lambda: f"prims.{name}: dims {dims} out of range")
        return _out(a, shape=_reduction_shape(a, dims))

    return meta


for _name in ("sum", "prod", "amax", "amin"):
    make_prim(_name, _reduction_meta(_name), tags=("reduction",))


def _var_meta(a, dims, *, correction):
    dtype = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(a.dtype, a.dtype)
    return _out(a, shape=_reduction_shape(a, dims), dtype=dtype)


make_prim("var", _var_meta, tags=("reduction",))


def _arg_reduction_meta(a, dim):
    shape = () if dim is None else _reduction_shape(a, (dim,))
    return _out(a, shape=shape, dtype=torch.int64)


make_prim("argmax", _arg_reduction_meta, tags=("reduction",))
make_prim("argmin", _arg_reduction_meta, tags=("reduction",))
make_prim("cumsum", lambda a, dim: _out(a))
make_prim("cumprod", lambda a, dim: _out(a))


def _topk_meta(a, k, dim, largest, sorted):
    shape = list(a.shape)
    if shape:
        shape[dim] = k
    return _out(a, shape=tuple(shape)), _out(a, shape=tuple(shape), dtype=torch.int64)


make_prim("topk", _topk_meta)
make_prim("sort", lambda a, dim, descending, stable: (_out(a), _out(a, dtype=torch.int64)))


# -- linear algebra and neural-network primitives ---------------------------------------------------
def _broadcast_batch(a: tuple, b: tuple) -> tuple:
    # numpy broadcasting of two batch shapes, in Python so that symbolic sizes stay symbols (with guards)
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        check(x == 1 or y == 1 or x == y, lambda: f"prims.matmul: batch shapes {a} and {b} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)


def _matmul_meta(a, b):
    check(a.dtype == b.dtype, lambda: f"prims.matmul: dtypes {a.dtype} and {b.dtype} differ")
    check(a.ndim >= 1 and b.ndim >= 1, "prims.matmul: both operands need at least one dim")
    sa, sb = tuple(a.shape), tuple(b.shape)
    inner_b = sb[0] if b.ndim == 1 else sb[-2]
    check(sa[-1] == inner_b, lambda: f"prims.matmul: shapes {sa} and {sb} cannot be multiplied")
    if a.ndim == 1 and b.ndim == 1:
        shape = ()
    elif b.ndim == 1:
        shape = sa[:-1]
    elif a.ndim == 1:
        shape = sb[:-2] + sb[-1:]
    else:
        shape = _broadcast_batch(sa[:-2], sb[:-2]) + (sa[-2], sb[-1])
    return _out(a, shape=shape)


make_prim("matmul", _matmul_meta, tags=("matmul",))


def _linear_meta(a, w, bias):
    check(a.shape[-1] == w.shape[-1], lambda: f"prims.linear: {tuple(a.shape)} @ {tuple(w.shape)}.T is invalid")
    check(a.dtype == w.dtype, lambda: f"prims.linear: dtypes {a.dtype} and {w.dtype} differ")
    shape = tuple(a.shape[:-1]) + ((w.shape[0],) if w.ndim == 2 else ())
    return _out(a, shape=shape)


make_prim("linear", _linear_meta, tags=("matmul",))


def _convolution_meta(a, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    with torch._C.DisableTorchFunction():
        out = torch.convolution(
            torch.empty(a.shape, dtype=a.dtype, device="meta"),
            torch.empty(weight.shape, dtype=weight.dtype, device="meta"),
            None if bias is None else torch.empty(bias.shape, dtype=bias.dtype, device="meta"),
            stride, padding, dilation, transposed, output_padding, groups,
        )  # fmt: skip
    return _out(a, shape=tuple(out.shape))


make_prim("convolution", _convolution_meta, tags=("matmul",))


def _embedding_meta(indices, weight, padding_idx):
    return _out(weight, shape=tuple(indices.shape) + (weight.shape[1],))


make_prim("embedding", _embedding_meta)


def _embedding_backward_meta(grad, indices, num_weights, padding_idx, scale_grad_by_freq, sparse):
    return _out(grad, shape=(num_weights, grad.shape[-1]))


make_prim("embedding_backward", _embedding_backward_meta)


# -- side effects ------------------------------------------------------------------------------------
def _copy_to_meta(dst, src):
    check(dst.shape == src.shape, lambda: f"prims.copy_to: shapes {tuple(dst.shape)} and {tuple(src.shape)} differ")
    return None


make_prim("copy_to", _copy_to_meta, tags=("side_effect", "device_write"))  # writes src into dst, an input of the trace


def _setitem_meta(a, key, value):
    # functional `out = a.clone(); out[key] = value`; torch's own indexing rules check key and value
    return _out(a)


make_prim("setitem", _setitem_meta)


def _convolution_backward_meta(grad, a, weight, bias_shape, stride, padding, dilation, transposed, output_padding,
                               groups):  # fmt: skip
    grad_bias = None if bias_shape is None else TensorProxy(like=grad, shape=tuple(bias_shape), requires_grad=False)
    return _out(a), _out(weight), grad_bias


make_prim("convolution_backward", _convolution_backward_meta)


# -- scalars -----------------------------------------------------------------------------------------
# Arithmetic on number proxies: defined in the core beside NumberProxy (whose operators record them), and part
# of the primitive vocabulary here.
for _name, _sym in scalar_symbols.items():
    all_prims[_name] = _sym
    setattr(_module, _name, _sym)
