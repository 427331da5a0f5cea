"""Forward and backward: gradients vs torch.autograd, autograd interop, and models trained step by step
under thunder.jit matching eager."""

from __future__ import annotations

import copy
import re

import pytest
import torch

import thunder
from benchmarks.models import GPT, GPTConfig, Llama, LlamaConfig


def _grads_match(fn, *inputs, atol=1e-7, rtol=1e-7):
    eager_in = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    jit_in = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
    expected = fn(*eager_in)
    result = thunder.jit(fn)(*jit_in)
    torch.testing.assert_close(result, expected, atol=atol, rtol=rtol)
    cotangent = torch.randn_like(expected)
    expected.backward(cotangent)
    result.backward(cotangent)
    for got, want in zip(jit_in, eager_in):
        if want.requires_grad:
            torch.testing.assert_close(got.grad, want.grad, atol=atol, rtol=rtol)
        else:
            assert got.grad is None


def f64(*shape, grad=True):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: (a * b + a / (b.abs() + 1)).exp().sum(-1),
        lambda a, b: torch.tanh(a) @ b.t(),
        lambda a, b: torch.where(a > b, a.sin(), b.cos()) ** 2,
        lambda a, b: torch.maximum(a, b) + torch.clamp(a, -0.5, 0.5),
        lambda a, b: (a[1:, ::2] * b[:-1, 1::2]).logsumexp(-1),
        lambda a, b: torch.cat([a, b], 0).reshape(4, -1).permute(1, 0).cumsum(0),
        lambda a, b: a.amax(1) + b.var(1) + a.prod(1),
        lambda a, b: torch.softmax(a, -1) * torch.log_softmax(b, 0),
        lambda a, b: torch.nn.functional.layer_norm(a, (4,)) + torch.rsqrt(b * b + 1),
    ],
    ids=["arith", "matmul", "where_pow", "max_clamp", "slicing", "cat_reshape", "reductions", "softmax", "norm"],
)
def test_gradients_match_torch_autograd_in_float64(fn):
    _grads_match(fn, f64(2, 4), f64(2, 4))


def test_only_some_inputs_require_grad():
    _grads_match(lambda a, b: (a * b).sum(0), f64(3, 4), f64(3, 4, grad=False))


def test_broadcasting_gradients_reduce_to_input_shapes():
    _grads_match(lambda a, b: a * b + b, f64(3, 1, 4), f64(5, 1))


def test_indexing_gradients():
    idx = torch.tensor([2, 0, 2])
    _grads_match(lambda a: a[idx].sum(1) + a.gather(1, idx.expand(4, 3)).sum(1)[:3], f64(4, 5))


def test_fallback_op_gradients_through_torch_autograd():
    _grads_match(lambda a: torch.special.i0(a) * 2, f64(3))


def test_multiple_outputs_and_non_tensor_outputs():
    def fn(a):
        return a.sin(), a.argmax(), 3

    a = f64(4)
    s, idx, three = thunder.jit(fn)(a)
    assert three == 3 and idx.dtype == torch.int64 and not idx.requires_grad
    s.sum().backward()
    torch.testing.assert_close(a.grad, a.detach().cos())


def test_no_backward_under_no_grad():
    jf = thunder.jit(lambda a: a.exp())
    with torch.no_grad():
        out = jf(f64(3))
    assert not out.requires_grad and thunder.last_backward_traces(jf) == []


def test_no_grad_inside_the_function_stops_gradients_like_eager():
    def fn(w, x):
        with torch.no_grad():
            scale = w * 2
        return scale * x + w

    _grads_match(fn, f64(3), f64(3, grad=False))
    jf = thunder.jit(fn)
    jf(f64(3), f64(3))
    assert thunder.fallback_ops(jf) == set()  # the grad-mode switch is not an operation


