"""Arithmetic on number proxies (`cache="symbolic values"`): one symbol per Python operator.

They live in the core, beside `NumberProxy`, because a number proxy's operators (`n + 1`) record them; the
operator vocabulary (`thunder.prims`) re-exports them as `prims.scalar_add` and so on. Each runs as the Python
operator itself (the python executor takes symbols tagged "python" with a python_impl) and prints as
`scalar_add(n0, 2)`.
"""

from __future__ import annotations

import operator
from numbers import Number

from thunder.core.proxies import Expr, NumberProxy, number_proxy, value_getter
from thunder.core.symbol import Symbol

SCALAR_BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
    "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow,
}  # fmt: skip
SCALAR_UNARY = {"neg": operator.neg, "pos": operator.pos, "abs": operator.abs}


def _scalar_meta(op):
    def meta(*args):
        for a in args:
            if not isinstance(a, Number):
                raise RuntimeError(f"scalar operations take numbers, got {a!r}")
        values = [a.value if isinstance(a, NumberProxy) else a for a in args]
        getters = [value_getter(a) for a in args]
        if all(g.op == "const" for g in getters):
            expr = None
        else:
            expr = Expr(op, *getters)
        return number_proxy(op(*values), expr=expr)

    return meta


#: "scalar_<name>" -> its symbol, for every operator of SCALAR_BINARY and SCALAR_UNARY
scalar_symbols: dict[str, Symbol] = {
    f"scalar_{name}": Symbol(f"scalar_{name}", _scalar_meta(op), id=f"prims.scalar_{name}", is_prim=True,
                             python_impl=op, tags=("python", "scalar"))
    for name, op in (*SCALAR_BINARY.items(), *SCALAR_UNARY.items())
}  # fmt: skip


def _sizes_of_meta(t):
    # recorded by the tracer with the input's own symbolic sizes as outputs (see thunder.core.symbolic_shapes);
    # called directly it reports the proxy's shape
    return tuple(t.shape)


def _sizes_of(t) -> tuple:
    return tuple(t.shape)


#: `(n0, _, n1) = sizes_of(x)`: an input tensor's sizes, the symbolic ones bound to names (cache="symbolic values")
sizes_of = Symbol("sizes_of", _sizes_of_meta, id="prims.sizes_of", is_prim=True, python_impl=_sizes_of,
                  tags=("python", "input_sizes"))
scalar_symbols["sizes_of"] = sizes_of
