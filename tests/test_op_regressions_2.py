"""Regressions found by PyTorch's OpInfo samples (issue #26), each checked against torch eager / torch.autograd.

Every case runs under thunder.jit twice: with the default executors (the torch executor runs a `thunder.torch`
symbol whole) and decomposed into prims, differentiated by each symbol's own rule (what every other executor
sees). Outputs must match eager's values, shapes, dtypes and requires_grad; gradients must match
torch.autograd's for a random cotangent, and be None exactly where eager's are None.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F
from ops.opdb import DECOMPOSE_TO_PRIMS, own_rules_only

import thunder
from thunder.core.pytree import tree_flatten

# label -> (the `executors=` argument of thunder.jit, differentiate by the symbols' own rules only)
VARIANTS = {"torch": (None, False), "prims": ([DECOMPOSE_TO_PRIMS], True)}


def _inputs(args, requires_grad: bool, frozen=()):
    """Clones of args; floating tensors require grad when `requires_grad`, but those at the `frozen` positions."""

    def clone(i, x):
        if not isinstance(x, torch.Tensor):
            return x
        y = x.detach().clone()
        return y.requires_grad_(requires_grad and i not in frozen and (y.is_floating_point() or y.is_complex()))

    return [clone(i, a) for i, a in enumerate(args)]


def _assert_same(actual, expected, what: str, tol: dict) -> None:
    actual_leaves, actual_spec = tree_flatten(actual)
    expected_leaves, expected_spec = tree_flatten(expected)
    assert actual_spec == expected_spec, f"{what}: structure {actual_spec} != eager's {expected_spec}"
    for i, (a, e) in enumerate(zip(actual_leaves, expected_leaves)):
        if e is None:
            assert a is None, f"{what} [{i}]: eager gives None, the jitted function a {type(a).__name__}"
        elif isinstance(e, torch.Tensor):
            assert isinstance(a, torch.Tensor), f"{what} [{i}]: eager gives a tensor, the jitted function {a!r}"
            assert a.requires_grad == e.requires_grad, f"{what} [{i}]: requires_grad {a.requires_grad}, eager's {e.requires_grad}"
            torch.testing.assert_close(a.detach(), e.detach(), equal_nan=True, msg=lambda m, i=i: f"{what} [{i}]: {m}", **tol)
        else:
            assert a == e, f"{what} [{i}]: {a!r} != eager's {e!r}"


def assert_matches_eager(fn: Callable, *args, grads: bool = True, tol: dict | None = None, variants=VARIANTS,
                         frozen=()) -> None:  # fmt: skip
    """fn(*args) jitted gives eager's outputs and, with `grads`, torch.autograd's gradients of every floating input
    (None where eager's is None; the inputs at the `frozen` positions do not require grad) for a random cotangent
    of every output that requires grad."""
    tol = tol or {}
    expected_inputs = _inputs(args, grads, frozen)
    expected = fn(*expected_inputs)
    outputs = [o for o in tree_flatten(expected)[0] if isinstance(o, torch.Tensor) and o.requires_grad]
    cotangents = [torch.randn_like(o) for o in outputs]
    differentiable = [x for x in expected_inputs if isinstance(x, torch.Tensor) and x.requires_grad]
    expected_grads = torch.autograd.grad(outputs, differentiable, cotangents, allow_unused=True) if outputs else ()
    for label, (executors, own_rules) in variants.items():
        inputs = _inputs(args, grads, frozen)
        with own_rules_only() if own_rules else nullcontext():
            actual = thunder.jit(fn, executors=executors)(*inputs)
        _assert_same(actual, expected, f"result ({label})", tol)
        if outputs:
            actual_outputs = [o for o in tree_flatten(actual)[0] if isinstance(o, torch.Tensor) and o.requires_grad]
            leaves = [x for x in inputs if isinstance(x, torch.Tensor) and x.requires_grad]
            actual_grads = torch.autograd.grad(actual_outputs, leaves, cotangents, allow_unused=True)
            _assert_same(list(actual_grads), list(expected_grads), f"gradients ({label})", tol)


def make(*shape, dtype=torch.float32):
    return torch.randn(shape, dtype=dtype)


# -- positional overloads: torch picks an overload by the types of the positional arguments --------------------
def _overload_cases():
    x, y, b = make(4, 5), make(4, 5), make(4, 5) > 0
    x3 = make(2, 4, 6)
    idx = torch.randint(0, 5, (4, 5))
    cases = []
    for name in ("var", "std", "var_mean", "std_mean"):
        op = getattr(torch, name)
        cases += [
            (f"{name}(x, True)", lambda x, op=op: op(x, True), (x,)),
            (f"{name}(x, False)", lambda x, op=op: op(x, False), (x,)),
            (f"{name}(x, 1)", lambda x, op=op: op(x, 1), (x,)),
            (f"{name}(x, 1, False)", lambda x, op=op: op(x, 1, False), (x,)),
            (f"{name}(x, 0, True, True)", lambda x, op=op: op(x, 0, True, True), (x,)),
            (f"{name}(x, [0, 1], False, True)", lambda x, op=op: op(x, [0, 1], False, True), (x,)),
            (f"{name}(x, 1, correction=0, keepdim=True)", lambda x, op=op: op(x, 1, correction=0, keepdim=True), (x,)),
            (f"{name}(x, unbiased=False)", lambda x, op=op: op(x, unbiased=False), (x,)),
        ]
    for name in ("var", "std"):
        cases += [
            (f"x.{name}(True)", lambda x, name=name: getattr(x, name)(True), (x,)),
            (f"x.{name}(False)", lambda x, name=name: getattr(x, name)(False), (x,)),
            (f"x.{name}(1, False, True)", lambda x, name=name: getattr(x, name)(1, False, True), (x,)),
        ]
    cases += [
        ("sum(x, 1, True)", lambda x: torch.sum(x, 1, True), (x,)),
        ("x.sum(1, True)", lambda x: x.sum(1, True), (x,)),
        ("mean(x, (0, 1), True)", lambda x: torch.mean(x, (0, 1), True), (x,)),
        ("prod(x, 1, True)", lambda x: torch.prod(x, 1, True), (x,)),
        ("all(b, 1, True)", lambda b: torch.all(b, 1, True), (b,)),
        ("any(b, 0, True)", lambda b: b.any(0, True), (b,)),
        ("max(x)", lambda x: torch.max(x), (x,)),
        ("max(x, 1)", lambda x: torch.max(x, 1), (x,)),
        ("max(x, 1, True)", lambda x: torch.max(x, 1, True), (x,)),
        ("max(x, y)", lambda x, y: torch.max(x, y), (x, y)),
        ("x.min(y)", lambda x, y: x.min(y), (x, y)),
        ("x.min(0, True)", lambda x: x.min(0, True), (x,)),
        ("median(x)", lambda x: torch.median(x), (x,)),
        ("median(x, 1, True)", lambda x: torch.median(x, 1, True), (x,)),
        ("sort(x, 0, True)", lambda x: torch.sort(x, 0, True), (x,)),
        ("x.sort(1, True)", lambda x: x.sort(1, True), (x,)),
        ("argsort(x, 0, True)", lambda x: torch.argsort(x, 0, True), (x,)),
        ("topk(x, 2, 0, False)", lambda x: torch.topk(x, 2, 0, False), (x,)),
        ("norm(x, 1)", lambda x: torch.norm(x, 1), (x,)),
        ("norm(x, 3, 1, True)", lambda x: torch.norm(x, 3, 1, True), (x,)),
        ("x.norm(2, 0)", lambda x: x.norm(2, 0), (x,)),
        ("scatter(x, 1, idx, y)", lambda x, i, y: torch.scatter(x, 1, i, y), (x, idx, y)),
        ("scatter(x, 1, idx, 2.5)", lambda x, i: torch.scatter(x, 1, i, 2.5), (x, idx)),
        ("select(x, 1, 2)", lambda x: torch.select(x, 1, 2), (x,)),
        ("split(x, 2, 1)", lambda x: torch.split(x, 2, 1), (x,)),
        ("split(x, [1, 4], 1)", lambda x: torch.split(x, [1, 4], 1), (x,)),
        ("x.split([1, 3])", lambda x: x.split([1, 3]), (x,)),
        ("tensor_split(x, 3, 1)", lambda x: torch.tensor_split(x, 3, 1), (x,)),
        ("tensor_split(x, [1, 3], 1)", lambda x: torch.tensor_split(x, [1, 3], 1), (x,)),
        ("hsplit(x, 5)", lambda x: torch.hsplit(x, 5), (x,)),
        ("hsplit(x, [1, 3])", lambda x: torch.hsplit(x, [1, 3]), (x,)),
        ("vsplit(x, [1])", lambda x: torch.vsplit(x, [1]), (x,)),
        ("dsplit(x3, 3)", lambda x: torch.dsplit(x, 3), (x3,)),
        ("dsplit(x3, [2, 5])", lambda x: torch.dsplit(x, [2, 5]), (x3,)),
        ("repeat_interleave(x, 2, 0)", lambda x: torch.repeat_interleave(x, 2, 0), (x,)),
        ("squeeze(x3[:1])", lambda x: torch.squeeze(x[:1]), (x3,)),
        ("squeeze(x3[:1], 0)", lambda x: torch.squeeze(x[:1], 0), (x3,)),
        ("squeeze(x3[:1, :1], (0, 1))", lambda x: torch.squeeze(x[:1, :1], (0, 1)), (x3,)),
        ("x.view(2, -1)", lambda x: x.view(2, -1), (x,)),
        ("x.view((5, 4))", lambda x: x.view((5, 4)), (x,)),
        ("x.to(torch.float64)", lambda x: x.to(torch.float64), (x,)),
        ("x.to(y.device, torch.float64)", lambda x, y: x.to(y.device, torch.float64), (x, y)),
        ("x.to(y.double())", lambda x, y: x.to(y.double()), (x, y)),
        ("x.to(torch.float64, False, True)", lambda x: x.to(torch.float64, False, True), (x,)),
        ("arange(5) + x[0]", lambda x: torch.arange(5) + x[0], (x,)),
        ("arange(1, 6) + x[0]", lambda x: torch.arange(1, 6) + x[0], (x,)),
        ("arange(1, 10, 2) + x[0]", lambda x: torch.arange(1, 10, 2) + x[0], (x,)),
        ("eye(4) @ x", lambda x: torch.eye(4) @ x, (x,)),
        ("eye(4, 5) * x", lambda x: torch.eye(4, 5) * x, (x,)),
        ("add(x, y, alpha=2)", lambda x, y: torch.add(x, y, alpha=2), (x, y)),
        ("x.sub(y, alpha=0.5)", lambda x, y: x.sub(y, alpha=0.5), (x, y)),
        ("pow(2, x)", lambda x: torch.pow(2, x), (x,)),
        ("pow(x, 2)", lambda x: torch.pow(x, 2), (x,)),
        ("remainder(2, x)", lambda x: torch.remainder(2, x.detach()), (x,)),  # eager has no derivative here
        ("clamp(x, None, 0.5)", lambda x: torch.clamp(x, None, 0.5), (x,)),
        ("clamp(x, y)", lambda x, y: torch.clamp(x, y), (x, y)),
        ("where(b, x, 2.0)", lambda b, x: torch.where(b, x, 2.0), (b, x)),
        ("lerp(x, y, 0.3)", lambda x, y: torch.lerp(x, y, 0.3), (x, y)),
        ("flatten(x3, 1)", lambda x: torch.flatten(x, 1), (x3,)),
        ("x3.permute(2, 0, 1)", lambda x: x.permute(2, 0, 1), (x3,)),
        ("x3.permute((2, 0, 1))", lambda x: x.permute((2, 0, 1)), (x3,)),
        ("x.expand(3, 4, 5)", lambda x: x.expand(3, 4, 5), (x,)),
        ("x.repeat(2, 1)", lambda x: x.repeat(2, 1), (x,)),
        ("x.reshape(5, 4)", lambda x: x.reshape(5, 4), (x,)),
        ("x.new_zeros(2, 3) + x[0, :3]", lambda x: x.new_zeros(2, 3) + x[0, :3], (x,)),
        ("x.flip(0)", lambda x: x.flip(0), (x,)),
        ("cumsum(x, 0, dtype=float64)", lambda x: torch.cumsum(x, 0, dtype=torch.float64), (x,)),
        ("div(x, y, rounding_mode='floor')", lambda x, y: torch.div(x, y, rounding_mode="floor"), (x, y)),
    ]
    return cases


@pytest.mark.parametrize("label,fn,args", [pytest.param(*c, id=c[0]) for c in _overload_cases()])
def test_positional_overload_matches_eager(label, fn, args, device):
    args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
    assert_matches_eager(fn, *args)


# -- OpInfo samples: PyTorch's own sample inputs for the operators of issue #26 ------------------------------
def opinfo_samples(name: str, device, dtype=torch.float32, select=None):
    """(fn, args) for every sample of the OpInfo `name` ("op" or "op.variant") that `select(sample)` accepts: fn
    calls the op with the sample's keyword arguments, args are its positional ones."""
    from torch.testing._internal.common_methods_invocations import op_db

    matches = [o for o in op_db if f"{o.name}.{o.variant_test_name}".removesuffix(".") == name]
    assert matches, f"no OpInfo named {name}"
    (opinfo,) = matches
    for sample in opinfo.sample_inputs(device, dtype, requires_grad=False):
        if select is not None and not select(sample):
            continue
        fn = lambda *args, op=opinfo.op, kwargs=sample.kwargs: op(*args, **kwargs)
        yield fn, (sample.input, *sample.args)


def assert_opinfo_matches_eager(name: str, device, dtype=torch.float32, grads: bool = True, tol=None,
                                select=None, variants=VARIANTS, frozen=()) -> None:  # fmt: skip
    for i, (fn, args) in enumerate(opinfo_samples(name, device, dtype, select)):
        try:
            assert_matches_eager(fn, *args, grads=grads, tol=tol, variants=variants, frozen=frozen)
        except Exception as e:
            shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else a for a in args]
            raise AssertionError(f"{name} sample {i} {shapes}: {e}") from e