def test_dropout_backward_reuses_the_forward_mask():
    a = f64(64)
    torch.manual_seed(1)
    out = thunder.jit(lambda x: torch.nn.functional.dropout(x, 0.5))(a)
    out.sum().backward()
    mask = (out != 0).to(a.dtype)
    torch.testing.assert_close(a.grad, mask * 2)


def test_random_ops_are_not_baked_into_the_cached_trace():
    jf = thunder.jit(lambda x: torch.nn.functional.dropout(x, 0.5))
    x = torch.ones(256)
    assert not torch.equal(jf(x), jf(x))


def _train(model, steps, make_batch, jit):
    model = copy.deepcopy(model)
    runner = thunder.jit(model) if jit else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses, params = [], []
    for step in range(steps):
        idx, targets = make_batch(step)
        loss = runner(idx, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        params.append([p.detach().clone() for p in model.parameters()])
    return losses, params


@pytest.mark.parametrize("name", ["gpt", "llama"])
def test_model_training_matches_eager_step_for_step(name):
    torch.manual_seed(0)
    if name == "gpt":
        config = GPTConfig.preset("tiny")
        model, vocab, seq, batch = GPT(config), config.vocab_size, config.block_size, config.batch_size
    else:
        config = LlamaConfig.preset("tiny")
        model, vocab, seq, batch = Llama(config), config.vocab_size, config.max_seq_len, config.batch_size
    model = model.double()

    def make_batch(step):
        g = torch.Generator(torch.get_default_device()).manual_seed(step)
        return torch.randint(0, vocab, (batch, seq), generator=g), torch.randint(0, vocab, (batch, seq), generator=g)

    eager_losses, eager_params = _train(model, 3, make_batch, jit=False)
    jit_losses, jit_params = _train(model, 3, make_batch, jit=True)
    for step in range(3):
        torch.testing.assert_close(jit_losses[step], eager_losses[step])
        for got, want in zip(jit_params[step], eager_params[step]):
            torch.testing.assert_close(got, want)


def test_small_cnn_training_step_matches_eager():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(4 * 4 * 4, 10),
    ).double()  # fmt: skip
    x, y = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([1, 7])
    reference = copy.deepcopy(model)
    loss = torch.nn.functional.cross_entropy(thunder.jit(model)(x), y)
    loss.backward()
    ref_loss = torch.nn.functional.cross_entropy(reference(x), y)
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss)
    for got, want in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(got.grad, want.grad)


def test_backward_trace_frees_saved_tensors_after_use():
    jf = thunder.jit(lambda a, b: (a * b).tanh().sum())
    jf(f64(3), f64(3)).backward()
    source = str(thunder.last_backward_traces(jf)[-1])
    assert "args.clear()" in source and "del " in source


class ScaledExp(torch.autograd.Function):
    """exp(x) * scale, with a backward that deliberately differs from the true gradient (x 3), so the
    test can tell that the user's backward, not a derivative of the forward, was used."""

    @staticmethod
    def forward(ctx, x, scale):
        y = torch.exp(x) * scale
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * 3, None


class Square(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return 2 * x * grad


@pytest.mark.parametrize("fn", [lambda x: ScaledExp.apply(x, 2.0).sum(), lambda x: Square.apply(x.sin()).sum()],
                         ids=["ctx_forward", "setup_context"])  # fmt: skip
def test_user_autograd_function_uses_its_own_backward(fn):
    x = f64(5)
    result = thunder.jit(fn)(x)
    result.backward()
    jit_grad, x.grad = x.grad, None
    expected = fn(x)
    expected.backward()
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(jit_grad, x.grad)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.split(4, dim=2)[0].sum() + x.split([8, 4], 2)[1].exp().sum(),
        lambda x: sum((t * i).sum() for i, t in enumerate(x.chunk(3, -1))),
        lambda x: sum((t.sin() * i).sum() for i, t in enumerate(x.unbind(1))),
    ],
    ids=["split", "chunk", "unbind"],
)
def test_gradient_of_splitting_is_one_concatenation(fn):
    _grads_match(lambda x: fn(x).reshape(1), f64(2, 3, 12))
    jf = thunder.jit(fn, executors=[])  # autodiff's own result, without a fusion executor's rewriting
    jf(f64(2, 3, 12)).backward()
    backward = str(thunder.last_backward_traces(jf)[-1])
    assert "pad" not in backward and ("cat" in backward or "stack" in backward)


