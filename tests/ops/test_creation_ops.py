"""Op database for the creation family of `thunder.torch`: zeros/ones/full/arange/linspace/eye, the
`*_like` and `new_*` forms, tril/triu, dtype conversions, and random tensors (checked for shape and
dtype, and, under `torch.manual_seed`, for drawing exactly what eager draws), against torch eager.

Each deterministic sample runs with the default executors (the torch executor runs each symbol whole)
and decomposed into prims; values, dtypes and shapes must match eager's, and so must the trace's metadata.
"""

from __future__ import annotations

import pytest
import torch

import thunder
from thunder.core.pytree import tree_flatten

from .cases import ALL, FLOATS, INTS, OpCase, assert_matches_eager, make, op_params, run_case
from .opdb import EXECUTOR_LISTS


# -- factories ----------------------------------------------------------------------------------------------
# Factories take no tensor inputs; each sample's function takes a tensor (whose dtype is the case's) to give
# the jitted function an input and a device to follow.
def _filled_samples(dtype):
    a = make((2, 3), dtype)
    yield "zeros", lambda x: torch.zeros(2, 3, dtype=x.dtype), (a,)
    yield "zeros tuple", lambda x: torch.zeros((4,), dtype=x.dtype, device=x.device), (a,)
    yield "zeros size keyword", lambda x: torch.zeros(size=(2, 2), dtype=x.dtype), (a,)
    yield "zeros default dtype", lambda x: torch.zeros(3) + x.sum(), (a,)
    yield "ones", lambda x: torch.ones([2, 1], dtype=x.dtype), (a,)
    yield "ones 0-dim", lambda x: torch.ones((), dtype=x.dtype), (a,)
    yield "empty shape", lambda x: torch.zeros(0, 3, dtype=x.dtype), (a,)
    yield "full", lambda x: torch.full((2, 2), 3, dtype=x.dtype), (a,)
    yield "full inferred int", lambda x: torch.full((2,), 7), (a,)
    yield "full inferred float", lambda x: torch.full((2,), 1.5), (a,)
    yield "full inferred bool", lambda x: torch.full((2,), True), (a,)
    yield "zeros_like", torch.zeros_like, (a,)
    yield "ones_like dtype", lambda x: torch.ones_like(x, dtype=torch.float64), (a,)
    yield "full_like", lambda x: torch.full_like(x, 2), (a.t(),)
    yield "new_zeros", lambda x: x.new_zeros(4), (a,)
    yield "new_ones", lambda x: x.new_ones((2, 2)), (a,)
    yield "new_full", lambda x: x.new_full((3,), 5, dtype=torch.int32), (a,)
    yield "scalar_tensor", lambda x: torch.scalar_tensor(3, dtype=x.dtype), (a,)
    yield "tensor of a number", lambda x: torch.tensor(2.5) * x, (a,)
    yield "like shapes", lambda x: (torch.empty_like(x).shape, x.new_empty(2, 3).dtype), (a,)


def _range_samples(dtype):
    a = make((2,), dtype)
    yield "arange end", lambda x: torch.arange(5), (a,)
    yield "arange start end", lambda x: torch.arange(2, 9, dtype=x.dtype), (a,)
    yield "arange step", lambda x: torch.arange(1, 10, 3, dtype=x.dtype), (a,)
    yield "arange negative step", lambda x: torch.arange(10, 0, -3), (a,)
    yield "arange empty", lambda x: torch.arange(3, 3), (a,)
    yield "arange keyword", lambda x: torch.arange(start=1, end=4, step=1, dtype=x.dtype), (a,)
    yield "arange device", lambda x: torch.arange(4, device=x.device) + x[0], (a,)
    if dtype.is_floating_point:
        yield "arange float step", lambda x: torch.arange(0, 1, 0.25, dtype=x.dtype), (a,)
        yield "arange float inferred", lambda x: torch.arange(0.5, 3), (a,)
        yield "linspace", lambda x: torch.linspace(0, 1, 5, dtype=x.dtype), (a,)
        yield "linspace descending", lambda x: torch.linspace(3, -2, steps=7, dtype=x.dtype), (a,)
        yield "linspace one step", lambda x: torch.linspace(2, 5, 1, dtype=x.dtype), (a,)
        yield "logspace", lambda x: torch.logspace(0, 2, 4, dtype=x.dtype), (a,)
        yield "logspace base", lambda x: torch.logspace(-1, 1, 3, base=2, dtype=x.dtype), (a,)
    yield "eye", lambda x: torch.eye(3, dtype=x.dtype), (a,)
    yield "eye rectangular", lambda x: torch.eye(2, 4, dtype=x.dtype), (a,)
    yield "eye default dtype", lambda x: torch.eye(2), (a,)


def _triangle_samples(dtype):
    a = make((4, 5), dtype)
    yield "tril", torch.tril, (a,)
    yield "triu", torch.triu, (a,)
    yield "tril diagonal", lambda x: x.tril(1), (a,)
    yield "triu negative diagonal", lambda x: torch.triu(x, diagonal=-2), (a,)
    yield "tril batched", lambda x: torch.tril(x), (make((2, 3, 3), dtype),)
    yield "triu transposed", torch.triu, (a.t(),)
    yield "tril 1-d", torch.tril, (make((3,), dtype),)
    yield "causal mask", lambda x: torch.tril(torch.ones(3, 3, dtype=torch.bool)) & (x > 0), (make((3, 3), dtype),)


FACTORY_CASES = [
    OpCase("filled", _filled_samples, ALL),
    OpCase("ranges", _range_samples, FLOATS + INTS),
    OpCase("triangles", _triangle_samples, ALL),
]


@pytest.mark.parametrize("case, dtype", op_params(FACTORY_CASES))
def test_factory_op_matches_eager(case, dtype):
    run_case(case, dtype)