# -- gradients of inputs eager does not differentiate: None, as eager's -----------------------------------------
def _order_zero(sample) -> bool:
    return 0 in (*sample.args[:1], sample.kwargs.get("ord"))


@pytest.mark.parametrize(
    "name,select",
    [("nn.functional.cosine_embedding_loss", None), ("nn.functional.hinge_embedding_loss", None),
     ("nn.functional.margin_ranking_loss", None), ("linalg.norm", _order_zero),
     ("linalg.norm.subgradients_at_zero", _order_zero), ("linalg.vector_norm", _order_zero),
     ("linalg.matrix_power", None)],
)  # fmt: skip
def test_opinfo_gradients_none_where_eager(name, select, device):
    assert_opinfo_matches_eager(name, device, select=select)


def test_loss_target_gets_no_gradient(device):
    x, y = make(5, 4).to(device), make(5, 4).to(device)
    target = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], device=device)
    assert_matches_eager(lambda x, y, t: F.cosine_embedding_loss(x, y, t, margin=0.2), x, y, target)
    assert_matches_eager(lambda x, t: F.hinge_embedding_loss(x, t, reduction="sum"), x[:, 0], target)


def test_output_of_only_undifferentiated_inputs_does_not_require_grad(device):
    x = make(5).to(device)
    target = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], device=device, requires_grad=True)
    fn = lambda x, t: F.hinge_embedding_loss(x, t)
    assert thunder.jit(fn)(x, target).requires_grad == fn(x, target).requires_grad


