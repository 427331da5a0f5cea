"""Linear algebra and matrix helpers: matmul and its relatives (mm, bmm, mv, dot, vdot, inner, outer, kron,
tensordot, multi_dot), the add-and-multiply forms (addmm, baddbmm, addbmm, addmv, addr), linear, cross,
matrix_power, diagonals (diagonal, diag, diag_embed, trace), block_diag, meshgrid, cartesian_prod, einsum."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thunder import prims
from thunder.core.dtypes import computation_dtype, result_dtype
from thunder.core.transforms import get_grad, put_grad
from thunder.prims.grads import GRAD_RULES, conjugate, sum_to
from thunder.torch.base import (
    broadcast_shapes,
    canonicalize_dim,
    canonicalize_dims,
    expand_to,
    integer_scalar,
    number_in,
    register_handler,
    to_dtype,
    torchsymbol,
)
from thunder.torch.creation import full_like
from thunder.torch.einsum_impl import einsum_decomposition
from thunder.torch.elementwise import add, eq, logical_and, logical_or, mul, sub
from thunder.torch.fallback import fallback_symbol
from thunder.torch.reductions import sum as _sum
from thunder.torch.shapes import (
    _tensors_arg,
    cat,
    flatten,
    movedim,
    narrow,
    permute,
    reshape,
    select,
    stack,
    unsqueeze,
)

__all__ = [
    "matmul", "linear", "bmm", "mm", "mv", "dot", "outer", "addmm", "baddbmm", "einsum", "vdot", "inner", "kron",
    "tensordot", "multi_dot", "chain_matmul", "addbmm", "addmv", "addr", "cross", "linalg_cross", "matrix_power",
    "vecdot", "diagonal", "diag", "diag_embed", "trace", "block_diag", "meshgrid", "cartesian_prod",
]  # fmt: skip


def _same_dtype(a, b):
    if a.dtype != b.dtype:
        raise RuntimeError(f"expected both operands to have the same dtype, but got {a.dtype} and {b.dtype}")


@torchsymbol(torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.linalg.matmul, tags=("matmul",))
def matmul(a, b):
    _same_dtype(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError("both arguments to matmul need to be at least 1D")
    return prims.matmul(a, b)


register_handler(torch.Tensor.__rmatmul__, lambda self, other: matmul(other, self))


def _check_ndim(name: str, *pairs):
    for t, ndim in pairs:
        if t.ndim != ndim:
            raise RuntimeError(f"{name}: expected a {ndim}D tensor, got a {t.ndim}D tensor")


@torchsymbol(torch.mm, torch.Tensor.mm, tags=("matmul",))
def mm(a, b):
    _check_ndim("mm", (a, 2), (b, 2))
    return matmul(a, b)


@torchsymbol(torch.bmm, torch.Tensor.bmm, tags=("matmul",))
def bmm(a, b):
    _check_ndim("bmm", (a, 3), (b, 3))
    return matmul(a, b)


@torchsymbol(torch.mv, torch.Tensor.mv, tags=("matmul",))
def mv(a, b):
    _check_ndim("mv", (a, 2), (b, 1))
    return matmul(a, b)


@torchsymbol(torch.dot, torch.Tensor.dot, tags=("matmul",))
def dot(a, b):
    _check_ndim("dot", (a, 1), (b, 1))
    return matmul(a, b)


@torchsymbol(torch.vdot, torch.Tensor.vdot, tags=("matmul",))
def vdot(a, b):
    _check_ndim("vdot", (a, 1), (b, 1))
    return matmul(_conj(a) if a.dtype.is_complex else a, b)


def _conj(a):
    return to_dtype(sub(prims.real(a), mul(prims.imag(a), 1j)), a.dtype)


@torchsymbol(torch.outer, torch.Tensor.outer, torch.ger, torch.Tensor.ger)
def outer(a, b):
    _check_ndim("outer", (a, 1), (b, 1))
    return mul(unsqueeze(a, 1), unsqueeze(b, 0))


@torchsymbol(torch.inner, torch.Tensor.inner, tags=("matmul",))
def inner(a, b):
    if a.ndim == 0 or b.ndim == 0:
        return mul(a, b)
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but got {a.shape} and {b.shape}")
    return tensordot(a, b, ([-1], [-1]))


@torchsymbol(torch.tensordot, tags=("matmul",))
def tensordot(a, b, dims=2, out=None):
    """Contraction as one matmul: a's free dims x contracted, contracted x b's free dims."""
    if out is not None:
        raise NotImplementedError("out= arguments are not supported inside thunder.jit; use the returned tensor")
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        dims_a, dims_b = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
    dims_a, dims_b = canonicalize_dims(a.ndim, dims_a), canonicalize_dims(b.ndim, dims_b)
    for da, db in zip(dims_a, dims_b):
        # like eager, a contracted dim of length 1 meets the other side's dim summed
        # (summed in the operand's dtype: torch.sum would widen integers to int64, which matmul then refuses)
        if a.shape[da] != b.shape[db] and b.shape[db] == 1:
            a = _sum(a, da, keepdim=True, dtype=a.dtype)
        elif a.shape[da] != b.shape[db] and a.shape[da] == 1:
            b = _sum(b, db, keepdim=True, dtype=b.dtype)
        elif a.shape[da] != b.shape[db]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {a.shape[da]} in dim {da} "
                               f"and second has size {b.shape[db]} in dim {db}")  # fmt: skip
    free_a = [d for d in range(a.ndim) if d not in dims_a]
    free_b = [d for d in range(b.ndim) if d not in dims_b]
    k = _numel(a.shape[d] for d in dims_a)
    lhs = reshape(permute(a, free_a + list(dims_a)), (_numel(a.shape[d] for d in free_a), k))
    rhs = reshape(permute(b, list(dims_b) + free_b), (k, _numel(b.shape[d] for d in free_b)))
    out_shape = tuple(a.shape[d] for d in free_a) + tuple(b.shape[d] for d in free_b)
    return reshape(matmul(lhs, rhs), out_shape)


def _numel(lengths) -> int:
    n = 1
    for length in lengths:
        n *= length
    return n


@torchsymbol(torch.kron, torch.Tensor.kron)
def kron(a, b):
    ndim = max(a.ndim, b.ndim)
    a = reshape(a, (1,) * (ndim - a.ndim) + tuple(a.shape))
    b = reshape(b, (1,) * (ndim - b.ndim) + tuple(b.shape))
    interleaved_a = [s for length in a.shape for s in (length, 1)]
    interleaved_b = [s for length in b.shape for s in (1, length)]
    out = mul(reshape(a, tuple(interleaved_a)), reshape(b, tuple(interleaved_b)))
    return reshape(out, tuple(x * y for x, y in zip(a.shape, b.shape)))


@torchsymbol(torch.linalg.multi_dot, tags=("matmul",))
def multi_dot(tensors, *, out=None):
    if out is not None:
        raise NotImplementedError("out= arguments are not supported inside thunder.jit; use the returned tensor")
    tensors = list(tensors)
    if len(tensors) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    first_is_vector, last_is_vector = tensors[0].ndim == 1, tensors[-1].ndim == 1
    if first_is_vector:
        tensors[0] = unsqueeze(tensors[0], 0)
    if last_is_vector:
        tensors[-1] = unsqueeze(tensors[-1], 1)
    if any(t.ndim != 2 for t in tensors):
        raise RuntimeError("multi_dot(): the first and last tensors must be 1D or 2D, the others 2D")
    order = _chain_order([t.shape[0] for t in tensors] + [tensors[-1].shape[1]])

    def product(i, j):  # tensors[i..j], split where the cheapest order says
        if i == j:
            return tensors[i]
        k = order[i][j]
        return matmul(product(i, k), product(k + 1, j))

    result = product(0, len(tensors) - 1)
    if first_is_vector:
        result = prims.squeeze(result, (0,))
    if last_is_vector:
        result = prims.squeeze(result, (result.ndim - 1,))
    return result


def _chain_order(dims: list[int]) -> list[list[int]]:
    """The matrix-chain split points of least cost (torch's multi_dot picks the same order, which matters
    for rounding): split[i][j] is where the product of matrices i..j divides."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j], split[i][j] = min(
                (cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1], k) for k in range(i, j)
            )
    return split


