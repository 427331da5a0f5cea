"""Op database for the shape and indexing family of `thunder.torch`: reshapes and views, permutations,
expand/repeat, joining and splitting, basic and advanced indexing, functional setitem, gather/scatter and
the index_* ops, against torch eager.

Each sample runs with the default executors (the torch executor runs each symbol whole) and decomposed
into prims; values, dtypes and shapes must match eager's, and so must the trace's inferred metadata.
"""

from __future__ import annotations

import pytest
import torch

import thunder

from .cases import ALL, FLOATS, INTS, OpCase, assert_matches_eager, make, op_params, run_case


# -- views and reshapes ---------------------------------------------------------------------------------
def _reshape_samples(dtype):
    a = make((2, 3, 4), dtype)
    yield "reshape", lambda x: x.reshape(6, 4), (a,)
    yield "reshape -1", lambda x: torch.reshape(x, (-1, 2)), (a,)
    yield "reshape transposed", lambda x: x.reshape(-1), (a.transpose(0, 2),)
    yield "view", lambda x: x.view(2, 12), (a,)
    yield "view tuple", lambda x: x.view((4, -1)), (a,)
    yield "view_as", lambda x, y: x.view_as(y), (a, make((4, 6), dtype))
    yield "reshape_as", lambda x, y: x.reshape_as(y), (a, make((24,), dtype))
    yield "reshape to 0-dim", lambda x: x.reshape(()), (make((1, 1), dtype),)
    yield "reshape empty", lambda x: x.reshape(0, 5), (make((5, 0), dtype),)
    yield "bad reshape", lambda x: x.reshape(5, 5), (a,)
    yield "flatten", torch.flatten, (a,)
    yield "flatten range", lambda x: x.flatten(1, 2), (a,)
    yield "flatten 0-dim", torch.flatten, (make((), dtype),)
    yield "ravel", torch.ravel, (a.transpose(0, 1),)
    yield "unflatten", lambda x: x.unflatten(2, (2, 2)), (a,)
    yield "unflatten -1", lambda x: torch.unflatten(x, 1, (-1, 1)), (a,)


def _permute_samples(dtype):
    a = make((2, 3, 4), dtype)
    yield "permute", lambda x: x.permute(2, 0, 1), (a,)
    yield "permute tuple", lambda x: torch.permute(x, (1, 2, 0)), (a,)
    yield "permute negative", lambda x: x.permute(-1, -3, -2), (a,)
    yield "transpose", lambda x: torch.transpose(x, 0, 2), (a,)
    yield "transpose method negative", lambda x: x.transpose(-1, -2), (a,)
    yield "swapaxes", lambda x: torch.swapaxes(x, 0, 1), (a,)
    yield "swapdims", lambda x: x.swapdims(1, 2), (a,)
    yield "t", torch.t, (make((3, 4), dtype),)
    yield "t 1-d", lambda x: x.t(), (make((3,), dtype),)
    yield "t 3-d", torch.t, (a,)
    yield "T", lambda x: x.T, (make((3, 4), dtype),)
    yield "mT", lambda x: x.mT, (a,)
    yield "movedim", lambda x: torch.movedim(x, 0, -1), (a,)
    yield "movedim several", lambda x: x.movedim((0, 1), (2, 0)), (a,)
    yield "moveaxis", lambda x: torch.moveaxis(x, -1, 0), (a,)
    yield "transpose 0-dim", lambda x: x.transpose(0, -1), (make((), dtype),)


def _squeeze_samples(dtype):
    a = make((2, 1, 3, 1), dtype)
    yield "squeeze", torch.squeeze, (a,)
    yield "squeeze dim", lambda x: x.squeeze(1), (a,)
    yield "squeeze non-1 dim", lambda x: x.squeeze(0), (a,)
    yield "squeeze dims", lambda x: torch.squeeze(x, (1, -1)), (a,)
    yield "unsqueeze", lambda x: x.unsqueeze(0), (a,)
    yield "unsqueeze last", lambda x: torch.unsqueeze(x, -1), (a,)
    yield "unsqueeze 0-dim", lambda x: x.unsqueeze(0), (make((), dtype),)
    yield "squeeze 0-dim", torch.squeeze, (make((), dtype),)
    yield "atleast_1d", torch.atleast_1d, (make((), dtype),)
    yield "atleast_2d", lambda x, y: torch.atleast_2d(x, y), (make((3,), dtype), make((2, 2), dtype))
    yield "atleast_3d", lambda x, y, z: torch.atleast_3d((x, y, z)), (make((), dtype), make((3,), dtype), make((2, 3), dtype))


