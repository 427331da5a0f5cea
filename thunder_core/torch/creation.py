"""Creation and conversion: zeros/ones/full/empty/arange/linspace/eye, random tensors, the `*_like`
forms, `tensor`, and dtype/device conversions (`to`, `float`, `type_as`...)."""

from __future__ import annotations

import math

import torch

from thunder import prims
from thunder.core.devices import default_device, resolve_device
from thunder.core.dtypes import python_scalar_dtype, to_complex_dtype
from thunder.core.proxies import FloatProxy, IntegerProxy, NumberProxy, guarded_predicate
from thunder.core.symbol import OpTag
from thunder.torch import elementwise as ew
from thunder.torch.base import as_int64, expand_to, register_handler, to_dtype, torchsymbol
from thunder.torch.shapes import detach, size_entry, unsqueeze

__all__ = [
    "zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like", "empty_like", "arange", "linspace",
    "rand", "randn", "rand_like", "randn_like", "randint", "to", "type_as", "eye", "tensor", "scalar_tensor",
    "bernoulli", "tril", "triu", "new_zeros", "new_ones", "new_full", "new_empty", "randint_like",
    "logspace",
]  # fmt: skip


def _size(size, size_keyword=None) -> tuple:
    """The shape of a factory call: `f(2, 3)`, `f((2, 3))` or `f(size=(2, 3))`; symbolic sizes stay symbols."""
    if size_keyword is not None:
        return tuple(map(size_entry, size_keyword))
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        return tuple(map(size_entry, size[0]))
    return tuple(map(size_entry, size))


def _device(device) -> torch.device:
    return resolve_device(device) if device is not None else default_device()


def _check_no_out(out):
    if out is not None:
        raise NotImplementedError("out= arguments are not supported inside thunder.jit; use the returned tensor")


def _number_tensor(x: torch.Tensor, device: torch.device, not_0d_message: str) -> torch.Tensor:
    """A 0-d tensor passed where torch takes a number (a fill value, linspace's ends), detached and on `device`:
    eager reads its value (`.item()`), so no gradient flows through it and the result goes where `device` says,
    not where the tensor lives."""
    if x.ndim != 0:
        raise RuntimeError(not_0d_message)
    value = detach(x)
    return prims.to_device(value, device) if value.device != device else value


def _number_dtype(x) -> torch.dtype:
    """The dtype torch infers from a fill value: a Python number's, or the number a 0-d tensor holds."""
    if not isinstance(x, torch.Tensor):
        return python_scalar_dtype(x)
    if x.dtype.is_complex:
        return to_complex_dtype(torch.get_default_dtype())
    return x.dtype if x.dtype == torch.bool else torch.get_default_dtype() if x.dtype.is_floating_point else torch.int64


