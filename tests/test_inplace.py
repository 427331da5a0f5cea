"""In-place operations are functionalized: results and the caller's mutated tensors equal eager's."""

from __future__ import annotations

import pytest
import torch

import thunder


def _check(fn, *make_inputs):
    eager_inputs = [m() for m in make_inputs]
    jit_inputs = [t.clone() for t in eager_inputs]
    expected = fn(*eager_inputs)
    result = thunder.jit(fn)(*jit_inputs)
    torch.testing.assert_close(result, expected)
    for got, want in zip(jit_inputs, eager_inputs):
        torch.testing.assert_close(got, want)  # mutated inputs match too


def rand(*shape):
    return lambda: torch.randn(*shape, generator=torch.Generator(torch.get_default_device()).manual_seed(sum(shape)))


def test_inplace_method_on_intermediate():
    _check(lambda x: (x * 2).add_(1).mul_(3), rand(3, 4))


def test_inplace_on_input_is_written_back():
    def fn(x, y):
        x.add_(y)
        return x * 2

    _check(fn, rand(3, 4), rand(3, 4))


def test_augmented_assignment_operators():
    def fn(x):
        y = x.clone()
        y += 1
        y *= 2
        y -= x
        y /= 4
        return y

    _check(fn, rand(5))


def test_setitem_on_intermediate_and_input():
    def fn(x, cache):
        y = x.clone()
        y[0] = 0.0
        y[:, 1:3] = x[:, :2] * 2
        cache[:, 2] = x[:, 0]  # a KV-cache style update of an input
        return y

    _check(fn, rand(3, 4), rand(3, 5))


def test_masked_fill_inplace_and_copy():
    def fn(x, mask_src, dst):
        y = x.clone()
        y.masked_fill_(mask_src > 0, -1.0)
        dst.copy_(y)
        return y.sum()

    _check(fn, rand(4, 4), rand(4, 4), rand(4, 4))


def test_inplace_on_view_writes_through_to_base():
    def fn(x):
        y = x * 1
        row = y[1]
        row.mul_(10)  # eager: y changes too
        col = y.narrow(1, 0, 2)
        col.zero_()
        return y, row

    _check(fn, rand(3, 4))


def test_view_of_mutated_base_sees_the_update():
    def fn(x):
        y = x * 1
        v = y.view(-1)
        y.add_(5)
        return v * 1  # eager: v shares storage with y

    _check(fn, rand(2, 3))


_PERMUTING_VIEW_WRITES = {
    "transpose": lambda x: x.transpose(0, 1).mul_(2),
    "transpose_keywords": lambda x: torch.transpose(x, dim0=1, dim1=2).add_(1),
    "permute_then_index": lambda x: x.permute(2, 0, 1)[0].fill_(5),
    "permute_tuple": lambda x: x.permute((1, 2, 0)).add_(torch.arange(2.0)),
    "T": lambda x: x[0].T.sub_(1),
    "t": lambda x: x[:, 0].t().mul_(3),
    "mT": lambda x: x.mT[..., 0].zero_(),
    "movedim": lambda x: x.movedim(0, -1)[..., 1].add_(7),
    "movedim_lists": lambda x: torch.movedim(x, [0, 1], [2, 0]).mul_(-1),
    "swapaxes": lambda x: x.swapaxes(0, 2)[1].add_(1),
    "setitem": lambda x: x.transpose(1, 2).__setitem__((0, 1), 9.0),
}


@pytest.mark.parametrize("write", list(_PERMUTING_VIEW_WRITES.values()), ids=list(_PERMUTING_VIEW_WRITES))
def test_inplace_through_permuting_views_reaches_the_base(write):
    def fn(x):
        y = x * 1
        write(y)  # an intermediate's view
        write(x)  # an input's view: the caller's tensor changes too
        return y + x

    _check(fn, rand(2, 3, 3))


def test_inplace_on_expanded_view_is_a_clear_error():
    def fn(x):
        y = x * 1
        y.expand(4, 3).add_(1)
        return y

    with pytest.raises(NotImplementedError, match="view"):
        thunder.jit(fn)(torch.randn(1, 3))


def test_inplace_on_leaf_requiring_grad_is_rejected_like_eager():
    def fn(x):
        x.add_(1)
        return x

    with pytest.raises(RuntimeError, match="in-place"):
        thunder.jit(fn)(torch.randn(3, requires_grad=True))


