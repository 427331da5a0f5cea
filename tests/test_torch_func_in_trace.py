"""`torch.vmap` and `torch.func` transforms called inside a function traced by thunder.jit run as Thunder's
own transforms, recorded into the trace, and give eager's results (transformers 4.5x builds its attention
masks with nested torch.vmap over index ranges)."""

from __future__ import annotations

import threading

import pytest
import torch
from torch._dynamo._trace_wrapped_higher_order_op import TransformGetItemToIndex

import thunder


# -- the transformers 4.5x masking pattern (masking_utils: mask functions of (batch, head, q, kv) indices) ----
def _causal(batch_idx, head_idx, q_idx, kv_idx):
    return kv_idx <= q_idx


def _sliding_window(size):
    def inner(batch_idx, head_idx, q_idx, kv_idx):
        return q_idx - kv_idx < size

    return inner


def _padding(padding_mask):
    def inner(batch_idx, head_idx, q_idx, kv_idx):
        return padding_mask[batch_idx, kv_idx]

    return inner


def _and_masks(*mask_functions):
    def and_mask(batch_idx, head_idx, q_idx, kv_idx):
        result = q_idx.new_ones((), dtype=torch.bool)
        for mask in mask_functions:
            result = result & mask(batch_idx, head_idx, q_idx, kv_idx)
        return result

    return and_mask


def _vmap_for_bhqkv(mask_function):
    for dims in [(None, None, None, 0), (None, None, 0, None), (None, 0, None, None), (0, None, None, None)]:
        mask_function = torch.vmap(mask_function, in_dims=dims, out_dims=0)
    return mask_function


def _masked_scores(scores, padding_mask, cache_position, kv_offset, window, getitem_to_index):
    batch, kv_length = padding_mask.shape
    kv_arange = torch.arange(kv_length) + kv_offset
    mask_function = _and_masks(_causal, _padding(padding_mask))
    if window is not None:
        mask_function = _and_masks(mask_function, _sliding_window(window))
    args = (torch.arange(batch), torch.arange(1), cache_position, kv_arange)
    if getitem_to_index:
        with TransformGetItemToIndex():  # as transformers 4.5x's sdpa_mask_recent_torch does
            mask = _vmap_for_bhqkv(mask_function)(*args)
    else:
        mask = _vmap_for_bhqkv(mask_function)(*args)
    return scores.masked_fill(~mask, -1e4).softmax(-1)


