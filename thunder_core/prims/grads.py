"""Grad rules of the primitives, keyed by primitive name (see thunder.core.transforms for the rule API).

Each rule recomputes nothing it does not need: it calls the primitive, asks for the output's cotangent,
and puts each differentiable input's gradient, written with primitives.
"""

from __future__ import annotations

import cmath
import math
from numbers import Number

import torch

from thunder import prims
from thunder.core.proxies import NumberProxy
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.formulas import fold_columns, fold_rows, rounded_quotient, trigamma

GRAD_RULES: dict[str, object] = {}


def rule(*names):
    def decorator(fn):
        for name in names:
            GRAD_RULES[f"prims.{name}"] = fn
        return fn

    return decorator


def _is_t(x) -> bool:
    return isinstance(x, torch.Tensor)


def _zeros_like(a):
    return prims.full(tuple(a.shape), 0, dtype=a.dtype, device=a.device)


def conjugate(x):
    """The complex conjugate (torch's gradients of complex products carry the other factor's conjugate, as
    `grad * other.conj()`); real tensors and numbers are their own. 2 re(x) - x: the prims have no conj."""
    if isinstance(x, complex):
        return x.conjugate()
    if not _is_t(x) or not x.dtype.is_complex:
        return x
    return sb(m(prims.convert_element_type(prims.real(x), x.dtype), 2), x)


# -- elementwise ---------------------------------------------------------------------------------------
def _unary(name, grad_fn, holomorphic=True):
    """The rule `g -> grad_fn(a, out, g)`, grad_fn being g times the derivative at a. For a complex input, torch's
    gradient of a holomorphic f is g times the conjugate derivative; f having real Taylor coefficients (every
    prim here does), conj(f'(a)) is f'(conj(a)), so grad_fn is given the conjugates (`holomorphic=False`: a rule
    that handles complex inputs itself)."""
    prim = getattr(prims, name)

    def r(a):
        out = prim(a)
        g = get_grad(out)
        if holomorphic and a.dtype.is_complex:
            put_grad(a, grad_fn(conjugate(a), conjugate(out), g))
        else:
            put_grad(a, grad_fn(a, out, g))
        return out

    GRAD_RULES[f"prims.{name}"] = r


_LN2, _LN10 = math.log(2.0), math.log(10.0)
m, d, ad, sb, n = prims.mul, prims.div, prims.add, prims.sub, prims.neg
_unary("neg", lambda a, o, g: n(g))
def _abs_grad(a, o, g):
    if not a.dtype.is_complex:
        return m(g, prims.sign(a))
    # |z|' is sgn(z) = z / |z| (0 at 0), as torch's `grad * self.sgn()`; the real cotangent becomes complex
    safe = prims.convert_element_type(prims.where(prims.eq(o, 0), 1, o), a.dtype)
    return m(prims.convert_element_type(g, a.dtype), d(a, safe))


_unary("abs", _abs_grad, holomorphic=False)
_unary("exp", lambda a, o, g: m(g, o))
_unary("exp2", lambda a, o, g: m(g, m(o, _LN2)))
_unary("expm1", lambda a, o, g: m(g, ad(o, 1)))
_unary("log", lambda a, o, g: d(g, a))
_unary("log1p", lambda a, o, g: d(g, ad(a, 1)))
_unary("log2", lambda a, o, g: d(g, m(a, _LN2)))
_unary("log10", lambda a, o, g: d(g, m(a, _LN10)))
_unary("sin", lambda a, o, g: m(g, prims.cos(a)))
_unary("cos", lambda a, o, g: n(m(g, prims.sin(a))))
_unary("tan", lambda a, o, g: m(g, ad(m(o, o), 1)))
_unary("asin", lambda a, o, g: d(g, prims.sqrt(sb(1, m(a, a)))))
_unary("acos", lambda a, o, g: n(d(g, prims.sqrt(sb(1, m(a, a))))))
_unary("atan", lambda a, o, g: d(g, ad(m(a, a), 1)))
_unary("sinh", lambda a, o, g: m(g, prims.cosh(a)))
_unary("cosh", lambda a, o, g: m(g, prims.sinh(a)))
_unary("tanh", lambda a, o, g: m(g, sb(1, m(o, o))))
_unary("asinh", lambda a, o, g: d(g, prims.sqrt(ad(m(a, a), 1))))
_unary("acosh", lambda a, o, g: d(g, prims.sqrt(sb(m(a, a), 1))))
_unary("atanh", lambda a, o, g: d(g, sb(1, m(a, a))))
_unary("sqrt", lambda a, o, g: d(g, m(o, 2)))
_unary("rsqrt", lambda a, o, g: m(m(g, -0.5), m(o, m(o, o))))
_unary("reciprocal", lambda a, o, g: n(m(g, m(o, o))))
_unary("sigmoid", lambda a, o, g: m(g, m(o, sb(1, o))))
_unary("erf", lambda a, o, g: m(g, m(prims.exp(n(m(a, a))), 2.0 / math.sqrt(math.pi))))
_unary("erfc", lambda a, o, g: m(g, m(prims.exp(n(m(a, a))), -2.0 / math.sqrt(math.pi))))
_unary("erfinv", lambda a, o, g: m(g, m(prims.exp(m(o, o)), math.sqrt(math.pi) / 2.0)))
_unary("lgamma", lambda a, o, g: m(g, prims.digamma(a)))