@torchsymbol(torch.chain_matmul, tags=("matmul",))
def chain_matmul(*matrices, out=None):
    matrices = _tensors_arg(matrices)
    return matrices[0] if len(matrices) == 1 else multi_dot(matrices, out=out)


@torchsymbol(F.linear, tags=("matmul",))
def linear(input, weight, bias=None):
    _same_dtype(input, weight)
    # one primitive with the bias: the torch executor runs it as one addmm, and its grad rule covers the bias
    return prims.linear(input, weight, None if bias is None else to_dtype(bias, input.dtype))


# -- product plus a scaled input -------------------------------------------------------------------------
def _scaled_sum(bias, product, beta, alpha, *, widen=True):
    """beta * bias + alpha * product; like torch, beta == 0 ignores bias (NaN and inf in it do not propagate).
    As torch's kernels: integer tensors take the scalars truncated to integers (addmm(..., alpha=2.9) on int64
    multiplies by 2), and bool tensors compute `beta and bias or alpha and product`. `widen`: float16 / bfloat16
    computed in float32 and rounded once (eager's matrix-product kernels; addr's computes in the tensors' dtype)."""
    if product.dtype == torch.bool:
        shape = broadcast_shapes(tuple(bias.shape), tuple(product.shape))
        product = product if alpha else full_like(product, False)
        return expand_to(logical_or(bias, product) if beta else product, shape)
    alpha, beta = (integer_scalar(x, product.dtype) for x in (alpha, beta))
    if widen and computation_dtype(product.dtype) != product.dtype:
        dtype = product.dtype
        wide = computation_dtype(dtype)
        return to_dtype(_scaled_sum(to_dtype(bias, wide), to_dtype(product, wide), beta, alpha), dtype)
    product = mul(product, alpha) if alpha != 1 else product
    if beta == 0:
        shape = broadcast_shapes(tuple(bias.shape), tuple(product.shape))
        return expand_to(product, shape)
    return add(mul(bias, beta) if beta != 1 else bias, product)