@pytest.mark.parametrize("getitem_to_index", [True, False], ids=["TransformGetItemToIndex", "plain_getitem"])
@pytest.mark.parametrize("window", [None, 2], ids=["causal", "sliding"])
def test_transformers_mask_pattern_matches_eager(getitem_to_index, window):
    padding_mask = torch.tensor([[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    cache_position = torch.arange(5)
    scores = torch.randn(2, 1, 5, 5, requires_grad=True)

    def fn(scores, padding_mask, cache_position):
        return _masked_scores(scores, padding_mask, cache_position, 0, window, getitem_to_index)

    expected = fn(scores, padding_mask, cache_position)
    jfn = thunder.jit(fn)
    actual = jfn(scores, padding_mask, cache_position)
    torch.testing.assert_close(actual, expected)
    (g_expected,) = torch.autograd.grad(expected.square().sum(), scores)
    (g_actual,) = torch.autograd.grad(actual.square().sum(), scores)
    torch.testing.assert_close(g_actual, g_expected)
    # one batched program, not one per (batch, head, q, kv) element
    trace = str(thunder.last_traces(jfn)[0])
    assert trace.count("take_along_axis") <= 4


def test_decoding_step_mask_with_offset_matches_eager():
    padding_mask = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    cache_position = torch.tensor([5])  # one new token attending to a cache of 6

    def fn(scores, padding_mask, cache_position):
        return _masked_scores(scores, padding_mask, cache_position, 0, None, True)

    scores = torch.randn(2, 1, 1, 6)
    args = (scores, padding_mask, cache_position)
    torch.testing.assert_close(thunder.jit(fn)(*args), fn(*args))


# -- torch.vmap and torch.func on model-like functions ------------------------------------------------------
def test_vmap_of_a_per_example_function_matches_eager():
    w = torch.randn(4, 3)

    def per_example(x, scale):
        return torch.tanh(x @ w).sum() * scale

    def fn(xs, scale):
        return torch.vmap(per_example, in_dims=(0, None))(xs, scale) + torch.func.vmap(torch.sin)(xs).mean(-1)

    xs = torch.randn(5, 4)
    torch.testing.assert_close(thunder.jit(fn)(xs, 2.0), fn(xs, 2.0))


def test_vmap_out_dims_matches_eager():
    def fn(x):
        return torch.vmap(lambda r: r * 2 + 1, in_dims=1, out_dims=1)(x)

    x = torch.randn(3, 4)
    torch.testing.assert_close(thunder.jit(fn)(x), fn(x))


def test_func_grad_inside_jit_matches_eager():
    def loss(w, x):
        return (x @ w).tanh().square().sum()

    def fn(w, x):
        return torch.func.grad(loss)(w, x) * 3, torch.func.grad(loss, argnums=(0, 1))(w, x)[1]

    w, x = torch.randn(4, 2, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(thunder.jit(fn)(w, x), fn(w, x))


def test_func_grad_and_value_vjp_jvp_inside_jit_match_eager():
    def f(x):
        return x.sin() * x

    def fn(x, t):
        g, v = torch.func.grad_and_value(lambda y: f(y).sum())(x)
        out, vjp_fn = torch.func.vjp(f, x)
        (vjp_out,) = vjp_fn(t)
        primal, tangent = torch.func.jvp(f, (x,), (t,))
        return g, v, out, vjp_out, primal, tangent

    x, t = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(thunder.jit(fn)(x, t), fn(x, t))


def test_per_example_gradients_vmap_of_grad_match_eager():
    w = torch.randn(3, dtype=torch.float64)

    def fn(w, xs, ys):
        def loss(w, x, y):
            return (x @ w - y).square()

        return torch.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(w, xs, ys)

    xs, ys = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    torch.testing.assert_close(thunder.jit(fn)(w, xs, ys), fn(w, xs, ys))


# -- what stays torch's, and what is refused -------------------------------------------------------------
def test_torch_vmap_is_torchs_own_outside_tracing():
    assert torch.vmap is torch.func.vmap
    original = torch.vmap

    def fn(x):
        return torch.vmap(torch.sin)(x)

    thunder.jit(fn)(torch.randn(2, 3))
    assert torch.vmap is original and torch.func.grad.__module__.startswith("torch")


def test_other_threads_keep_torchs_vmap_while_a_trace_is_recorded():
    started, release, results = threading.Event(), threading.Event(), {}

    def fn(x):
        started.set()
        release.wait(10)
        return x + 1

    def other_thread():
        started.wait(10)
        x = torch.randn(3, 2)
        # real tensors in another thread: torch's vmap runs, and gives torch's answer
        results["out"] = torch.vmap(lambda r: r.sum())(x)
        results["expected"] = x.sum(1)
        release.set()

    t = threading.Thread(target=other_thread)
    t.start()
    thunder.jit(fn)(torch.randn(2))
    t.join()
    torch.testing.assert_close(results["out"], results["expected"])


def test_unsupported_options_are_refused_clearly():
    def with_randomness(x):
        return torch.vmap(lambda r: r + torch.rand(()), randomness="different")(x)

    def with_aux(x):
        return torch.func.grad(lambda y: (y.sum(), y), has_aux=True)(x)

    for fn, what in ((with_randomness, "randomness"), (with_aux, "has_aux")):
        with pytest.raises(NotImplementedError, match=f"{what}.*thunderfx"):
            thunder.jit(fn)(torch.randn(3, 2))