@pytest.mark.parametrize("ord", [0, 0.0])
def test_norm_of_order_zero_has_no_gradient(ord, device):
    x = make(3, 4).to(device)
    assert_matches_eager(lambda x: torch.linalg.norm(x, ord, dim=1), x)
    assert_matches_eager(lambda x: torch.linalg.vector_norm(x, ord), x)


@pytest.mark.parametrize("n", [0, 1, 3, -1, -2])
def test_matrix_power_gradient(n, device):
    x = (make(2, 3, 3, dtype=torch.float64) + 3 * torch.eye(3, dtype=torch.float64)).to(device)
    assert_matches_eager(lambda x: torch.linalg.matrix_power(x, n), x)
    assert_matches_eager(lambda x: x.matrix_power(n), x)


# -- precision: gradients and accumulation as eager computes them -----------------------------------------------
# the decomposition into prims computes a product and a sum apart (addmm), or a scan (logcumsumexp), which rounds
# differently than torch's kernel: it is held to float32 precision, the torch executor (running torch's kernel for
# the forward, and eager's formula for the backward) to eager's numbers
FUSED_KERNEL_ONLY = {"torch": VARIANTS["torch"]}
DECOMPOSED_ONLY = {"prims": VARIANTS["prims"]}
FLOAT32_PRECISION = {"rtol": 1e-4, "atol": 1e-5}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opinfo_logcumsumexp_gradient_matches_eager(dtype, device):
    # (samples with values of 1e4, where a float32 ulp of the forward is 1e-3: only the torch kernel's forward
    # gives eager's gradient to float32 tolerance)
    assert_opinfo_matches_eager("logcumsumexp", device, dtype, variants=FUSED_KERNEL_ONLY)


