"""Attention micro-benchmark: the `cudnn` executor against PyTorch's SDPA backends, in one run (needs CUDA).

    python -m thunder_executors_cudnn.benchmarks [--batch 8] [--heads 16] [--head-dims 64,128]
                                                 [--seqs 1024,2048,4096] [--reps 20] [--json out.json]

Causal attention in bfloat16, q, k, v [B, H, S, D], forward alone and forward+backward (gradients of q, k, v).
Implementations, on the same inputs:

- `torch flash`, `torch efficient`, `torch cudnn`: `F.scaled_dot_product_attention` restricted to one backend
  (`torch.nn.attention.sdpa_kernel`);
- `cudnn graphs`: this package's graphs called directly (`graphs.sdpa_forward`/`sdpa_backward` in an autograd
  Function): the kernels alone;
- `thunder+cudnn`: `thunder.jit(fn, executors=["cudnn"])`, the path users take.

Each row gives the median time of `--reps` iterations (CUDA events, after warm-up), the achieved TFLOP/s
(causal: half of 4*B*H*S*S*D for the forward, 2.5 times that for the backward) and the time relative to the
fastest PyTorch backend of that row's case. A backend that cannot run a case is reported with its error.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F

TORCH_BACKENDS = {"torch flash": "FLASH_ATTENTION", "torch efficient": "EFFICIENT_ATTENTION",
                  "torch cudnn": "CUDNN_ATTENTION"}  # fmt: skip


def attention_flops(batch: int, heads: int, seq: int, head_dim: int, *, causal: bool, backward: bool) -> float:
    """Matmul FLOPs of attention (QK^T and PV), halved when causal; a backward costs 2.5 forwards."""
    forward = 4.0 * batch * heads * seq * seq * head_dim * (0.5 if causal else 1.0)
    return forward * (3.5 if backward else 1.0)


class _CudnnGraphs(torch.autograd.Function):
    """The package's graphs without Thunder: forward saves O and the statistics, backward runs the backward graph."""

    @staticmethod
    def forward(ctx, q, k, v):
        from thunder_executors_cudnn import graphs

        scale = 1.0 / math.sqrt(q.shape[-1])
        out, stats = graphs.sdpa_forward(q, k, v, None, None, None, 0.0, True, scale)
        ctx.save_for_backward(q, k, v, out, stats)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad):
        from thunder_executors_cudnn import graphs

        q, k, v, out, stats = ctx.saved_tensors
        return graphs.sdpa_backward(grad, q, k, v, out, stats, None, None, None, 0.0, True, ctx.scale)


def causal_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _torch_backend(name: str) -> Callable:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = getattr(SDPBackend, TORCH_BACKENDS[name])

    def run(q, k, v):
        with sdpa_kernel(backend):
            return causal_attention(q, k, v)

    return run


def _thunder_cudnn() -> Callable:
    import thunder
    from thunder.extend import UnknownExecutorError, get_executor, register_plugin
    from thunder_executors_cudnn import plugin

    try:
        get_executor("cudnn")
    except UnknownExecutorError:  # run from a checkout without installing the package
        register_plugin(plugin)
    return thunder.jit(causal_attention, executors=["cudnn"])


def implementations() -> dict[str, Callable[[], Callable]]:
    """Name -> factory of the callable (factories, so that each jitted function is made per case)."""
    impls = {name: (lambda name=name: _torch_backend(name)) for name in TORCH_BACKENDS}
    impls["cudnn graphs"] = lambda: _CudnnGraphs.apply
    impls["thunder+cudnn"] = _thunder_cudnn
    return impls


def measure(fn: Callable, inputs, grad, reps: int, *, backward: bool) -> float:
    """Median milliseconds of one forward (or forward+backward) call."""

    def step():
        if backward:
            for t in inputs:
                t.grad = None
            fn(*inputs).backward(grad)
        else:
            with torch.no_grad():
                fn(*inputs)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def run_case(batch: int, heads: int, head_dim: int, seq: int, reps: int, *, backward: bool) -> list[dict]:
    shape = (batch, heads, seq, head_dim)
    inputs = [torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=backward) for _ in range(3)]
    grad = torch.randn(shape, device="cuda", dtype=torch.bfloat16)
    flops = attention_flops(batch, heads, seq, head_dim, causal=True, backward=backward)
    case = f"D={head_dim} S={seq} {'fwd+bwd' if backward else 'fwd'}"
    rows = []
    for name, factory in implementations().items():
        row = {"case": case, "impl": name, "batch": batch, "heads": heads, "head_dim": head_dim, "seq": seq,
               "backward": backward}  # fmt: skip
        try:
            ms = measure(factory(), inputs, grad, reps, backward=backward)
            row.update(ms=ms, tflops=flops / ms / 1e9)
        except Exception as e:  # noqa: BLE001 - a backend that cannot run the case is reported, not fatal
            row.update(ms=None, tflops=None, error=f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
        rows.append(row)
        torch.cuda.empty_cache()
    fastest_torch = min((r["ms"] for r in rows if r["impl"] in TORCH_BACKENDS and r["ms"]), default=None)
    for r in rows:
        r["vs_fastest_torch"] = r["ms"] / fastest_torch if r["ms"] and fastest_torch else None
    return rows


def run(batch: int, heads: int, head_dims, seqs, reps: int) -> list[dict]:
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA device")
    rows = []
    for head_dim in head_dims:
        for seq in seqs:
            for backward in (False, True):
                rows += run_case(batch, heads, head_dim, seq, reps, backward=backward)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [f"device: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}, torch "
             f"{torch.__version__}, bfloat16, causal", "",
             "| case | implementation | time (ms) | TFLOP/s | x fastest torch |", "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        if r["ms"] is None:
            lines.append(f"| {r['case']} | {r['impl']} | failed: {r['error']} | | |")
        else:
            ratio = f"{r['vs_fastest_torch']:.2f}" if r["vs_fastest_torch"] else ""
            lines.append(f"| {r['case']} | {r['impl']} | {r['ms']:.3f} | {r['tflops']:.0f} | {ratio} |")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--head-dims", type=_ints, default=[64, 128])
    parser.add_argument("--seqs", type=_ints, default=[1024, 2048, 4096])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    rows = run(args.batch, args.heads, args.head_dims, args.seqs, args.reps)
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