def _filled(shape, fill_value, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tensor of `shape` holding `fill_value`: a number, or a 0-d tensor's value (see `_number_tensor`)."""
    if isinstance(fill_value, torch.Tensor):
        message = f"fill_value must be a number or a 0-dimensional tensor, not a {fill_value.ndim}-d tensor"
        value = _number_tensor(fill_value, device, message)
        return to_dtype(prims.broadcast_in_dim(value, tuple(shape), ()), dtype)
    return prims.full(tuple(shape), fill_value, dtype=dtype, device=device)


@torchsymbol(torch.full, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def full(size, fill_value, *, dtype=None, layout=torch.strided, device=None, pin_memory=False, requires_grad=False, out=None):
    _check_no_out(out)
    return _filled(size, fill_value, dtype or _number_dtype(fill_value), _device(device))


@torchsymbol(torch.zeros)
def zeros(*size_args, size=None, dtype=None, layout=torch.strided, device=None, pin_memory=False,
          requires_grad=False, out=None):  # fmt: skip
    return full(_size(size_args, size), 0, dtype=dtype or torch.get_default_dtype(), device=device, out=out)


@torchsymbol(torch.ones)
def ones(*size_args, size=None, dtype=None, layout=torch.strided, device=None, pin_memory=False,
         requires_grad=False, out=None):  # fmt: skip
    return full(_size(size_args, size), 1, dtype=dtype or torch.get_default_dtype(), device=device, out=out)


@torchsymbol(torch.empty)
def empty(*size_args, size=None, dtype=None, layout=torch.strided, device=None, pin_memory=False,
          requires_grad=False, memory_format=torch.contiguous_format, out=None):  # fmt: skip
    _check_no_out(out)
    return prims.empty(_size(size_args, size), dtype=dtype or torch.get_default_dtype(), device=_device(device))


def _like(a, dtype, device):
    return dtype or a.dtype, resolve_device(device) if device is not None else a.device


@torchsymbol(torch.full_like, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def full_like(a, fill_value, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
              memory_format=torch.preserve_format):  # fmt: skip
    dtype, device = _like(a, dtype, device)
    return _filled(a.shape, fill_value, dtype, torch.device(device))


@torchsymbol(torch.zeros_like, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def zeros_like(a, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
               memory_format=torch.preserve_format):  # fmt: skip
    return full_like(a, 0, dtype=dtype, device=device)


@torchsymbol(torch.ones_like, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def ones_like(a, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
              memory_format=torch.preserve_format):  # fmt: skip
    return full_like(a, 1, dtype=dtype, device=device)


@torchsymbol(torch.empty_like, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def empty_like(a, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
               memory_format=torch.preserve_format):  # fmt: skip
    dtype, device = _like(a, dtype, device)
    return prims.empty(tuple(a.shape), dtype=dtype, device=torch.device(device))


@torchsymbol(torch.Tensor.new_zeros, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def new_zeros(a, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    dtype, device = _like(a, dtype, device)
    return prims.full(_size(size), 0, dtype=dtype, device=torch.device(device))


@torchsymbol(torch.Tensor.new_ones, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def new_ones(a, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    dtype, device = _like(a, dtype, device)
    return prims.full(_size(size), 1, dtype=dtype, device=torch.device(device))


@torchsymbol(torch.Tensor.new_full, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def new_full(a, size, fill_value, *, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    dtype, device = _like(a, dtype, device)
    return _filled(size, fill_value, dtype, torch.device(device))


@torchsymbol(torch.Tensor.new_empty, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def new_empty(a, *size, dtype=None, device=None, requires_grad=False, layout=None, pin_memory=False):
    dtype, device = _like(a, dtype, device)
    return prims.empty(_size(size), dtype=dtype, device=torch.device(device))


@torchsymbol(torch.arange)
def arange(start=0, end=None, step=1, *, dtype=None, layout=torch.strided, device=None, pin_memory=False,
           requires_grad=False, out=None):  # fmt: skip
    _check_no_out(out)
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_float = any(isinstance(x, (float, FloatProxy)) for x in (start, end, step))
        dtype = torch.get_default_dtype() if is_float else torch.int64
    _check_arange_bounds(start, end, step)
    sizing = (start, end, step)
    if not (dtype.is_floating_point or dtype.is_complex):
        # eager's integer kernel converts the bounds to int64 (truncating 2.9 to 2): the values start + i * step come
        # from the converted start and step; int64 sizes the range by the converted bounds too, the narrower integer
        # dtypes by the given ones (arange(3.1, dtype=torch.int64) has 3 elements, with torch.int32 4)
        start, end, step = (as_int64(x) for x in (start, end, step))
        if dtype == torch.int64:
            sizing = (start, end, step)
    low, high, stride = sizing
    if all(isinstance(x, (int, IntegerProxy)) for x in sizing):
        length = -((low - high) // stride)  # the ceiling of an integer division: symbolic bounds stay symbols
    else:
        length = math.ceil((high - low) / stride)
    if length == 0:  # an infinite step: the iota's end (start + 0 * step) would be NaN
        return prims.full((0,), 0, dtype=dtype, device=_device(device))
    return prims.iota(length, start=start, step=step, dtype=dtype, device=_device(device))


def _check_arange_bounds(start, end, step) -> None:
    """eager's checks, in its order; each comparison of a number proxy guards its outcome, and finiteness is
    guarded as a predicate (NaN fails every comparison, so `not step > 0` holds for it)."""
    if not (step > 0 or step < 0):
        raise RuntimeError("step must be nonzero")
    if not (_finite(start) and _finite(end)):
        raise RuntimeError(f"unsupported range: {start} -> {end}")
    if not ((step > 0 and end >= start) or (step < 0 and end <= start)):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")


def _finite(x) -> bool:
    return guarded_predicate(math.isfinite, x) if isinstance(x, (int, float, NumberProxy)) else True


def _number_operand(x, name: str, op: str, device: torch.device):
    """`start`/`end` of linspace/logspace: a number, or a 0-d tensor's value as a double-precision tensor (see
    `_number_tensor`), computed with as a Python number would be."""
    if not isinstance(x, torch.Tensor):
        return x
    message = f"{op} only supports 0-dimensional start and end tensors, but got {name} with {x.ndim} dimension(s)."
    return to_dtype(_number_tensor(x, device, message), torch.complex128 if x.dtype.is_complex else torch.float64)


def _is_complex_number(x) -> bool:
    return x.dtype.is_complex if isinstance(x, torch.Tensor) else isinstance(x, complex)


def _spaced_dtype(start, end) -> torch.dtype:
    """The dtype linspace/logspace give when none is passed: the default dtype, complex if an end is complex."""
    default = torch.get_default_dtype()
    return to_complex_dtype(default) if _is_complex_number(start) or _is_complex_number(end) else default


def _check_steps(steps, op: str) -> None:
    if isinstance(steps, torch.Tensor):
        raise NotImplementedError(
            f"{op} with a tensor `steps`: the number of steps is the output's length, which would come from the "
            "tensor's value (a data-dependent shape) that Thunder cannot trace; pass steps as a Python int"
        )


@torchsymbol(torch.linspace, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def linspace(start, end, steps, *, dtype=None, layout=torch.strided, device=None, pin_memory=False,
             requires_grad=False, out=None):  # fmt: skip
    _check_no_out(out)
    _check_steps(steps, "linspace")
    dtype = dtype or _spaced_dtype(start, end)
    device = _device(device)
    start = _number_operand(start, "start", "linspace", device)
    end = _number_operand(end, "end", "linspace", device)
    if steps != 0 and not (dtype.is_floating_point or dtype.is_complex):
        # eager's integer kernel converts the ends to the result's dtype first (0.3 to 0), refusing NaN and infinities
        # (the end only where it is used: steps > 1)
        start, end = as_int64(start), as_int64(end) if steps > 1 else end
    if steps == 1:
        if isinstance(start, torch.Tensor):
            return to_dtype(prims.broadcast_in_dim(start, (1,), ()), dtype)
        return full((1,), start, dtype=dtype, device=device)
    if not (dtype.is_floating_point or dtype.is_complex):
        # the ends in the result's dtype, as eager's kernel converts them: 0-d tensor ends truncated too, and a
        # narrower dtype's wrap (-3 is 253 in uint8), then spaced in double precision
        start, end = (_in_dtype_as_double(x, dtype, device) for x in (start, end))
    step = (end - start) / (steps - 1)  # a number, or a 0-d tensor where an end is one
    # torch computes the first half from `start` and the second half from `end` to limit rounding error
    idx = prims.iota(steps, start=0, step=1, dtype=torch.float64, device=device)
    halfway = steps // 2

    lower = ew.add(ew.mul(idx, step), start)
    upper = ew.sub(end, ew.mul(ew.sub(steps - 1, idx), step))
    return to_dtype(ew.where(ew.lt(idx, halfway), lower, upper), dtype)


def _in_dtype_as_double(x, dtype: torch.dtype, device: torch.device):
    """A logspace end (a number or a 0-d tensor) converted to `dtype` as eager converts it, as a float64 0-d tensor."""
    if not isinstance(x, torch.Tensor):
        x = prims.full((), x, dtype=torch.float64, device=device)
    elif x.ndim:
        raise RuntimeError(f"logspace only supports 0-dimensional start and end tensors, but got one with {x.ndim} "
                           "dimension(s).")  # fmt: skip
    return to_dtype(to_dtype(x, dtype), torch.float64)


@torchsymbol(torch.logspace, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def logspace(start, end, steps, base=10.0, *, dtype=None, layout=torch.strided, device=None, pin_memory=False,
             requires_grad=False, out=None):  # fmt: skip
    _check_no_out(out)
    _check_steps(steps, "logspace")
    exponent_dtype = torch.complex128 if _is_complex_number(start) or _is_complex_number(end) else torch.float64
    dtype = dtype or _spaced_dtype(start, end)
    if steps != 0 and not (dtype.is_floating_point or dtype.is_complex):
        # eager's integer kernel refuses NaN and infinite ends (the end only where it is used: steps > 1)
        as_int64(start)
        if steps > 1:
            as_int64(end)
    if steps > 1 and not dtype.is_complex:
        # eager's kernel first converts the ends to the result's dtype (an int64 result truncates 1.2 to 1, a
        # float16 one rounds 4.3 to 4.30078125), then spaces the exponents in double precision between them
        start, end = (_in_dtype_as_double(x, dtype, _device(device)) for x in (start, end))
    exponents = linspace(start, end, steps, dtype=exponent_dtype, device=device)
    return to_dtype(ew.pow(float(base), exponents), dtype)


@torchsymbol(torch.eye)
def eye(n, m=None, *, dtype=None, layout=torch.strided, device=None, pin_memory=False, requires_grad=False, out=None):

    m = n if m is None else m
    rows = prims.iota(n, start=0, step=1, dtype=torch.int64, device=_device(device))
    cols = prims.iota(m, start=0, step=1, dtype=torch.int64, device=_device(device))
    return to_dtype(ew.eq(unsqueeze(rows, 1), unsqueeze(cols, 0)), dtype or torch.get_default_dtype())


# -- randomness: one prim per torch RNG call, so that a seeded run draws what eager draws ---------------
@torchsymbol(torch.rand, tags=("random",))
def rand(*size_args, size=None, generator=None, dtype=None, layout=torch.strided, device=None, pin_memory=False,
         requires_grad=False, out=None):  # fmt: skip
    _check_no_out(out)
    _check_generator(generator)
    return prims.uniform(_size(size_args, size), dtype=dtype or torch.get_default_dtype(), device=_device(device))


@torchsymbol(torch.randn, tags=("random",))
def randn(*size_args, size=None, generator=None, dtype=None, layout=torch.strided, device=None, pin_memory=False,
          requires_grad=False, out=None):  # fmt: skip
    _check_no_out(out)
    _check_generator(generator)
    return prims.randn(_size(size_args, size), dtype=dtype or torch.get_default_dtype(), device=_device(device))


@torchsymbol(torch.rand_like, tags=("random", OpTag.GRAD_FROM_DECOMPOSITION))
def rand_like(a, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
              memory_format=torch.preserve_format, generator=None):  # fmt: skip
    _check_generator(generator)
    dtype, device = _like(a, dtype, device)
    return prims.uniform(tuple(a.shape), dtype=dtype, device=torch.device(device))


@torchsymbol(torch.randn_like, tags=("random", OpTag.GRAD_FROM_DECOMPOSITION))
def randn_like(a, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
               memory_format=torch.preserve_format, generator=None):  # fmt: skip
    _check_generator(generator)
    dtype, device = _like(a, dtype, device)
    return prims.randn(tuple(a.shape), dtype=dtype, device=torch.device(device))


@torchsymbol(torch.randint, tags=("random",))
def randint(low=0, high=None, size=None, *, generator=None, dtype=None, layout=torch.strided, device=None,
            pin_memory=False, requires_grad=False, out=None):  # fmt: skip
    _check_no_out(out)
    _check_generator(generator)
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    return prims.randint(tuple(size), low, high, dtype=dtype or torch.int64, device=_device(device))


@torchsymbol(torch.randint_like, tags=("random", OpTag.GRAD_FROM_DECOMPOSITION))
def randint_like(a, low=0, high=None, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False,
                 memory_format=torch.preserve_format, generator=None):  # fmt: skip
    _check_generator(generator)
    if high is None:
        low, high = 0, low
    dtype, device = _like(a, dtype, device)
    return prims.randint(tuple(a.shape), low, high, dtype=dtype, device=torch.device(device))


@torchsymbol(torch.bernoulli, torch.Tensor.bernoulli, tags=("random", OpTag.GRAD_FROM_DECOMPOSITION))
def bernoulli(a, p=None, *, generator=None):
    _check_generator(generator)

    if p is not None:
        return prims.bernoulli(tuple(a.shape), p, dtype=a.dtype, device=a.device)
    return to_dtype(ew.lt(prims.uniform(tuple(a.shape), dtype=a.dtype, device=a.device), a), a.dtype)


def _check_generator(generator):
    if generator is not None:
        raise NotImplementedError(
            "explicit torch.Generator objects are not supported inside thunder.jit; seed with torch.manual_seed instead"
        )


# -- conversions ----------------------------------------------------------------------------------------
def _parse_to(a, args, kwargs):
    """(dtype, device, non_blocking, copy) of a `Tensor.to` call, in any of its signatures."""
    dtype = kwargs.pop("dtype", None)
    device = kwargs.pop("device", None)
    flags = [kwargs.pop("non_blocking", False), kwargs.pop("copy", False)]
    positional_flags = []
    for x in args:
        if isinstance(x, bool):  # `to(dtype, non_blocking, copy)`: the flags follow, positionally
            positional_flags.append(x)
        elif isinstance(x, torch.dtype):
            dtype = x
        elif isinstance(x, (str, torch.device, int)):
            device = x
        elif isinstance(x, torch.Tensor):
            dtype, device = x.dtype, x.device
    flags[: len(positional_flags)] = positional_flags
    return dtype, device, bool(flags[0]), bool(flags[1])


@torchsymbol(torch.Tensor.to, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def to(a, *args, **kwargs):
    dtype, device, non_blocking, copy = _parse_to(a, args, dict(kwargs))
    device = a.device if device is None else resolve_device(device)
    out = a
    if device != a.device:  # a device transfer is an op of the trace, differentiable (the gradient goes back)
        out = prims.to_device(out, device, non_blocking)
    if dtype is not None and dtype != a.dtype:
        out = prims.convert_element_type(out, dtype)
    if copy and out is a:  # `copy=True` promises a new tensor even when nothing changes
        out = prims.convert_element_type(a, a.dtype)
    return out


def _cuda(a, device=None, non_blocking=False, memory_format=None):
    device = f"cuda:{device}" if isinstance(device, int) else device
    return to(a, "cuda" if device is None else device, non_blocking=non_blocking)


for _method, _dtype in {
    "float": torch.float32, "double": torch.float64, "half": torch.float16, "bfloat16": torch.bfloat16,
    "long": torch.int64, "int": torch.int32, "short": torch.int16, "bool": torch.bool, "byte": torch.uint8,
    "char": torch.int8,
}.items():  # fmt: skip
    register_handler(getattr(torch.Tensor, _method), lambda a, memory_format=None, _d=_dtype: to(a, _d))
register_handler(torch.Tensor.cpu, lambda a, memory_format=None: to(a, "cpu"))
register_handler(torch.Tensor.cuda, _cuda)


@torchsymbol(torch.Tensor.type_as, tags=(OpTag.GRAD_FROM_DECOMPOSITION,))
def type_as(a, other):
    return to(a, other.dtype)


@torchsymbol(torch.scalar_tensor)
def scalar_tensor(s, *, dtype=None, layout=None, device=None, pin_memory=False, requires_grad=False):
    return full((), s, dtype=dtype or torch.get_default_dtype(), device=device)


@torchsymbol(torch.tensor)
def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    if isinstance(data, (int, float, bool, complex)):
        return full((), data, dtype=dtype or python_scalar_dtype(data), device=device)
    if isinstance(data, (list, tuple)) and _all_numbers(data):
        return _tensor_of_numbers(data, dtype, _device(device))
    raise NotImplementedError(
        "torch.tensor(...) of tensors inside thunder.jit is not supported; use torch.stack, or create it outside "
        "and pass it in"
    )


def _all_numbers(data) -> bool:
    if isinstance(data, (list, tuple)):
        return all(_all_numbers(x) for x in data)
    return isinstance(data, (int, float, bool, complex))


def _tensor_of_numbers(data, dtype, device):
    """A (nested) list of Python numbers, a constant of the trace: torch infers its shape and dtype."""
    with torch._C.DisableTorchFunction():
        like = torch.tensor(data, dtype=dtype, device="meta")
    shape, dtype = tuple(like.shape), like.dtype
    if like.numel() == 0:  # torch.tensor([]): how Hugging Face's DynamicLayer starts its keys and values
        return prims.full(shape, 0, dtype=dtype, device=device)

    def flat(x):
        return [v for item in x for v in flat(item)] if isinstance(x, (list, tuple)) else [x]

    elements = [prims.full((1,), v, dtype=dtype, device=device) for v in flat(data)]
    joined = elements[0] if len(elements) == 1 else prims.cat(elements, 0)
    return prims.reshape(joined, shape)


def _tri_mask(a, diagonal, upper):

    rows, cols = a.shape[-2], a.shape[-1]
    r = prims.iota(rows, start=0, step=1, dtype=torch.int64, device=a.device)
    c = prims.iota(cols, start=0, step=1, dtype=torch.int64, device=a.device)
    diff = ew.sub(unsqueeze(c, 0), unsqueeze(r, 1))  # col - row
    return ew.ge(diff, diagonal) if upper else ew.le(diff, diagonal)


def _triangle(a, diagonal, upper):

    if a.ndim < 2:
        raise RuntimeError(f"{'triu' if upper else 'tril'}: input tensor must have at least 2 dimensions")
    mask = expand_to(_tri_mask(a, diagonal, upper), tuple(a.shape))
    zeros = prims.full(tuple(a.shape), False if a.dtype == torch.bool else 0, dtype=a.dtype, device=a.device)
    return prims.where(mask, a, zeros)  # a zero of a's own dtype: where(mask, a, 0) would promote bools


@torchsymbol(torch.tril, torch.Tensor.tril)
def tril(a, diagonal=0, *, out=None):
    _check_no_out(out)
    return _triangle(a, diagonal, upper=False)


@torchsymbol(torch.triu, torch.Tensor.triu)
def triu(a, diagonal=0, *, out=None):
    _check_no_out(out)
    return _triangle(a, diagonal, upper=True)