def _digamma_grad(a, o, g):
    # eager's polygamma(1, x) is one kernel computing in float32 for float16 / bfloat16: so does the series here
    # (in those dtypes the reflection near a pole loses every digit)
    if a.dtype in (torch.float16, torch.bfloat16):
        return m(g, prims.convert_element_type(trigamma(prims.convert_element_type(a, torch.float32)), a.dtype))
    return m(g, trigamma(a))


_unary("digamma", _digamma_grad)
for _name in ("floor", "ceil", "round", "trunc", "sign"):
    _unary(_name, lambda a, o, g: _zeros_like(g))


def _real_part_grad(a, o, g):
    # torch's gradient of z = x + iy is dL/dx + i dL/dy: re(z) pulls g back to g + 0i
    return prims.convert_element_type(g, a.dtype) if a.dtype.is_complex else g


def _imaginary_part_grad(a, o, g):
    # im(z) pulls g back to 0 + ig (for a real input, im is zero whatever it is)
    return m(prims.convert_element_type(g, a.dtype), 1j) if a.dtype.is_complex else _zeros_like(g)


_unary("real", _real_part_grad, holomorphic=False)
_unary("imag", _imaginary_part_grad, holomorphic=False)


@rule("add")
def _add(a, b):
    out = prims.add(a, b)
    g = get_grad(out)
    put_grad(a, g)
    put_grad(b, g)
    return out


@rule("sub")
def _sub(a, b):
    out = prims.sub(a, b)
    g = get_grad(out)
    put_grad(a, g)
    put_grad(b, n(g) if _is_t(b) else None)
    return out


@rule("mul")
def _mul(a, b):
    out = prims.mul(a, b)
    g = get_grad(out)
    put_grad(a, m(g, conjugate(b)) if _is_t(a) else None)
    put_grad(b, m(g, conjugate(a)) if _is_t(b) else None)
    return out


@rule("div")
def _div(a, b):
    out = prims.div(a, b)
    g = get_grad(out)
    put_grad(a, d(g, conjugate(b)) if _is_t(a) else None)
    put_grad(b, n(d(m(g, conjugate(out)), conjugate(b))) if _is_t(b) else None)
    return out


def _real_part(x):
    """x's real part (the comparisons torch makes of a complex exponent are of it); real tensors are their own."""
    return prims.real(x) if _is_t(x) and x.dtype.is_complex else x


