"""Fusion partitioning (transforms/fusion.py) with a test fusion executor that fuses elementwise prims and runs
each region on the torch executor: which operations are fused, into which regions, with which outputs."""

from __future__ import annotations

import random

import pytest
import torch

import thunder
import thunder.torch as ltorch
from thunder.core.proxies import TensorProxy
from thunder.core.symbol import Symbol
from thunder.executors.torchex import ex as torchex
from thunder.extend import FusionExecutor, OperatorExecutor
from thunder.transforms.claim_operators import claim_operators
from thunder.transforms.fusion import fuse_regions


class ElementwiseFuser(FusionExecutor):
    """Fuses elementwise prims; a region runs as one Python function of torch calls."""

    def __init__(self):
        super().__init__("elementwise_fuser")
        self.regions = []

    def can_fuse(self, bsym) -> bool:
        return bsym.sym.is_prim and "elementwise" in bsym.sym.tags

    def fuse(self, region, fusion_index):
        self.regions.append(region)
        fn = claim_operators(region.as_trace(f"region{fusion_index}"), [torchex]).python_callable()
        sym = Symbol(f"Fused{fusion_index}", python_impl=fn, id=f"test.Fused{fusion_index}", tags=("fusion",))
        return sym.bind(*region.inputs, output=tuple(region.outputs), subsymbols=tuple(region.bound_symbols))


def fusion_trace(jfn):
    return next(t for t in thunder.last_traces(jfn) if t.provenance.startswith("fusion"))


def fusions(trace):
    return [b for b in trace.bound_symbols if "fusion" in b.sym.tags]


def ids(bsyms):
    return [b.sym.id for b in bsyms]


def test_a_chain_of_elementwise_ops_becomes_one_region():
    fuser = ElementwiseFuser()
    jf = thunder.jit(lambda x, y: ((x + y) * y).exp(), executors=[fuser])
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(jf(x, y), ((x + y) * y).exp())
    trace = fusion_trace(jf)
    assert len(trace.bound_symbols) == 1
    assert ids(trace.bound_symbols[0].subsymbols) == ["prims.add", "prims.mul", "prims.exp"]


def test_a_region_never_both_feeds_and_consumes_an_unfused_op():
    # exp feeds sum (not fusible) and div; sum feeds div: exp and div in one region would be a cycle
    fuser = ElementwiseFuser()

    def softmax(x):
        e = x.exp()
        return e / e.sum(-1, keepdim=True)

    jf = thunder.jit(softmax, executors=[fuser])
    x = torch.randn(3, 4)
    torch.testing.assert_close(jf(x), torch.softmax(x, -1))
    trace = fusion_trace(jf)
    assert [("fusion" in b.sym.tags, b.sym.id) for b in trace.bound_symbols] == [
        (True, "test.Fused0"), (False, "ltorch.sum"), (False, "prims.broadcast_in_dim"), (True, "test.Fused1"),
    ]  # fmt: skip
    assert ids(fuser.regions[0].bound_symbols) == ["prims.exp"]
    assert ids(fuser.regions[1].bound_symbols) == ["prims.div"]


def test_region_outputs_are_the_values_used_after_it():
    fuser = ElementwiseFuser()

    def f(x):
        c = x.exp()
        d = c + 1  # used only inside the region
        return d * 2, c.sum()

    jf = thunder.jit(f, executors=[fuser])
    x = torch.randn(3)
    for actual, expected in zip(jf(x), f(x)):
        torch.testing.assert_close(actual, expected)
    (region,) = fuser.regions
    exp, add, mul = region.bound_symbols
    assert [p.name for p in region.inputs] == ["x"]
    assert [p.name for p in region.outputs] == [exp.output.name, mul.output.name]


