"""Elementwise operations: math, comparisons, logical and bitwise ops, with torch's type promotion and
broadcasting, decomposed into elementwise prims."""

from __future__ import annotations

import builtins
import math
from numbers import Number

import torch
import torch.nn.functional as F

from thunder import prims
from thunder.core.dtypes import (
    Promotion,
    computation_dtype,
    elementwise_result_dtype,
    is_exact_dtype,
    result_dtype,
)
from thunder.core.proxies import NumberProxy, guarded_predicate
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES, conjugate, sum_to
from thunder.torch.base import broadcast_tensors, integer_scalar, register_handler, to_dtype, torchsymbol

__all__ = [
    "add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod", "pow", "maximum", "minimum",
    "atan2", "eq", "ne", "lt", "le", "gt", "ge", "where", "clamp", "lerp", "addcmul", "addcdiv", "square",
    "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor",
    "rsub", "frac", "xlogy", "hypot", "logaddexp", "float_power", "nan_to_num", "masked_fill", "round", "sgn",
    "positive", "logit", "sinc", "deg2rad", "rad2deg", "ndtr", "entr", "ldexp", "heaviside", "fmax", "fmin",
    "isclose", "isposinf", "isneginf", "isreal", "xlog1py", "logaddexp2", "exp", "exp2", "expm1", "log", "log1p",
    "log2", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
    "sqrt", "rsqrt", "reciprocal", "sigmoid", "erf", "erfc", "erfinv", "lgamma", "digamma", "neg", "floor", "ceil",
    "trunc", "sign", "bitwise_not", "abs", "signbit", "isnan", "isinf", "isfinite", "logical_not", "copysign",
    "nextafter", "bitwise_left_shift", "bitwise_right_shift",
]  # fmt: skip


def _torch_fns(name: str, *extra):
    fns = [getattr(torch, name, None), getattr(torch.Tensor, name, None), getattr(torch.special, name, None)]
    return tuple(f for f in (*fns, *extra) if f is not None)


# -- unary ---------------------------------------------------------------------------------------------
_EXACT_IDENTITY = {"floor", "ceil", "trunc"}  # on integers these return the input's values
_T = torch.Tensor


def _unary(name: str, promotion: Promotion, *aliases):
    """The symbol for a unary op: `torch.<name>`, `Tensor.<name>`, `torch.special.<name>` and `aliases`."""
    prim = getattr(prims, name)

    def meta(a):
        if name in _EXACT_IDENTITY and is_exact_dtype(a.dtype):
            if a.dtype == torch.bool:
                raise NotImplementedError(f'"{name}" not implemented for \'Bool\'')
            return prims.convert_element_type(a, a.dtype)
        if promotion is Promotion.ALWAYS_BOOL:
            if name == "logical_not" and a.dtype != torch.bool:
                return prims.eq(a, 0)
            if name == "isfinite" and is_exact_dtype(a.dtype):
                return prims.ne(to_dtype(a, torch.bool), 2)  # all True, as a bool tensor of a's shape
            return prim(a)
        if promotion is Promotion.COMPLEX_TO_FLOAT and a.dtype.is_complex:
            return prim(a)  # abs of a complex value: the prim gives the real magnitude (never cast to real first)
        return prim(to_dtype(a, elementwise_result_dtype(promotion, a)))

    meta.__name__ = name
    return torchsymbol(*_torch_fns(name, *aliases), name=name, tags=("elementwise",))(meta)