@rule("pow")
def _pow(a, b):
    out = prims.pow(a, b)
    g = get_grad(out)
    # a symbolic number (cache="symbolic values") has no value to branch on here: it takes the tensor path
    if isinstance(a, NumberProxy):
        a = prims.full(tuple(b.shape), a, dtype=b.dtype, device=b.device)
    if isinstance(b, NumberProxy):
        b = prims.full(tuple(a.shape), b, dtype=a.dtype, device=a.device)
    # complex: g times the derivative's conjugate, as torch's `grad * (exponent * base.pow(exponent - 1)).conj()`
    if _is_t(a):
        if isinstance(b, Number):
            ga = m(g, conjugate(m(prims.pow(a, b - 1), b))) if b != 0 else _zeros_like(a)
        else:  # torch defines it as 0 where b == 0 (even where a == 0, whose a^(b-1) is inf)
            ga = prims.where(prims.eq(b, 0), 0.0, m(g, conjugate(m(b, prims.pow(a, sb(b, 1))))))
        put_grad(a, ga)
    if _is_t(b):
        # d/db a^b = a^b * log(a); torch defines it as 0 where a == 0 and b (its real part) >= 0
        if _is_t(a):
            gb = m(g, conjugate(m(out, prims.log(a))))
            gb = prims.where(prims.logical_and(prims.eq(a, 0), prims.ge(_real_part(b), 0)), 0.0, gb)
        elif a == 0:
            gb = prims.where(prims.ge(_real_part(b), 0), 0.0, m(g, m(conjugate(out), -math.inf)))
        else:
            log_a = cmath.log(a) if b.dtype.is_complex else (math.log(a) if a > 0 else math.nan)
            gb = m(g, conjugate(m(out, log_a)))
        put_grad(b, gb)
    return out


def _minmax_rule(name):
    prim = getattr(prims, name)
    loses = prims.lt if name == "maximum" else prims.gt

    def r(a, b):
        out = prim(a, b)
        g = get_grad(out)
        # as torch: equal operands share the gradient evenly, the losing operand gets none, and where a
        # comparison is false both ways (NaN) both operands get all of it
        tie = prims.eq(a, b)
        half = m(g, 0.5)
        if _is_t(a):
            put_grad(a, prims.where(loses(a, b), 0.0, prims.where(tie, half, g)))
        if _is_t(b):
            put_grad(b, prims.where(loses(b, a), 0.0, prims.where(tie, half, g)))
        return out

    GRAD_RULES[f"prims.{name}"] = r


_minmax_rule("maximum")
_minmax_rule("minimum")


@rule("atan2")
def _atan2(a, b):
    out = prims.atan2(a, b)
    g = get_grad(out)
    # torch's atan2_backward: grad * b * recip and grad * -a * recip, recip = 1 / (a² + b²) and 0 where that is 0
    # (the origin: 0, not 0/0), still inf where it underflows
    denom = ad(m(a, a), m(b, b))
    recip = prims.where(prims.eq(denom, 0), 0.0, prims.reciprocal(denom))
    put_grad(a, m(m(g, b), recip) if _is_t(a) else None)
    put_grad(b, m(m(g, n(a)), recip) if _is_t(b) else None)
    return out


@rule("copysign")
def _copysign(a, b):
    out = prims.copysign(a, b)
    g = get_grad(out)
    if _is_t(a):  # torch: out / a, defined as 0 where a == 0; no gradient flows to the sign's source
        put_grad(a, m(g, prims.where(prims.eq(a, 0), 0.0, d(out, a))))
    put_grad(b, _zeros_like(b) if _is_t(b) else None)
    return out


@rule("nextafter")
def _nextafter(a, b):
    out = prims.nextafter(a, b)
    g = get_grad(out)
    # torch's convention: a step of one ulp is the identity, and where a == b (no step: out is b) a gets none
    if _is_t(a):
        put_grad(a, prims.where(prims.eq(a, b), 0.0, g))
    put_grad(b, _zeros_like(b) if _is_t(b) else None)
    return out


def _mod_rule(name):
    prim = getattr(prims, name)

    def r(a, b):
        out = prim(a, b)
        g = get_grad(out)
        put_grad(a, g if _is_t(a) else None)
        if _is_t(b):
            put_grad(b, n(m(g, rounded_quotient(a, b, prims.trunc if name == "fmod" else prims.floor))))
        return out

    GRAD_RULES[f"prims.{name}"] = r


_mod_rule("remainder")
_mod_rule("fmod")


@rule("where")
def _where(pred, a, b):
    out = prims.where(pred, a, b)
    g = get_grad(out)
    put_grad(a, prims.where(pred, g, 0.0) if _is_t(a) else None)
    put_grad(b, prims.where(pred, 0.0, g) if _is_t(b) else None)
    return out


@rule("convert_element_type")
def _convert(a, dtype):
    out = prims.convert_element_type(a, dtype)
    if not (a.dtype.is_floating_point or a.dtype.is_complex):
        return out
    g = get_grad(out)
    if g.dtype.is_complex and not a.dtype.is_complex:  # a real input's gradient is the real part
        g = prims.real(g)
    put_grad(a, prims.convert_element_type(g, a.dtype))
    return out