@torchsymbol(torch.addmm, torch.Tensor.addmm, tags=("matmul",))
def addmm(bias, a, b, *, beta=1, alpha=1):
    _check_ndim("addmm", (a, 2), (b, 2))
    return _scaled_sum(bias, matmul(a, b), beta, alpha)


@torchsymbol(torch.baddbmm, torch.Tensor.baddbmm, tags=("matmul",))
def baddbmm(bias, a, b, *, beta=1, alpha=1):
    _check_ndim("baddbmm", (a, 3), (b, 3))
    return _scaled_sum(bias, matmul(a, b), beta, alpha)


def _add_and_multiply_grad(symbol):
    """The grad rule of addmm / baddbmm: the forward stays one call (an executor runs torch's fused kernel, which
    rounds as eager does; the decomposition's separate product and sum round differently in float32)."""

    def rule(bias, a, b, *, beta=1, alpha=1):
        out = symbol(bias, a, b, beta=beta, alpha=alpha)
        g = get_grad(out)
        # complex: the conjugates of the other factor and of the scalars, as torch's grad @ b.mH * alpha.conj()
        put_grad(bias, sum_to(mul(g, conjugate(beta)) if beta != 1 else g, bias.shape))
        g = mul(g, conjugate(alpha)) if alpha != 1 else g
        put_grad(a, prims.matmul(g, _transposed(conjugate(b))))
        put_grad(b, prims.matmul(_transposed(conjugate(a)), g))
        return out

    return rule


def _transposed(x):
    return prims.permute(x, (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2))