_FLOAT = Promotion.INT_TO_FLOAT  # exact dtypes compute in the default float dtype
exp = _unary("exp", _FLOAT)
exp2 = _unary("exp2", _FLOAT)
expm1 = _unary("expm1", _FLOAT)
log = _unary("log", _FLOAT)
log1p = _unary("log1p", _FLOAT)
log2 = _unary("log2", _FLOAT)
log10 = _unary("log10", _FLOAT)
sin = _unary("sin", _FLOAT)
cos = _unary("cos", _FLOAT)
tan = _unary("tan", _FLOAT)
asin = _unary("asin", _FLOAT, torch.arcsin, _T.arcsin)
acos = _unary("acos", _FLOAT, torch.arccos, _T.arccos)
atan = _unary("atan", _FLOAT, torch.arctan, _T.arctan)
sinh = _unary("sinh", _FLOAT)
cosh = _unary("cosh", _FLOAT)
tanh = _unary("tanh", _FLOAT, F.tanh)
asinh = _unary("asinh", _FLOAT, torch.arcsinh, _T.arcsinh)
acosh = _unary("acosh", _FLOAT, torch.arccosh, _T.arccosh)
atanh = _unary("atanh", _FLOAT, torch.arctanh, _T.arctanh)
sqrt = _unary("sqrt", _FLOAT)
rsqrt = _unary("rsqrt", _FLOAT)
reciprocal = _unary("reciprocal", _FLOAT)
sigmoid = _unary("sigmoid", _FLOAT, F.sigmoid, torch.special.expit)
erf = _unary("erf", _FLOAT)
erfc = _unary("erfc", _FLOAT)
erfinv = _unary("erfinv", _FLOAT)
lgamma = _unary("lgamma", _FLOAT, torch.special.gammaln)
digamma = _unary("digamma", _FLOAT, torch.special.psi)
neg = _unary("neg", Promotion.DEFAULT, _T.__neg__, torch.negative, _T.negative)
floor = _unary("floor", Promotion.DEFAULT)
ceil = _unary("ceil", Promotion.DEFAULT)
trunc = _unary("trunc", Promotion.DEFAULT, torch.fix, _T.fix)
sign = _unary("sign", Promotion.DEFAULT)
bitwise_not = _unary("bitwise_not", Promotion.DEFAULT, _T.__invert__)
abs = _unary("abs", Promotion.COMPLEX_TO_FLOAT, _T.__abs__, torch.absolute, _T.absolute)
signbit = _unary("signbit", Promotion.ALWAYS_BOOL)
isnan = _unary("isnan", Promotion.ALWAYS_BOOL)
isinf = _unary("isinf", Promotion.ALWAYS_BOOL)
isfinite = _unary("isfinite", Promotion.ALWAYS_BOOL)
logical_not = _unary("logical_not", Promotion.ALWAYS_BOOL)


# -- binary --------------------------------------------------------------------------------------------
def _binary(prim, promotion: Promotion, a, b):
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        raise TypeError(f"{prim.name} expects at least one tensor, got {type(a).__name__} and {type(b).__name__}")
    compute = result_dtype(a, b)
    if promotion is Promotion.INT_TO_FLOAT and is_exact_dtype(compute):
        compute = torch.get_default_dtype()
    a, b = broadcast_tensors(to_dtype(a, compute), to_dtype(b, compute))
    return prim(a, b)


def _binary_symbol(name: str, promotion: Promotion, dunders=(), rdunders=()):
    """The symbol for a binary op on prims.<name>, with torch's promotion and broadcasting; `rdunders` are
    reflected operators (`2 % t` calls `t.__rmod__(2)`)."""
    prim = getattr(prims, name)

    def meta(a, b):
        return _binary(prim, promotion, a, b)

    meta.__name__ = name
    sym = torchsymbol(*_torch_fns(name, *dunders), name=name, tags=("elementwise",))(meta)
    for rdunder in rdunders:
        register_handler(rdunder, lambda self, other, _sym=sym: _sym(other, self))
    return sym


_BOOL, _DEFAULT = Promotion.ALWAYS_BOOL, Promotion.DEFAULT
remainder = _binary_symbol("remainder", _DEFAULT, (_T.__mod__,), (_T.__rmod__,))
fmod = _binary_symbol("fmod", _DEFAULT)
maximum = _binary_symbol("maximum", _DEFAULT)
minimum = _binary_symbol("minimum", _DEFAULT)
atan2 = _binary_symbol("atan2", _FLOAT, (torch.arctan2, _T.arctan2))
copysign = _binary_symbol("copysign", _FLOAT)
nextafter = _binary_symbol("nextafter", _DEFAULT)
eq = _binary_symbol("eq", _BOOL, (_T.__eq__,))
ne = _binary_symbol("ne", _BOOL, (_T.__ne__, torch.not_equal, _T.not_equal))
lt = _binary_symbol("lt", _BOOL, (_T.__lt__, torch.less, _T.less))
le = _binary_symbol("le", _BOOL, (_T.__le__, torch.less_equal, _T.less_equal))
gt = _binary_symbol("gt", _BOOL, (_T.__gt__, torch.greater, _T.greater))
ge = _binary_symbol("ge", _BOOL, (_T.__ge__, torch.greater_equal, _T.greater_equal))
bitwise_and = _binary_symbol("bitwise_and", _DEFAULT, (_T.__and__,), (_T.__rand__,))
bitwise_or = _binary_symbol("bitwise_or", _DEFAULT, (_T.__or__,), (_T.__ror__,))
bitwise_xor = _binary_symbol("bitwise_xor", _DEFAULT, (_T.__xor__,), (_T.__rxor__,))
bitwise_left_shift = _binary_symbol("bitwise_left_shift", _DEFAULT, (_T.__lshift__,), (_T.__rlshift__,))
bitwise_right_shift = _binary_symbol("bitwise_right_shift", _DEFAULT, (_T.__rshift__,), (_T.__rrshift__,))