@rule("to_device")
def _to_device(a, device, non_blocking=False):
    out = prims.to_device(a, device, non_blocking)
    if not (a.dtype.is_floating_point or a.dtype.is_complex):
        return out
    g = get_grad(out)
    # The gradient goes back to the input's device. Blocking: a non-blocking copy to the CPU may be read by the
    # CPU before it has landed, and nothing in the backward would wait for it.
    put_grad(a, prims.to_device(g, a.device, False))
    return out


# -- shapes --------------------------------------------------------------------------------------------
def sum_to(g, shape):
    """Reduces g (of a broadcast shape) to `shape` by summing broadcast dims."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and g.shape[lead + i] != 1)
    out = prims.sum(g, dims) if dims else g
    return prims.reshape(out, shape) if tuple(out.shape) != shape else out


def _maybe_reshape(x, shape):
    return x if tuple(x.shape) == tuple(shape) else prims.reshape(x, tuple(shape))


@rule("broadcast_in_dim")
def _broadcast_in_dim(a, shape, broadcast_dimensions):
    out = prims.broadcast_in_dim(a, shape, broadcast_dimensions)
    g = get_grad(out)
    reduce_dims = [i for i in range(len(shape)) if i not in broadcast_dimensions]
    reduce_dims += [dim for i, dim in enumerate(broadcast_dimensions) if a.shape[i] == 1 and shape[dim] != 1]
    ga = prims.sum(g, tuple(sorted(reduce_dims))) if reduce_dims else g
    put_grad(a, prims.reshape(ga, tuple(a.shape)) if tuple(ga.shape) != tuple(a.shape) else ga)
    return out


@rule("reshape")
def _reshape(a, shape):
    out = prims.reshape(a, shape)
    g = get_grad(out)
    put_grad(a, prims.reshape(g, tuple(a.shape)))
    return out


@rule("squeeze")
def _squeeze(a, dims):
    out = prims.squeeze(a, dims)
    g = get_grad(out)
    put_grad(a, prims.reshape(g, tuple(a.shape)))
    return out


@rule("permute")
def _permute(a, perm):
    out = prims.permute(a, perm)
    g = get_grad(out)
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    put_grad(a, prims.permute(g, tuple(inverse)))
    return out


@rule("slice")
def _slice(a, start_indices, end_indices, strides=None):
    out = prims.slice(a, start_indices, end_indices, strides)
    g = get_grad(out)
    strides = strides or [1] * a.ndim
    config = []
    for start, length, stride, out_len in zip(start_indices, a.shape, strides, out.shape):
        last = start + (out_len - 1) * stride + 1 if out_len else start
        config.append((start, length - last, stride - 1))
    put_grad(a, prims.pad(g, 0.0, config))
    return out


@rule("pad")
def _pad(a, padding_value, padding_config):
    out = prims.pad(a, padding_value, padding_config)
    g = get_grad(out)
    starts = [lo for lo, _, _ in padding_config]
    ends = [lo + n + max(n - 1, 0) * interior for n, (lo, _, interior) in zip(a.shape, padding_config)]
    put_grad(a, prims.slice(g, starts, ends, [interior + 1 for _, _, interior in padding_config]))
    return out


@rule("cat")
def _cat(tensors, dim):
    out = prims.cat(tensors, dim)
    g = get_grad(out)
    offset = 0
    for t in tensors:
        starts = [0] * g.ndim
        ends = list(g.shape)
        starts[dim], ends[dim] = offset, offset + t.shape[dim]
        put_grad(t, prims.slice(g, starts, ends))
        offset += t.shape[dim]
    return out


@rule("flip")
def _flip(a, dims):
    out = prims.flip(a, dims)
    g = get_grad(out)
    put_grad(a, prims.flip(g, dims))
    return out


@rule("take")
def _take(a, indices, dim):
    out = prims.take(a, indices, dim)
    g = get_grad(out)
    put_grad(a, prims.index_add(_zeros_like(a), indices, g, dim))
    return out


@rule("take_along_axis")
def _take_along_axis(a, index, dim):
    out = prims.take_along_axis(a, index, dim)
    g = get_grad(out)
    put_grad(a, prims.scatter_add(_zeros_like(a), index, g, dim))
    return out


@rule("scatter_add")
def _scatter_add(a, index, value, dim):
    out = prims.scatter_add(a, index, value, dim)
    g = get_grad(out)
    put_grad(a, g)
    put_grad(value, prims.take_along_axis(g, index, dim))
    return out


@rule("scatter")
def _scatter(a, index, value, dim):
    out = prims.scatter(a, index, value, dim)
    g = get_grad(out)
    put_grad(a, prims.scatter(g, index, 0.0, dim))
    if _is_t(value):
        put_grad(value, prims.take_along_axis(g, index, dim))
    return out


@rule("index_add")
def _index_add(a, index, value, dim):
    out = prims.index_add(a, index, value, dim)
    g = get_grad(out)
    put_grad(a, g)
    put_grad(value, prims.take(g, index, dim))
    return out


def _split_index_key(a, key):
    """torch indexes `a[key]` in two steps: the basic entries first (ints select, slices slice, None inserts
    a dim), then the index tensors, as aten's index with None for every other dim. Returns the slice
    (starts, ends, strides) of a, the shape after the basic step, and the aten indices."""
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if Ellipsis in key:
        i = key.index(Ellipsis)
        key = (*key[:i], *(slice(None),) * (a.ndim - consumed), *key[i + 1 :])
    else:
        key = (*key, *(slice(None),) * (a.ndim - consumed))
    starts, ends, strides, basic_shape, aten_indices = [], [], [], [], []
    dim = 0
    for k in key:
        if k is None:
            basic_shape.append(1)
            aten_indices.append(None)
            continue
        length = a.shape[dim]
        if isinstance(k, int):
            starts.append(k % length), ends.append(k % length + 1), strides.append(1)
        elif isinstance(k, slice):
            start, stop, step = k.indices(length)
            count = max(0, (stop - start + step - 1) // step)
            starts.append(start), ends.append(start + max(count - 1, 0) * step + 1 if count else start)
            strides.append(step)
            basic_shape.append(count)
            aten_indices.append(None)
        else:
            starts.append(0), ends.append(length), strides.append(1)
            basic_shape.append(length)
            aten_indices.append(k)
        dim += 1
    return (starts, ends, strides), tuple(basic_shape), tuple(aten_indices)


@rule("advanced_index")
def _advanced_index(a, indices):
    out = prims.advanced_index(a, indices)
    g = get_grad(out)
    (starts, ends, strides), basic_shape, aten_indices = _split_index_key(a, indices)
    zeros = prims.full(basic_shape, 0, dtype=g.dtype, device=g.device)
    grad = prims.index_put(zeros, aten_indices, g, True)  # accumulates: an index may repeat
    sliced_shape = tuple((e - s + st - 1) // st for s, e, st in zip(starts, ends, strides))
    grad = _maybe_reshape(grad, sliced_shape)  # the dims ints removed and None inserted have length 1
    config = [(s, length - e, st - 1) for s, e, st, length in zip(starts, ends, strides, a.shape)]
    put_grad(a, prims.pad(grad, 0.0, config) if any(c != (0, 0, 0) for c in config) else grad)
    return out


@rule("index_put")
def _index_put(a, indices, values, accumulate):
    out = prims.index_put(a, indices, values, accumulate)
    g = get_grad(out)
    put_grad(a, g if accumulate else prims.index_put(g, indices, _zeros_like(values), False))
    python_key = tuple(slice(None) if i is None else i for i in indices)
    put_grad(values, sum_to(prims.advanced_index(g, python_key), values.shape))
    return out


@rule("setitem")
def _setitem(a, key, value):
    out = prims.setitem(a, key, value)
    g = get_grad(out)
    put_grad(a, prims.setitem(g, key, 0.0))
    if _is_t(value):
        put_grad(value, sum_to(prims.advanced_index(g, key if isinstance(key, tuple) else (key,)), value.shape))
    return out


# -- reductions ----------------------------------------------------------------------------------------
def _restore_reduced(g, a, dims):
    """g (reduced over dims) broadcast back to a's shape."""
    kept = [i for i in range(a.ndim) if i not in dims]
    return prims.broadcast_in_dim(g, tuple(a.shape), tuple(kept))


