"""Formulas written with primitives that grad rules share: trigamma (digamma's derivative), torch's integer-rounded
quotients (the gradients of fmod and remainder), and a batch of matrices folded into one (matmul's gradients)."""

from __future__ import annotations

import math

from thunder import prims

m, d, ad, sb = prims.mul, prims.div, prims.add, prims.sub


def trigamma(x):
    """polygamma(1, x) from primitives (there is no polygamma primitive). The recurrence
    psi1(x) = psi1(x + 1) + 1/x^2 shifts x to z >= 6, where the asymptotic series
    psi1(z) ~ 1/z + 1/(2 z^2) + sum_k B_2k / z^(2k+1) (seven terms) is accurate to about 1e-12 relative;
    negative x goes through the reflection psi1(x) = pi^2 / sin^2(pi x) - psi1(1 - x)."""
    negative = prims.lt(x, 0)
    xp = prims.where(negative, sb(1, x), x)
    total = prims.full(tuple(x.shape), 0, dtype=x.dtype, device=x.device)
    for k in range(6):
        total = ad(total, prims.reciprocal(m(ad(xp, k), ad(xp, k))))
    w = prims.reciprocal(ad(xp, 6))
    w2 = m(w, w)
    series = m(w2, 7 / 6)  # Horner's rule over B_14 ... B_2
    for bernoulli in (-691 / 2730, 5 / 66, -1 / 30, 1 / 42, -1 / 30):
        series = m(w2, ad(series, bernoulli))
    series = ad(series, 1 / 6)
    total = ad(total, ad(ad(w, m(w2, 0.5)), m(m(w, w2), series)))
    sin_pi_x = prims.sin(m(x, math.pi))
    return prims.where(negative, sb(d(math.pi**2, m(sin_pi_x, sin_pi_x)), total), total)


def rounded_quotient(a, b, rounding):
    """a / b rounded to an integer as torch's `div(rounding_mode=...)` computes it, in a's dtype ("trunc"
    truncates the rounded quotient; see `floor_quotient`). The quotient of a - fmod(a, b) by b is not exact in
    float16 / bfloat16."""
    return rounding(d(a, b)) if rounding is prims.trunc else floor_quotient(a, b)


def floor_quotient(a, b):
    """torch's floor division of floats: (a - fmod(a, b)) / b, one less where the remainder's sign is not b's,
    then rounded to the nearest integer, each step rounded to the dtype as eager's kernel does (in bfloat16 it
    can miss the true floor by one: 10.0625 // -0.046875 is -214 there), and a / b where b is 0."""
    mod = prims.fmod(a, b)
    q = d(sb(a, mod), b)
    signs_differ = prims.logical_and(prims.ne(mod, 0), prims.ne(prims.lt(b, 0), prims.lt(mod, 0)))
    q = prims.where(signs_differ, sb(q, 1), q)
    floor = prims.floor(q)
    q = prims.where(prims.gt(sb(q, floor), 0.5), ad(floor, 1), floor)
    return prims.where(prims.eq(b, 0), d(a, b), q)


def fold_rows(x):
    """A batch of (r, c) matrices as one (batch * r, c) matrix."""
    rows = 1
    for length in x.shape[:-1]:
        rows *= length
    return prims.reshape(x, (rows, x.shape[-1]))


def fold_columns(x):
    """A batch of (r, c) matrices side by side: one (r, batch * c) matrix."""
    batch = x.ndim - 2
    columns = x.shape[-1]
    for length in x.shape[:batch]:
        columns *= length
    return prims.reshape(prims.permute(x, (batch, *range(batch), batch + 1)), (x.shape[-2], columns))
