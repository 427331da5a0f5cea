"""Claiming and planning decisions, on proxies of CUDA tensors: pure Python, no GPU and no nvFuser needed."""

from __future__ import annotations

import pytest
import torch
from thunder_executors_nvfuser.executor import NvFuserExecutor, split_edges
from thunder_executors_nvfuser.options import NvFuserOptions
from thunder_executors_nvfuser.translation import DType, NvCall, Ref, plan_fusion

import thunder.torch as ltorch
from thunder import prims
from thunder.core.proxies import FloatProxy, IntegerProxy, TensorProxy
from thunder.core.trace import TraceCtx, tracectx

ex = NvFuserExecutor()


def record(fn, *specs, device="cuda"):
    """The bound symbols `fn` records on proxies of the given (shape, dtype), and the proxies."""
    trace = TraceCtx("f")
    with tracectx(trace):
        args = [TensorProxy(f"a{i}", shape=shape, dtype=dtype, device=device) for i, (shape, dtype) in enumerate(specs)]
        fn(*args)
    return trace.bound_symbols, args


def claimed(fn, *specs, executor=ex, device="cuda") -> list[bool]:
    bsyms, _ = record(fn, *specs, device=device)
    return [executor.can_fuse(b) for b in bsyms]


F32, BF16 = torch.float32, torch.bfloat16


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: ltorch.add(a, b),
        lambda a, b: ltorch.softmax(a, -1),
        lambda a, b: ltorch.layer_norm(a, (8,), b, b),
        lambda a, b: ltorch.gelu(a, approximate="tanh"),
        lambda a, b: ltorch.var(a, -1),
        lambda a, b: ltorch.mean(a, 0),
        lambda a, b: ltorch.where(ltorch.gt(a, 0), a, 0.5),
        lambda a, b: ltorch.masked_fill(a, ltorch.gt(a, 0), 1.0),
        lambda a, b: ltorch.cat([a, a], 1),
        lambda a, b: ltorch.rsqrt(a),
    ],
)
@pytest.mark.parametrize("dtype", [F32, BF16, torch.float16])
def test_elementwise_reductions_and_normalizations_on_cuda_are_claimed(fn, dtype):
    assert all(claimed(fn, ((4, 8), dtype), ((8,), dtype)))


def test_tensors_on_the_cpu_are_not_claimed():
    assert claimed(lambda a: ltorch.add(a, a), ((4, 8), F32), device="cpu") == [False]


def test_empty_tensors_are_not_claimed():
    assert claimed(lambda a: ltorch.exp(a), ((0, 8), F32)) == [False]


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.complex64, torch.float8_e4m3fn])
def test_unsupported_dtypes_are_not_claimed(dtype):
    assert claimed(lambda a: prims.neg(a), ((4,), dtype)) == [False]


def test_number_proxy_operands_are_claimed_by_elementwise_operations_only():
    # a number proxy becomes a scalar input of the fusion; maximum/minimum (NaN handling) and arguments that
    # the plan needs as constants (a pad value) do not take one
    bsyms, (a,) = record(lambda a: None, ((4,), F32))
    trace = TraceCtx("g")
    with tracectx(trace):
        n = IntegerProxy("n0", value=3)
        f = FloatProxy("f0", value=0.5)
        prims.mul(a, n)
        prims.where(prims.gt(a, 0.0), a, f)
        prims.maximum(a, f)
        prims.pad(a, f, ((1, 1, 0),))
    mul, gt, where, maximum, pad = trace.bound_symbols[-5:]
    assert [ex.can_fuse(b) for b in (mul, gt, where, maximum, pad)] == [True, True, True, False, False]


def test_strided_slices_stay_with_torch():
    assert claimed(lambda a: prims.slice(a, (0,), (8,), (2,)), ((8,), F32)) == [False]
    assert claimed(lambda a: prims.slice(a, (1,), (7,), (1,)), ((8,), F32)) == [True]


def test_unverified_primitives_stay_with_torch():
    # digamma has no nvFuser op; remainder/fmod differ in sign conventions; round in tie-breaking
    assert claimed(lambda a: prims.digamma(a), ((4,), F32)) == [False]
    assert claimed(lambda a: prims.remainder(a, a), ((4,), F32)) == [False]
    assert claimed(lambda a: prims.round(a), ((4,), F32)) == [False]