@rule("sum")
def _sum(a, dims):
    out = prims.sum(a, dims)
    g = get_grad(out)
    put_grad(a, _restore_reduced(g, a, dims))
    return out


def _extremum_rule(name):
    prim = getattr(prims, name)

    def r(a, dims):
        out = prim(a, dims)
        g = get_grad(out)
        mask = prims.eq(a, _restore_reduced(out, a, dims))
        mask_f = prims.convert_element_type(mask, g.dtype)
        count = _restore_reduced(prims.sum(mask_f, dims), a, dims)
        put_grad(a, d(m(_restore_reduced(g, a, dims), mask_f), count))
        return out

    GRAD_RULES[f"prims.{name}"] = r


_extremum_rule("amax")
_extremum_rule("amin")


@rule("prod")
def _prod(a, dims):
    out = prims.prod(a, dims)
    g = get_grad(out)
    if a.ndim == 0 or not dims:
        put_grad(a, g)
        return out
    # As eager's prod_backward: out / a when the input holds no zero at all, else the product of the other
    # elements of each slice (exclusive prefix times suffix products), whose infs and NaNs are eager's too
    all_dims = tuple(range(a.ndim))
    zeros = prims.sum(prims.convert_element_type(prims.eq(a, 0), torch.int64), all_dims)
    has_zero = prims.broadcast_in_dim(prims.gt(zeros, 0), tuple(a.shape), ())
    quotient = d(_restore_reduced(out, a, dims), a)
    derivative = prims.where(has_zero, _product_of_others(a, dims), quotient)
    put_grad(a, m(_restore_reduced(g, a, dims), conjugate(derivative)))  # complex: the conjugate, as for any product
    return out


