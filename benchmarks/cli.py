"""The command line: ``python -m benchmarks [options]`` (see ``--help`` and benchmarks/README.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks.backends import BACKEND_KINDS, BackendSpec, parse_thunder_transforms, parse_thunder_variant
from benchmarks.harness import DTYPES, REPO_ROOT, RunConfig, run_benchmarks, write_json
from benchmarks.report import format_meta, format_table
from benchmarks.workloads import DEFAULT_WORKLOADS, KERNEL_WORKLOADS, SIZES, WORKLOADS

DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "latest.json"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run benchmark workloads x backends, each row in a fresh subprocess; print a table, write JSON.",
    )
    p.add_argument(
        "--workloads",
        default=",".join(DEFAULT_WORKLOADS),
        help=f"comma list of {', '.join(WORKLOADS)}; `kernels` for {', '.join(KERNEL_WORKLOADS)}, `all` for every one "
        f"(default: {', '.join(DEFAULT_WORKLOADS)})",
    )
    p.add_argument(
        "--backends", default=",".join(BACKEND_KINDS), help="comma list of eager, torchcompile, thunder (default: all)"
    )
    p.add_argument(
        "--executors",
        default=None,
        help='thunder executor names, e.g. "torchcompile,sdpa" (passed to thunder.jit(executors=[...])); '
        "empty: thunder's defaults",
    )
    p.add_argument(
        "--thunder-variants",
        default=None,
        help='several thunder rows, ";"-separated executor lists, e.g. "default;torchcompile,sdpa" '
        "gives thunder[default] and thunder[torchcompile,sdpa]; transforms by name after +, e.g. "
        '"default;default+cudagraphs"',
    )
    p.add_argument("--torchcompile-mode", default=None, help="torch.compile(mode=...), e.g. max-autotune")
    p.add_argument(
        "--mode",
        choices=("train", "inference", "both"),
        default="both",
        help="train: forward + loss.backward(); inference: forward under no_grad (default: both); "
        "the overhead workload always runs once, without grad",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--size", choices=SIZES, default=None, help="default: full on cuda, small on cpu")
    p.add_argument("--iters", type=int, default=None, help="timed steps (default: 20; 3 at --size tiny)")
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed steps after the first call (default: 3; 1 at tiny)"
    )
    p.add_argument(
        "--overhead-calls",
        type=int,
        default=None,
        help="timed calls per overhead case, split over --overhead-repeat loops (default: 20000; 1000 at tiny)",
    )
    p.add_argument("--overhead-repeat", type=int, default=5, help="timed loops per overhead case; the median is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--isolation",
        choices=("row", "backend", "none"),
        default="row",
        help="row: a fresh subprocess per row (default); backend: one per backend; none: in this process",
    )
    p.add_argument(
        "--warm-cache",
        action="store_true",
        help="keep the user's Inductor/Triton caches (default: empty caches per subprocess, cold compiles)",
    )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per row before the worker is killed")
    p.add_argument(
        "--json", default=str(DEFAULT_JSON), help="where to write the results (default: %(default)s; '' for none)"
    )
    p.add_argument("--report", default=None, metavar="JSON", help="print the table of saved results; run nothing")
    p.add_argument("--plot", default=None, metavar="JSON", help="plot saved results (PNG per metric); run nothing")
    p.add_argument("--plot-dir", default=None, help="where --plot writes (default: a plots/ folder beside the JSON)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (for RESULTS.md)")
    p.add_argument("--verbose", action="store_true", help="show the workers' own output")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any row has an error")
    p.add_argument(
        "--distributed",
        default=None,
        metavar="STRATEGIES",
        help="the Llama train step data-parallel, under torchrun: comma list of ddp, zero2, zero3, eager-ddp "
        "(torchrun --nproc-per-node N -m benchmarks --distributed ddp,zero3); --json '' for none",
    )
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunConfig:
    groups = {"kernels": KERNEL_WORKLOADS, "all": tuple(WORKLOADS)}
    workloads = [k for w in _csv(args.workloads) for k in groups.get(w, (w,))]
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    kinds = _csv(args.backends)
    for k in kinds:
        if k not in BACKEND_KINDS:
            parser.error(f"unknown backend {k!r}; choose from {', '.join(BACKEND_KINDS)}")
    if args.executors is not None and args.thunder_variants is not None:
        parser.error("give --executors or --thunder-variants, not both")
    if (args.executors is not None or args.thunder_variants is not None) and "thunder" not in kinds:
        parser.error("--executors / --thunder-variants need the thunder backend in --backends")

    if args.thunder_variants is not None:
        variants = [(parse_thunder_variant(v), parse_thunder_transforms(v)) for v in args.thunder_variants.split(";")]
    elif args.executors is not None:
        variants = [(parse_thunder_variant(args.executors), parse_thunder_transforms(args.executors))]
    else:
        variants = [(None, ())]
    backends: list[BackendSpec] = []
    for k in kinds:
        if k == "thunder":
            backends += [BackendSpec("thunder", executors=v, transforms=t) for v, t in dict.fromkeys(variants)]
        elif k == "torchcompile":
            backends.append(BackendSpec("torchcompile", compile_mode=args.torchcompile_mode))
        else:
            backends.append(BackendSpec(k))

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch.cuda.is_available() is False")
    dtype = args.dtype or ("bfloat16" if device == "cuda" else "float32")
    size = args.size or ("full" if device == "cuda" else "small")
    tiny = size == "tiny"
    modes = ["train", "inference"] if args.mode == "both" else [args.mode]
    return RunConfig(
        workloads=workloads,
        backends=backends,
        modes=modes,
        device=device,
        dtype=dtype,
        size=size,
        iters=args.iters if args.iters is not None else (3 if tiny else 20),
        warmup=args.warmup if args.warmup is not None else (1 if tiny else 3),
        seed=args.seed,
        overhead_calls=args.overhead_calls if args.overhead_calls is not None else (1000 if tiny else 20000),
        overhead_repeat=args.overhead_repeat,
        isolation=args.isolation,
        timeout_s=args.timeout,
        warm_cache=args.warm_cache,
        verbose=args.verbose,
    )


# Below this a step's time is mostly Python dispatch and timer noise: ratios between backends mean nothing.
MEANINGFUL_STEP_S = 1e-3
MEANINGFUL_ITERS = 5


def short_timing_warning(cfg: RunConfig, rows: list[dict]) -> str | None:
    """A warning for a `--size tiny` run whose timings are too short (or too few) to compare backends by;
    None for other sizes, and for tiny runs long enough to mean something."""
    if cfg.size != "tiny":
        return None
    timed = [r for r in rows if r.get("step_time_s") is not None and r.get("workload") != "overhead"]
    short = [r for r in timed if r["step_time_s"] < MEANINGFUL_STEP_S]
    if not short and cfg.iters >= MEANINGFUL_ITERS:
        return None
    reasons = []
    if short:
        reasons.append(f"{len(short)} of {len(timed)} rows take under {MEANINGFUL_STEP_S * 1e3:g} ms a step")
    if cfg.iters < MEANINGFUL_ITERS:
        reasons.append(f"each row times only {cfg.iters} step{'s' if cfg.iters != 1 else ''}")
    return (
        f"warning: --size tiny is a smoke test: {' and '.join(reasons)}, so the step times measure Python "
        "dispatch and timer noise, not the backends. Compare backends with --size small (CPU) or full (GPU)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.report:
        with open(args.report) as f:
            result = json.load(f)
        print(format_meta(result["meta"]))
        print(format_table(result["rows"], markdown=args.markdown))
        return 0
    if args.plot:
        from benchmarks.plots import plot_results

        with open(args.plot) as f:
            result = json.load(f)
        for path in plot_results(result, args.plot_dir or Path(args.plot).parent / "plots"):
            print(f"wrote {path}")
        return 0
    if args.distributed:
        return _run_distributed(args)
    cfg = config_from_args(args, parser)
    if cfg.iters < 1:
        parser.error("--iters must be at least 1")

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run_benchmarks(cfg, progress=progress)
    print()
    print(format_meta(result["meta"]))
    print(format_table(result["rows"], markdown=args.markdown))
    warning = short_timing_warning(cfg, result["rows"])
    if warning:
        print(f"\n{warning}", file=sys.stderr)
    if args.json:
        path = write_json(result, args.json)
        print(f"\nwrote {path}", file=sys.stderr)
    if args.strict and any(r.get("error") for r in result["rows"]):
        return 1
    return 0


def _run_distributed(args: argparse.Namespace) -> int:
    from benchmarks.distributed import main as distributed_main

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    size = args.size or ("full" if device == "cuda" else "small")
    tiny = size == "tiny"
    json_path = args.json if args.json != str(DEFAULT_JSON) else str(DEFAULT_JSON.with_name("distributed.json"))
    executors = _csv(args.executors) if args.executors is not None else None
    return distributed_main(
        _csv(args.distributed),
        size=size,
        device=device,
        dtype=args.dtype,
        iters=args.iters if args.iters is not None else (3 if tiny else 20),
        warmup=args.warmup if args.warmup is not None else (1 if tiny else 3),
        executors=executors or None,
        json_path=json_path or None,
    )