def test_float_math_on_integers_is_not_claimed():
    assert claimed(lambda a: prims.exp(a), ((4,), torch.int64)) == [False]
    assert claimed(lambda a: prims.mul(a, 0.5), ((4,), torch.int64)) == [False]
    assert claimed(lambda a: prims.mul(a, 3), ((4,), torch.int64)) == [True]


def test_matmul_and_linear_are_claimed_only_with_the_option():
    def mm(a, b):
        prims.matmul(a, b)
        prims.linear(a, b, None)

    assert claimed(mm, ((8, 8), BF16), ((8, 8), BF16)) == [False, False]
    with_matmul = ex.with_options(enable_matmul=True)
    assert claimed(mm, ((8, 8), BF16), ((8, 8), BF16), executor=with_matmul) == [True, True]


def test_dropout_is_claimed_unless_random_ops_are_turned_off():
    assert claimed(lambda a: ltorch.dropout(a, 0.1), ((4, 8), F32)) == [True]
    without = ex.with_options(enable_random=False)
    assert claimed(lambda a: ltorch.dropout(a, 0.1), ((4, 8), F32), executor=without) == [False]


def test_options_are_validated():
    with pytest.raises(TypeError, match="enable_matmul must be a bool"):
        NvFuserOptions(enable_matmul=1)
    with pytest.raises(TypeError, match="unknown nvfuser options"):
        NvFuserOptions.from_dict({"enable_matmull": True})
    with pytest.raises(ValueError, match="max_fusion_ops"):
        NvFuserOptions(max_fusion_ops=0)


def test_executor_never_claims_single_operations_outside_a_fusion():
    bsyms, _ = record(lambda a: ltorch.exp(a), ((4,), F32))
    assert not ex.can_execute(bsyms[0])


# -- planning ---------------------------------------------------------------------------------------------


def plan_of(fn, *specs):
    bsyms, args = record(fn, *specs)
    prims_ = [s for b in bsyms for s in _flat(b)]
    return plan_fusion(prims_, args, [bsyms[-1].output])


def _flat(b):
    return [b] if b.sym.id.startswith("prims.") else [s for sub in b.subsymbols for s in _flat(sub)]


def test_bf16_arithmetic_is_computed_in_float32_and_rounded_back():
    plan, _ = plan_of(lambda a, b: prims.add(a, b), ((4,), BF16), ((4,), BF16))
    fns = [(c.fn, dict(c.kwargs).get("dtype")) for c in plan.calls]
    assert fns == [("cast", DType("Float")), ("cast", DType("Float")), ("add", None), ("cast", DType("BFloat16"))]


def test_a_number_operand_is_defined_in_the_computation_dtype():
    plan, _ = plan_of(lambda a: prims.mul(a, 2), ((4,), torch.float16))
    assert NvCall("define_scalar", (2.0,), (("dtype", DType("Float")),)) in plan.calls


def test_a_growing_length_one_dimension_is_squeezed_before_the_broadcast():
    plan, _ = plan_of(lambda a: prims.broadcast_in_dim(a, (4, 3, 8), (0, 1, 2)), ((4, 1, 8), F32))
    assert [(c.fn, c.args[1:]) for c in plan.calls] == [("squeeze", ((1,),)), ("broadcast_in_dim", ((4, 3, 8), (0, 2)))]


def test_identical_programs_on_differently_named_values_plan_to_one_key():
    one, _ = plan_of(lambda a, b: ltorch.softmax(ltorch.add(a, b), -1), ((4, 8), BF16), ((8,), BF16))
    two, _ = plan_of(lambda a, b: ltorch.softmax(ltorch.add(a, b), -1), ((4, 8), BF16), ((8,), BF16))
    assert one.key == two.key and hash(one.key) == hash(two.key)


def test_a_reshape_that_changes_nothing_adds_no_call_and_returns_the_input():
    plan, sources = plan_of(lambda a: prims.reshape(a, (4, 8)), ((4, 8), F32))
    assert plan.calls == () and sources == [("input", 0)]


def test_random_operations_read_one_seed_and_offset_each():
    plan, _ = plan_of(lambda a: ltorch.dropout(a, 0.25), ((4, 8), F32))
    assert plan.n_random == 1
    assert [c.fn for c in plan.calls[:2]] == ["rng_scalar", "rng_scalar"]
    uniform = next(c for c in plan.calls if c.fn == "uniform")
    assert dict(uniform.kwargs)["rng_seed"] == Ref(1) and dict(uniform.kwargs)["rng_offset"] == Ref(2)