def test_inplace_update_of_a_grad_requiring_tensor_under_no_grad_keeps_its_gradient():
    def fn(w, x):
        with torch.no_grad():
            w.mul_(0.5)  # eager keeps w the leaf: the later use's gradient reaches w
        return (w * x).sum()

    w, x = f64(3), f64(3, grad=False)
    w_ref = w.detach().clone().requires_grad_(True)
    fn(w_ref, x).backward()
    out = thunder.jit(fn)(w, x)
    out.backward()
    torch.testing.assert_close(out, (w_ref * x).sum())
    torch.testing.assert_close(w, w_ref)
    torch.testing.assert_close(w.grad, w_ref.grad)


def _saved_names(jf) -> set[str]:
    (entry,) = [e for entries in jf._cache.values() for e in entries]
    return {t.name for t in entry.forward_trace.output[1]}


class FusesNothing(thunder.extend.FusionExecutor):
    """A fusion executor that fuses nothing: its presence alone tells autodiff recomputation will be fused."""

    def __init__(self):
        super().__init__("fuses_nothing")

    def can_fuse(self, bsym) -> bool:
        return False


def test_min_cut_recomputes_a_cheap_chain_instead_of_saving_it():
    # tanh's backward reads its output; with a fusion executor the min-cut saves only x (held by the caller
    # anyway) and the backward recomputes x * 2 + 1 and tanh from it
    jf = thunder.jit(lambda x: ((((x * 2) + 1).tanh()) ** 2).sum(), executors=[FusesNothing()])
    x = f64(8, 8)
    jf(x).backward()
    assert _saved_names(jf) == {"x"}
    expected = torch.autograd.grad(((((x * 2) + 1).tanh()) ** 2).sum(), x)[0]
    torch.testing.assert_close(x.grad, expected)


def test_min_cut_saves_what_cannot_be_recomputed():
    # the matmul is not recomputed; the cheap ops after it are, from its saved output
    jf = thunder.jit(lambda a, b: ((a @ b).sin() * 3).exp().sum())
    a, b = f64(4, 5), f64(5, 3)
    jf(a, b).backward()
    trace = thunder.last_traces(jf)[-1]
    matmul_outputs = {o.name for bsym in trace.bound_symbols if "matmul" in bsym.sym.name for o in bsym.flat_outs}
    assert matmul_outputs and matmul_outputs <= _saved_names(jf)
    ga, gb = torch.autograd.grad(((a @ b).sin() * 3).exp().sum(), (a, b))
    torch.testing.assert_close(a.grad, ga)
    torch.testing.assert_close(b.grad, gb)


def test_without_a_fusion_executor_only_views_are_recomputed():
    # each recomputed elementwise op would be one more kernel: tanh's output is saved instead
    jf = thunder.jit(lambda x: ((((x * 2) + 1).tanh()) ** 2).sum(), executors=[])
    x = f64(8, 8)
    jf(x).backward()
    (entry,) = [e for entries in jf._cache.values() for e in entries]
    backward = str(entry.backward_trace)
    recomputed_tanh = re.search(r"\btanh\(", backward)  # tanh_backward (its gradient kernel) is expected
    assert not recomputed_tanh and len(_saved_names(jf)) == 1 and "x" not in _saved_names(jf)


def test_an_input_named_args_saved_for_backward():
    # the backward trace unpacks its saved tensors from one list parameter; an input called `args` must not shadow it
    def f(args, x):
        return (args * x).sum()

    a, x = torch.randn(3), torch.randn(3, requires_grad=True)
    thunder.jit(f)(a, x).backward()
    torch.testing.assert_close(x.grad, a)
