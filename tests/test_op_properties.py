"""Operator properties are declared once, on the symbol (thunder.extend.OpTag), and passes read them there.
Each property is checked against torch itself: a symbol tagged as a view returns a view in eager, a fallback
call is tagged random exactly when its eager result changes with the RNG state."""

from __future__ import annotations

import pytest
import torch

import thunder
import thunder.torch as ltorch
from thunder.extend import OpTag
from thunder.transforms.remat import is_recomputable

# (symbol, torch call on a tensor x of shape (2, 3, 4)): every symbol tagged VIEW, with arguments
VIEW_SAMPLES = {
    "reshape": lambda x: x.reshape(6, 4), "view": lambda x: x.view(6, 4), "permute": lambda x: x.permute(2, 0, 1),
    "transpose": lambda x: x.transpose(0, 1), "t": lambda x: x[0].t(), "unsqueeze": lambda x: x.unsqueeze(1),
    "squeeze": lambda x: x[:1].squeeze(0), "expand": lambda x: x[:1].expand(5, 3, 4),
    "flatten": lambda x: x.flatten(1), "unflatten": lambda x: x.unflatten(2, (2, 2)),
    "split": lambda x: x.split(1)[0], "chunk": lambda x: x.chunk(2, 2)[0], "movedim": lambda x: x.movedim(0, 2),
}  # fmt: skip


def test_every_torch_level_symbol_tagged_view_is_sampled():
    symbols = [getattr(ltorch, name) for name in dir(ltorch)]
    tagged = {sym.name for sym in symbols if OpTag.VIEW in getattr(sym, "tags", ())}  # aliases are one symbol
    assert tagged == set(VIEW_SAMPLES)


@pytest.mark.parametrize("name", sorted(VIEW_SAMPLES))
def test_a_symbol_tagged_view_returns_a_view_in_eager(name):
    x = torch.randn(2, 3, 4)
    out = VIEW_SAMPLES[name](x)
    assert out._is_view() and out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()


def test_without_fusion_only_views_are_recomputed():
    def f(x):
        return torch.exp(x.reshape(6, 4)).sum()

    x = torch.randn(2, 3, 4, requires_grad=True)
    jfn = thunder.jit(f)
    torch.autograd.grad(jfn(x), x)
    acquired = thunder.last_traces(jfn)[0]
    by_id = {b.sym.id: b for b in acquired.bound_symbols}
    assert is_recomputable(by_id["ltorch.reshape"], fusing=False)
    assert not is_recomputable(by_id["ltorch.exp"], fusing=False)


def _fallback_bsyms(fn, *args):
    jfn = thunder.jit(fn)
    jfn(*args)
    return [b for b in thunder.last_traces(jfn)[0].bound_symbols if OpTag.FALLBACK in b.sym.tags]


@pytest.mark.parametrize("fn", [torch.poisson, lambda x: torch.nn.functional.alpha_dropout(x, 0.5, training=True)],
                         ids=["poisson", "alpha_dropout"])  # fmt: skip
def test_a_fallback_call_that_draws_random_numbers_is_tagged_random(fn):
    x = torch.rand(50) + 1
    torch.manual_seed(0)
    first = fn(x)
    assert not torch.equal(first, fn(x)), "the reference: eager draws new numbers each call"
    (bsym,) = _fallback_bsyms(fn, x)
    assert OpTag.RANDOM in bsym.sym.tags


@pytest.mark.parametrize("fn", [torch.special.i0, torch.nn.functional.hardshrink], ids=["i0", "hardshrink"])
def test_a_deterministic_fallback_call_is_not_tagged_random(fn):
    x = torch.randn(50)
    assert torch.equal(fn(x), fn(x)), "the reference: eager gives the same result each call"
    (bsym,) = _fallback_bsyms(fn, x)
    assert OpTag.RANDOM not in bsym.sym.tags
