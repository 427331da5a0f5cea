"""Op database for the elementwise family of `thunder.torch`: every op against torch eager.

Each sample runs twice: with the default executors (the torch executor runs each `thunder.torch` symbol
whole, through the torch callable it mirrors) and decomposed into prims (which checks the
decomposition every other executor sees). Values, dtypes and shapes must match eager's, and so must the
shapes and dtypes the trace's metas inferred.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import thunder

from .cases import ALL, FLOATS, INTS, OpCase, assert_matches_eager, make, op_params, run_case


# -- unary ---------------------------------------------------------------------------------------------
def unary_samples(name: str, low=None, high=None):
    fn = getattr(torch, name) if "." not in name else getattr(torch.special, name.split(".")[1])
    method = getattr(torch.Tensor, name, None)

    def samples(dtype):
        a = make((3, 4), dtype, low, high)
        yield "2d", fn, (a,)
        yield "transposed", fn, (make((4, 3), dtype, low, high).t(),)
        yield "0-dim", fn, (make((), dtype, low, high),)
        yield "empty", fn, (make((0, 3), dtype, low, high),)
        yield "strided", lambda x: fn(x[:, ::2]), (a,)
        if method is not None:
            yield "method", lambda x: method(x), (a,)

    return samples


def _unary(name, dtypes=FLOATS + INTS, low=None, high=None):
    return OpCase(name, unary_samples(name, low, high), dtypes)


UNARY_CASES = [
    *(_unary(n) for n in "exp exp2 expm1 sin cos tan atan sinh cosh tanh asinh sigmoid erf erfc".split()),
    *(_unary(n, low=0.1, high=4) for n in "log log1p log2 log10 sqrt rsqrt reciprocal lgamma digamma".split()),
    *(_unary(n, low=-0.9, high=0.9) for n in "asin acos atanh erfinv".split()),
    _unary("acosh", low=1.1, high=4),
    *(_unary(n, ALL) for n in "abs neg sign floor ceil trunc round isnan isinf isfinite logical_not".split()),
    *(_unary(n, FLOATS + INTS) for n in "signbit sgn frac".split()),
    _unary("bitwise_not", INTS + (torch.bool,)),
    _unary("positive", FLOATS + INTS),
    *(_unary(n) for n in "deg2rad rad2deg isposinf isneginf isreal sinc".split()),
    *(_unary(n, FLOATS) for n in "arcsin arctan absolute negative fix square".split()),
    _unary("logit", FLOATS, low=0.05, high=0.95),
    *(_unary(f"special.{n}") for n in "ndtr expit gammaln psi".split()),
    _unary("special.entr", FLOATS),
    OpCase("nan_to_num", lambda d: iter([
        ("specials", torch.nan_to_num, (torch.tensor([1.0, math.nan, math.inf, -math.inf], dtype=d),)),
        ("keywords", lambda x: x.nan_to_num(nan=2.0, posinf=5.0, neginf=-5.0),
         (torch.tensor([[math.nan, math.inf], [-math.inf, 3.0]], dtype=d),)),
    ]), FLOATS),  # fmt: skip
    OpCase("logit_eps", lambda d: iter([("eps", lambda x: torch.logit(x, eps=0.1), (make((5,), d, 0, 1),))]), FLOATS),
    OpCase("round_decimals", lambda d: iter([
        ("positive", lambda x: torch.round(x, decimals=2), (make((6,), d, -10, 10),)),
        ("negative", lambda x: x.round(decimals=-1), (make((6,), d, -100, 100),)),
    ]), (torch.float32, torch.float64)),  # fmt: skip
    OpCase("special_values", lambda d: iter([
        (name, getattr(torch, name), (torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 1.5], dtype=d),))
        for name in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "signbit", "sign", "exp", "sigmoid")
    ]), FLOATS),  # fmt: skip
]


@pytest.mark.parametrize("case, dtype", op_params(UNARY_CASES))
def test_unary_op_matches_eager(case, dtype):
    run_case(case, dtype)


# -- binary --------------------------------------------------------------------------------------------
def binary_samples(fn: Callable, low=None, high=None, rhs_low=None, rhs_high=None, scalars=(2, 1.5)):
    rhs_low = low if rhs_low is None else rhs_low
    rhs_high = high if rhs_high is None else rhs_high

    def samples(dtype):
        lhs = lambda shape: make(shape, dtype, low, high)
        rhs = lambda shape: make(shape, dtype, rhs_low, rhs_high)
        yield "same shape", fn, (lhs((3, 4)), rhs((3, 4)))
        yield "broadcast", fn, (lhs((2, 3, 4)), rhs((4,)))
        yield "broadcast both", fn, (lhs((3, 1)), rhs((1, 4)))
        yield "transposed", fn, (lhs((4, 3)).t(), rhs((3, 4)))
        yield "0-dim rhs", fn, (lhs((3, 4)), rhs(()))
        yield "empty", fn, (lhs((0, 4)), rhs((4,)))
        for s in scalars:
            yield f"scalar {s!r}", lambda x, s=s: fn(x, s), (lhs((3, 4)),)
            yield f"scalar {s!r} first", lambda x, s=s: fn(s, x), (rhs((3, 4)),)
        if dtype != torch.float64:
            yield "mixed with float64", fn, (lhs((3, 4)), make((4,), torch.float64, rhs_low, rhs_high))

    return samples


def _binary(name, fn, dtypes=FLOATS + INTS, scalars=(2, 1.5), **kw):
    return OpCase(name, binary_samples(fn, scalars=scalars, **kw), dtypes)


_positive = {"rhs_low": 1, "rhs_high": 5}  # avoids division by zero for integer division
BINARY_CASES = [
    _binary("add", torch.add, ALL),
    _binary("add_alpha", lambda a, b: torch.add(a, b, alpha=2) if isinstance(a, torch.Tensor) else a + 2 * b),
    _binary("sub", torch.sub, FLOATS + INTS),
    _binary("sub_alpha", lambda a, b: a.sub(b, alpha=3) if isinstance(a, torch.Tensor) else torch.rsub(b, a, alpha=3)),
    _binary("mul", torch.mul, ALL),
    _binary("div", torch.div, ALL, **_positive),
    _binary("div_floor", lambda a, b: torch.div(a, b, rounding_mode="floor"), FLOATS + INTS, **_positive),
    _binary("div_trunc", lambda a, b: torch.div(a, b, rounding_mode="trunc"), FLOATS + INTS, **_positive),
    _binary("true_divide", torch.true_divide, **_positive),
    _binary("floor_divide", torch.floor_divide, **_positive),
    _binary("remainder", torch.remainder, **_positive),
    _binary("fmod", torch.fmod, **_positive),
    _binary("pow", torch.pow, FLOATS, low=0.5, high=2),
    _binary("pow_int", torch.pow, INTS, low=0, high=4, scalars=(2, 3)),
    _binary("float_power", torch.float_power, FLOATS + INTS, low=0.5, high=3),
    _binary("maximum", torch.maximum, ALL, scalars=()),
    _binary("minimum", torch.minimum, ALL, scalars=()),
    _binary("fmax", torch.fmax, FLOATS + INTS, scalars=()),
    _binary("fmin", torch.fmin, FLOATS + INTS, scalars=()),
    _binary("atan2", torch.atan2, FLOATS + INTS, scalars=()),
    _binary("copysign", torch.copysign, FLOATS + INTS),
    _binary("nextafter", torch.nextafter, (torch.float32, torch.float64), scalars=()),
    _binary("hypot", torch.hypot, FLOATS, scalars=()),
    _binary("logaddexp", torch.logaddexp, FLOATS, scalars=()),
    _binary("logaddexp2", torch.logaddexp2, FLOATS, scalars=()),
    _binary("xlogy", torch.xlogy, FLOATS + INTS, low=0, high=3),
    _binary("special.xlog1py", torch.special.xlog1py, FLOATS, low=0, high=3, scalars=(2.0,)),
    _binary("ldexp", torch.ldexp, FLOATS, rhs_low=-3, rhs_high=3, scalars=()),
    *(_binary(n, getattr(torch, n), ALL) for n in "eq ne lt le gt ge".split()),
    *(_binary(n, getattr(torch, n), ALL, scalars=(2,)) for n in "logical_and logical_or logical_xor".split()),
    *(_binary(n, getattr(torch, n), INTS + (torch.bool,), scalars=(3,))
      for n in "bitwise_and bitwise_or bitwise_xor".split()),  # fmt: skip
    *(_binary(n, getattr(torch, n), INTS, low=0, high=8, rhs_low=0, rhs_high=4, scalars=(1,))
      for n in "bitwise_left_shift bitwise_right_shift".split()),  # fmt: skip
    _binary("heaviside", torch.heaviside, FLOATS + INTS, scalars=()),
    _binary("isclose", lambda a, b: torch.isclose(a, b, rtol=0.1, atol=0.5), FLOATS + INTS, scalars=()),
    _binary("not_equal", torch.not_equal, FLOATS, scalars=()),
    _binary("greater_equal", lambda a, b: a.greater_equal(b), FLOATS, scalars=()),
    _binary("multiply", lambda a, b: a.multiply(b), FLOATS, scalars=()),
]


@pytest.mark.parametrize("case, dtype", op_params(BINARY_CASES))
def test_binary_op_matches_eager(case, dtype):
    run_case(case, dtype)


_OPERATORS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "//": operator.floordiv,
    "%": operator.mod, "**": operator.pow, "&": operator.and_, "|": operator.or_, "^": operator.xor,
    "<<": operator.lshift, ">>": operator.rshift, "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
_INTEGER_ONLY = {"&", "|", "^", "<<", ">>"}


@pytest.mark.parametrize(
    "symbol, dtype",
    [
        pytest.param(symbol, dtype, id=f"{symbol}-{str(dtype).removeprefix('torch.')}")
        for symbol in _OPERATORS
        for dtype in (torch.float32, torch.int64)
        if not (symbol in _INTEGER_ONLY and dtype.is_floating_point)  # bitwise operators take integer tensors
    ],
)
def test_python_operator_matches_eager(symbol, dtype):
    op = _OPERATORS[symbol]
    a, b = make((3, 4), dtype, 1, 4), make((4,), dtype, 1, 3)
    assert_matches_eager(lambda x, y: op(x, y), a, b)
    assert_matches_eager(lambda x: op(x, 2), a)
    assert_matches_eager(lambda x: op(2, x), a)
    if symbol not in _INTEGER_ONLY:
        assert_matches_eager(lambda x: op(x, 0.5), a)
        assert_matches_eager(lambda x: op(1.5, x), a)


def test_unary_operators_match_eager():
    a = make((3, 4), torch.float32)
    assert_matches_eager(lambda x: (-x, +x, abs(x)), a)
    assert_matches_eager(lambda x: ~x, make((3, 4), torch.int64))
    assert_matches_eager(lambda x: ~x, make((3, 4), torch.bool))


def test_integer_true_division_gives_the_default_float_dtype():
    assert_matches_eager(lambda a, b: a / b, make((3,), torch.int64, 1, 9), make((3,), torch.int32, 1, 4))


def test_zero_dim_tensor_does_not_promote_a_dimensioned_tensor():
    assert_matches_eager(lambda a, b: a * b, make((3,), torch.bfloat16), make((), torch.float64))
    assert_matches_eager(lambda a, b: a + b, make((3,), torch.int32), make((), torch.int64))
    assert_matches_eager(lambda a, b: a + b, make((3,), torch.int32), make((), torch.float32))


# -- ternary and composite ops --------------------------------------------------------------------------
def _where_samples(dtype):
    cond = make((3, 4), torch.bool)
    a, b = make((3, 4), dtype), make((4,), dtype)
    yield "tensors", torch.where, (cond, a, b)
    yield "method", lambda c, x, y: x.where(c, y), (cond, a, b)
    yield "scalar other", lambda c, x: torch.where(c, x, 0), (cond, a)
    yield "float scalar other", lambda c, x: torch.where(c, x, 1.5), (cond, a)
    yield "scalar input", lambda c, y: torch.where(c, 2, y), (cond, b)
    yield "broadcast condition", torch.where, (make((4,), torch.bool), a, b)
    yield "two scalars", lambda c: torch.where(c, 1.0, 0.0), (cond,)
    yield "transposed", torch.where, (cond.t(), a.t(), make((3,), dtype)[:, None].t())


def _clamp_samples(dtype):
    a = make((3, 4), dtype, -5, 5)
    yield "min max", lambda x: torch.clamp(x, -1, 2), (a,)
    yield "min keyword", lambda x: torch.clamp(x, min=0), (a,)
    yield "max keyword", lambda x: x.clamp(max=1), (a,)
    yield "float bounds", lambda x: x.clip(-0.5, 0.5), (a,)
    yield "tensor bounds", lambda x, lo, hi: torch.clamp(x, lo, hi), (a, make((4,), dtype, -5, 0), make((4,), dtype, 0, 5))
    yield "clamp_min", lambda x: torch.clamp_min(x, 1), (a,)
    yield "clamp_max", lambda x: x.clamp_max(1), (a,)


def _masked_fill_samples(dtype):
    a, mask = make((3, 4), dtype), make((3, 4), torch.bool)
    yield "scalar", lambda x, m: x.masked_fill(m, 1), (a, mask)
    yield "float scalar", lambda x, m: torch.masked_fill(x, m, -1.5), (a, mask)
    yield "broadcast mask", lambda x, m: x.masked_fill(m, 0), (a, make((4,), torch.bool))
    yield "0-dim tensor value", lambda x, m, v: x.masked_fill(m, v), (a, mask, make((), dtype))
    yield "transposed", lambda x, m: x.masked_fill(m, 3), (make((4, 3), dtype).t(), mask)
    if dtype.is_floating_point:
        yield "-inf", lambda x, m: x.masked_fill(m, float("-inf")), (a, mask)


def _lerp_samples(dtype):
    a, b = make((3, 4), dtype), make((4,), dtype)
    yield "scalar weight", lambda x, y: torch.lerp(x, y, 0.3), (a, b)
    yield "large scalar weight", lambda x, y: x.lerp(y, 0.8), (a, b)
    yield "tensor weight", torch.lerp, (a, b, make((3, 1), dtype, 0, 1))


def _addc_samples(dtype):
    a, b, c = make((3, 4), dtype), make((4,), dtype), make((3, 1), dtype, 1, 3)
    yield "addcmul", torch.addcmul, (a, b, c)
    yield "addcmul value", lambda x, y, z: x.addcmul(y, z, value=0.5), (a, b, c)
    yield "addcdiv", torch.addcdiv, (a, b, c)
    yield "addcdiv value", lambda x, y, z: torch.addcdiv(x, y, z, value=-2), (a, b, c)


TERNARY_CASES = [
    OpCase("where", _where_samples, ALL),
    OpCase("clamp", _clamp_samples, FLOATS + INTS),
    OpCase("masked_fill", _masked_fill_samples, ALL),
    OpCase("lerp", _lerp_samples, FLOATS),
    OpCase("addcmul_addcdiv", _addc_samples, FLOATS),
]


@pytest.mark.parametrize("case, dtype", op_params(TERNARY_CASES))
def test_ternary_op_matches_eager(case, dtype):
    run_case(case, dtype)


def test_isclose_treats_nan_and_infinities_like_eager():
    a = torch.tensor([1.0, math.nan, math.inf, -math.inf, math.inf, 1.0])
    b = torch.tensor([1.0 + 1e-9, math.nan, math.inf, math.inf, 1e30, math.nan])
    assert_matches_eager(torch.isclose, a, b)
    assert_matches_eager(lambda x, y: torch.isclose(x, y, equal_nan=True), a, b)


def test_logaddexp_of_equal_infinities_is_that_infinity():
    a = torch.tensor([math.inf, -math.inf, -math.inf, 2.0])
    b = torch.tensor([math.inf, -math.inf, 3.0, math.inf])
    assert_matches_eager(torch.logaddexp, a, b)


def test_functional_activations_that_are_elementwise_match_eager():
    a = make((3, 4), torch.float32)
    assert_matches_eager(lambda x: (F.sigmoid(x), F.tanh(x)), a)


def test_inplace_elementwise_methods_match_eager():
    def fn(a, b):
        c = a * 1  # an intermediate: in-place on it is functionalized
        c.add_(b)
        c.mul_(2)
        c.clamp_(min=-1)
        c += 1
        c.sigmoid_()
        return c

    assert_matches_eager(fn, make((3, 4), torch.float32), make((4,), torch.float32))


def test_bool_negation_is_rejected_like_eager():
    with pytest.raises(TypeError):
        thunder.jit(lambda a: +a)(make((3,), torch.bool))