def _expand_samples(dtype):
    a = make((3, 1), dtype)
    yield "expand", lambda x: x.expand(2, 3, 4), (a,)
    yield "expand -1", lambda x: x.expand(-1, 5), (a,)
    yield "expand tuple", lambda x: x.expand((2, 3, 1)), (a,)
    yield "expand_as", lambda x, y: x.expand_as(y), (a, make((2, 3, 3), dtype))
    yield "expand bad", lambda x: x.expand(4, 4), (a,)
    yield "broadcast_to", lambda x: torch.broadcast_to(x, (2, 3, 2)), (a,)
    yield "broadcast_tensors", torch.broadcast_tensors, (a, make((4,), dtype), make((2, 1, 1), dtype))
    yield "expand 0-dim", lambda x: x.expand(2, 2), (make((), dtype),)
    yield "repeat", lambda x: x.repeat(2, 3), (a,)
    yield "repeat more dims", lambda x: x.repeat(2, 1, 2), (a,)
    yield "repeat transposed", lambda x: x.repeat(1, 2), (make((2, 3), dtype).t(),)
    yield "tile", lambda x: torch.tile(x, (2,)), (a,)
    yield "repeat_interleave", lambda x: torch.repeat_interleave(x, 2), (a,)
    yield "repeat_interleave dim", lambda x: x.repeat_interleave(3, dim=0), (a,)


def _flip_roll_samples(dtype):
    a = make((3, 4, 2), dtype)
    yield "flip", lambda x: torch.flip(x, (0, 2)), (a,)
    yield "flip negative", lambda x: x.flip(-1), (a,)
    yield "fliplr", torch.fliplr, (a,)
    yield "flipud", lambda x: x.flipud(), (a,)
    yield "roll", lambda x: torch.roll(x, 1, 0), (a,)
    yield "roll negative", lambda x: x.roll(-3, 1), (a,)
    yield "roll several", lambda x: torch.roll(x, (1, 5), (0, 1)), (a,)
    yield "roll flattened", lambda x: torch.roll(x, 5), (a,)
    yield "roll transposed", lambda x: torch.roll(x, 2, 1), (a.transpose(0, 1),)
    for k in (1, 2, 3, -1, 4):
        yield f"rot90 k={k}", lambda x, k=k: torch.rot90(x, k), (a,)
    yield "rot90 dims", lambda x: x.rot90(1, (1, 2)), (a,)


SHAPE_CASES = [
    OpCase("reshape", _reshape_samples, ALL),
    OpCase("permute", _permute_samples, ALL),
    OpCase("squeeze", _squeeze_samples, ALL),
    OpCase("expand", _expand_samples, ALL),
    OpCase("flip_roll", _flip_roll_samples, ALL),
]


@pytest.mark.parametrize("case, dtype", op_params(SHAPE_CASES))
def test_shape_op_matches_eager(case, dtype):
    run_case(case, dtype)


def test_view_as_a_dtype_is_rejected():
    with pytest.raises(NotImplementedError, match="view"):
        thunder.jit(lambda x: x.view(torch.int32))(make((4,), torch.float32))


# -- joining and splitting -----------------------------------------------------------------------------------
def _join_samples(dtype):
    a, b = make((2, 3), dtype), make((2, 3), dtype)
    yield "cat", lambda x, y: torch.cat([x, y]), (a, b)
    yield "cat dim 1", lambda x, y: torch.cat((x, y), dim=1), (a, b)
    yield "cat negative dim", lambda x, y: torch.cat([x, y], -1), (a, b.t().contiguous().t())
    yield "cat promotes", lambda x, y: torch.cat([x, y]), (a, make((1, 3), torch.float64))
    yield "cat with empty 1-d", lambda x, y: torch.cat([x, y]), (a, make((0,), dtype))
    yield "cat one", lambda x: torch.cat([x]), (a,)
    yield "concat", lambda x, y: torch.concat([x, y], 1), (a, b)
    yield "concatenate", lambda x, y: torch.concatenate([x, y], 0), (a, b)
    yield "cat mismatched", lambda x, y: torch.cat([x, y], 1), (a, make((3, 3), dtype))
    yield "stack", lambda x, y: torch.stack([x, y]), (a, b)
    yield "stack dim -1", lambda x, y: torch.stack((x, y), dim=-1), (a, b)
    yield "hstack", lambda x, y: torch.hstack([x, y]), (a, b)
    yield "hstack 1-d", lambda x, y: torch.hstack([x, y]), (make((3,), dtype), make((2,), dtype))
    yield "vstack", lambda x, y: torch.vstack([x, y]), (a, make((3,), dtype))
    yield "row_stack", lambda x, y: torch.row_stack([x, y]), (a, b)
    yield "column_stack", lambda x, y: torch.column_stack([x, y]), (make((2,), dtype), a)
    yield "dstack", lambda x, y: torch.dstack([x, y]), (a, b)


