"""Smoke test of the cuDNN graphs this package builds, one by one: `python thunder_executors_cudnn/smoke.py [-v]`.

Each check calls one function of `thunder_executors_cudnn.graphs` (so one cudnn-frontend graph: build, plans,
execute) on small CUDA tensors and compares with PyTorch in float32; a graph cuDNN refuses counts as a failure
(the executor would run it in PyTorch). It prints one line per check (ok / FAIL with
the error's first line; -v adds the traceback) and exits non-zero if any failed, so that one GPU run shows every
API mismatch with cudnn-frontend at once, before the pytest suite.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent / "src"))  # runs from a checkout, installed or not

_results: list[tuple[str, str]] = []


def check(name: str, fn) -> None:
    """Runs fn; a graph cuDNN refuses (which the executor would run in PyTorch, with a warning) is a failure here."""
    from thunder_executors_cudnn import fallback

    fallback._warned.clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", fallback.CudnnFallbackWarning)
            fn()
        _results.append((name, "ok"))
    except Exception as e:  # noqa: BLE001 - every failure is reported, then the next check runs
        message = str(e).strip().splitlines()[0][:240] if str(e).strip() else ""
        _results.append((name, f"FAIL {type(e).__name__}: {message}"))
        if "-v" in sys.argv:
            traceback.print_exc()


def close(actual, expected, tol=4e-2) -> None:
    """Equal within tol relative to the reference's largest entry."""
    scale = expected.abs().max().clamp_min(1e-6)
    torch.testing.assert_close(actual.float() / scale, expected.float() / scale, atol=tol, rtol=0)


def reference_attention(q, k, v, bias=None, causal=False, scale=None):
    """(output, logsumexp statistics) in float32, k and v heads repeated for grouped-query attention."""
    groups = q.shape[1] // k.shape[1]
    q, k, v = q.float(), k.float().repeat_interleave(groups, 1), v.float().repeat_interleave(groups, 1)
    scores = q @ k.transpose(-2, -1) * (scale or q.shape[-1] ** -0.5)
    if bias is not None:
        scores = scores + bias.float()
    if causal:
        scores = scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).triu(1), -torch.inf)
    stats = torch.logsumexp(scores, -1, keepdim=True)
    return torch.exp(scores - stats) @ v, stats