def test_factory_outputs_follow_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert_matches_eager(lambda x: (torch.zeros(2), torch.arange(0.0, 2.0), torch.full((1,), 2.0), x * 1.5), make((2,), torch.int64))
    finally:
        torch.set_default_dtype(previous)


def test_tensor_of_a_list_of_numbers_matches_eager():
    assert_matches_eager(lambda x: x + torch.tensor([[1.0, 2.0]]) + torch.tensor([3, 4]), make((2,), torch.float32))


def test_tensor_of_an_empty_list_matches_eager():
    assert_matches_eager(lambda x: torch.cat([torch.tensor([], dtype=x.dtype), x]), make((2,), torch.float32))


def test_tensor_of_a_list_of_tensors_is_rejected_with_a_way_out():
    with pytest.raises(NotImplementedError, match="torch.stack"):
        thunder.jit(lambda x: torch.tensor([x[0], x[1]]))(make((2,), torch.float32))


# -- conversions -------------------------------------------------------------------------------------------
def _conversion_samples(dtype):
    a = make((2, 3), dtype)
    yield "to dtype", lambda x: x.to(torch.float64), (a,)
    yield "to dtype keyword", lambda x: x.to(dtype=torch.int32), (a,)
    yield "to same dtype", lambda x: x.to(x.dtype) * 1, (a,)
    yield "to device and dtype", lambda x: x.to("cpu", torch.bfloat16), (a,)
    yield "to other tensor", lambda x, y: x.to(y), (a, make((1,), torch.int64))
    yield "type_as", lambda x, y: x.type_as(y), (a, make((1,), torch.float64))
    for method in ("float", "double", "half", "bfloat16", "long", "int", "short", "bool", "byte", "char"):
        yield method, lambda x, m=method: getattr(x, m)(), (a,)
    yield "cpu", lambda x: x.cpu() + 1, (a,)
    yield "contiguous", lambda x: x.contiguous(), (a.t(),)
    yield "clone", torch.clone, (a,)
    yield "detach", lambda x: x.detach() * 2, (a,)


CONVERSION_CASES = [OpCase("conversions", _conversion_samples, ALL)]


@pytest.mark.parametrize("case, dtype", op_params(CONVERSION_CASES))
def test_conversion_matches_eager(case, dtype):
    run_case(case, dtype)


# -- randomness --------------------------------------------------------------------------------------------
_RANDOM_FACTORIES = {
    "rand": lambda x: torch.rand(2, 3, dtype=x.dtype),
    "rand tuple": lambda x: torch.rand((4,), dtype=x.dtype, device=x.device),
    "randn": lambda x: torch.randn(3, 2, dtype=x.dtype),
    "randn default dtype": lambda x: torch.randn(5),
    "rand_like": torch.rand_like,
    "randn_like": lambda x: torch.randn_like(x, dtype=torch.float64),
    "randint": lambda x: torch.randint(0, 10, (3, 4)),
    "randint high only": lambda x: torch.randint(5, (6,), dtype=torch.int32),
    "randint_like": lambda x: torch.randint_like(x, 3, 9),
    "randint_like high only": lambda x: torch.randint_like(x, 4),
    "bernoulli p": lambda x: torch.bernoulli(x, p=0.3),
    "bernoulli probabilities": lambda x: torch.bernoulli(x.sigmoid()),
    "draws in sequence": lambda x: (torch.rand(3), torch.randn(2) + x[0, 0], torch.rand_like(x)),
}


@pytest.mark.parametrize("name", list(_RANDOM_FACTORIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_random_op_draws_what_eager_draws_under_the_same_seed(name, dtype):
    fn = _RANDOM_FACTORIES[name]
    x = make((3, 4), dtype, 0, 1)
    torch.manual_seed(1234)
    expected = fn(x)
    # the core's executors only: a fusion executor (nvFuser, the CUDA default) draws from its own random stream,
    # reproducible under the seed but not eager's values (its package tests that)
    jfn = thunder.jit(fn, executors=[])
    torch.manual_seed(1234)
    actual = jfn(x)
    for e, a in zip(tree_flatten(expected)[0], tree_flatten(actual)[0]):
        torch.testing.assert_close(a, e, atol=0, rtol=0)


@pytest.mark.parametrize("name", list(_RANDOM_FACTORIES))
def test_random_op_decomposed_to_prims_gives_eager_shapes_and_dtypes(name):
    fn = _RANDOM_FACTORIES[name]
    x = make((3, 4), torch.float32, 0, 1)
    expected = tree_flatten(fn(x))[0]
    actual = tree_flatten(thunder.jit(fn, executors=EXECUTOR_LISTS["prims"])(x))[0]
    assert [(tuple(t.shape), t.dtype) for t in actual] == [(tuple(t.shape), t.dtype) for t in expected]


def test_random_op_values_are_in_range():
    x = make((64, 64), torch.float32, 0, 1)
    u, i, b = thunder.jit(lambda t: (torch.rand_like(t), torch.randint(3, 7, (64,)), torch.bernoulli(t, 0.5)))(x)
    assert 0 <= u.min() and u.max() < 1
    assert 3 <= i.min() and i.max() < 7
    assert set(b.unique().tolist()) <= {0.0, 1.0}


def test_random_op_draws_anew_on_each_call():
    jfn = thunder.jit(lambda x: torch.rand_like(x))
    x = make((8,), torch.float32)
    assert not torch.equal(jfn(x), jfn(x))


def test_explicit_generators_are_rejected_with_a_way_out():
    with pytest.raises(NotImplementedError, match="manual_seed"):
        thunder.jit(lambda x: torch.rand(2, generator=torch.Generator()) + x)(make((2,), torch.float32))
