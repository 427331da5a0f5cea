"""Activation checkpointing: torch.utils.checkpoint inside jitted code, and the ActivationCheckpointing transform."""

from __future__ import annotations

import pytest
import torch
import torch.utils.checkpoint as torch_checkpoint

import thunder
from thunder.frontend.checkpoint import ActivationCheckpointing, checkpoint_modules


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(16, 64)
        self.down = torch.nn.Linear(64, 16)

    def forward(self, x):
        return x + self.down(torch.tanh(self.up(x)).sin())


class Model(torch.nn.Module):
    def __init__(self, mode: str = "none"):
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block() for _ in range(3)])
        self.mode = mode

    def forward(self, x):
        for block in self.blocks:
            if self.mode == "none":
                x = block(x)
            else:
                x = torch_checkpoint.checkpoint(block, x, use_reentrant=self.mode == "reentrant")
        return x.square().sum()


def _train_step(model, x, **jit_kwargs):
    jmodel = thunder.jit(model, **jit_kwargs)
    jmodel(x).backward()
    return [p.grad.clone() for p in model.parameters()], thunder.compile_stats(jmodel)


def _eager_grads(model, x):
    reference = Model()
    reference.load_state_dict(model.state_dict())
    reference(x).backward()
    return [p.grad for p in reference.parameters()]


def _param_bytes(model):
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.mark.parametrize("mode", ["non-reentrant", "reentrant"])
def test_checkpoint_recomputes_and_matches_eager(mode):
    torch.manual_seed(0)
    x = torch.randn(32, 16)
    model = Model(mode)
    grads, stats = _train_step(model, x)
    for g, e in zip(grads, _eager_grads(model, x)):
        torch.testing.assert_close(g, e)
    plain = Model()
    plain.load_state_dict(model.state_dict())
    _, plain_stats = _train_step(plain, x)
    # without checkpointing the 64-wide activations are saved; with it only what the caller holds anyway
    activations = stats.saved_for_backward_bytes - _param_bytes(model) - x.numel() * x.element_size()
    plain_activations = plain_stats.saved_for_backward_bytes - _param_bytes(plain) - x.numel() * x.element_size()
    assert plain_activations >= 3 * 32 * 64 * 4
    assert activations < plain_activations / 4


def test_module_class_transform():
    torch.manual_seed(0)
    x = torch.randn(32, 16)
    model = Model()
    expected_out = model(x).detach()
    grads, stats = _train_step(model, x, transforms=[ActivationCheckpointing(Block)])
    for g, e in zip(grads, _eager_grads(model, x)):
        torch.testing.assert_close(g, e)
    plain = Model()
    plain.load_state_dict(model.state_dict())
    _, plain_stats = _train_step(plain, x)
    assert stats.saved_for_backward_bytes < plain_stats.saved_for_backward_bytes
    torch.testing.assert_close(model(x), expected_out)  # eager calls of the model are unchanged


def test_checkpoint_handles_remove():
    model = Model()
    handles = checkpoint_modules(model, Block)
    assert len(handles) == 6
    for h in handles:
        h.remove()
    assert not any(b._forward_hooks or b._forward_pre_hooks for b in model.blocks)


def test_checkpoint_modules_errors():
    with pytest.raises(ValueError, match="no submodule of class Linear"):
        checkpoint_modules(torch.nn.Sequential(torch.nn.ReLU()), torch.nn.Linear)
    with pytest.raises(TypeError, match="nn.Module subclasses"):
        checkpoint_modules(Model(), int)


def test_dropout_mask_is_not_redrawn():
    w = torch.randn(1000).abs() + 0.5

    def fn(x):
        return torch_checkpoint.checkpoint(lambda x: torch.nn.functional.dropout(x * w, 0.5), x, use_reentrant=False)

    x = (torch.rand(1000) + 0.5).requires_grad_()
    jfn = thunder.jit(fn)
    y = jfn(x)
    y.sum().backward()
    # y = x * w * mask / (1 - p), so dy/dx = y / x exactly when the backward uses the forward's mask
    torch.testing.assert_close(x.grad, y.detach() / x.detach())
    assert 0 < int((y == 0).sum()) < 1000


def test_torch_checkpoint_restored_outside_tracing():
    thunder.jit(Model("non-reentrant"))(torch.randn(2, 16))
    from thunder.frontend import checkpoint as ours

    assert torch_checkpoint._checkpoint_without_reentrant_generator is ours._original_generator
    assert torch_checkpoint.CheckpointFunction is ours._original_function
    x = torch.randn(4, 16, requires_grad=True)
    model = Model("non-reentrant")
    model(x).backward()  # eager checkpointing still works
    assert x.grad is not None