def attention_checks(graphs) -> None:
    dev, bf16 = "cuda", torch.bfloat16

    def qkv(b=2, h=4, s=128, d=64, h_kv=None, bshd=False):
        def one(heads):
            if bshd:
                return torch.randn(b, s, heads, d, device=dev, dtype=bf16).transpose(1, 2)
            return torch.randn(b, heads, s, d, device=dev, dtype=bf16)

        return one(h), one(h_kv or h), one(h_kv or h)

    def forward(bias=None, causal=False, scale=None, **shape):
        q, k, v = qkv(**shape)
        bias = bias(q) if bias is not None else None
        s = scale or q.shape[-1] ** -0.5
        out, stats = graphs.sdpa_forward(q, k, v, bias, None, None, 0.0, causal, s)
        expected, expected_stats = reference_attention(q, k, v, bias, causal, s)
        close(out, expected)
        torch.testing.assert_close(stats, expected_stats, atol=2e-2, rtol=2e-2)
        assert out.stride() == q.stride() or not shape.get("bshd"), "O does not take q's layout"

    def backward(bias=None, causal=False, **shape):
        q, k, v = qkv(**shape)
        bias = bias(q) if bias is not None else None
        s = q.shape[-1] ** -0.5
        out, stats = graphs.sdpa_forward(q, k, v, bias, None, None, 0.0, causal, s)
        grad = torch.randn_like(out)
        dq, dk, dv = graphs.sdpa_backward(grad, q, k, v, out, stats, bias, None, None, 0.0, causal, s)
        leaves = [t.detach().float().requires_grad_() for t in (q, k, v)]
        expected, _ = reference_attention(*leaves, bias, causal, s)
        expected.backward(grad.float())
        for actual, leaf in zip((dq, dk, dv), leaves):
            close(actual, leaf.grad, 6e-2)

    def key_padding_bias(q):
        bias = torch.zeros(q.shape[0], 1, q.shape[2], q.shape[2], device=dev, dtype=bf16)
        bias[0, ..., q.shape[2] // 2 :] = torch.finfo(bf16).min
        return bias

    def random_bias(q):
        return torch.randn(1, 1, q.shape[2], q.shape[2], device=dev, dtype=bf16)

    check("sdpa forward", lambda: forward())
    check("sdpa forward, causal (diagonal band right bound 0, TOP_LEFT)", lambda: forward(causal=True))
    check("sdpa forward, additive bias [1, 1, S, S]", lambda: forward(random_bias))
    check("sdpa forward, bias [B, 1, S, S] with the dtype's lowest value", lambda: forward(key_padding_bias))
    check("sdpa forward, grouped-query heads (4 query, 2 key/value)", lambda: forward(h_kv=2))
    check("sdpa forward, q/k/v transposed views of [B, S, H, D]", lambda: forward(causal=True, bshd=True))
    check("sdpa forward, custom scale", lambda: forward(scale=0.3))
    check("sdpa forward, head size 128", lambda: forward(d=128))
    check("sdpa forward, head size 256 (claimed only on Hopper, cuDNN >= 9.5)", lambda: forward(d=256))
    check("sdpa backward", lambda: backward())
    check("sdpa backward, causal", lambda: backward(causal=True))
    check("sdpa backward, additive bias", lambda: backward(random_bias))
    check("sdpa backward, grouped-query heads", lambda: backward(h_kv=2))
    check("sdpa backward, transposed views", lambda: backward(causal=True, bshd=True))
    check("sdpa backward, head size 128", lambda: backward(d=128))
    check("sdpa dropout: seed/offset tensors, kept fraction, reproducible", lambda: dropout(graphs))


def dropout(graphs) -> None:
    """v the identity: the output is the dropped, rescaled probability matrix."""
    s, p = 64, 0.25
    q, k = (torch.randn(2, 2, s, s, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    v = torch.eye(s, device="cuda", dtype=torch.bfloat16).expand(2, 2, s, s).contiguous()
    seed, offset = graphs.draw_dropout_seed(q, 2 * 2 * s * s)
    out, stats = graphs.sdpa_forward(q, k, v, None, seed, offset, p, False, s**-0.5)
    again, _ = graphs.sdpa_forward(q, k, v, None, seed, offset, p, False, s**-0.5)
    assert torch.equal(out, again), "the same seed and offset drew different masks"
    kept = out != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.05, f"kept fraction {kept.float().mean().item():.3f}"
    probs = torch.softmax(q.float() @ k.float().transpose(-2, -1) * s**-0.5, -1)
    close(out, probs * kept / (1 - p))
    grad = torch.randn_like(out)
    dq, dk, dv = graphs.sdpa_backward(grad, q, k, v, out, stats, None, seed, offset, p, False, s**-0.5)
    leaves = [t.detach().float().requires_grad_() for t in (q, k, v)]
    weights = torch.softmax(leaves[0] @ leaves[1].transpose(-2, -1) * s**-0.5, -1) * kept / (1 - p)
    (weights @ leaves[2]).backward(grad.float())
    for actual, leaf in zip((dq, dk, dv), leaves):
        close(actual, leaf.grad, 6e-2)
    next_seed, next_offset = graphs.draw_dropout_seed(q, 2 * 2 * s * s)
    assert next_offset.item() > offset.item() or next_seed.item() != seed.item(), "the generator was not advanced"


def norm_checks(graphs) -> None:
    for dtype in (torch.bfloat16, torch.float32):
        x = torch.randn(4, 64, 1024, device="cuda", dtype=dtype)
        w = 1 + 0.1 * torch.randn(1024, device="cuda", dtype=dtype)
        b = 0.1 * torch.randn(1024, device="cuda", dtype=dtype)
        grad = torch.randn_like(x)

        def layer_norm(x=x, w=w, b=b, grad=grad):
            y, mean, rstd = graphs.layer_norm_forward(x, w, b, 1e-5)
            leaves = [t.detach().float().requires_grad_() for t in (x, w, b)]
            expected = torch.nn.functional.layer_norm(leaves[0], (1024,), leaves[1], leaves[2], 1e-5)
            close(y, expected)
            close(mean.reshape(-1), x.float().mean(-1).reshape(-1), 1e-3)
            dx, dw, db = graphs.layer_norm_backward(grad, x, w, mean, rstd)
            expected.backward(grad.float())
            for actual, leaf in zip((dx, dw, db), leaves):
                close(actual, leaf.grad, 5e-2)

        def rms_norm(x=x, w=w, grad=grad):
            y, rstd = graphs.rms_norm_forward(x, w, 1e-6)
            leaves = [t.detach().float().requires_grad_() for t in (x, w)]
            expected = torch.nn.functional.rms_norm(leaves[0], (1024,), leaves[1], 1e-6)
            close(y, expected)
            dx, dw = graphs.rms_norm_backward(grad, x, w, rstd)
            expected.backward(grad.float())
            for actual, leaf in zip((dx, dw), leaves):
                close(actual, leaf.grad, 5e-2)

        check(f"layernorm forward + backward ({dtype})", layer_norm)
        check(f"rmsnorm forward + backward ({dtype})", rms_norm)


def cache_and_thunder_checks(graphs) -> None:
    def cache_reuse():
        graphs.graph_cache.clear()
        q, k, v = (torch.randn(2, 4, 128, 64, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        for _ in range(3):
            graphs.sdpa_forward(q, k, v, None, None, None, 0.0, True, 0.125)
        assert (graphs.graph_cache.misses, graphs.graph_cache.hits) == (1, 2), (graphs.graph_cache.misses,
                                                                                graphs.graph_cache.hits)

    def through_thunder():
        import torch.nn.functional as F
        from thunder_executors_cudnn.executor import ex

        import thunder

        q, k, v = (torch.randn(2, 4, 128, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))  # fmt: skip
        jfn = thunder.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), executors=[ex])
        out = jfn(q, k, v)
        out.sum().backward()
        ops = {b.sym.id for b in thunder.last_traces(jfn)[-1].bound_symbols}
        assert "cudnn.sdpa_fwd" in ops, ops
        close(out, reference_attention(q, k, v, causal=True)[0])

    check("graph cache: one build for three calls", cache_reuse)
    check("thunder.jit(..., executors=[cudnn]) forward + backward", through_thunder)


def main() -> int:
    import cudnn

    from thunder_executors_cudnn import graphs

    print(f"cudnn-frontend {cudnn.__version__}, cuDNN {cudnn.backend_version_string()}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()} (capability {torch.cuda.get_device_capability()})")  # fmt: skip
    torch.manual_seed(0)
    attention_checks(graphs)
    norm_checks(graphs)
    cache_and_thunder_checks(graphs)
    width = max(len(n) for n, _ in _results)
    for name, status in _results:
        print(f"{name:<{width}}  {status}")
    failed = [n for n, s in _results if s != "ok"]
    print(f"{len(_results) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