def _split_samples(dtype):
    a = make((5, 6), dtype)
    yield "split", lambda x: torch.split(x, 2), (a,)
    yield "split sizes", lambda x: x.split([1, 4], 0), (a,)
    yield "split dim", lambda x: torch.split(x, 4, dim=1), (a,)
    yield "split_with_sizes", lambda x: torch.split_with_sizes(x, [2, 4], 1), (a,)
    yield "split bad sizes", lambda x: x.split([1, 2], 0), (a,)
    yield "chunk", lambda x: torch.chunk(x, 2), (a,)
    yield "chunk uneven", lambda x: x.chunk(4, dim=1), (a,)
    yield "chunk more than length", lambda x: torch.chunk(x, 7), (a,)
    yield "unbind", torch.unbind, (a,)
    yield "unbind dim", lambda x: x.unbind(1), (a,)
    yield "tensor_split sections", lambda x: torch.tensor_split(x, 3), (a,)
    yield "tensor_split indices", lambda x: x.tensor_split([1, 4], dim=1), (a,)
    yield "tensor_split out of range", lambda x: torch.tensor_split(x, [2, 9]), (a,)
    yield "hsplit", lambda x: torch.hsplit(x, 3), (a,)
    yield "hsplit indivisible", lambda x: torch.hsplit(x, 4), (a,)
    yield "vsplit indices", lambda x: x.vsplit([2]), (a,)
    yield "dsplit", lambda x: torch.dsplit(x, 2), (make((2, 2, 4), dtype),)
    yield "iterate", lambda x: [row * 1 for row in x], (make((3, 2), dtype),)


JOIN_CASES = [OpCase("join", _join_samples, ALL), OpCase("split", _split_samples, ALL)]


@pytest.mark.parametrize("case, dtype", op_params(JOIN_CASES))
def test_join_and_split_op_matches_eager(case, dtype):
    run_case(case, dtype)


# -- indexing -------------------------------------------------------------------------------------------------
def _getitem_samples(dtype):
    a = make((4, 5, 6), dtype)
    yield "int", lambda x: x[1], (a,)
    yield "negative int", lambda x: x[-1, 2], (a,)
    yield "slice", lambda x: x[1:3], (a,)
    yield "slice step", lambda x: x[::2, 1:, ::3], (a,)
    yield "slice past the end", lambda x: x[2:10, -100:2], (a,)
    yield "empty slice", lambda x: x[3:1], (a,)
    yield "None", lambda x: x[None], (a,)
    yield "ellipsis", lambda x: x[..., 1], (a,)
    yield "mixed basic", lambda x: x[1:, None, ..., ::2], (a,)
    yield "transposed", lambda x: x[1:, 2], (a.transpose(0, 2),)
    yield "0-dim", lambda x: x[...], (make((), dtype),)
    yield "0-dim None", lambda x: x[None, ...], (make((), dtype),)
    yield "list", lambda x: x[[0, 2, 3]], (a,)
    yield "list and slice", lambda x: x[1:, [4, 0]], (a,)
    yield "tensor index", lambda x, i: x[i], (a, torch.tensor([[0, 1], [3, 3]]))
    yield "two tensor indices", lambda x, i, j: x[i, :, j], (a, torch.tensor([0, 3]), torch.tensor([5, 1]))
    yield "broadcast tensor indices", lambda x, i, j: x[i, j], (a, torch.tensor([[0], [2]]), torch.tensor([1, 4, 0]))
    yield "0-dim tensor index", lambda x, i: x[:, i], (a, torch.tensor(2))
    yield "negative tensor index", lambda x, i: x[i], (a, torch.tensor([-1, 0]))
    yield "out of range", lambda x: x[4], (a,)
    yield "negative step", lambda x: x[::-1], (a,)
    yield "too many indices", lambda x: x[0, 0, 0, 0], (a,)


