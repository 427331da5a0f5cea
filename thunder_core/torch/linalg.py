"""Linear algebra: matmul (and its aliases), linear, bmm, mm, mv, dot, outer, baddbmm, addmm, einsum."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thunder import prims
from thunder.core.dtypes import result_dtype
from thunder.torch.base import register_handler, to_dtype, torchsymbol

__all__ = ["matmul", "linear", "bmm", "mm", "mv", "dot", "outer", "addmm", "baddbmm", "einsum"]


def _same_dtype(a, b):
    if a.dtype != b.dtype:
        raise RuntimeError(f"expected both operands to have the same dtype, but got {a.dtype} and {b.dtype}")


@torchsymbol(torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, tags=("matmul",))
def matmul(a, b):
    _same_dtype(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D")
    return prims.matmul(a, b)


register_handler(torch.Tensor.__rmatmul__, lambda self, other: matmul(other, self))


@torchsymbol(torch.mm, torch.Tensor.mm, tags=("matmul",))
def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError("mm expects 2D tensors")
    return matmul(a, b)


@torchsymbol(torch.bmm, torch.Tensor.bmm, tags=("matmul",))
def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError("bmm expects 3D tensors")
    return matmul(a, b)


@torchsymbol(torch.mv, torch.Tensor.mv, tags=("matmul",))
def mv(a, b):
    return matmul(a, b)


@torchsymbol(torch.dot, torch.Tensor.dot, tags=("matmul",))
def dot(a, b):
    return matmul(a, b)


@torchsymbol(torch.outer, torch.Tensor.outer, torch.ger)
def outer(a, b):
    from thunder.torch.elementwise import mul
    from thunder.torch.shapes import unsqueeze

    return mul(unsqueeze(a, 1), unsqueeze(b, 0))


@torchsymbol(F.linear, tags=("matmul",))
def linear(input, weight, bias=None):
    _same_dtype(input, weight)
    return prims.linear(input, weight, bias) if bias is None else _linear_bias(input, weight, bias)


def _linear_bias(input, weight, bias):
    from thunder.torch.base import expand_to

    out = prims.linear(input, weight, None)
    return prims.add(out, expand_to(to_dtype(bias, out.dtype), tuple(out.shape)))


@torchsymbol(torch.addmm, torch.Tensor.addmm, tags=("matmul",))
def addmm(bias, a, b, *, beta=1, alpha=1):
    from thunder.torch.elementwise import add, mul

    prod = matmul(a, b)
    return add(mul(bias, beta) if beta != 1 else bias, mul(prod, alpha) if alpha != 1 else prod)


@torchsymbol(torch.baddbmm, torch.Tensor.baddbmm, tags=("matmul",))
def baddbmm(bias, a, b, *, beta=1, alpha=1):
    return addmm(bias, a, b, beta=beta, alpha=alpha)


@torchsymbol(torch.einsum)
def einsum(equation, *operands):
    """Einsum by contraction with permute/reshape/matmul, pairwise left to right."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    from thunder.torch.einsum_impl import einsum_decomposition

    dtype = result_dtype(*operands)
    return einsum_decomposition(equation, [to_dtype(o, dtype) for o in operands])
