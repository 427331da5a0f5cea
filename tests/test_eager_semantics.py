"""Aliasing, indexing and op-level semantics match eager PyTorch (issue #11 items 4-7).

Each test runs the same program eagerly and under `thunder.jit` on equal inputs and compares results,
the caller's (possibly mutated) inputs, `requires_grad` of the results and, where inputs require grad,
gradients from torch.autograd. Programs eager rejects must be rejected with a clear error.
"""

from __future__ import annotations

import math

import pytest
import torch

import thunder


def _clone_inputs(inputs):
    return [
        x.detach().clone().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor) else x for x in inputs
    ]


def _as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def check_like_eager(fn, *inputs, grad=True, atol=None, rtol=None):
    """Runs fn eagerly and jitted (twice: the second call is cached) and compares everything observable."""
    eager_in = _clone_inputs(inputs)
    expected = _as_list(fn(*eager_in))
    jfn = thunder.jit(fn)
    for _ in range(2):
        jit_in = _clone_inputs(inputs)
        got = _as_list(jfn(*jit_in))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            if isinstance(e, torch.Tensor):
                assert g.dtype == e.dtype and g.shape == e.shape
                assert g.requires_grad == e.requires_grad, f"requires_grad: {g.requires_grad}, eager {e.requires_grad}"
                torch.testing.assert_close(g, e, equal_nan=True, atol=atol, rtol=rtol)
            else:
                assert g == e
        for g, e in zip(jit_in, eager_in):
            if isinstance(e, torch.Tensor):
                torch.testing.assert_close(g, e, equal_nan=True)  # mutated inputs match too
    if not grad:
        return
    differentiable = [(g, e) for g, e in zip(got, expected) if isinstance(e, torch.Tensor) and e.requires_grad]
    if not differentiable:
        return
    cotangents = [torch.ones_like(e) for _, e in differentiable]
    torch.autograd.backward([e for _, e in differentiable], cotangents)
    torch.autograd.backward([g for g, _ in differentiable], cotangents)
    for g, e in zip(jit_in, eager_in):
        if isinstance(e, torch.Tensor) and e.requires_grad:
            if e.grad is None:
                assert g.grad is None or not g.grad.any()
            else:
                torch.testing.assert_close(g.grad, e.grad, equal_nan=True)


def arange(*shape, dtype=torch.float32, grad=False):
    n = math.prod(shape)
    return torch.arange(n, dtype=dtype).reshape(shape).requires_grad_(grad)


# -- item 4: advanced indexing is a copy -------------------------------------------------------------------
@pytest.mark.parametrize(
    "index",
    [
        lambda x: x[torch.tensor([0, 0])],
        lambda x: x[[1, 0]],
        lambda x: x[:, torch.tensor([2, 1])],
        lambda x: x[0, [1, 2]],
        lambda x: x[torch.tensor([0, 1]), torch.tensor([1, 1])],
        lambda x: x[..., torch.tensor([0])],
        lambda x: x[torch.tensor(1)],
    ],
    ids=["tensor", "list", "second_dim", "int_and_list", "two_tensors", "ellipsis", "zero_dim_tensor"],
)
def test_inplace_on_advanced_index_result_leaves_caller_tensor_unchanged(index):
    def fn(x):
        b = index(x)
        b.add_(100)
        return b

    check_like_eager(fn, arange(3, 4))


def test_inplace_on_view_of_advanced_index_result_stays_in_the_copy():
    def fn(x):
        b = x[[0, 2]]
        b[0].mul_(-1)
        b[:, 1:].add_(b[:, :1])
        return b, x * 1

    check_like_eager(fn, arange(3, 4))


def test_basic_index_is_still_a_view():
    def fn(x):
        x[1].add_(100)
        x[:, 1:3].mul_(2)
        return x

    check_like_eager(fn, arange(3, 4))


def test_advanced_index_assignment_writes_like_eager():
    def fn(x, v):
        x[torch.tensor([0, 2])] = v
        x[[1], [3]] = -1.0
        x.index_put_((torch.tensor([2]),), torch.tensor(7.0))
        return x

    check_like_eager(fn, arange(3, 4), torch.ones(4))