GETITEM_CASE = OpCase("getitem", _getitem_samples, (torch.float32, torch.bfloat16, torch.int64, torch.bool))


def test_getitem_matches_eager_float32():
    run_case(GETITEM_CASE, torch.float32)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.int64, torch.bool], ids=str)
def test_getitem_matches_eager(dtype):
    run_case(GETITEM_CASE, dtype)


def test_boolean_mask_indexing_is_rejected_as_data_dependent():
    with pytest.raises(NotImplementedError, match="data-dependent"):
        thunder.jit(lambda x, m: x[m])(make((3,), torch.float32), make((3,), torch.bool))


def _setitem_samples(dtype):
    a = make((4, 5), dtype)
    v = make((5,), dtype)

    def setitem(key, value_fn=lambda x, v: v):
        def fn(x, v):
            y = x * 1  # an intermediate: `y[key] = v` is functionalized
            y[key] = value_fn(x, v)
            return y

        return fn

    yield "row", setitem(1), (a, v)
    yield "slice broadcast", setitem((slice(1, 3),)), (a, v)
    yield "scalar", setitem((0, 2), lambda x, v: 7), (a, v)
    yield "ellipsis column", setitem((..., 1), lambda x, v: v[:4]), (a, v)
    yield "strided", setitem((slice(None, None, 2), slice(1, None, 2)), lambda x, v: v[0]), (a, v)
    yield "list", setitem(([0, 3],)), (a, v)
    yield "tensor index", setitem((torch.tensor([2, 0]), slice(None))), (a, v)
    yield "float value into other dtype", setitem((1,), lambda x, v: v.double()), (a, v)


SETITEM_CASE = OpCase("setitem", _setitem_samples, (torch.float32, torch.int64))


@pytest.mark.parametrize("dtype", SETITEM_CASE.dtypes, ids=str)
def test_functional_setitem_matches_eager(dtype):
    run_case(SETITEM_CASE, dtype)


def test_setitem_through_a_view_writes_the_base():
    def fn(x):
        y = x + 0
        row = y[1]
        row[2:] = 0
        return y

    assert_matches_eager(fn, make((3, 4), torch.float32))


def _narrow_samples(dtype):
    a = make((4, 6), dtype)
    yield "narrow", lambda x: torch.narrow(x, 1, 2, 3), (a,)
    yield "narrow negative start", lambda x: x.narrow(0, -2, 2), (a,)
    yield "narrow_copy", lambda x: torch.narrow_copy(x, 0, 1, 2), (a,)
    yield "select", lambda x: torch.select(x, 1, -1), (a,)
    yield "select method", lambda x: x.select(0, 2), (a,)
    yield "narrow too long", lambda x: x.narrow(1, 4, 3), (a,)
    yield "unfold", lambda x: x.unfold(1, 2, 2), (a,)
    yield "unfold overlapping", lambda x: x.unfold(0, 3, 1), (a,)
    yield "unfold 1-d", lambda x: x.unfold(0, 4, 3), (make((9,), dtype),)


def _gather_scatter_samples(dtype):
    a = make((3, 5), dtype)
    idx = torch.tensor([[0, 4, 1], [2, 2, 0]])
    src = make((2, 3), dtype)
    yield "gather", lambda x, i: torch.gather(x, 1, i), (a, idx)
    yield "gather dim 0", lambda x, i: x.gather(0, i), (a, idx.clamp(max=2))
    yield "gather keyword", lambda x, i: torch.gather(x, dim=-1, index=i), (a, idx)
    yield "gather transposed", lambda x, i: torch.gather(x, 0, i), (make((5, 3), dtype).t(), idx.clamp(max=2))
    yield "take_along_dim", lambda x, i: torch.take_along_dim(x, i, 1), (a, idx[:1])
    yield "take_along_dim broadcast", lambda x, i: x.take_along_dim(i, dim=1), (a[:, None], idx[:, None, :1])
    yield "take_along_dim flat", lambda x, i: torch.take_along_dim(x, i), (a, torch.tensor([14, 0, 7]))
    yield "take", lambda x, i: torch.take(x, i), (a, torch.tensor([[0, -1], [7, 3]]))
    yield "scatter", lambda x, i, s: torch.scatter(x, 1, i, s), (a, torch.tensor([[0, 4, 1], [2, 3, 0]]), src)
    yield "scatter value", lambda x, i: x.scatter(1, i, 2), (a, idx)
    yield "scatter value keyword", lambda x, i: torch.scatter(x, 0, i, value=-1), (a, idx.clamp(max=2))
    yield "scatter reduce add", lambda x, i, s: x.scatter(1, i, s, reduce="add"), (a, idx, src)
    yield "scatter_add", lambda x, i, s: torch.scatter_add(x, 1, i, s), (a, idx, src)
    yield "scatter_add dim 0", lambda x, i, s: x.scatter_add(0, i, s), (a, idx.clamp(max=2), src)
    yield "scatter dtype mismatch", lambda x, i: x.scatter(1, i, i), (a.double() if dtype != torch.float64 else a.float(), idx)


