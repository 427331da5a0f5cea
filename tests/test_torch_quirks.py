"""Eager behaviours that tracing must keep: torch code paths that read tensor data or drop arguments on their way
to `__torch_function__` (BatchNorm's cumulative moving average with `momentum=None`, `F.l1_loss(weight=)`), and
objects passed in that the program updates (a cache allocating its tensors on first use)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import thunder


@pytest.mark.parametrize(
    "module, shape",
    [(torch.nn.BatchNorm1d(3, momentum=None), (6, 3)), (torch.nn.BatchNorm2d(3, momentum=None), (4, 3, 2, 2))],
    ids=["BatchNorm1d", "BatchNorm2d"],
)
def test_batch_norm_cumulative_average_matches_eager(module, shape):
    torch.manual_seed(0)
    reference = copy.deepcopy(module)
    jitted = thunder.jit(module)
    for step in range(3):
        x = torch.randn(*shape, requires_grad=True)
        x_ref = x.detach().requires_grad_()
        out, expected = jitted(x), reference(x_ref)
        torch.testing.assert_close(out, expected)
        (g,) = torch.autograd.grad(out.square().sum(), x)
        (g_ref,) = torch.autograd.grad(expected.square().sum(), x_ref)
        torch.testing.assert_close(g, g_ref)
        # the running statistics are the average of every batch so far, and the count is the module's own buffer
        torch.testing.assert_close(module.running_mean, reference.running_mean)
        torch.testing.assert_close(module.running_var, reference.running_var)
        assert module.num_batches_tracked.item() == reference.num_batches_tracked.item() == step + 1
    assert thunder.cache_misses(jitted) == 1, "the count is a tensor: one compilation serves every step"


def test_batch_norm_cumulative_average_in_eval_mode_uses_the_running_statistics():
    module = torch.nn.BatchNorm1d(3, momentum=None)
    module(torch.randn(5, 3))  # eager training step: statistics to read
    module.eval()
    x = torch.randn(4, 3)
    torch.testing.assert_close(thunder.jit(module)(x), copy.deepcopy(module)(x))


def test_batch_norm_forward_is_torchs_own_outside_tracing():
    original = torch.nn.modules.batchnorm._BatchNorm.forward
    thunder.jit(torch.nn.BatchNorm1d(3, momentum=None))(torch.randn(4, 3))
    assert torch.nn.modules.batchnorm._BatchNorm.forward is original


def _eager_without_modes(fn, *args):
    """`fn` run eagerly with no TorchFunctionMode on: under one (torch.set_default_device's, which --device cuda
    uses) torch's l1_loss hands its call on without `weight` and computes the unweighted loss, a torch bug the
    jitted function does not copy."""
    with torch._C.DisableTorchFunction():
        return fn(*args)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_l1_loss_weight_matches_eager(reduction):
    # torch's F.l1_loss leaves `weight` out of its __torch_function__ call: the weighted loss must still be computed
    x, y, w = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4), torch.rand(3, 4)

    def fn(x, y, w):
        return F.l1_loss(x, y, reduction=reduction, weight=w)

    out, expected = thunder.jit(fn)(x, y, w), _eager_without_modes(fn, x, y, w)
    torch.testing.assert_close(out, expected)
    (g,) = torch.autograd.grad(out.sum(), x)
    (g_ref,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_l1_loss_weight_captured_from_the_enclosing_scope_matches_eager():
    w = torch.rand(2, 5)
    x, y = torch.randn(2, 5), torch.randn(2, 5)

    def fn(x, y):
        return F.l1_loss(x, y, weight=w)

    torch.testing.assert_close(thunder.jit(fn)(x, y), _eager_without_modes(fn, x, y))


def test_l1_loss_weight_of_another_shape_raises_like_eager():
    x, y, w = torch.randn(3, 4), torch.randn(3, 4), torch.rand(4)
    with pytest.raises(ValueError, match="same size"):
        _eager_without_modes(lambda: F.l1_loss(x, y, weight=w))
    with pytest.raises(ValueError, match="same size"):
        thunder.jit(lambda x, y, w: F.l1_loss(x, y, weight=w))(x, y, w)


# -- objects passed in (torch pytree nodes) that the program updates ----------------------------------------
class LazyBuffer:
    """A cache-like object: allocates its tensor on first use and rebinds it on every update."""

    def __init__(self):
        self.state = None
        self.count = 0
        self.history = []


torch.utils._pytree.register_pytree_node(
    LazyBuffer,
    lambda b: ([b.state, *b.history], (b.count, len(b.history), b.state is None)),
    lambda leaves, ctx: _rebuild_lazy_buffer(leaves, ctx),
)


def _rebuild_lazy_buffer(leaves, ctx):
    b = LazyBuffer.__new__(LazyBuffer)
    b.state, b.history, b.count = leaves[0], list(leaves[1:]), ctx[0]
    return b


def _accumulate(x, buffer):
    if buffer.state is None:
        buffer.state = torch.zeros_like(x)
    buffer.state = buffer.state + x
    buffer.count += 1
    buffer.history.append(x * 2)
    return buffer.state.sum()


def test_object_passed_in_is_updated_like_eager():
    jitted = thunder.jit(_accumulate)
    eager_buffer, buffer = LazyBuffer(), LazyBuffer()
    for _ in range(3):
        x = torch.randn(3)
        torch.testing.assert_close(jitted(x, buffer), _accumulate(x, eager_buffer))
        assert buffer.count == eager_buffer.count
        torch.testing.assert_close(buffer.state, eager_buffer.state)
        torch.testing.assert_close(buffer.history, eager_buffer.history)


# -- LayerDrop (transformers 4.x): `torch.rand([]) < layerdrop` decided by the draw's range ----------------------
def _layerdrop(x, layerdrop):
    for _ in range(2):
        if torch.rand([]) < layerdrop:  # skip the layer
            continue
        x = torch.tanh(x) * 2
    return x


@pytest.mark.parametrize("layerdrop", [0.0, 1.0])
def test_layerdrop_with_a_certain_outcome_matches_eager(layerdrop):
    x = torch.randn(3, requires_grad=True)
    expected, actual = _layerdrop(x, layerdrop), thunder.jit(_layerdrop)(x, layerdrop)
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(torch.autograd.grad(actual.sum(), x), torch.autograd.grad(expected.sum(), x))


def test_layerdrop_with_a_random_outcome_is_data_dependent():
    from thunder.frontend.tracer import DataDependentError

    with pytest.raises(DataDependentError, match="thunderfx"):
        thunder.jit(_layerdrop)(torch.randn(3), 0.5)