GRAD_RULES[addmm.id] = _add_and_multiply_grad(addmm)
GRAD_RULES[baddbmm.id] = _add_and_multiply_grad(baddbmm)


@torchsymbol(torch.addbmm, torch.Tensor.addbmm, tags=("matmul",))
def addbmm(bias, batch1, batch2, *, beta=1, alpha=1):
    _check_ndim("addbmm", (batch1, 3), (batch2, 3))
    batches = batch1.shape[0]
    if not 0 < batches <= _ADDBMM_UNROLLED_BATCHES:
        return _scaled_sum(bias, _sum(matmul(batch1, batch2), 0), beta, alpha)
    # eager accumulates one addmm per batch, in order; summing the products first rounds differently (~1e-4 in
    # float32 for a few dozen batches)
    out = addmm(bias, select(batch1, 0, 0), select(batch2, 0, 0), beta=beta, alpha=alpha)
    for i in range(1, batches):
        out = addmm(out, select(batch1, 0, i), select(batch2, 0, i), alpha=alpha)
    return out


# up to this many batches addbmm accumulates as eager does, one addmm per batch; beyond, one sum of the products
_ADDBMM_UNROLLED_BATCHES = 64


@torchsymbol(torch.addmv, torch.Tensor.addmv, tags=("matmul",))
def addmv(bias, mat, vec, *, beta=1, alpha=1):
    return _scaled_sum(bias, mv(mat, vec), beta, alpha)


@torchsymbol(torch.addr, torch.Tensor.addr)
def addr(bias, vec1, vec2, *, beta=1, alpha=1):
    _check_ndim("addr", (vec1, 1), (vec2, 1))
    dtype = result_dtype(vec1, vec2)
    # eager's kernel computes `beta * bias + alpha * vec1[i] * vec2[j]` in the tensors' dtype, the scalars
    # converted to it first: the same order rounds float16 / bfloat16 as eager does
    alpha, beta = (number_in(x, dtype) for x in (alpha, beta))
    column = unsqueeze(vec1, 1)
    if dtype == torch.bool:  # `beta and bias or alpha and vec1[i] and vec2[j]`
        return _scaled_sum(bias, logical_and(column, unsqueeze(vec2, 0)), beta, alpha)
    product = mul(mul(column, alpha) if alpha != 1 else column, unsqueeze(vec2, 0))
    return _scaled_sum(bias, product, beta, 1, widen=False)


def _addr_grad(bias, vec1, vec2, *, beta=1, alpha=1):
    """torch's formulas (`grad.mv(vec2.conj()) * alpha.conj()`...): products summed by one matrix-vector product,
    which rounds once in float16 / bfloat16, where the chain rule through the outer product rounds each term."""
    out = addr(bias, vec1, vec2, beta=beta, alpha=alpha)
    g = get_grad(out)
    put_grad(bias, sum_to(mul(g, conjugate(beta)) if beta != 1 else g, bias.shape))
    for vec, other, g_rows in ((vec1, vec2, g), (vec2, vec1, _transposed(g))):
        grad = prims.matmul(g_rows, conjugate(other))
        put_grad(vec, mul(grad, conjugate(alpha)) if alpha != 1 else grad)
    return out


GRAD_RULES[addr.id] = _addr_grad


@torchsymbol(torch.matrix_power, torch.Tensor.matrix_power, torch.linalg.matrix_power, tags=("matmul",))
def matrix_power(a, n):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"matrix_power: expected a batch of square matrices, but got shape {tuple(a.shape)}")
    if n < 0:  # the inverse's power; torch's kernel (run through the fallback path) inverts
        a, n = fallback_symbol(torch.linalg.inv)(a), -n
    if n == 0:
        identity = expand_to(to_dtype(_identity(a.shape[-1], a.device), a.dtype), tuple(a.shape))
        # eager's result depends on `a` with a zero gradient (not None): a select that never takes `a`
        never = prims.full(tuple(a.shape), False, dtype=torch.bool, device=a.device)
        return prims.where(never, a, identity)
    result, square = None, a
    while n:  # binary exponentiation
        if n & 1:
            result = square if result is None else matmul(result, square)
        n >>= 1
        if n:
            square = matmul(square, square)
    return result if result is not a else prims.convert_element_type(a, a.dtype)