def _product_of_others(a, dims):
    """For each element, the product of the other elements of its slice over `dims`."""
    if len(dims) > 1:
        rest = [i for i in range(a.ndim) if i not in dims]
        perm = (*rest, *dims)
        moved = prims.permute(a, perm)
        flat = prims.reshape(moved, (*moved.shape[: len(rest)], _numel_of(a, dims)))
        others = prims.reshape(_product_of_others(flat, (flat.ndim - 1,)), tuple(moved.shape))
        return prims.permute(others, tuple(perm.index(i) for i in range(a.ndim)))
    (dim,) = dims
    n = a.shape[dim]
    if n == 0:
        return a
    ones = prims.full(tuple(1 if i == dim else s for i, s in enumerate(a.shape)), 1, dtype=a.dtype, device=a.device)

    def part(start, stop):
        return prims.slice(a, [start if i == dim else 0 for i in range(a.ndim)],
                           [stop if i == dim else s for i, s in enumerate(a.shape)])  # fmt: skip

    before = prims.cumprod(prims.cat([ones, part(0, n - 1)], dim), dim)
    after = prims.flip(prims.cumprod(prims.cat([ones, prims.flip(part(1, n), (dim,))], dim), dim), (dim,))
    return m(before, after)


def _numel_of(a, dims) -> int:
    return math.prod(a.shape[i] for i in dims)


@rule("var")
def _var(a, dims, *, correction):
    out = prims.var(a, dims, correction=correction)
    g = get_grad(out)
    count = 1
    for dim in dims:
        count *= a.shape[dim]
    mean = _restore_reduced(d(prims.sum(a, dims), count), a, dims)
    scale = 2.0 / max(count - correction, 0) if count - correction > 0 else float("nan")
    # complex: the real cotangent becomes complex (torch's `grad * (self - mean)` with the real grad promoted)
    g = prims.convert_element_type(g, a.dtype)
    put_grad(a, m(_restore_reduced(g, a, dims), m(sb(a, mean), scale)))
    return out


@rule("cumsum")
def _cumsum(a, dim):
    out = prims.cumsum(a, dim)
    g = get_grad(out)
    put_grad(a, prims.flip(prims.cumsum(prims.flip(g, (dim,)), dim), (dim,)))
    return out


def _reverse_cumsum(x, dim):
    return prims.flip(prims.cumsum(prims.flip(x, (dim,)), dim), (dim,))