@pytest.mark.parametrize("variants,tol", [(FUSED_KERNEL_ONLY, None), (DECOMPOSED_ONLY, FLOAT32_PRECISION)])
def test_logcumsumexp_gradient_with_large_and_infinite_values(variants, tol, device):
    x = torch.tensor([[-1e4, 3.0, 80.0, -math.inf], [0.0, 1.0, 2.0, 3.0]], device=device)
    assert_matches_eager(lambda x: torch.logcumsumexp(x, 1), x, variants=variants, tol=tol)
    assert_matches_eager(lambda x: x.logcumsumexp(0), make(40, 3).to(device) * 10, variants=variants, tol=tol)


@pytest.mark.parametrize("name", ["addbmm", "addmm", "baddbmm"])
def test_opinfo_add_and_multiply_accumulates_as_eager(name, device):
    assert_opinfo_matches_eager(name, device, variants=FUSED_KERNEL_ONLY)
    assert_opinfo_matches_eager(name, device, variants=DECOMPOSED_ONLY, tol=FLOAT32_PRECISION)


def test_addbmm_accumulates_batches_as_eager(device):
    bias, batch1, batch2 = make(8, 6).to(device), make(48, 8, 40).to(device), make(48, 40, 6).to(device)
    for fn in (torch.addbmm, lambda b, x, y: b.addbmm(x, y, beta=0.5, alpha=2.0)):
        assert_matches_eager(fn, bias, batch1, batch2, tol={"rtol": 0, "atol": 0}, variants=FUSED_KERNEL_ONLY)
        assert_matches_eager(fn, bias, batch1, batch2, tol={"rtol": 1e-5, "atol": 1e-4}, variants=DECOMPOSED_ONLY)