def test_inplace_on_advanced_index_of_leaf_requiring_grad_is_allowed():
    def fn(x):
        b = x[torch.tensor([0, 0])]
        b.mul_(2)
        return b.sum(0)

    check_like_eager(fn, arange(3, 4, dtype=torch.float64, grad=True))


def test_inplace_on_reshape_copy_of_transposed_leaf_is_allowed():
    def fn(x):
        y = x.t().reshape(-1)  # a copy: x.t() is not contiguous
        y.add_(1)
        return y * 2

    check_like_eager(fn, arange(3, 4, dtype=torch.float64, grad=True))


def test_inplace_on_reshape_view_writes_through():
    def fn(x):
        y = x.reshape(-1)  # a view of the contiguous x
        y.add_(1)
        return x

    check_like_eager(fn, arange(3, 4))


def test_inplace_on_contiguous_copy_of_transposed_input_leaves_input_unchanged():
    def fn(x):
        c = x.t().contiguous()
        c.add_(1)
        return c, x

    check_like_eager(fn, arange(3, 4))


def test_inplace_on_reshape_copy_of_transposed_input_leaves_input_unchanged():
    def fn(x):
        c = x.t().reshape(12)
        c.add_(1)
        x.t().view(4, 3).mul_(2)
        return c, x

    check_like_eager(fn, arange(3, 4))


# -- item 5: no-op casts alias, copies copy ----------------------------------------------------------------
@pytest.mark.parametrize(
    "cast",
    [
        lambda a: a.float(),
        lambda a: a.to(torch.float32),
        lambda a: a.to("cpu"),
        lambda a: a.to(a),
        lambda a: a.to(dtype=torch.float32, device="cpu"),
        lambda a: a.type_as(torch.zeros(1)),
        lambda a: a.type(torch.float32),
        lambda a: a.contiguous(),
        lambda a: a.cpu(),
    ],
    ids=["float", "to_dtype", "to_device", "to_tensor", "to_both", "type_as", "type", "contiguous", "cpu"],
)
@pytest.mark.parametrize("where", ["input", "intermediate", "after_inplace"])
def test_noop_cast_aliases_like_eager(cast, where):
    def fn(x):
        a = x if where == "input" else x * 2
        if where == "after_inplace":
            a.add_(1)
        c = cast(a)
        a.mul_(3)  # visible through c: eager returns `a` itself
        c.sub_(1)  # and visible through a
        return a, c

    check_like_eager(fn, arange(2, 3))


@pytest.mark.parametrize(
    "cast",
    [
        lambda a: a.to(torch.float32, copy=True),
        lambda a: a.clone(),
        lambda a: a.double(),
        lambda a: a.t().contiguous(),
        lambda a: a.to(torch.float64).to(torch.float32),
    ],
    ids=["to_copy", "clone", "double", "transposed_contiguous", "round_trip"],
)
def test_copying_cast_does_not_alias(cast):
    def fn(x):
        a = x * 2
        c = cast(a)
        a.mul_(3)
        c.sub_(1)
        return a, c

    check_like_eager(fn, arange(2, 3))


def test_noop_cast_of_intermediate_keeps_gradients():
    def fn(x):
        a = x * 2
        c = a.float()
        a.mul_(3)
        return c.sum()

    check_like_eager(fn, arange(2, 3, grad=True))


# -- item 6: op-level mismatches ----------------------------------------------------------------------------
def test_clamp_with_nan_bound_when_input_requires_grad():
    check_like_eager(lambda x: torch.clamp(x, min=float("nan")), arange(4, grad=True))
    check_like_eager(lambda x: torch.clamp(x, max=float("nan")), arange(4, grad=True))
    check_like_eager(lambda x: torch.clamp(x, min=0.5, max=float("nan")), arange(4, grad=True))


def test_add_bool_scalar_and_bool_tensor_with_alpha_stays_bool():
    check_like_eager(lambda b: torch.add(True, b, alpha=2), torch.tensor([True, False]))
    check_like_eager(lambda b: torch.add(b, True, alpha=2), torch.tensor([True, False]))


