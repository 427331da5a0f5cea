"""Op database for the linear-algebra family of `thunder.torch`: matmul and its relatives, tensordot,
the add-and-multiply forms, linear, matrix_power, cross, diagonals and block_diag, meshgrid and
cartesian_prod, against torch eager (einsum is tested with its own implementation).

Each sample runs with the default executors (the torch executor runs each symbol whole) and decomposed
into prims; values, dtypes and shapes must match eager's, and so must the trace's inferred metadata.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import thunder

from .cases import ALL, FLOATS, INTS, OpCase, assert_matches_eager, make, op_params, run_case
from .opdb import TEST_DEVICE


# -- products ------------------------------------------------------------------------------------------------
def _matmul_samples(dtype):
    yield "matrix @ matrix", torch.matmul, (make((3, 4), dtype), make((4, 2), dtype))
    yield "operator", lambda x, y: x @ y, (make((2, 3, 4), dtype), make((4, 5), dtype))
    yield "vector @ matrix", torch.matmul, (make((4,), dtype), make((4, 2), dtype))
    yield "matrix @ vector", lambda x, y: x.matmul(y), (make((3, 4), dtype), make((4,), dtype))
    yield "vector @ vector", torch.matmul, (make((4,), dtype), make((4,), dtype))
    yield "batch broadcast", torch.matmul, (make((2, 1, 3, 4), dtype), make((5, 4, 2), dtype))
    yield "transposed", torch.matmul, (make((4, 3), dtype).t(), make((2, 4), dtype).t())
    yield "empty", torch.matmul, (make((0, 4), dtype), make((4, 2), dtype))
    yield "empty contraction", torch.matmul, (make((3, 0), dtype), make((0, 2), dtype))
    yield "linalg.matmul", torch.linalg.matmul, (make((3, 4), dtype), make((4, 2), dtype))
    yield "mismatched", torch.matmul, (make((3, 4), dtype), make((3, 4), dtype))
    yield "0-dim", torch.matmul, (make((), dtype), make((3,), dtype))
    yield "mm", torch.mm, (make((3, 4), dtype), make((4, 2), dtype))
    yield "mm 3-d", torch.mm, (make((2, 3, 4), dtype), make((4, 2), dtype))
    yield "bmm", lambda x, y: x.bmm(y), (make((2, 3, 4), dtype), make((2, 4, 5), dtype))
    yield "mv", torch.mv, (make((3, 4), dtype), make((4,), dtype))
    yield "dot", torch.dot, (make((4,), dtype), make((4,), dtype))
    yield "vdot", torch.vdot, (make((4,), dtype), make((4,), dtype))
    yield "inner", torch.inner, (make((2, 4), dtype), make((3, 4), dtype))
    yield "inner 0-dim", torch.inner, (make((), dtype), make((3, 4), dtype))
    yield "outer", torch.outer, (make((3,), dtype), make((4,), dtype))
    yield "ger", lambda x, y: x.ger(y), (make((3,), dtype), make((2,), dtype))
    yield "kron", torch.kron, (make((2, 3), dtype), make((3, 2), dtype))
    yield "kron ranks differ", torch.kron, (make((2,), dtype), make((2, 3), dtype))
    yield "rmatmul", lambda x: torch.ones(2, 3, dtype=x.dtype) @ x, (make((3, 4), dtype),)


def _tensordot_samples(dtype):
    a, b = make((2, 3, 4), dtype), make((3, 4, 5), dtype)
    yield "dims=2", torch.tensordot, (a, b)
    yield "dims=1", lambda x, y: torch.tensordot(x, y, 1), (a, make((4, 2), dtype))
    yield "dims=0", lambda x, y: torch.tensordot(x, y, dims=0), (make((2,), dtype), make((3,), dtype))
    yield "dims lists", lambda x, y: torch.tensordot(x, y, dims=([1, 0], [0, 2])), (a, make((3, 5, 2), dtype))
    yield "dims mismatch", lambda x, y: torch.tensordot(x, y, ([0], [0])), (a, b)
    yield "multi_dot", lambda x, y, z: torch.linalg.multi_dot([x, y, z]), (make((2, 3), dtype), make((3, 4), dtype), make((4, 2), dtype))  # fmt: skip
    yield "multi_dot vectors", lambda x, y: torch.linalg.multi_dot((x, y)), (make((3,), dtype), make((3, 2), dtype))
    yield "chain_matmul", lambda x, y: torch.chain_matmul(x, y), (make((2, 3), dtype), make((3, 4), dtype))


def _addmm_samples(dtype):
    yield "addmm", torch.addmm, (make((3, 2), dtype), make((3, 4), dtype), make((4, 2), dtype))
    yield "addmm broadcast bias", lambda b, x, y: torch.addmm(b, x, y, beta=0.5, alpha=2), (make((2,), dtype), make((3, 4), dtype), make((4, 2), dtype))  # fmt: skip
    yield "addmm beta 0 ignores nan", lambda b, x, y: b.addmm(x, y, beta=0), (torch.full((3, 2), float("nan"), dtype=dtype), make((3, 4), dtype), make((4, 2), dtype))  # fmt: skip
    yield "baddbmm", lambda b, x, y: torch.baddbmm(b, x, y, alpha=-1), (make((2, 3, 5), dtype), make((2, 3, 4), dtype), make((2, 4, 5), dtype))  # fmt: skip
    yield "addbmm", lambda b, x, y: torch.addbmm(b, x, y, beta=2), (make((3, 5), dtype), make((2, 3, 4), dtype), make((2, 4, 5), dtype))  # fmt: skip
    yield "addmv", lambda b, x, y: b.addmv(x, y, alpha=3), (make((3,), dtype), make((3, 4), dtype), make((4,), dtype))
    yield "addr", torch.addr, (make((3, 2), dtype), make((3,), dtype), make((2,), dtype))
    yield "linear", F.linear, (make((2, 4), dtype), make((3, 4), dtype))
    yield "linear bias", F.linear, (make((5, 2, 4), dtype), make((3, 4), dtype), make((3,), dtype))
    yield "linear 1-d weight", F.linear, (make((2, 4), dtype), make((4,), dtype))


def _matrix_samples(dtype):
    a = make((3, 3), dtype, -1, 1)
    for n in (0, 1, 2, 3, 5):
        yield f"matrix_power {n}", lambda x, n=n: torch.matrix_power(x, n), (a,)
    yield "matrix_power batched", lambda x: torch.linalg.matrix_power(x, 2), (make((2, 3, 3), dtype, -1, 1),)
    yield "matrix_power method", lambda x: x.matrix_power(3), (a,)
    yield "matrix_power not square", lambda x: torch.matrix_power(x, 2), (make((2, 3), dtype),)
    yield "cross", lambda x, y: torch.linalg.cross(x, y), (make((4, 3), dtype), make((4, 3), dtype))
    yield "cross dim", lambda x, y: torch.cross(x, y, dim=0), (make((3, 2), dtype), make((3, 2), dtype))
    yield "cross broadcast", lambda x, y: torch.linalg.cross(x, y, dim=-1), (make((2, 1, 3), dtype), make((4, 3), dtype))
    yield "cross method", lambda x, y: x.cross(y, 1), (make((2, 3), dtype), make((2, 3), dtype))
    yield "vecdot", lambda x, y: torch.linalg.vecdot(x, y), (make((2, 4), dtype), make((4,), dtype))
    yield "vecdot dim", lambda x, y: torch.linalg.vecdot(x, y, dim=0), (make((4, 2), dtype), make((4, 2), dtype))


def _diagonal_samples(dtype):
    a = make((3, 4), dtype)
    yield "diagonal", torch.diagonal, (a,)
    for offset in (1, -1, 3, -3, 5):
        yield f"diagonal offset {offset}", lambda x, o=offset: torch.diagonal(x, o), (a,)
    yield "diagonal dims", lambda x: x.diagonal(0, 2, 0), (make((3, 2, 4), dtype),)
    yield "diagonal negative dims", lambda x: torch.diagonal(x, offset=1, dim1=-1, dim2=-2), (make((2, 3, 4), dtype),)
    yield "diagonal transposed", torch.diagonal, (a.t(),)
    yield "diag of matrix", lambda x: torch.diag(x, 1), (a,)
    yield "diag of vector", torch.diag, (make((3,), dtype),)
    yield "diag of vector offset", lambda x: x.diag(-2), (make((3,), dtype),)
    yield "diag_embed", torch.diag_embed, (make((2, 3), dtype),)
    yield "diag_embed offset dims", lambda x: torch.diag_embed(x, 1, 0, 2), (make((2, 3), dtype),)
    yield "diag_embed negative offset", lambda x: x.diag_embed(offset=-1), (make((3,), dtype),)
    if not (dtype == torch.bool and TEST_DEVICE == "cuda"):  # CUDA's trace kernel has no bool version, eager's either
        yield "trace", torch.trace, (make((3, 4), dtype),)
        yield "trace method", lambda x: x.trace(), (make((4, 2), dtype),)


def _block_samples(dtype):
    yield "block_diag", torch.block_diag, (make((2, 2), dtype), make((1, 3), dtype), make((2,), dtype), make((), dtype))
    yield "block_diag promotes", torch.block_diag, (make((2, 2), dtype), make((1, 1), torch.float64))
    yield "meshgrid ij", lambda x, y: torch.meshgrid(x, y, indexing="ij"), (make((3,), dtype), make((2,), dtype))
    yield "meshgrid xy", lambda x, y, z: torch.meshgrid([x, y, z], indexing="xy"), (make((3,), dtype), make((2,), dtype), make((4,), dtype))  # fmt: skip
    yield "cartesian_prod", torch.cartesian_prod, (make((3,), dtype), make((2,), dtype))
    yield "cartesian_prod one", torch.cartesian_prod, (make((3,), dtype),)


LINALG_CASES = [
    OpCase("matmul", _matmul_samples, FLOATS + INTS),
    OpCase("tensordot", _tensordot_samples, FLOATS),
    OpCase("addmm", _addmm_samples, FLOATS),
    OpCase("matrix", _matrix_samples, FLOATS),
    OpCase("diagonal", _diagonal_samples, ALL),
    OpCase("block", _block_samples, FLOATS + INTS),
]


@pytest.mark.parametrize("case, dtype", op_params(LINALG_CASES))
def test_linalg_op_matches_eager(case, dtype):
    run_case(case, dtype)


def test_matmul_of_mixed_dtypes_is_an_error_like_eager():
    assert_matches_eager(torch.matmul, make((2, 3), torch.float32), make((3, 2), torch.float64))


def test_negative_matrix_power_inverts_as_eager():
    x = make((2, 2), torch.float64) + 3 * torch.eye(2, dtype=torch.float64)
    fn = lambda x: torch.matrix_power(x, -1)  # the inverse runs through torch's kernel (the fallback path)
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x))