# -- overwriting a tensor that requires grad: the result still requires grad, with a zero gradient -------------
def test_opinfo_zero_(device):
    assert_opinfo_matches_eager("zero_", device)


@pytest.mark.parametrize(
    "fn",
    [lambda x: x.clone().zero_(), lambda x: torch.zero_(x * 2), lambda x: (x * 2)[1:].zero_(),
     lambda x: (x * 2).fill_(3.0), lambda x: (x * 2).zero_() + x, lambda x: x.clone().zero_().sum()],
    ids=["clone.zero_", "torch.zero_", "view.zero_", "fill_", "zero_+x", "zero_.sum"],
)  # fmt: skip
def test_overwrite_keeps_requires_grad(fn, device):
    assert_matches_eager(fn, make(4, 3).to(device))


# -- dispatch: every torch callable runs as itself, even where two share a Python name --------------------------
@pytest.mark.parametrize(
    "name", ["nn.functional.adaptive_max_pool1d", "nn.functional.adaptive_max_pool2d",
             "nn.functional.adaptive_max_pool3d", "mH", "H", "mT"]
)  # fmt: skip
def test_opinfo_dispatch(name, device):
    assert_opinfo_matches_eager(name, device)


def test_functions_made_by_one_factory_run_as_themselves(device):
    # F.max_pool1d/2d/3d and F.adaptive_max_pool1d/2d/3d are each made by torch's boolean_dispatch, under one
    # __qualname__; the 1-d one traced first must not stand in for the others
    adaptive = ((F.adaptive_max_pool1d, (2, 3, 8)), (F.adaptive_max_pool2d, (2, 3, 8, 6)),
                (F.adaptive_max_pool3d, (1, 2, 4, 6, 4)))  # fmt: skip
    for pool, shape in adaptive:
        assert_matches_eager(lambda x, pool=pool: pool(x, 3), make(*shape).to(device))
    for pool, shape in ((F.max_pool1d, (2, 3, 8)), (F.max_pool2d, (2, 3, 8, 6)), (F.max_pool3d, (1, 2, 4, 6, 4))):
        assert_matches_eager(lambda x, pool=pool: pool(x, 2, return_indices=True), make(*shape).to(device))


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_property_getters_run_as_themselves(dtype, device):
    x = make(2, 3, 4, dtype=dtype).to(device)
    assert_matches_eager(lambda x: (x.mT, x.mH), x)
    assert_matches_eager(lambda x: (x[0].H, x[0].T, x.mH), x)
    assert_matches_eager(lambda x: x.mH.adjoint(), x)