def _logical(prim):
    def meta(a, b):
        a, b = broadcast_tensors(a, b)
        to_bool = lambda x: x if not isinstance(x, torch.Tensor) or x.dtype == torch.bool else prims.ne(x, 0)
        return prim(to_bool(a), bool(b) if isinstance(b, Number) else to_bool(b))

    return meta


logical_and = torchsymbol(*_torch_fns("logical_and"), name="logical_and")(_logical(prims.logical_and))
logical_or = torchsymbol(*_torch_fns("logical_or"), name="logical_or")(_logical(prims.logical_or))
logical_xor = torchsymbol(*_torch_fns("logical_xor"), name="logical_xor")(_logical(prims.logical_xor))


def _times_alpha(a, b, alpha):
    # alpha does not take part in type promotion: on bools it acts as a bool (eager: True + True * 2 is True)
    if not isinstance(b, torch.Tensor):
        scaled = b * alpha  # True * 2 is the int 2: with a bool tensor it stays the bool True
        return bool(scaled) if isinstance(b, bool) and result_dtype(a, b) == torch.bool else scaled
    scaled = mul(b, alpha)
    return to_dtype(scaled, torch.bool) if result_dtype(a, b) == torch.bool else scaled


@torchsymbol(torch.add, torch.Tensor.add, torch.Tensor.__add__, tags=("elementwise",))
def add(a, b, *, alpha=1):
    if alpha != 1:
        b = _times_alpha(a, b, alpha)
    return _binary(prims.add, Promotion.DEFAULT, a, b)


register_handler(torch.Tensor.__radd__, lambda self, other: add(other, self))


@torchsymbol(torch.sub, torch.Tensor.sub, torch.Tensor.__sub__, torch.subtract, torch.Tensor.subtract, tags=("elementwise",))
def sub(a, b, *, alpha=1):
    if alpha != 1:
        b = _times_alpha(a, b, alpha)
    return _binary(prims.sub, Promotion.DEFAULT, a, b)


@torchsymbol(torch.rsub, tags=("elementwise",))
def rsub(a, b, *, alpha=1):
    return sub(b, a, alpha=alpha)


register_handler(torch.Tensor.__rsub__, lambda self, other: sub(other, self))


@torchsymbol(torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.multiply, torch.Tensor.multiply, tags=("elementwise",))
def mul(a, b):
    return _binary(prims.mul, Promotion.DEFAULT, a, b)


register_handler(torch.Tensor.__rmul__, lambda self, other: mul(other, self))


@torchsymbol(torch.div, torch.Tensor.div, torch.Tensor.__truediv__, torch.divide, torch.Tensor.divide, tags=("elementwise",))
def div(a, b, *, rounding_mode=None):
    if rounding_mode is None:
        return _binary(prims.div, Promotion.INT_TO_FLOAT, a, b)
    if rounding_mode not in ("floor", "trunc"):
        raise ValueError(
            f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found {rounding_mode!r}"
        )
    return rounding_div(a, b, rounding_mode)


@torchsymbol(name="rounding_div", tags=("elementwise",))
def rounding_div(a, b, rounding_mode):
    """`div(a, b, rounding_mode=...)`: its own symbol because its gradient is zero (eager's), not 0 * (g / b)."""
    if rounding_mode == "floor":
        return floor_divide(a, b)
    dtype = result_dtype(a, b)
    if is_exact_dtype(dtype):
        a, b = to_dtype(a, dtype), to_dtype(b, dtype)  # bools divide as integers
        # integer truncating division: sign(a*b) * (|a| // |b|)
        q = _binary(prims.floor_divide, Promotion.DEFAULT, abs(a) if isinstance(a, torch.Tensor) else builtins.abs(a),
                    abs(b) if isinstance(b, torch.Tensor) else builtins.abs(b))  # fmt: skip
        sign_a = sign(a) if isinstance(a, torch.Tensor) else (1 if a >= 0 else -1)
        sign_b = sign(b) if isinstance(b, torch.Tensor) else (1 if b >= 0 else -1)
        return mul(mul(q, sign_a), sign_b)
    return trunc(_binary(prims.div, Promotion.INT_TO_FLOAT, a, b))


def _rounding_div_grad(a, b, rounding_mode):
    out = rounding_div(a, b, rounding_mode)
    get_grad(out)
    for x in (a, b):
        if isinstance(x, torch.Tensor):
            put_grad(x, prims.full(tuple(x.shape), 0, dtype=x.dtype, device=x.device))
    return out


GRAD_RULES[rounding_div.id] = _rounding_div_grad


@torchsymbol(torch.true_divide, torch.Tensor.true_divide, tags=("elementwise",))
def true_divide(a, b):
    return div(a, b)