def test_max_dim_gradient_with_ties_goes_to_returned_index():
    x = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=torch.float64, requires_grad=True)
    check_like_eager(lambda x: torch.max(x, 1).values, x)
    check_like_eager(lambda x: torch.min(x, 1)[0], x)
    check_like_eager(lambda x: x.max(dim=0, keepdim=True).values, x)


def test_max_dim_gradient_with_nan():
    x = torch.tensor([[1.0, float("nan"), 3.0], [2.0, 5.0, 0.0]], dtype=torch.float64, requires_grad=True)
    check_like_eager(lambda x: torch.max(x, 1).values, x)
    check_like_eager(lambda x: torch.min(x, 1).values, x)


def test_std_correction_zero_on_constant_input_gradient():
    x = torch.full((2, 3), 2.0, dtype=torch.float64, requires_grad=True)
    check_like_eager(lambda x: x.std(correction=0), x)
    check_like_eager(lambda x: x.std(1, correction=0), x)
    check_like_eager(lambda x: x.std(1), x)


def test_div_trunc_by_zero_value_and_gradient():
    x = torch.tensor([1.0, -2.0, 0.0, 3.5], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 0.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    check_like_eager(lambda x, y: torch.div(x, y, rounding_mode="trunc"), x, y)
    check_like_eager(lambda x, y: torch.div(x, y, rounding_mode="floor"), x, y)


def test_clamp_at_nan_gradient():
    x = torch.tensor([float("nan"), 0.5, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    check_like_eager(lambda x: x.clamp(0.0, 1.0), x)
    check_like_eager(lambda x: x.clamp(min=0.0), x)
    check_like_eager(lambda x: x.clamp(max=1.0), x)
    lo = torch.tensor([0.0, float("nan"), 0.0, 0.0], dtype=torch.float64, requires_grad=True)
    check_like_eager(lambda x, lo: torch.clamp(x, min=lo), x, lo)


@pytest.mark.parametrize(
    "values",
    [[1.0, float("nan"), 2.0], [float("inf"), 2.0, 3.0], [0.0, float("inf"), 1.0], [0.0, 0.0, 2.0], [0.0, 3.0, 2.0]],
    ids=["nan", "inf", "zero_and_inf", "two_zeros", "one_zero"],
)
def test_prod_value_and_gradient_with_special_values(values):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    check_like_eager(lambda x: x.prod(), x)
    check_like_eager(lambda x: x.reshape(1, 3).prod(1), x)


def test_zero_and_fill_on_tensor_requiring_grad_keep_requires_grad():
    def fn(x):
        a = x * 2
        a.zero_()
        b = x * 3
        b.fill_(2.0)
        c = x * 4
        c.fill_(torch.tensor(5.0))
        return a, b, c

    check_like_eager(fn, arange(3, grad=True))


def test_isfinite_type_as_does_not_require_grad():
    x = torch.tensor([1.0, float("inf"), float("nan")], requires_grad=True)
    check_like_eager(lambda x: torch.isfinite(x).type_as(x), x)
    check_like_eager(lambda x: (x > 0).to(x.dtype) * 1, x)


# -- item 7: programs eager runs --------------------------------------------------------------------------------
def test_copy_from_python_scalar():
    def fn(x):
        a = x * 1
        a.copy_(2)
        return a

    check_like_eager(fn, arange(3))


@pytest.mark.parametrize(
    "op",
    [lambda a: a.unsqueeze_(0), lambda a: a.squeeze_(), lambda a: a.t_(), lambda a: a.transpose_(0, 1)],
    ids=["unsqueeze_", "squeeze_", "t_", "transpose_"],
)
def test_metadata_changing_inplace_ops_raise_a_clear_error(op):
    def fn(x):
        a = x * 2
        op(a)
        return a + 1

    op(torch.ones(2, 1))  # eager runs it
    with pytest.raises(NotImplementedError, match=r"changes the shape or strides of the tensor object in place"):
        thunder.jit(fn)(torch.ones(2, 1))


def test_metadata_inplace_ops_that_change_nothing_match_eager():
    def fn(x):
        a = x * 2
        a.squeeze_()  # no dim of size 1
        b = a[0]
        b.t_()  # 1-D: nothing to transpose
        return a, b

    check_like_eager(fn, arange(2, 3))


def test_hstack_of_zero_dim_tensors():
    check_like_eager(lambda a, b: torch.hstack([a, b]), torch.tensor(1.0), torch.tensor(2.0))
    check_like_eager(lambda a, b: torch.vstack([a, b]), torch.tensor(1.0), torch.tensor(2.0))


def test_all_any_on_empty_tensor_requiring_grad():
    x = torch.zeros(0, 3, requires_grad=True)
    check_like_eager(lambda x: (x.all(0), x.any(0), x.all(), x.any(1)), x)


def test_index_fill_on_zero_dim_tensor():
    check_like_eager(lambda x: x.index_fill(0, torch.tensor(0), 5.0), torch.tensor(3.0))
    check_like_eager(lambda x: x.index_fill(0, torch.tensor([0]), -1.0), torch.tensor(3.0))


def test_div_int_by_bool_tensor_with_rounding_mode():
    b = torch.tensor([True, True])
    check_like_eager(lambda b: torch.div(3, b, rounding_mode="floor"), b)
    check_like_eager(lambda b: torch.div(7, b, rounding_mode="trunc"), b)
    check_like_eager(lambda b: torch.div(b, 2, rounding_mode="floor"), b)


@pytest.mark.parametrize(
    "write",
    [lambda x, y: x.__setitem__(0, y), lambda x, y: x.__setitem__((slice(None), 0), y[:2]), lambda x, y: x.mul_(y)],
    ids=["row", "column", "mul_"],
)
def test_write_into_expanded_input_raises_eager_error(write):
    def fn(x, y):
        write(x, y)
        return x

    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor refers to a single memory"):
        thunder.jit(fn)(torch.zeros(1, 3).expand(2, 3), torch.ones(3))


def test_inplace_on_expanded_input_raises_eager_error():
    def fn(x):
        x.add_(1)
        return x

    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        thunder.jit(fn)(torch.zeros(1, 3).expand(2, 3))


def test_jitted_generator_function_raises_clear_error():
    def gen(x):
        yield x * 2
        yield x * 3

    with pytest.raises(NotImplementedError, match="generator"):
        thunder.jit(gen)(torch.ones(2))


# -- found by the random-program fuzzer (tests/fuzz) ---------------------------------------------------------
def test_inplace_through_detach_writes_into_the_input():
    def fn(x):
        d = x.detach()
        d.t().mul_(2)
        return d.sum(), x * 1

    check_like_eager(fn, arange(2, 3))


def test_inplace_through_detach_of_input_requiring_grad_changes_its_data_and_keeps_its_gradient():
    def fn(x):
        x.detach().copy_(torch.ones(2))
        return x * 2

    check_like_eager(fn, torch.zeros(2, requires_grad=True))


def test_clamp_gradient_with_a_bound_of_another_dtype():
    x = torch.tensor(0.25, dtype=torch.bfloat16, requires_grad=True)
    lo = torch.tensor([[0.0, 0.5], [1.0, -1.0]], requires_grad=True)
    check_like_eager(lambda x, lo: torch.clamp(x, min=lo), x, lo)


@pytest.mark.parametrize("op", ["expand_as", "view_as", "reshape_as", "type_as"])
def test_tensor_read_only_for_its_metadata_does_not_make_the_result_require_grad(op):
    def fn(x, y):
        shaped = (y @ y.mT).reshape(x.shape) if op != "expand_as" else y @ y.mT
        return getattr(x.view(1, -1) if op == "expand_as" else x, op)(shaped)

    x = torch.ones(1, 1) if op == "expand_as" else torch.ones(3, 3)
    check_like_eager(fn, x, torch.randn(3, 2, requires_grad=True))


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_of_all_elements_gradient_with_nan_and_ties(op):
    for values in ([1.0, float("nan"), 3.0, float("nan")], [1.0, 3.0, 3.0, -3.0], [-3.0, 1.0, -3.0, 2.0]):
        x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        check_like_eager(lambda x: getattr(x, op)(), x)
        check_like_eager(lambda x: getattr(torch, op)(x.reshape(2, 2)), x)


def test_max_dim_of_an_intermediate_gradient_with_ties():
    x = torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=torch.float64, requires_grad=True)
    check_like_eager(lambda x: (x * 1).max(1).values, x)
    check_like_eager(lambda x: (x * 1).min(0)[0], x)


# -- found by the random-program fuzzer's untracked writes (tests/fuzz/test_untracked_writes.py) ----------------
def test_value_computed_under_no_grad_from_an_intermediate_does_not_require_grad():
    def fn(x):
        a = x * 3  # an intermediate: its proxy does not say it requires grad
        with torch.no_grad():
            b = a * 2
        return b, a + b

    check_like_eager(fn, arange(3, dtype=torch.float64, grad=True))


def test_write_through_data_with_an_operand_requiring_grad_leaves_the_tensor_without_grad():
    def fn(x, y):
        y.data.copy_(x * 2)  # the write autograd does not see: y does not come to depend on x
        return y % 3, y.detach().mul_(2)

    x, y = torch.tensor(0.3, dtype=torch.float64, requires_grad=True), torch.tensor(0.7, dtype=torch.float64)
    check_like_eager(fn, x, y)


def test_write_through_data_of_a_computed_value_keeps_it_requiring_grad():
    def fn(x):
        a = x.sin()  # (sin saves x, not a: eager's backward does not read the overwritten data)
        d = a.data
        d.neg_()  # a's data changes; a keeps its grad_fn, and d (its alias) is another object that does not
        return a, d

    check_like_eager(fn, arange(4, 1, grad=True))


@pytest.mark.parametrize("key", [0, (0, [1, 0])], ids=["basic", "advanced"])
def test_setitem_value_with_leading_size_one_dims_gradient(key):
    def fn(x, v):
        y = x * 1
        y[key] = v  # eager strips the value's leading size-1 dims before broadcasting it
        return y

    check_like_eager(fn, arange(4, 2, dtype=torch.float64), arange(1, 1, 2, dtype=torch.float64, grad=True))


def test_detach_alias_written_in_grad_mode_keeps_its_gradient_when_the_base_is_written_again():
    def fn(x):
        d = x.detach()
        d.add_(x, alpha=2)  # d requires grad now (through x); x's data changes too
        x.detach().copy_(torch.ones(3))  # d's data changes with x's (one memory), d keeps its gradient
        return d * 2, x * 1

    check_like_eager(fn, arange(3, dtype=torch.float64, grad=True))


@pytest.mark.parametrize("alias", ["detach", "data"])
def test_detach_alias_of_a_view_written_in_grad_mode_keeps_its_gradient(alias):
    def fn(x, y):
        a = x * 1
        d = getattr(a[0], alias)() if alias == "detach" else a[0].data
        d.mul_(y)  # d requires grad (through y)
        with torch.no_grad():
            a.add_(1)  # d's data changes with a's
        return d * 2, a

    check_like_eager(fn, arange(2, 3, dtype=torch.float64, grad=True), arange(3, dtype=torch.float64, grad=True))


@pytest.mark.parametrize("value", ["input", "intermediate"])
def test_reshape_under_no_grad_copies_a_transposed_tensor_as_eager(value):
    def fn(x):
        a = x if value == "input" else x * 2  # (eager's x * 2 keeps x's transposed layout)
        with torch.no_grad():
            a.reshape(-1).add_(1)  # a copy: a is not contiguous; a is unchanged
            a.t()[1:].reshape(-1).mul_(3)
        return a * 1

    check_like_eager(fn, arange(2, 3, dtype=torch.float64).t().detach().requires_grad_())


@pytest.mark.parametrize(
    "op", [lambda x: torch.mul(3, x), lambda x: torch.add(1.5, x), lambda x: 3 * x], ids=["mul", "add", "rmul"]
)
def test_result_of_a_call_with_a_number_first_keeps_eager_layout(op):
    def fn(x):
        a = op(x)  # eager's result is transposed, as x is
        a.reshape(-1).add_(1)  # a copy: a is unchanged
        return a

    check_like_eager(fn, arange(2, 3).t())


# Known differences the untracked-writes fuzzer found, outside the tracer or beyond it; each test passes once Thunder
# matches eager, or refuses with a clear NotImplementedError (strict: an XPASS says the entry can go).
def _like_eager_or_refused(fn, *inputs):
    try:
        check_like_eager(fn, *inputs)
    except NotImplementedError:
        pass


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_atan2_gradient_at_the_origin_and_where_the_denominator_underflows(dtype):
    # torch's atan2_backward gives 0 where a² + b² is 0, and inf where it underflows to a subnormal
    a = torch.tensor([0.0, 1e-20, 3.0, 0.0, -0.0], dtype=dtype)
    b = torch.tensor([0.0, 1e-20, 4.0, -0.0, 0.0], dtype=dtype)
    check_like_eager(torch.atan2, a.requires_grad_(True), b.requires_grad_(True))


@pytest.mark.xfail(strict=True, reason="eager's caller tensor joins the graph (gets a grad_fn); Thunder writes the "
                   "data back and leaves the caller's tensor as it was, without grad")  # fmt: skip
def test_input_written_with_a_value_that_requires_grad_requires_grad_after_the_call():
    def fn(x, y):
        x.mul_(y)
        return y * 1

    def caller_requires_grad(f):
        x, y = torch.ones(3), torch.ones(3, requires_grad=True)
        f(x, y)
        return x.requires_grad

    assert caller_requires_grad(thunder.jit(fn)) == caller_requires_grad(fn)


def test_input_written_with_values_that_do_not_require_grad_in_a_differentiable_function_matches_eager():
    def fn(x, y):
        x.mul_(2)
        x.add_(y.detach())
        x[0] = (y * 3).sum().detach()
        x.detach().copy_(y * 5)  # through detach: x does not join the graph
        with torch.no_grad():
            x[1:].mul_(y[1:])
        return y * x, x

    check_like_eager(fn, arange(3, dtype=torch.float64), arange(3, dtype=torch.float64, grad=True))


@pytest.mark.parametrize(
    "write",
    [lambda x: x.sub_(x[0]), lambda x: x.mul_(x.t()), lambda x: x[1:].add_(x[:-1]),
     lambda x: x.detach().mul_(x[0]), lambda x: x.__setitem__((slice(1, None),), x[:-1]),
     lambda x: x.__setitem__((slice(None), 1), x[0]), lambda x: x.t()[1].copy_(x[0])],
    ids=["row", "transpose", "shifted", "through_detach", "setitem", "setitem_column", "view_of_view"],
)  # fmt: skip
def test_inplace_op_reading_memory_it_writes_otherwise_than_element_for_element_is_refused(write):
    # eager's kernel reads elements it has already written (it refuses some of these calls itself, not all:
    # x.sub_(x[0]) on a transposed x runs); the functional trace reads every operand before the write
    def fn(x):
        write(x)
        return x * 1

    with pytest.raises(NotImplementedError, match="shares memory with the tensor it writes"):
        thunder.jit(fn)(torch.arange(9.0).reshape(3, 3).t())


def test_inplace_op_reading_the_memory_it_writes_element_for_element_or_disjoint_memory_matches_eager():
    def fn(x):
        x.add_(x.detach())  # element for element
        x[0].copy_(x[1])  # disjoint
        x[..., ::2].mul_(x[..., 1::2] + 1)  # interleaved, disjoint
        x.data.mul_(x)
        x[:, 1:].sub_(x[:, :1].clone())
        return x * 1

    check_like_eager(fn, arange(3, 4))
    check_like_eager(fn, arange(4, 3).t())


def test_inplace_op_reading_elements_before_eager_writes_them_matches_eager():
    def fn(x):
        x[:, :-1] = x[:, 1:]  # a shift to lower addresses: eager reads each element before it writes it
        x[:, 0] = x[1]
        x[0].copy_(x[:, 1])
        return x * 1

    check_like_eager(fn, arange(3, 3))


def test_setitem_reading_the_region_it_writes_element_for_element_matches_eager():
    def fn(x):
        d = x.data
        d[0] = x[0]  # the region x[0], read element for element
        x[2] = x[1] * 2
        x[:, 0] = x[0]  # column 0 from row 0: x[0, 0] read where it is written, x[0, 1:] not written
        return x * 1

    check_like_eager(fn, arange(3, 3))