def _identity(n: int, device):
    rows = prims.iota(n, start=0, step=1, dtype=torch.int64, device=device)
    return eq(unsqueeze(rows, 1), unsqueeze(rows, 0))


# -- vector products along a dim -------------------------------------------------------------------------------
def _cross(a, b, dim):
    if a.ndim != b.ndim:
        raise RuntimeError("linalg.cross: inputs must have the same number of dimensions.")
    a, b = (expand_to(x, broadcast_shapes(tuple(a.shape), tuple(b.shape))) for x in (a, b))
    dtype = result_dtype(a, b)
    a, b = to_dtype(a, dtype), to_dtype(b, dtype)
    d = canonicalize_dim(a.ndim, dim)
    if a.shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {d} must have length 3. Got {a.shape[d]}")
    a1, a2, a3 = (narrow(a, d, i, 1) for i in range(3))
    b1, b2, b3 = (narrow(b, d, i, 1) for i in range(3))
    parts = [sub(mul(a2, b3), mul(a3, b2)), sub(mul(a3, b1), mul(a1, b3)), sub(mul(a1, b2), mul(a2, b1))]
    return cat(parts, d)


@torchsymbol(torch.linalg.cross)
def linalg_cross(input, other, *, dim=-1, out=None):
    if out is not None:
        raise NotImplementedError("out= arguments are not supported inside thunder.jit; use the returned tensor")
    return _cross(input, other, dim)


@torchsymbol(torch.cross, torch.Tensor.cross)
def cross(input, other, dim=None, *, out=None):
    if out is not None:
        raise NotImplementedError("out= arguments are not supported inside thunder.jit; use the returned tensor")
    if dim is None:  # torch's deprecated default: the first dim of length 3
        shape = broadcast_shapes(tuple(input.shape), tuple(other.shape))
        dim = next((i for i, s in enumerate(shape) if s == 3), None)
        if dim is None:
            raise RuntimeError("no dimension of size 3 in input")
    return _cross(input, other, dim)


@torchsymbol(torch.linalg.vecdot)
def vecdot(x, y, *, dim=-1, out=None):
    if out is not None:
        raise NotImplementedError("out= arguments are not supported inside thunder.jit; use the returned tensor")
    if x.dtype != y.dtype:
        raise RuntimeError(f"linalg.vecdot: Expected x and y to have the same dtype, but found x of type {x.dtype} "
                           f"and y of type {y.dtype} instead")  # fmt: skip
    return _sum(mul(_conj(x) if x.dtype.is_complex else x, y), dim)


# -- diagonals ---------------------------------------------------------------------------------------------------
@torchsymbol(torch.diagonal, torch.Tensor.diagonal, tags=("shape",))
def diagonal(a, offset=0, dim1=0, dim2=1):
    """The diagonal as a strided slice of the two dims flattened together."""
    d1, d2 = canonicalize_dim(a.ndim, dim1), canonicalize_dim(a.ndim, dim2)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    rows, cols = a.shape[d1], a.shape[d2]
    length = max(min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols), 0)
    x = movedim(a, (d1, d2), (-2, -1))
    batch = tuple(x.shape[:-2])
    flat = reshape(x, batch + (rows * cols,))
    start = (offset if offset >= 0 else -offset * cols) if length else 0
    end = start + (length - 1) * (cols + 1) + 1 if length else 0
    n = len(batch)
    return prims.slice(flat, [0] * n + [start], list(batch) + [end], [1] * n + [cols + 1])


_diagonal = diagonal  # `diag`'s parameter is called diagonal