# `number / tensor`: torch's Tensor.__rtruediv__ (and __rdiv__, the same function) is `self.reciprocal() * other`,
# which rounds otherwise than one division
register_handler(torch.Tensor.__rtruediv__, lambda self, other: mul(reciprocal(self), other))


@torchsymbol(torch.floor_divide, torch.Tensor.floor_divide, torch.Tensor.__floordiv__, tags=("elementwise",))
def floor_divide(a, b):
    return _binary(prims.floor_divide, Promotion.DEFAULT, a, b)


register_handler(torch.Tensor.__rfloordiv__, lambda self, other: floor_divide(other, self))


@torchsymbol(torch.pow, torch.Tensor.pow, torch.Tensor.__pow__, tags=("elementwise",))
def pow(a, b):
    concrete_b = isinstance(b, Number) and not isinstance(b, (bool, NumberProxy))
    if concrete_b and isinstance(a, torch.Tensor):
        if b == 2 and not is_exact_dtype(a.dtype):
            return mul(a, a)
        if b == 1:
            return to_dtype(a, result_dtype(a, b))
        if b == 0.5 and not is_exact_dtype(a.dtype):
            return sqrt(a)
    return _binary(prims.pow, Promotion.DEFAULT, a, b)


register_handler(torch.Tensor.__rpow__, lambda self, other: pow(other, self))


@torchsymbol(torch.float_power, torch.Tensor.float_power, tags=("elementwise",))
def float_power(a, b):
    dtype = torch.complex128 if result_dtype(a, b).is_complex else torch.float64
    return pow(to_dtype(a, dtype), to_dtype(b, dtype) if isinstance(b, torch.Tensor) else b)


@torchsymbol(torch.square, torch.Tensor.square, tags=("elementwise",))
def square(a):
    if a.dtype == torch.bool:  # eager's square is pow(a, 2): an int64 tensor for a bool one
        a = to_dtype(a, torch.int64)
    return mul(a, a)


@torchsymbol(torch.frac, torch.Tensor.frac, tags=("elementwise",))
def frac(a):
    if is_exact_dtype(a.dtype):
        raise NotImplementedError(f'"frac" not implemented for {a.dtype}')
    return sub(a, trunc(a))


def _float_operands(*args):
    """The operands of a float-valued composite op, converted to the dtype it computes in and broadcast.

    Returns (operands, result dtype). Low-precision floats compute in float32, as torch's kernels do, and
    Python numbers become 0-dim tensors so that every operand can go through unary prims.
    """
    dtype = elementwise_result_dtype(Promotion.INT_TO_FLOAT, *args)
    compute = computation_dtype(dtype)
    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    operands = [
        to_dtype(a, compute) if isinstance(a, torch.Tensor) else prims.full((), a, dtype=compute, device=device)
        for a in args
    ]
    return broadcast_tensors(*operands), dtype


@torchsymbol(torch.xlogy, torch.Tensor.xlogy, torch.special.xlogy, tags=("elementwise",))
def xlogy(a, b):
    (a, b), dtype = _float_operands(a, b)
    out = where(eq(a, 0), 0.0, mul(a, log(b)))
    return to_dtype(where(isnan(b), float("nan"), out), dtype)  # 0 * log(nan) is nan


@torchsymbol(torch.special.xlog1py, tags=("elementwise",))
def xlog1py(a, b):
    (a, b), dtype = _float_operands(a, b)
    out = where(eq(a, 0), 0.0, mul(a, log1p(b)))
    return to_dtype(where(isnan(b), float("nan"), out), dtype)


@torchsymbol(torch.hypot, torch.Tensor.hypot, tags=("elementwise",))
def hypot(a, b):
    (a, b), dtype = _float_operands(a, b)
    return to_dtype(sqrt(add(mul(a, a), mul(b, b))), dtype)


def _logaddexp(a, b, exp_fn, log1p_fn):
    (a, b), dtype = _float_operands(a, b)
    m = maximum(a, b)
    # equal infinities would give inf - inf = nan in the correction term: the maximum is the answer there
    correction = log1p_fn(exp_fn(neg(abs(sub(a, b)))))
    return to_dtype(where(logical_and(isinf(m), eq(a, b)), m, add(m, correction)), dtype)


@torchsymbol(torch.logaddexp, torch.Tensor.logaddexp, tags=("elementwise",))
def logaddexp(a, b):
    if (isinstance(a, torch.Tensor) and a.dtype.is_complex) or (isinstance(b, torch.Tensor) and b.dtype.is_complex):
        return _complex_logaddexp(a, b)
    return _logaddexp(a, b, exp, log1p)