def test_independent_ops_that_read_a_common_value_share_a_region():
    fuser = ElementwiseFuser()
    jf = thunder.jit(lambda x, y: (x.exp(), (x * y).cumsum(0), x.sin()), executors=[fuser])
    x, y = torch.randn(3), torch.randn(3)
    for actual, expected in zip(jf(x, y), (x.exp(), (x * y).cumsum(0), x.sin())):
        torch.testing.assert_close(actual, expected)
    (region,) = fuser.regions
    assert ids(region.bound_symbols) == ["prims.exp", "prims.mul", "prims.sin"]


def test_operations_an_earlier_executor_claims_are_not_fused():
    claimer = OperatorExecutor("mul_claimer")
    mul = claimer.register_operator("mul", meta=lambda a, b: TensorProxy(like=a), fn=torch.mul)
    claimer.register_implementation(ltorch.mul, op=mul, checker=lambda a, b: isinstance(b, torch.Tensor))
    fuser = ElementwiseFuser()
    jf = thunder.jit(lambda x, y: ((x + y) * y).exp(), executors=[claimer, fuser])
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(jf(x, y), ((x + y) * y).exp())
    assert ids(fusion_trace(jf).bound_symbols) == ["test.Fused0", "ltorch.mul", "test.Fused1"]


def test_an_op_is_fused_through_its_decomposition_when_only_its_parts_are_fusible():
    fuser = ElementwiseFuser()
    jf = thunder.jit(lambda x: torch.relu(x) * 3, executors=[fuser])
    x = torch.randn(5)
    torch.testing.assert_close(jf(x), torch.relu(x) * 3)
    (fusion,) = fusion_trace(jf).bound_symbols
    assert all(b.sym.id.startswith("prims.") for b in fusion.subsymbols)


def test_an_op_without_fusible_parts_stays_whole():
    fuser = ElementwiseFuser()
    jf = thunder.jit(lambda x: (x * 2).cumsum(0), executors=[fuser])
    x = torch.randn(4)
    torch.testing.assert_close(jf(x), (x * 2).cumsum(0))
    assert ids(fusion_trace(jf).bound_symbols) == ["test.Fused0", "ltorch.cumsum"]


def test_groups_that_feed_a_common_unfused_op_share_a_region():
    fuser = ElementwiseFuser()
    jf = thunder.jit(lambda x, y: x.exp() @ y.sin(), executors=[fuser])
    x, y = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(jf(x, y), x.exp() @ y.sin())
    (region,) = fuser.regions
    assert ids(region.bound_symbols) == ["prims.exp", "prims.sin"]


def test_groups_that_feed_a_common_unfused_op_stay_apart_when_one_depends_on_the_other():
    # exp -> cumsum -> sin: one region holding exp and sin would both feed and consume cumsum
    fuser = ElementwiseFuser()

    def f(x):
        e = x.exp()
        return e @ torch.cumsum(e, 0).sin()

    jf = thunder.jit(f, executors=[fuser])
    x = torch.randn(3)
    torch.testing.assert_close(jf(x), f(x))
    assert [ids(r.bound_symbols) for r in fuser.regions] == [["prims.exp"], ["prims.sin"]]


def test_groups_that_read_results_of_a_common_unfused_op_share_a_region():
    # as the update of a norm weight whose gradient an unfused backward kernel returns beside its input's gradient
    fuser = ElementwiseFuser()

    def f(x):
        values, indices = torch.topk(x, 2)
        return values.exp(), indices * 3

    jf = thunder.jit(f, executors=[fuser])
    x = torch.randn(5)
    for actual, expected in zip(jf(x), f(x), strict=True):
        torch.testing.assert_close(actual, expected)
    (region,) = fuser.regions
    assert ids(region.bound_symbols) == ["prims.exp", "prims.mul"]


def _scaled_exp_operator(executor: OperatorExecutor, **how):
    return executor.register_operator("scaled_exp", fn=lambda a: a.exp() * 2, **how)