@rule("cumprod")
def _cumprod(a, dim):
    out = prims.cumprod(a, dim)
    g = get_grad(out)
    if a.ndim == 0:
        put_grad(a, g)
        return out
    # grad_i = sum_{j >= i} g_j prod_{k <= j, k != i} a_k, in O(n) and defined where a has zeros: before the
    # first zero of a slice it is reverse_cumsum(g * out)_i / a_i; at the first zero, the same sum over the
    # cumulative product with that zero replaced by 1; after it, 0
    is_zero = prims.eq(a, 0)
    zeros_so_far = prims.cumsum(prims.convert_element_type(is_zero, a.dtype), dim)
    before = prims.eq(zeros_so_far, 0)
    first = prims.logical_and(is_zero, prims.eq(zeros_so_far, 1))
    # complex: the products' conjugates, as for any product
    before_grad = d(_reverse_cumsum(m(g, conjugate(out)), dim), conjugate(prims.where(before, a, 1.0)))
    first_grad = _reverse_cumsum(m(g, conjugate(prims.cumprod(prims.where(first, 1.0, a), dim))), dim)
    put_grad(a, prims.where(before, before_grad, prims.where(first, first_grad, 0.0)))
    return out


def _sorted_values_rule(name):
    prim = getattr(prims, name)

    def r(a, *args):
        values, indices = prim(a, *args)
        g = get_grad(values)
        dim = args[1] if name == "topk" else args[0]
        put_grad(a, prims.scatter(_zeros_like(a), indices, g, dim) if a.ndim else g)
        return values, indices

    GRAD_RULES[f"prims.{name}"] = r


_sorted_values_rule("topk")
_sorted_values_rule("sort")


# -- linear algebra and nn -----------------------------------------------------------------------------
def _mT(x):
    perm = list(range(x.ndim))
    perm[-1], perm[-2] = perm[-2], perm[-1]
    return prims.permute(x, tuple(perm))


@rule("matmul")
def _matmul(a, b):
    out = prims.matmul(a, b)
    g = get_grad(out)
    a2 = prims.reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = prims.reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    out_shape2 = list(g.shape)
    if a.ndim == 1:
        out_shape2.insert(len(out_shape2) - (0 if b.ndim == 1 else 1), 1)
    if b.ndim == 1:
        out_shape2.append(1)
    g2 = prims.reshape(g, tuple(out_shape2)) if tuple(out_shape2) != tuple(g.shape) else g
    # the conjugate transposes, as torch's mH
    if b2.ndim == 2 and a2.ndim > 2:  # eager folds a's batch into one mm: b's gradient is one sum
        gb = prims.matmul(_mT(fold_rows(conjugate(a2))), fold_rows(g2))
    else:
        gb = sum_to(prims.matmul(_mT(conjugate(a2)), g2), b2.shape)
    if a2.ndim == 2 and b2.ndim > 2:  # likewise with b's batch
        ga = prims.matmul(fold_columns(g2), fold_rows(_mT(conjugate(b2))))
    else:
        ga = sum_to(prims.matmul(g2, _mT(conjugate(b2))), a2.shape)
    put_grad(a, prims.reshape(ga, tuple(a.shape)) if a.ndim == 1 else ga)
    put_grad(b, prims.reshape(gb, tuple(b.shape)) if b.ndim == 1 else gb)
    return out