def _complex_logaddexp(a, b):
    """log(exp(a) + exp(b)) for complex inputs as eager's kernel computes it: the input of larger real part is
    factored out (b where the real parts tie); both real parts -inf gives the smaller input, both +inf the plain
    formula, and a NaN anywhere NaN in both parts."""
    (a, b), _ = _float_operands(a, b)
    a_smaller = lt(prims.real(a), prims.real(b))
    low, high = where(a_smaller, a, b), where(a_smaller, b, a)
    low_real, high_real = prims.real(low), prims.real(high)
    same_infinity = logical_and(isinf(low_real), eq(low_real, high_real))
    factored = add(log1p(exp(sub(low, high))), high)
    out = where(same_infinity, where(lt(low_real, 0), low, log(add(exp(low), exp(high)))), factored)
    has_nan = logical_or(isnan(a), isnan(b))  # isnan of a complex value: either part
    return add(out, where(has_nan, complex(math.nan, math.nan), 0j))


@torchsymbol(torch.logaddexp2, torch.Tensor.logaddexp2, tags=("elementwise",))
def logaddexp2(a, b):
    return _logaddexp(a, b, exp2, lambda x: div(log1p(x), math.log(2.0)))


@torchsymbol(torch.where, tags=("elementwise",))
def where(condition, input=None, other=None):
    if input is None and other is None:
        raise NotImplementedError(
            "torch.where(condition) with one argument returns data-dependent shapes; Thunder cannot trace it. "
            "Use the three-argument form, or the torch.compile frontend, which splits the program there: "
            "torch.compile(fn, backend=thunder.dynamo.ThunderCompiler())."
        )
    dtype = result_dtype(input, other)
    input, other = to_dtype(input, dtype), to_dtype(other, dtype)
    if not isinstance(input, torch.Tensor) and not isinstance(other, torch.Tensor):
        device = condition.device
        input = prims.full((), input, dtype=dtype, device=device)
    if condition.dtype != torch.bool:
        condition = prims.ne(condition, 0)
    condition, input, other = broadcast_tensors(condition, input, other)
    return prims.where(condition, input, other)


# Tensor.where(self, condition, other) takes the values first
register_handler(torch.Tensor.where, lambda self, condition, other: where(condition, self, other))


@torchsymbol(torch.masked_fill, torch.Tensor.masked_fill, tags=("elementwise",))
def masked_fill(a, mask, value):
    if isinstance(value, torch.Tensor):
        value = to_dtype(value, a.dtype)
    elif isinstance(value, bool) or a.dtype.is_floating_point or a.dtype.is_complex:
        pass
    elif isinstance(value, NumberProxy) and value.python_type is int:
        pass
    else:
        value = int(value) if not isinstance(value, float) or value.is_integer() else value
    out = where(mask, value, a)
    return to_dtype(out, a.dtype)


@torchsymbol(torch.clamp, torch.Tensor.clamp, torch.clip, torch.Tensor.clip, tags=("elementwise",))
def clamp(a, min=None, max=None):
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    dtype = result_dtype(*(x for x in (a, min, max) if x is not None))
    out = to_dtype(a, dtype)
    # a NaN anywhere (input or bound) gives NaN, as torch's kernel; min > max gives max
    if min is not None:
        out = where(logical_or(lt(out, min), isnan_value(min)), to_dtype(min, dtype), out)
    if max is not None:
        out = where(logical_or(gt(out, max), isnan_value(max)), to_dtype(max, dtype), out)
    return out


def _put_grad_reduced(t, g):
    """Puts `g` as t's gradient: summed over the dims along which t was broadcast, in t's dtype."""
    put_grad(t, to_dtype(sum_to(g, t.shape), t.dtype))


def isnan_value(x):
    """Whether x is NaN: a tensor's elements, or a number's value (a number proxy's under a guard on its
    NaN-ness: the value seen while tracing says nothing about later calls)."""
    if isinstance(x, torch.Tensor):
        return isnan(x)
    return guarded_predicate(_is_nan_number, x)