# -- inputs eager accepts ------------------------------------------------------------------------------------
def _stride_or_padding_of_one_element(sample) -> bool:
    return any(isinstance(a, (tuple, list)) and len(a) < 2 for a in sample.args[1:3])


@pytest.mark.parametrize(
    "name,select,frozen",
    [("nn.functional.avg_pool2d", _stride_or_padding_of_one_element, ()),
     ("nn.functional.max_pool2d", _stride_or_padding_of_one_element, ()),
     ("nn.functional.batch_norm", lambda sample: sample.input.numel() == 0, (1, 2)),  # (running statistics)
     ("index_fill", None, ()), ("index_copy", None, ()), ("index_add", None, ()), ("tensordot", None, ())],
)  # fmt: skip
def test_opinfo_inputs_eager_accepts(name, select, frozen, device):
    assert_opinfo_matches_eager(name, device, select=select, frozen=frozen)


def test_int_pair_arguments_of_one_element(device):
    # torch reads an int[2] argument given as one element as that element twice (avg_pool2d(x, 3, (1,), (1,)))
    x = make(2, 3, 9, 8).to(device)
    assert_matches_eager(lambda x: F.avg_pool2d(x, (3, 3), (1,), (1,), True, False, 2), x)
    assert_matches_eager(lambda x: F.max_pool2d(x, (3,), (2,), [1]), x)
    assert_matches_eager(lambda x, w: F.conv2d(x, w, stride=(2,), padding=[1], dilation=(1,)), x, make(4, 3, 3, 3).to(device))