def test_an_executor_operator_is_fused_when_the_fusion_executor_accepts_it():
    scaled_exp = _scaled_exp_operator(OperatorExecutor("scaled_exp_ops"), meta=lambda a: TensorProxy(like=a),
                                      tags=("elementwise",))  # fmt: skip
    fuser = ElementwiseFuser()
    jf = thunder.jit(lambda x: scaled_exp(x + 1) * 3, executors=[fuser])
    x = torch.randn(4)
    torch.testing.assert_close(jf(x), (x + 1).exp() * 6)
    (region,) = fuser.regions
    assert ids(region.bound_symbols) == ["prims.add", "scaled_exp_ops.scaled_exp", "prims.mul"]


def test_an_executor_operator_the_fusion_executor_refuses_is_not_flattened():
    # its decomposition (exp, mul) is fusible, but the operator's own implementation is what must run
    scaled_exp = _scaled_exp_operator(OperatorExecutor("scaled_exp_like"), like=lambda a: a.exp() * 2)
    fuser = ElementwiseFuser()
    jf = thunder.jit(lambda x: scaled_exp(x + 1) * 3, executors=[fuser])
    x = torch.randn(4)
    torch.testing.assert_close(jf(x), (x + 1).exp() * 6)
    assert ids(fusion_trace(jf).bound_symbols) == ["test.Fused0", "scaled_exp_like.scaled_exp", "test.Fused1"]


def test_in_place_updates_are_not_reordered_with_reads_of_the_same_tensor():
    fuser = ElementwiseFuser()

    def f(x, y):
        z = x * 2
        x.add_(y)
        return z + x

    x, y = torch.randn(3), torch.randn(3)
    x_eager = x.clone()
    expected = f(x_eager, y)
    actual = thunder.jit(f, executors=[fuser])(x, y)
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(x, x_eager)


def test_progress_reports_each_region():
    fuser = ElementwiseFuser()

    def softmax(x):
        e = x.exp()
        return e / e.sum(-1, keepdim=True)

    jf = thunder.jit(softmax, executors=[fuser])
    jf(torch.randn(2, 2))
    messages = []
    fuse_regions(thunder.last_traces(jf)[0], fuser, [fuser, torchex], progress=messages.append)
    assert [m.split(" (")[0] for m in messages] == [
        "elementwise_fuser: compiling fusion region 1 of 2",
        "elementwise_fuser: compiling fusion region 2 of 2",
    ]


def test_a_fusion_executor_outside_the_executor_list_is_refused():
    jf = thunder.jit(lambda x: x + 1)
    jf(torch.randn(2))
    with pytest.raises(ValueError, match="not in the executor list"):
        fuse_regions(thunder.last_traces(jf)[0], ElementwiseFuser(), [torchex])


def _random_program(rng: random.Random, n_ops: int):
    """A random straight-line program over (4,)-shaped values mixing fusible and unfused operations."""
    steps = []
    for i in range(n_ops):
        a, b = rng.randrange(i + 2), rng.randrange(i + 2)  # any earlier value (two inputs first)
        steps.append((rng.choice(["add", "mul", "tanh", "cumsum", "flip", "cat"]), a, b))

    def program(x, y):
        values = [x, y]
        for op, a, b in steps:
            va, vb = values[a], values[b]
            if op == "add":
                values.append(va + vb)
            elif op == "mul":
                values.append(va * vb * 0.5)
            elif op == "tanh":
                values.append(torch.tanh(va))
            elif op == "cumsum":
                values.append(torch.cumsum(va, 0) * 0.1)
            elif op == "cat":  # unfused, with two inputs
                values.append(torch.cat([va, vb])[2:6])
            else:
                values.append(torch.flip(va, (0,)))
        return values[-3:]

    return program


@pytest.mark.parametrize("seed", range(8))
def test_random_programs_partition_into_a_valid_program(seed):
    program = _random_program(random.Random(seed), 40)
    x, y = torch.randn(4), torch.randn(4)
    fuser = ElementwiseFuser()
    actual = thunder.jit(program, executors=[fuser])(x, y)
    for a, e in zip(actual, program(x, y)):
        torch.testing.assert_close(a, e)
    assert fuser.regions