def _is_nan_number(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _clamp_grad(a, min=None, max=None):
    """torch's clamp_backward: the input's gradient flows where min <= a <= max (never at a NaN, nor with a NaN
    bound); a tensor bound gets it where it is the result."""
    out = clamp(a, min, max)
    g = get_grad(out)
    zero = prims.full((), 0, dtype=g.dtype, device=g.device)
    keep = None
    if min is not None:
        keep = ge(a, min)
    if max is not None:
        keep = le(a, max) if keep is None else logical_and(keep, le(a, max))
    _put_grad_reduced(a, where(keep, g, zero))
    if isinstance(min, torch.Tensor):
        takes_min = lt(a, min) if max is None else logical_and(lt(a, min), lt(min, max))
        _put_grad_reduced(min, where(takes_min, g, zero))
    if isinstance(max, torch.Tensor):
        takes_max = gt(a, max) if min is None else logical_or(gt(a, max), lt(max, min))
        _put_grad_reduced(max, where(takes_max, g, zero))
    return out


GRAD_RULES[clamp.id] = _clamp_grad


register_handler(torch.clamp_min, lambda a, min: clamp(a, min=min))
register_handler(torch.Tensor.clamp_min, lambda a, min: clamp(a, min=min))
register_handler(torch.clamp_max, lambda a, max: clamp(a, max=max))
register_handler(torch.Tensor.clamp_max, lambda a, max: clamp(a, max=max))


def _in_computation_dtype(*tensors):
    """The tensors in the dtype their fused elementwise kernel computes in (float32 for float16 and bfloat16,
    as torch's kernels do: they round once, at the end), with the result's dtype."""
    dtype = result_dtype(*tensors)
    compute = computation_dtype(dtype)
    return [to_dtype(t, compute) for t in tensors], dtype


@torchsymbol(torch.lerp, torch.Tensor.lerp, tags=("elementwise",))
def lerp(start, end, weight):
    """Eager's kernel: in float32 for float16 / bfloat16, `start + weight * (end - start)` for |weight| < 0.5 and
    `end - (end - start) * (1 - weight)` otherwise (exact at both ends)."""
    (start, end), dtype = _in_computation_dtype(start, end)
    diff = sub(end, start)
    if not isinstance(weight, torch.Tensor):
        small = builtins.abs(weight) < 0.5
        out = add(start, mul(weight, diff)) if small else sub(end, mul(diff, 1 - weight))
        return to_dtype(out, dtype)
    weight = to_dtype(weight, start.dtype)
    from_start, from_end = add(start, mul(weight, diff)), sub(end, mul(diff, rsub(weight, 1)))
    return to_dtype(where(lt(abs(weight), 0.5), from_start, from_end), dtype)


@torchsymbol(torch.addcmul, torch.Tensor.addcmul, tags=("elementwise",))
def addcmul(a, t1, t2, *, value=1):
    (a, t1, t2), dtype = _in_computation_dtype(a, t1, t2)
    value = integer_scalar(value, dtype)
    product = mul(mul(t1, value), t2) if value != 1 else mul(t1, t2)  # eager's `self + value * t1 * t2`
    return to_dtype(add(a, product), dtype)


@torchsymbol(torch.addcdiv, torch.Tensor.addcdiv, tags=("elementwise",))
def addcdiv(a, t1, t2, *, value=1):
    (a, t1, t2), dtype = _in_computation_dtype(a, t1, t2)
    quotient = mul(div(t1, t2), value) if value != 1 else div(t1, t2)
    return to_dtype(add(a, quotient), dtype)


def _addcmul_grad(a, t1, t2, *, value=1):
    """torch's formulas in the inputs' dtype, factor by factor (`grad * (t2 * value).conj()`): a formula
    differentiated through the float32 forward rounds float16 / bfloat16 elsewhere than eager's backward, which
    a sum over broadcast dims turns into differences beyond any tolerance where terms cancel."""
    out = addcmul(a, t1, t2, value=value)
    g = get_grad(out)
    _put_grad_reduced(a, g)
    for this, other in ((t1, t2), (t2, t1)):
        scaled = mul(other, value) if value != 1 else other
        _put_grad_reduced(this, mul(g, conjugate(scaled)))
    return out


def _addcdiv_grad(a, t1, t2, *, value=1):
    """torch's formulas in the inputs' dtype, factor by factor (see `_addcmul_grad`)."""
    out = addcdiv(a, t1, t2, value=value)
    g = get_grad(out)
    _put_grad_reduced(a, g)
    # torch's `value / t2` of a number and a tensor divides a tensor of t2's dtype filled with the value
    filled = prims.full(tuple(t2.shape), value, dtype=t2.dtype, device=t2.device)
    _put_grad_reduced(t1, mul(g, conjugate(div(filled, t2))))
    t2_factor = div(mul(t1, value), mul(t2, t2))  # torch's `-grad * (value * t1 / (t2 * t2)).conj()`
    _put_grad_reduced(t2, mul(neg(g), conjugate(t2_factor)))
    return out


GRAD_RULES[addcmul.id] = _addcmul_grad
GRAD_RULES[addcdiv.id] = _addcdiv_grad


@torchsymbol(torch.nan_to_num, torch.Tensor.nan_to_num, tags=("elementwise",))
def nan_to_num(a, nan=0.0, posinf=None, neginf=None):
    if is_exact_dtype(a.dtype):
        return prims.convert_element_type(a, a.dtype)
    info = torch.finfo(a.dtype)
    # each replacement chosen from a's own values: a replacement that is itself infinite is not replaced again
    out = where(logical_and(isinf(a), lt(a, 0)), info.min if neginf is None else neginf, a)
    out = where(logical_and(isinf(a), gt(a, 0)), info.max if posinf is None else posinf, out)
    return where(isnan(a), 0.0 if nan is None else nan, out)  # torch takes an explicit None for the default



@torchsymbol(torch.round, torch.Tensor.round, torch.special.round, tags=("elementwise",))
def round(a, *, decimals=0):
    if a.dtype == torch.bool:
        raise NotImplementedError('"round" not implemented for \'Bool\'')
    if is_exact_dtype(a.dtype):
        return prims.convert_element_type(a, a.dtype)
    if decimals == 0:
        return prims.round(a)
    # torch's kernel: round(a * 10**d) / 10**d (with d < 0 dividing first), half to even; 10**d beyond a double
    # is infinite there (NaN results), where Python's power raises OverflowError (a number proxy's when the program
    # runs): the comparison guards which case the program computes
    exponent = builtins.abs(decimals)
    scale = math.inf if exponent > 308 else 10.0**exponent
    if decimals > 0:
        return prims.div(prims.round(prims.mul(a, scale)), scale)
    return prims.mul(prims.round(prims.div(a, scale)), scale)


# -- composites --------------------------------------------------------------------------------------------
@torchsymbol(torch.sgn, torch.Tensor.sgn, tags=("elementwise",))
def sgn(a):
    if a.dtype.is_complex:
        magnitude = abs(a)
        return where(eq(magnitude, 0), 0, div(a, to_dtype(magnitude, a.dtype)))
    return sign(a)


@torchsymbol(torch.positive, torch.Tensor.positive, torch.Tensor.__pos__, tags=("elementwise",))
def positive(a):
    if a.dtype == torch.bool:
        raise TypeError("The `+` operator, on a bool tensor is not supported.")
    return a


@torchsymbol(torch.logit, torch.Tensor.logit, torch.special.logit, tags=("elementwise",))
def logit(a, eps=None):
    (x,), dtype = _float_operands(a)
    if eps is not None:
        # torch's kernel: x < eps ? eps : (x > 1 - eps ? 1 - eps : x); a NaN eps compares false and leaves x
        # (clamp would make it NaN)
        x = where(lt(x, eps), eps, where(gt(x, 1.0 - eps), 1.0 - eps, x))
    return to_dtype(log(div(x, sub(1.0, x))), dtype)


@torchsymbol(torch.sinc, torch.Tensor.sinc, torch.special.sinc, tags=("elementwise",))
def sinc(a):
    (x,), dtype = _float_operands(a)
    pi_x = mul(x, math.pi)
    return to_dtype(where(eq(x, 0), 1.0, div(sin(pi_x), pi_x)), dtype)


@torchsymbol(torch.deg2rad, torch.Tensor.deg2rad, tags=("elementwise",))
def deg2rad(a):
    return mul(to_dtype(a, elementwise_result_dtype(Promotion.INT_TO_FLOAT, a)), math.pi / 180.0)


@torchsymbol(torch.rad2deg, torch.Tensor.rad2deg, tags=("elementwise",))
def rad2deg(a):
    return mul(to_dtype(a, elementwise_result_dtype(Promotion.INT_TO_FLOAT, a)), 180.0 / math.pi)


@torchsymbol(torch.special.ndtr, tags=("elementwise",))
def ndtr(a):
    (x,), dtype = _float_operands(a)
    return to_dtype(mul(add(erf(mul(x, math.sqrt(0.5))), 1.0), 0.5), dtype)


@torchsymbol(torch.special.entr, tags=("elementwise",))
def entr(a):
    (x,), dtype = _float_operands(a)
    positive_part = neg(mul(x, log(x)))
    out = where(gt(x, 0), positive_part, where(eq(x, 0), 0.0, float("-inf")))
    return to_dtype(where(isnan(x), x, out), dtype)


@torchsymbol(torch.ldexp, torch.Tensor.ldexp, tags=("elementwise",))
def ldexp(a, other):
    dtype = elementwise_result_dtype(Promotion.INT_TO_FLOAT, a, other)
    return mul(to_dtype(a, dtype), pow(2.0, to_dtype(other, dtype)))


def _ldexp_grad(a, other):
    """torch's own formulas (`grad * 2^other`, and `grad * result * ln 2` for the exponent), which round in
    float16 / bfloat16 otherwise than the chain rule through the product and the power would."""
    out = ldexp(a, other)
    g = get_grad(out)
    scale = pow(2.0, to_dtype(other, out.dtype))
    _put_grad_reduced(a, mul(g, conjugate(scale)))
    _put_grad_reduced(other, mul(mul(g, conjugate(out)), math.log(2.0)))
    return out


GRAD_RULES[ldexp.id] = _ldexp_grad


@torchsymbol(torch.heaviside, torch.Tensor.heaviside, tags=("elementwise",))
def heaviside(a, values):
    if a.dtype != values.dtype:
        raise RuntimeError(
            f"heaviside is not yet implemented for tensors with different dtypes: {a.dtype} and {values.dtype}"
        )
    step = to_dtype(gt(a, 0), a.dtype)
    return where(eq(a, 0), values, step)


def _nan_ignoring(binary):
    def meta(a, b):
        out = binary(a, b)
        if is_exact_dtype(out.dtype):
            return out
        # fmax/fmin: a NaN loses against a number
        return where(isnan(b), a, where(isnan(a), b, out))

    return meta


fmax = torchsymbol(torch.fmax, torch.Tensor.fmax, name="fmax", tags=("elementwise",))(_nan_ignoring(maximum))
fmin = torchsymbol(torch.fmin, torch.Tensor.fmin, name="fmin", tags=("elementwise",))(_nan_ignoring(minimum))


def _nan_ignoring_grad(symbol, wins):
    """fmax / fmin's gradient as torch defines it: all of it to `a` where a wins or ties (`a >= b` for fmax) or b
    is NaN, else all to `b`; maximum / minimum split a tie evenly instead."""

    def rule(a, b):
        out = symbol(a, b)
        g = get_grad(out)
        to_a = logical_or(wins(a, b), isnan(b))
        zero = 0 if is_exact_dtype(g.dtype) else 0.0
        if isinstance(a, torch.Tensor):
            _put_grad_reduced(a, where(to_a, g, zero))
        if isinstance(b, torch.Tensor):
            _put_grad_reduced(b, where(to_a, zero, g))
        return out

    return rule


GRAD_RULES[fmax.id] = _nan_ignoring_grad(fmax, ge)
GRAD_RULES[fmin.id] = _nan_ignoring_grad(fmin, le)


@torchsymbol(torch.isclose, torch.Tensor.isclose, tags=("elementwise",))
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    if a.dtype != b.dtype:
        raise RuntimeError(f"{a.dtype} did not match {b.dtype}")
    # eager's checks; `not x >= 0` refuses NaN too (a number proxy: the comparison guards its outcome)
    if not rtol >= 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if not atol >= 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    if a.dtype == torch.bool:
        return eq(a, b)
    close = eq(a, b)
    if not is_exact_dtype(a.dtype) or rtol != 0 or atol != 0:
        dtype = result_dtype(a, b) if not is_exact_dtype(a.dtype) else torch.get_default_dtype()
        fa, fb = to_dtype(a, dtype), to_dtype(b, dtype)
        diff = abs(sub(fa, fb))
        allowed = add(mul(abs(fb), rtol), atol)
        # infinities are close only to themselves (the difference would be nan, or inf <= inf)
        finite = logical_and(isfinite(fa), isfinite(fb))
        close = logical_or(close, logical_and(finite, le(diff, allowed)))
    if equal_nan:
        close = logical_or(close, logical_and(isnan(a), isnan(b)))
    return close


@torchsymbol(torch.isposinf, torch.Tensor.isposinf, tags=("elementwise",))
def isposinf(a):
    return logical_and(isinf(a), gt(a, 0)) if not is_exact_dtype(a.dtype) else ne(a, a)


@torchsymbol(torch.isneginf, torch.Tensor.isneginf, tags=("elementwise",))
def isneginf(a):
    return logical_and(isinf(a), lt(a, 0)) if not is_exact_dtype(a.dtype) else ne(a, a)


@torchsymbol(torch.isreal, torch.Tensor.isreal, tags=("elementwise",))
def isreal(a):
    if a.dtype.is_complex:
        return eq(prims.imag(a), 0)
    return eq(a, a) if a.dtype == torch.bool else logical_or(eq(a, a), ne(a, a))  # all True, whatever NaNs


# Torch callables whose scalar operands may stay symbolic (number proxies, cache="symbolic values"): the
# decompositions pass them to elementwise prims, which take numbers. Any other call gets the values (and
# pins the inputs they came from).
SYMBOLIC_SCALAR_FNS = frozenset(
    fn
    for sym in (add, sub, rsub, mul, div, true_divide, floor_divide, remainder, pow, eq, ne, lt, le, gt, ge,
                where, masked_fill, clamp, lerp)  # fmt: skip
    for fn in sym.torch_fns
) | frozenset({
    torch.Tensor.__radd__, torch.Tensor.__rsub__, torch.Tensor.__rmul__, torch.Tensor.__rtruediv__,
    torch.Tensor.__rfloordiv__, torch.Tensor.__rmod__, torch.Tensor.__rpow__, torch.Tensor.where,
    torch.clamp_min, torch.clamp_max, torch.Tensor.clamp_min, torch.Tensor.clamp_max,
})  # fmt: skip
