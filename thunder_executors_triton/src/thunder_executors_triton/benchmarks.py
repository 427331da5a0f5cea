"""Micro-benchmarks of the `triton` executor's kernels against PyTorch eager and torch.compile (needs CUDA).

    python -m thunder_executors_triton.benchmarks [--cases cross_entropy,linear_cross_entropy,rms_norm]
                                                  [--reps 20] [--json results.json]

Each case runs forward and backward (gradients of every floating input) in bfloat16 and reports, per
implementation, the median time of `--reps` iterations (CUDA events, after warm-up) and the peak memory
allocated during one iteration above what the inputs already hold. Implementations: `eager`,
`torch.compile` (default mode), `triton` (the kernels called directly, through `torch.autograd.Function`)
and `thunder+triton` (`thunder.jit(fn, executors=["triton"], transforms=[TritonPatterns()])`, the path
users take).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target):
        from thunder_executors_triton.kernels.cross_entropy import cross_entropy_forward

        loss, lse = cross_entropy_forward(logits, target)
        ctx.save_for_backward(logits, target, lse)
        return loss

    @staticmethod
    def backward(ctx, grad):
        from thunder_executors_triton.kernels.cross_entropy import cross_entropy_backward

        logits, target, lse = ctx.saved_tensors
        return cross_entropy_backward(grad, logits, target, lse), None


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, target):
        from thunder_executors_triton.kernels.cross_entropy import linear_cross_entropy

        loss, grad_x, grad_w, _ = linear_cross_entropy(x, weight, None, target, with_grads=True)
        ctx.save_for_backward(grad_x, grad_w)
        return loss

    @staticmethod
    def backward(ctx, grad):
        grad_x, grad_w = ctx.saved_tensors
        return grad_x * grad, grad_w * grad, None


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        from thunder_executors_triton.kernels.norms import rms_norm_forward

        y, rstd = rms_norm_forward(x, weight, eps)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx, grad):
        from thunder_executors_triton.kernels.norms import rms_norm_backward

        x, weight, rstd = ctx.saved_tensors
        dx, dw = rms_norm_backward(grad, x, weight, rstd)
        return dx, dw, None


def _case_cross_entropy(device):
    logits = torch.randn(8192, 50257, device=device, dtype=torch.bfloat16, requires_grad=True)
    target = torch.randint(0, 50257, (8192,), device=device)
    eager = F.cross_entropy
    return "cross-entropy fwd+bwd, 8192 x 50257", (logits, target), eager, _CrossEntropy.apply


def _case_linear_cross_entropy(device):
    x = torch.randn(8192, 768, device=device, dtype=torch.bfloat16, requires_grad=True)
    weight = (torch.randn(50257, 768, device=device) * 768**-0.5).to(torch.bfloat16).requires_grad_()
    target = torch.randint(0, 50257, (8192,), device=device)

    def eager(x, weight, target):
        return F.cross_entropy(F.linear(x, weight), target)

    return "linear + cross-entropy fwd+bwd, 768 -> 50257, 8192 tokens", (x, weight, target), eager, \
        _LinearCrossEntropy.apply  # fmt: skip


def _case_rms_norm(device):
    x = torch.randn(8192, 4096, device=device, dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(4096, device=device, dtype=torch.bfloat16, requires_grad=True)

    def eager(x, weight):
        return F.rms_norm(x, (4096,), weight, 1e-6)

    return "RMSNorm fwd+bwd, 8192 x 4096", (x, weight), eager, lambda x, w: _RMSNorm.apply(x, w, 1e-6)


CASES = {"cross_entropy": _case_cross_entropy, "linear_cross_entropy": _case_linear_cross_entropy,
         "rms_norm": _case_rms_norm}  # fmt: skip


def _thunder_triton(fn):
    import thunder
    from thunder.extend import UnknownExecutorError
    from thunder_executors_triton import plugin
    from thunder_executors_triton.rewrites import TritonPatterns

    try:
        thunder.extend.get_executor("triton")
    except UnknownExecutorError:  # run from a checkout without installing the package
        thunder.extend.register_plugin(plugin)
    return thunder.jit(fn, executors=["triton"], transforms=[TritonPatterns()])


def _step(fn: Callable, inputs) -> None:
    for t in inputs:
        if isinstance(t, torch.Tensor):
            t.grad = None
    out = fn(*inputs)
    out.backward(torch.ones_like(out))


def measure(fn: Callable, inputs, reps: int) -> dict:
    """Median milliseconds of a forward+backward step, and its peak memory above the inputs' (MiB)."""
    for _ in range(3):
        _step(fn, inputs)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        _step(fn, inputs)
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    for t in inputs:
        if isinstance(t, torch.Tensor):
            t.grad = None
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    _step(fn, inputs)
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    return {"ms": statistics.median(times), "peak_mib": peak}


def run(cases: list[str], reps: int) -> list[dict]:
    if not torch.cuda.is_available():
        raise SystemExit("these benchmarks need a CUDA device")
    rows = []
    for name in cases:
        title, inputs, eager, kernels = CASES[name]("cuda")
        impls = {"eager": eager, "torch.compile": torch.compile(eager), "triton": kernels,
                 "thunder+triton": _thunder_triton(eager)}  # fmt: skip
        results = {impl: measure(fn, inputs, reps) for impl, fn in impls.items()}
        eager_result = results["eager"]
        for impl, r in results.items():
            rows.append({"case": title, "impl": impl, **r, "time_vs_eager": r["ms"] / eager_result["ms"],
                         "memory_vs_eager": r["peak_mib"] / eager_result["peak_mib"]})  # fmt: skip
        del inputs, impls
        torch.cuda.empty_cache()
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, bfloat16", "",
             "| case | implementation | time (ms) | x eager | peak memory (MiB) | x eager |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['case']} | {r['impl']} | {r['ms']:.3f} | {r['time_vs_eager']:.2f} | "
                     f"{r['peak_mib']:.0f} | {r['memory_vs_eager']:.2f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
    rows = run(cases, args.reps)
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