def test_adaptive_pool_rejects_output_size_of_wrong_length_as_eager(device):
    with pytest.raises(RuntimeError, match="output_size must be 2"):
        thunder.jit(lambda x: F.adaptive_avg_pool2d(x, (3,)))(make(1, 2, 6, 6).to(device))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_of_an_empty_input(training, device):
    running = torch.zeros(0, device=device), torch.ones(0, device=device)
    assert_matches_eager(lambda x, m, v: F.batch_norm(x, m, v, training=training), make(0).to(device), *running)
    weight, bias = make(3).to(device), make(3).to(device)
    stats = torch.zeros(3, device=device), torch.ones(3, device=device)
    fn = lambda x, w, b, m, v: F.batch_norm(x, m, v, w, b, training=training)
    assert_matches_eager(fn, make(0, 3, 4).to(device), weight, bias, *stats)


def test_index_ops_on_zero_dim_tensors(device):
    x, index, source = make().to(device), torch.tensor([0], device=device), make().to(device)
    assert_matches_eager(lambda x: x.index_fill(0, index, -2.5), x)
    assert_matches_eager(lambda x, v: x.index_fill(-1, torch.tensor(0, device=device), v), x, source)
    assert_matches_eager(lambda x, s: x.index_copy(0, index, s), x, source)
    assert_matches_eager(lambda x, s: torch.index_add(x, 0, index, s, alpha=2), x, source)
    assert_matches_eager(lambda x: x.clone().index_fill_(0, index, 4.0), x)


def test_index_fill_value_gradient_counts_a_repeated_index_once(device):
    x, value = make(5, 4).to(device), make().to(device)
    index = torch.tensor([1, 3, 1, 4, 3], device=device)
    assert_matches_eager(lambda x, v: x.index_fill(-1, index[:3], v), x, value)
    assert_matches_eager(lambda x, v: torch.index_fill(x, 0, index, v), x, value)
    assert_matches_eager(lambda x: x.long().index_fill(0, index, 7), x)


@pytest.mark.parametrize(
    "dims", [([0, 1], [2, 0]), [[1], [0]], ((1, 0), (0, 1)), 1, [[], []]], ids=["lists", "list of lists", "tuples", "int", "empty"]
)
def test_tensordot_dims_forms_and_length_one_contractions(dims, device):
    a, b = make(3, 1, 2).to(device), make(2, 3, 3).to(device)
    if dims == 1 or dims == [[], []]:
        a = make(3, 2).to(device)
    assert_matches_eager(lambda a, b: torch.tensordot(a, b, dims), a, b)


# -- torch.manual_seed inside a jitted function: part of the program, reseeding on every call as eager does -----
def _seeded_draws(x):
    torch.manual_seed(1234)
    noise = torch.randn(x.shape, device=x.device)
    return x + noise, torch.rand(3, device=x.device), F.dropout(x, 0.5)


def test_manual_seed_inside_reseeds_every_call_as_eager(device):
    x = make(4, 5).to(device)
    expected = [_seeded_draws(x), _seeded_draws(x)]
    jitted = thunder.jit(_seeded_draws)
    actual = [jitted(x), jitted(x)]
    for e, a in zip(expected, actual):
        for et, at in zip(e, a):
            torch.testing.assert_close(at, et, rtol=0, atol=0)
    after_eager = (_seeded_draws(x), torch.rand(2, device=device))[1]
    jitted(x)
    assert torch.equal(torch.rand(2, device=device), after_eager), "the generator's state after the call differs"