@rule("linear")
def _linear(a, w, bias):
    out = prims.linear(a, w, bias)
    g = get_grad(out)
    if w.ndim == 1:  # out = a @ w, of a's shape without its last dim
        lead = tuple(range(a.ndim - 1))
        g_wide = prims.broadcast_in_dim(g, tuple(a.shape), lead)
        put_grad(a, m(g_wide, prims.broadcast_in_dim(conjugate(w), tuple(a.shape), (a.ndim - 1,))))
        put_grad(w, prims.sum(m(g_wide, conjugate(a)), lead) if lead else m(g_wide, conjugate(a)))
        if bias is not None:
            put_grad(bias, prims.sum(g, tuple(range(g.ndim))) if g.ndim else g)
        return out
    put_grad(a, prims.matmul(g, conjugate(w)))  # complex: the conjugates, as torch's grad @ w.conj()
    k = a.shape[-1]
    n_out = w.shape[0]
    g2 = _maybe_reshape(g, (g.numel() // max(n_out, 1), n_out))
    a2 = _maybe_reshape(a, (a.numel() // max(k, 1), k))
    put_grad(w, prims.matmul(_mT(g2), conjugate(a2)))
    if bias is not None:
        put_grad(bias, prims.sum(g2, (0,)))
    return out


@rule("embedding")
def _embedding(indices, weight, padding_idx):
    out = prims.embedding(indices, weight, padding_idx)
    g = get_grad(out)
    put_grad(weight, prims.embedding_backward(g, indices, weight.shape[0], padding_idx, False, False))
    return out


@rule("convolution")
def _convolution(a, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    out = prims.convolution(a, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    g = get_grad(out)
    ga, gw, gb = prims.convolution_backward(
        g, a, weight, None if bias is None else tuple(bias.shape), stride, padding, dilation, transposed,
        output_padding, groups,
    )  # fmt: skip
    put_grad(a, ga)
    put_grad(weight, gw)
    if bias is not None:
        put_grad(bias, gb)
    return out


# Rules of the backward primitives: each is linear in its cotangent (and the convolution's in its tensors too), so
# its own gradient is made of the forward primitives. Second derivatives (grad of grad) and the batching of
# per-example gradients go through these.
@rule("convolution_backward")
def _convolution_backward(g, a, weight, bias_shape, stride, padding, dilation, transposed, output_padding, groups):
    params = (stride, padding, dilation, transposed, output_padding, groups)
    outs = prims.convolution_backward(g, a, weight, bias_shape, *params)
    grad_a, grad_weight, grad_bias = outs
    c_a, c_weight = get_grad(grad_a), get_grad(grad_weight)

    def conv(x, w):
        return prims.convolution(x, w, None, *params)

    # grad_a = J_a^T g and grad_weight = J_w^T g, J the convolution as a function of its input (of its weight):
    # <c_a, J_a^T g> = <conv(c_a, weight), g> and <c_weight, J_w^T g> = <conv(a, c_weight), g>
    grad_g = prims.add(conv(c_a, weight), conv(a, c_weight))
    if grad_bias is not None:  # grad_bias sums g over every dimension but the channels
        grad_g = prims.add(grad_g, prims.broadcast_in_dim(get_grad(grad_bias), tuple(g.shape), (1,)))
    put_grad(g, grad_g)
    put_grad(weight, prims.convolution_backward(g, c_a, weight, None, *params)[1])
    put_grad(a, prims.convolution_backward(g, a, c_weight, None, *params)[0])
    return outs


@rule("embedding_backward")
def _embedding_backward(g, indices, num_weights, padding_idx, scale_grad_by_freq, sparse):
    out = prims.embedding_backward(g, indices, num_weights, padding_idx, scale_grad_by_freq, sparse)
    # out[r] = scale[r] * (sum of g[i] over the i with indices[i] == r), r != padding_idx: each g[i] gets row
    # indices[i] of the cotangent, scaled the same way
    rows = prims.embedding(indices, get_grad(out), None)
    width = (*indices.shape, rows.shape[-1])
    if scale_grad_by_freq:
        flat = prims.reshape(indices, (indices.numel(),))
        ones = prims.full((indices.numel(),), 1, dtype=g.dtype, device=g.device)
        counts = prims.index_add(prims.full((num_weights,), 0, dtype=g.dtype, device=g.device), flat, ones, 0)
        counts = prims.reshape(prims.take(counts, flat, 0), tuple(indices.shape))
        rows = prims.div(rows, prims.broadcast_in_dim(counts, width, tuple(range(indices.ndim))))
    if padding_idx is not None:
        keep = prims.broadcast_in_dim(prims.ne(indices, padding_idx), width, tuple(range(indices.ndim)))
        rows = prims.where(keep, rows, 0)
    put_grad(g, rows)
    return out


# Rules for symbols with no inputs to differentiate, or outputs that are not differentiable
NONDIFFERENTIABLE = {
    f"prims.{name}"
    for name in (
        "full", "empty", "uniform", "randn", "bernoulli", "randint", "iota", "argmax", "argmin", "eq", "ne", "lt",
        "le", "gt", "ge", "logical_and", "logical_or", "logical_xor", "logical_not", "isnan", "isinf", "isfinite",
        "signbit", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift",
        "bitwise_right_shift", "copy_to", "sizes_of",
    )
}  # fmt: skip


@rule("floor_divide")
def _floor_divide(a, b):
    # piecewise constant: zero gradient almost everywhere (eager's div(rounding_mode="floor") gives zeros)
    out = prims.floor_divide(a, b)
    get_grad(out)  # the backward part starts here; the gradient itself is not needed
    put_grad(a, _zeros_like(a) if _is_t(a) else None)
    put_grad(b, _zeros_like(b) if _is_t(b) else None)
    return out