@torchsymbol(torch.diag_embed, torch.Tensor.diag_embed)
def diag_embed(a, offset=0, dim1=-2, dim2=-1):
    """`a`'s last dim placed on the `offset` diagonal of two new dims (dim1, dim2) of a zero tensor."""
    ndim = a.ndim + 1
    d1, d2 = canonicalize_dim(ndim, dim1), canonicalize_dim(ndim, dim2)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    m = a.shape[-1] + abs(offset)
    # row r of the result holds a[r] (offset >= 0) or a[r + offset] (offset < 0): pad a to m values per row
    lo, hi = (0, offset) if offset >= 0 else (-offset, 0)
    by_row = prims.pad(a, _zero(a.dtype), [(0, 0, 0)] * (a.ndim - 1) + [(lo, hi, 0)])
    rows = prims.iota(m, start=0, step=1, dtype=torch.int64, device=a.device)
    on_diagonal = eq(sub(unsqueeze(rows, 0), unsqueeze(rows, 1)), offset)  # [r, c]: c - r == offset
    out = _where_else_zero(on_diagonal, unsqueeze(by_row, -1))
    return movedim(out, (-2, -1), (d1, d2))


def _zero(dtype):
    return False if dtype == torch.bool else 0


def _where_else_zero(mask, values):
    """values where mask holds, zero (of values' dtype, whatever it is) elsewhere, broadcast together."""
    shape = broadcast_shapes(tuple(mask.shape), tuple(values.shape))
    zeros = prims.full(shape, _zero(values.dtype), dtype=values.dtype, device=values.device)
    return prims.where(expand_to(mask, shape), expand_to(values, shape), zeros)


@torchsymbol(torch.diag, torch.Tensor.diag)
def diag(a, diagonal=0):
    if a.ndim == 1:
        return diag_embed(a, diagonal, 0, 1)
    if a.ndim == 2:
        return _diagonal(a, diagonal)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {a.ndim}D")


@torchsymbol(torch.trace, torch.Tensor.trace)
def trace(a):
    if a.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {a.ndim}")
    if a.dtype == torch.bool:
        raise NotImplementedError('"trace" not implemented for \'Bool\'')
    return _sum(diagonal(a))


@torchsymbol(torch.meshgrid, tags=("shape",))
def meshgrid(*tensors, indexing=None):
    tensors = _tensors_arg(tensors)
    indexing = indexing or "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of 'xy' or 'ij', but received: {indexing}")
    swap = indexing == "xy" and len(tensors) >= 2
    if swap:  # "xy" is "ij" on the first two inputs swapped, its first two outputs swapped back
        tensors = (tensors[1], tensors[0], *tensors[2:])
    shape = tuple(x.numel() for x in tensors)
    outs = []
    for i, x in enumerate(tensors):
        if x.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {x.ndim}D")
        grid = expand_to(reshape(x, tuple(-1 if j == i else 1 for j in range(len(shape)))), shape)
        outs.append(grid)
    if swap:
        outs[0], outs[1] = outs[1], outs[0]
    return tuple(outs)


@torchsymbol(torch.cartesian_prod, tags=("shape",))
def cartesian_prod(*tensors):
    if len(tensors) == 1:
        return tensors[0]
    return stack([flatten(grid) for grid in meshgrid(*tensors, indexing="ij")], 1)


@torchsymbol(torch.block_diag, tags=("shape",))
def block_diag(*tensors):
    blocks = [reshape(x, (1, -1) if x.ndim == 1 else (1, 1)) if x.ndim < 2 else x for x in tensors]
    dtype = result_dtype(*blocks)
    width = sum(b.shape[1] for b in blocks)
    rows, offset = [], 0
    for b in blocks:
        config = [(0, 0, 0), (offset, width - offset - b.shape[1], 0)]
        rows.append(prims.pad(to_dtype(b, dtype), 0, config))
        offset += b.shape[1]
    return cat(rows, 0)


@torchsymbol(torch.einsum)
def einsum(equation, *operands):
    """Einsum by contraction with permute/reshape/matmul, pairwise left to right."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])

    dtype = result_dtype(*operands)
    return einsum_decomposition(equation, [to_dtype(o, dtype) for o in operands])