def test_manual_seed_from_a_global_recompiles_when_it_changes(device):
    x = make(3).to(device)
    seeds = {"seed": 0}

    def fn(x):
        torch.manual_seed(seeds["seed"])
        return x + torch.rand(3, device=x.device)

    jitted = thunder.jit(fn)
    for seed in (0, 7):
        seeds["seed"] = seed
        torch.testing.assert_close(jitted(x), fn(x), rtol=0, atol=0)


def test_saving_and_restoring_the_rng_state_inside_as_eager(device):
    from torch.testing._utils import freeze_rng_state

    def fn(x):  # what PyTorch's OpInfos for random ops run (wrapper_set_seed)
        with freeze_rng_state():
            torch.manual_seed(42)
            return x + torch.randn(x.shape, device=x.device)

    x = make(4).to(device)
    jitted = thunder.jit(fn)
    for _ in range(2):
        torch.manual_seed(0)
        expected, expected_after = fn(x), torch.rand(3, device=device)
        torch.manual_seed(0)
        actual, actual_after = jitted(x), torch.rand(3, device=device)
        torch.testing.assert_close(actual, expected, rtol=0, atol=0)
        torch.testing.assert_close(actual_after, expected_after, rtol=0, atol=0)


def test_opinfo_random_ops_seeded_inside_match_eager(device):
    for name in ("randn", "rand_like", "nn.functional.dropout"):
        assert_opinfo_matches_eager(name, device, grads=False, variants=FUSED_KERNEL_ONLY)


def test_other_rng_state_setters_are_refused_with_the_way_out(device):
    def fn(x):
        torch.seed()
        return x * 2

    with pytest.raises(NotImplementedError, match="torch.seed inside a jitted function is not supported.*manual_seed"):
        thunder.jit(fn)(make(3).to(device))
    assert torch.seed.__module__ == "torch.random" and torch.get_rng_state.__module__ == "torch.random"


# -- sparse inputs: a clear error naming the argument -------------------------------------------------------------
@pytest.mark.parametrize("layout", ["coo", "csr", "csc"])
def test_sparse_argument_is_refused_by_name(layout, device):
    dense = torch.eye(3, device=device)
    sparse = {"coo": dense.to_sparse, "csr": dense.to_sparse_csr, "csc": dense.to_sparse_csc}[layout]()
    jitted = thunder.jit(lambda a, b: a + b)
    with pytest.raises(NotImplementedError, match="sparse tensors are not supported: argument 1 "):
        jitted(dense, sparse)
    jitted(dense, dense)  # with a cached entry for dense arguments too
    with pytest.raises(NotImplementedError, match="sparse tensors are not supported: argument 'b' "):
        jitted(dense, b=sparse)
    with pytest.raises(NotImplementedError, match="sparse tensors are not supported: argument 1 "):
        jitted(dense, sparse)


# -- factories: requires_grad=False accepted everywhere, requires_grad=True refused with the way out --------------
def test_opinfo_scalar_tensor(device):
    assert_opinfo_matches_eager("scalar_tensor", device)


@pytest.mark.parametrize(
    "factory",
    [lambda d: torch.scalar_tensor(2.0, requires_grad=False, device=d), lambda d: torch.zeros(3, requires_grad=False, device=d),
     lambda d: torch.full((3,), 2.0, requires_grad=False, device=d), lambda d: torch.arange(3.0, requires_grad=False, device=d)],
    ids=["scalar_tensor", "zeros", "full", "arange"],
)  # fmt: skip
def test_factory_with_requires_grad_false(factory, device):
    assert_matches_eager(lambda x: x * factory(x.device), make(3).to(device))


def test_factory_with_requires_grad_true_is_refused_with_the_way_out(device):
    fn = lambda x: x * torch.scalar_tensor(2.0, requires_grad=True, device=x.device)
    with pytest.raises(NotImplementedError, match=r"scalar_tensor\(\.\.\., requires_grad=True\).*Create the tensor outside"):
        thunder.jit(fn)(make(3).to(device))