def test_shape_only_operations_at_the_edges_are_left_to_torch():
    def fn(a, b):
        prims.reshape(a, (8, 4))  # leaves the region: a torch view
        y = prims.add(prims.broadcast_in_dim(b, (8, 4), (1,)), a)  # the broadcast only feeds the core
        prims.permute(y, (1, 0))  # leaves the region: a torch view of the fusion's output

    bsyms, args = record(fn, ((8, 4), F32), ((4,), F32))
    outputs = {bsyms[0].output.name, bsyms[-1].output.name}
    prologue, core, epilogue = split_edges(bsyms, {a.name for a in args}, outputs)
    assert [b.sym.name for b in prologue] == ["reshape"]
    assert [b.sym.name for b in core] == ["broadcast_in_dim", "add"]
    assert [b.sym.name for b in epilogue] == ["permute"]


def test_a_view_of_an_input_needed_both_outside_and_by_the_core_is_made_in_both():
    def fn(a):
        x = prims.reshape(a, (32,))
        prims.exp(x)

    bsyms, args = record(fn, ((4, 8), F32))
    prologue, core, epilogue = split_edges(bsyms, {args[0].name}, {bsyms[0].output.name, bsyms[1].output.name})
    assert [b.sym.name for b in prologue] == ["reshape"] and [b.sym.name for b in core] == ["reshape", "exp"]


def test_a_shape_operation_feeding_the_core_stays_in_the_core():
    def fn(a):
        y = prims.exp(a)
        z = prims.reshape(y, (32,))
        prims.neg(z)

    bsyms, args = record(fn, ((4, 8), F32))
    prologue, core, epilogue = split_edges(bsyms, {a.name for a in args}, {bsyms[-1].output.name})
    assert (prologue, epilogue) == ([], []) and [b.sym.name for b in core] == ["exp", "reshape", "neg"]


def test_a_view_of_a_core_value_that_leaves_the_region_is_made_by_torch_too():
    def fn(a):
        y = prims.exp(a)
        t = prims.reshape(y, (32,))
        prims.neg(t)

    bsyms, args = record(fn, ((4, 8), F32))
    outputs = {b.output.name for b in bsyms}
    prologue, core, epilogue = split_edges(bsyms, {args[0].name}, outputs)
    assert [b.sym.name for b in core] == ["exp", "reshape", "neg"] and [b.sym.name for b in epilogue] == ["reshape"]


def test_with_options_gives_one_executor_per_set_of_options():
    assert ex.with_options(enable_matmul=True) is ex.with_options(enable_matmul=True)
    assert ex.with_options(enable_matmul=False) is ex
    assert ex.with_options(enable_matmul=True).options == NvFuserOptions(enable_matmul=True)
    with pytest.raises(TypeError, match="unknown nvfuser options"):
        ex.with_options(fast=True)


def test_a_reshape_that_only_adds_or_removes_length_one_dimensions_is_a_squeeze_and_a_broadcast():
    # the keepdim of a normalization's statistic: nvFuser 0.2.36 fails to compile it as a reshape (H100, 2026-12-08)
    plan, _ = plan_of(lambda a: ltorch.mul(prims.reshape(prims.sum(a, (1,)), (4, 1)), a), ((4, 8), F32))
    calls = [(c.fn, c.args[1:]) for c in plan.calls]
    assert "reshape" not in [fn for fn, _ in calls]
    assert ("broadcast_in_dim", ((4, 1), (0,))) in calls
    plan, _ = plan_of(lambda a: ltorch.mul(prims.reshape(a, (8,)), 2.0), ((1, 8), F32))
    assert [c.fn for c in plan.calls if c.fn in ("squeeze", "reshape", "broadcast_in_dim")] == ["squeeze"]
    plan, _ = plan_of(lambda a: ltorch.mul(prims.reshape(a, (1, 8, 1)), 2.0), ((8, 1), F32))
    assert [(c.fn, c.args[1:]) for c in plan.calls if c.fn in ("squeeze", "reshape", "broadcast_in_dim")] == [
        ("squeeze", ((1,),)), ("broadcast_in_dim", ((1, 8, 1), (1,)))]  # fmt: skip
    plan, _ = plan_of(lambda a: ltorch.mul(prims.reshape(a, (8, 4)), 2.0), ((4, 8), F32))
    assert "reshape" in [c.fn for c in plan.calls]