def test_in_place_update_of_a_captured_tensor_is_written_back_like_eager():
    counter = torch.zeros(())  # held outside the function, as a static KV cache holds its tensors

    def step(x):
        counter.add_(1)
        return x * counter

    jstep = thunder.jit(step)
    torch.testing.assert_close(jstep(torch.ones(2)), torch.ones(2))
    torch.testing.assert_close(jstep(torch.ones(2)), torch.full((2,), 2.0))  # a cache hit reads the new value
    torch.testing.assert_close(counter, torch.tensor(2.0))


def test_in_place_update_through_a_view_of_a_captured_tensor_is_written_back_like_eager():
    cache = torch.zeros(2, 4)  # held outside the function, as a KV cache holds its buffers

    def write(x):
        cache[:1].add_(x)  # a view of the first row
        return cache.sum()

    jwrite = thunder.jit(write)
    torch.testing.assert_close(jwrite(torch.ones(4)), torch.tensor(4.0))
    torch.testing.assert_close(jwrite(torch.ones(4)), torch.tensor(8.0))
    torch.testing.assert_close(cache, torch.tensor([[2.0] * 4, [0.0] * 4]))


def test_contiguous_of_a_view_of_a_mutated_input_copies_as_in_eager():
    # found by the random-program fuzzer (seed 3470): after x1.mul_, the view v0 was re-derived from x1's new value
    # with that value's (contiguous) strides, so v0.contiguous() looked like a no-op returning v0 itself, and the
    # fill_ on it wrote zeros into the caller's x1; eager's v0 is non-contiguous and contiguous() copies
    def fn(x0, x1):
        v0 = x1.unsqueeze(0)
        x1.mul_(x0)
        v0.contiguous().fill_(0)
        return x0 * 2

    def inputs():
        g = torch.Generator().manual_seed(0)
        return torch.randn((), generator=g), torch.randn(2, 2, 3, generator=g, dtype=torch.float64).transpose(0, 1)

    (x0, x1), (e0, e1) = inputs(), inputs()
    torch.testing.assert_close(thunder.jit(fn)(x0, x1), fn(e0, e1))
    torch.testing.assert_close(x1, e1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_embedding_renorm_scales_the_named_rows_in_place_and_keeps_the_weights_gradient(dtype, norm_type):
    # torch.embedding_renorm_ (what F.embedding with max_norm runs first) on a weight that requires grad, through
    # detach() under no_grad as F.embedding does it: the weight changes, and the lookup's gradient reaches it
    def fn(weight, indices):
        with torch.no_grad():
            torch.embedding_renorm_(weight.detach(), indices, 1.0, norm_type)
        return torch.nn.functional.embedding(indices, weight) * 2

    gen = torch.Generator(torch.get_default_device()).manual_seed(0)
    weight = (torch.randn(10, 4, generator=gen) * 2).to(dtype)
    indices = torch.tensor([[1, 2, 1], [3, 9, 0]])
    eager_weight = weight.clone().requires_grad_(True)
    jit_weight = weight.clone().requires_grad_(True)
    expected = fn(eager_weight, indices)
    result = thunder.jit(fn)(jit_weight, indices)
    tolerance = {"atol": 1e-2, "rtol": 1e-2} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(result, expected, **tolerance)
    torch.testing.assert_close(jit_weight, eager_weight, **tolerance)
    cotangent = torch.randn(expected.shape, generator=gen).to(dtype)
    expected.backward(cotangent)
    result.backward(cotangent)
    torch.testing.assert_close(jit_weight.grad, eager_weight.grad)


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_with_max_norm_renormalizes_the_weight_and_differentiates_like_eager(padding_idx):
    gen = torch.Generator(torch.get_default_device()).manual_seed(1)
    eager = torch.nn.Embedding(10, 4, padding_idx=padding_idx, max_norm=0.5)
    with torch.no_grad():
        eager.weight.copy_(torch.randn(10, 4, generator=gen) * 2)
    jitted = torch.nn.Embedding(10, 4, padding_idx=padding_idx, max_norm=0.5)
    jitted.load_state_dict(eager.state_dict())
    indices = torch.tensor([[1, 2, 1], [3, 9, 0]])
    cotangent = torch.randn(2, 3, 4, generator=gen)
    expected, result = eager(indices), thunder.jit(jitted)(indices)
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(jitted.weight, eager.weight)  # the named rows were scaled down in place
    expected.backward(cotangent)
    result.backward(cotangent)
    torch.testing.assert_close(jitted.weight.grad, eager.weight.grad)
