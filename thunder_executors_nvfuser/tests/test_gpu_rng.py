"""Random operations on nvFuser's Philox generator: reproducible under torch.manual_seed, fresh numbers on every
call, the right distribution, and a backward that sees the forward's dropout mask."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from nvfuser_test_support import needs_nvfuser

import thunder

pytestmark = needs_nvfuser


def nvfuser_executor():
    from thunder_executors_nvfuser.executor import NvFuserExecutor

    return NvFuserExecutor()


def dropout_fn(x):
    return F.dropout(x * 2, p=0.25, training=True)


def test_dropout_runs_on_nvfuser():
    ex = nvfuser_executor()
    jfn = thunder.jit(dropout_fn, executors=[ex])
    jfn(torch.randn(256, 256, device="cuda"))

    def prims_of(bsym):
        return [bsym.sym.id] if not bsym.subsymbols else [i for s in bsym.subsymbols for i in prims_of(s)]

    fused = [i for b in thunder.last_traces(jfn)[-1].bound_symbols if b.sym.id.startswith("nvfuser.")
             for i in prims_of(b)]  # fmt: skip
    assert "prims.bernoulli" in fused
    assert any(r.status == "nvfuser" for r in ex.stats.records)


def test_dropout_is_reproducible_under_manual_seed_and_fresh_on_each_call():
    jfn = thunder.jit(dropout_fn, executors=[nvfuser_executor()])
    x = torch.randn(256, 256, device="cuda")
    torch.manual_seed(7)
    first, second = jfn(x), jfn(x)
    torch.manual_seed(7)
    again = jfn(x)
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert not torch.equal(first, second)


def test_dropout_keeps_the_expected_fraction_and_scales_the_kept_values():
    x = torch.ones(512, 512, device="cuda")
    out = thunder.jit(lambda x: F.dropout(x, p=0.25, training=True), executors=[nvfuser_executor()])(x)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.01
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.75))


def test_the_backward_sees_the_forwards_mask():
    x = (torch.rand(128, 128, device="cuda") + 0.5).requires_grad_()  # no zeros, so out == 0 <=> dropped
    jfn = thunder.jit(dropout_fn, executors=[nvfuser_executor()])
    out = jfn(x)
    cotangent = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, cotangent)
    expected = torch.where(out != 0, cotangent * 2 / 0.75, torch.zeros_like(cotangent))
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_rand_and_randn_draw_from_their_distributions(dtype):
    # "+ x" gives the fusion an input: a region of creation operations alone stays with torch
    ex = nvfuser_executor()
    jfn = thunder.jit(lambda x: (torch.rand_like(x) + x, torch.randn_like(x) + x), executors=[ex])
    u, n = jfn(torch.zeros(1024, 1024, device="cuda", dtype=dtype))
    assert any(r.status == "nvfuser" for r in ex.stats.records)
    assert u.dtype == dtype and 0 <= u.min().item() and u.max().item() < 1
    assert abs(u.float().mean().item() - 0.5) < 0.01
    assert abs(n.float().mean().item()) < 0.01 and abs(n.float().std().item() - 1) < 0.01


def test_two_dropouts_in_one_fusion_draw_different_masks():
    fn = lambda x: (F.dropout(x, 0.5, training=True), F.dropout(x, 0.5, training=True))
    a, b = thunder.jit(fn, executors=[nvfuser_executor()])(torch.ones(256, 256, device="cuda"))
    assert not torch.equal(a != 0, b != 0)


def test_torch_draws_after_a_fusion_do_not_repeat_its_numbers():
    jfn = thunder.jit(lambda x: torch.rand_like(x) + x, executors=[nvfuser_executor()])
    x = torch.zeros(4096, device="cuda")
    torch.manual_seed(3)
    fused = jfn(x)
    eager_after = torch.rand(4096, device="cuda")
    assert not torch.equal(fused, eager_after)