def _index_samples(dtype):
    a = make((4, 3), dtype)
    idx = torch.tensor([3, 0])
    yield "index_select", lambda x, i: torch.index_select(x, 0, i), (a, idx)
    yield "index_select dim 1", lambda x, i: x.index_select(1, i), (a, torch.tensor([2, 2, 0]))
    yield "index_select 0-dim index", lambda x: torch.index_select(x, 0, torch.tensor(1)), (a,)
    yield "index_select int32", lambda x, i: x.index_select(-1, i), (a, torch.tensor([1], dtype=torch.int32))
    yield "index_add", lambda x, i, s: torch.index_add(x, 0, i, s), (a, idx, make((2, 3), dtype))
    yield "index_add repeated", lambda x, i, s: x.index_add(1, i, s), (a, torch.tensor([0, 0]), make((4, 2), dtype))
    yield "index_copy", lambda x, i, s: torch.index_copy(x, 0, i, s), (a, idx, make((2, 3), dtype))
    yield "index_copy dim 1", lambda x, i, s: x.index_copy(1, i, s), (a, torch.tensor([2, 0]), make((4, 2), dtype))
    yield "index_fill", lambda x, i: torch.index_fill(x, 1, i, 1), (a, torch.tensor([0, 2]))
    yield "index_fill tensor value", lambda x, i, v: x.index_fill(0, i, v), (a, idx, make((), dtype))
    yield "index_put", lambda x, i, v: torch.index_put(x, (i,), v), (a, idx, make((3,), dtype))
    yield "index_put accumulate", lambda x, i, j, v: x.index_put((i, j), v, accumulate=True), (
        a, torch.tensor([1, 1]), torch.tensor([2, 2]), make((2,), dtype))  # fmt: skip
    yield "select_scatter", lambda x, s: torch.select_scatter(x, s, 0, 1), (a, make((3,), dtype))
    yield "slice_scatter", lambda x, s: torch.slice_scatter(x, s, 1, 1, 3), (a, make((4, 2), dtype))
    yield "slice_scatter step", lambda x, s: x.slice_scatter(s, start=0, step=2), (a, make((2, 3), dtype))


def _index_add_alpha_samples(dtype):
    a, idx = make((4, 3), dtype), torch.tensor([3, 0])
    yield "index_add alpha", lambda x, i, s: torch.index_add(x, 0, i, s, alpha=2), (a, idx, make((2, 3), dtype))


INDEX_CASES = [
    OpCase("narrow", _narrow_samples, ALL),
    OpCase("gather_scatter", _gather_scatter_samples, FLOATS + INTS),
    OpCase("index_ops", _index_samples, FLOATS + INTS),
    OpCase("index_add_alpha", _index_add_alpha_samples, FLOATS[:2] + INTS),
]


@pytest.mark.parametrize("case, dtype", op_params(INDEX_CASES))
def test_indexing_op_matches_eager(case, dtype):
    run_case(case, dtype)


def test_inplace_indexing_methods_match_eager():
    def fn(x, i, src):
        y = x * 1  # an intermediate: in-place on it is functionalized
        y.index_add_(0, i, src)
        y.scatter_(1, i[None], 0.5)
        y.index_fill_(1, i, -1)
        y.masked_fill_(y > 1, 1)
        y.tril_()
        y[0, ::2] = src[0, 1]
        return y

    assert_matches_eager(fn, make((4, 4), torch.float32), torch.tensor([3, 0]), make((2, 4), torch.float32))
