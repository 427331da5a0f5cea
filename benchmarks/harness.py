"""Measuring one row (in the worker process) and running many rows (each in a fresh subprocess).

One *row* is (workload, case, mode, backend). ``run_row`` measures it in the current process:

1. import the backend's library (``import_s``);
2. reset the memory high-water mark and build the case from the seed;
3. wrap the callable with the backend and call it once (``first_call_s``: wrap + first call, compilation
   included; meaningful in a fresh process, which is what ``run_benchmarks`` gives each row by default);
4. ``warmup`` steps, then ``iters`` timed steps (``step_time_s``: the median; CUDA events on a GPU,
   ``time.perf_counter`` on the CPU). The ``overhead`` workload instead times ``repeat`` loops of many calls,
   timeit-style, and reports the median time per call;
5. ``peak_mem_bytes``: on CUDA ``torch.cuda.max_memory_allocated()`` above what was allocated before step 2;
   on the CPU the RSS high-water mark (``resource.getrusage``) above the RSS before step 2 (the mark is reset
   through ``/proc/self/clear_refs`` where Linux allows it, otherwise it is the process's high-water mark);
6. rebuild the case from the same seed, run it once with eager PyTorch and record the largest absolute
   difference of the outputs (``max_diff_out``) and, in train mode, of the gradients (``max_diff_grad``)
   against the backend's last timed step.

Any exception becomes the row's ``error`` (with ``error_stage`` and ``traceback``): a failing backend never
stops the run.
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils._pytree import tree_leaves

from benchmarks import backends as _backends
from benchmarks.backends import BackendSpec
from benchmarks.workloads import Case, build_case, plan_rows

REPO_ROOT = Path(__file__).resolve().parent.parent

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# every row has these fields (a value may be None): the JSON schema of a result row
ROW_FIELDS = {
    "workload": "workload name (overhead, chain, gpt2, llama)",
    "case": "case within the workload (overhead: add, elementwise10; otherwise the workload's name)",
    "mode": "train (forward + backward) or inference (forward under no_grad; the overhead workload)",
    "backend": "row name: eager, torchcompile, thunder[default], thunder[torchcompile,sdpa], ...",
    "backend_kind": "eager, torchcompile or thunder",
    "executors": "thunder's explicit executor list, or None for its defaults",
    "device": "cpu or cuda",
    "dtype": "float32, bfloat16, ...",
    "size": "tiny, small or full",
    "iters": "timed steps",
    "warmup": "untimed steps after the first call",
    "calls": "overhead only: timed calls in all",
    "step_time_s": "median step time in seconds (overhead: median time per call over the timed loops)",
    "step_time_min_s": "fastest timed step (or loop's time per call)",
    "step_time_max_s": "slowest timed step (or loop's time per call)",
    "first_call_s": "backend wrap + first call, compilation included, in seconds",
    "import_s": "time to import the backend's library",
    "peak_mem_bytes": "peak memory above the baseline taken before the case was built",
    "steady_peak_mem_bytes": "peak memory of the timed steps alone (high-water mark reset after the warmup) above the "
                              "same baseline: what training keeps needing, without compilation",
    "mem_source": "cuda.max_memory_allocated, rss_highwater_reset or rss_highwater_process",
    "max_diff_out": "max |output - eager output| (eager recomputed in the same process from the same seed)",
    "max_diff_grad": "train only: max |grad - eager grad| over every parameter (train-step: max |parameter - eager "
                     "parameter| after as many eager steps as the backend took)",
    "loss": "train only, scalar outputs: the loss value",
    "grads_missing": "train only: parameters whose .grad stayed None",
    "step_vs_eager": "step_time_s / eager's (same workload, case, mode)",
    "step_vs_torchcompile": "step_time_s / torchcompile's",
    "first_call_vs_eager": "first_call_s / eager's",
    "first_call_vs_torchcompile": "first_call_s / torchcompile's",
    "mem_vs_eager": "peak_mem_bytes / eager's",
    "mem_vs_torchcompile": "peak_mem_bytes / torchcompile's",
    "info": "shapes and model configuration",
    "error": "None, or the exception that stopped the row: 'Type: message'",
    "error_stage": "import, setup, first_call, timing, reference or worker",
    "thunder_trace_ms": "thunder only: acquisition time of the first call's compilation, in ms",
    "thunder_transform_ms": "thunder only: every pass after acquisition (autodiff, fusion, claiming...), in ms",
    "saved_for_backward": "thunder only, train: number of tensors the forward saves for the backward",
    "saved_for_backward_bytes": "thunder only, train: their total size in bytes",
    "traceback": "the error's traceback",
    "worker_wall_s": "seconds the worker spent on the row",
    "load_avg_1m": "the machine's 1-minute load average at the end of the row (other work skews CPU timings)",
}


# --------------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------------


def _rss_now_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rss_highwater_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB on Linux


class MemoryMeter:
    """Peak memory above a baseline: CUDA allocator peak on a GPU, RSS high-water on the CPU."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.source = ""
        self.baseline = 0

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
            self.source = "cuda.max_memory_allocated"
            return
        try:  # Linux: "5" resets the RSS high-water mark of this process
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.source = "rss_highwater_reset"
        except OSError:
            self.source = "rss_highwater_process"
        now = _rss_now_bytes()
        self.baseline = now if now is not None else _rss_highwater_bytes()

    def reset_peak(self) -> None:
        """Restart the high-water mark (the baseline stays)."""
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        elif self.source == "rss_highwater_reset":
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")

    def peak(self) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.baseline
        return max(_rss_highwater_bytes() - self.baseline, 0)


# --------------------------------------------------------------------------------------------------
# steps and comparisons
# --------------------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_step(case: Case, fn: Callable, mode: str) -> Callable[[], object]:
    """One step: a forward under no_grad (inference), or forward + backward with fresh gradients (train)."""
    args = case.args
    if case.kind == "train-step":  # the callable is the whole step: backward, optimizer and zero_grad inside

        def step():
            return fn(*args).detach()

        return step
    if mode == "inference" or case.kind == "overhead":

        def step():
            with torch.no_grad():
                return fn(*args)

        return step

    params = list(case.grad_tensors.values())
    grad_out = case.grad_out

    def step():
        for p in params:
            p.grad = None
        out = fn(*args)
        if grad_out is None:
            out.backward()
        else:
            out.backward(grad_out)
        return out.detach()

    return step


def max_abs_diff(a, b) -> float:
    """Largest absolute elementwise difference over matching tensor leaves; inf on any structural mismatch."""
    la, lb = tree_leaves(a), tree_leaves(b)
    if len(la) != len(lb):
        return math.inf
    worst = 0.0
    for x, y in zip(la, lb):
        if isinstance(x, torch.Tensor) != isinstance(y, torch.Tensor):
            return math.inf
        if not isinstance(x, torch.Tensor):
            if x != y:
                return math.inf
            continue
        if x.shape != y.shape:
            return math.inf
        if x.numel() == 0:
            continue
        dt = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
        xd, yd = x.detach().to(dt), y.detach().to(x.device, dt)
        d = (xd - yd).abs()
        d = torch.where(torch.isnan(xd) & torch.isnan(yd), torch.zeros_like(d), d)  # NaN == NaN here
        d = torch.where(xd == yd, torch.zeros_like(d), d)  # inf == inf here
        worst = max(worst, float(d.max()))
    return worst


def _grads(case: Case) -> dict[str, torch.Tensor | None]:
    if case.kind == "train-step":
        return {name: t.detach().clone() for name, t in case.grad_tensors.items()}
    return {name: (t.grad.detach() if t.grad is not None else None) for name, t in case.grad_tensors.items()}


def _grad_diff(got: dict, ref: dict) -> float:
    worst = 0.0
    for name, r in ref.items():
        g = got.get(name)
        if r is None and g is None:
            continue
        if r is None or g is None:
            return math.inf
        worst = max(worst, max_abs_diff(g, r))
    return worst


def _format_error(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}".strip()
    return msg if len(msg) <= 2000 else msg[:2000] + " ..."


# --------------------------------------------------------------------------------------------------
# one row, in this process
# --------------------------------------------------------------------------------------------------


def empty_row(spec: dict) -> dict:
    backend = BackendSpec.from_json(spec["backend"])
    row = dict.fromkeys(ROW_FIELDS)
    row.update(
        workload=spec["workload"],
        case=spec["case"],
        mode=spec["mode"],
        backend=backend.name,
        backend_kind=backend.kind,
        executors=spec["backend"].get("executors"),
        device=spec["device"],
        dtype=spec["dtype"],
        size=spec["size"],
        iters=spec["iters"],
        warmup=spec["warmup"],
        grads_missing=[],
    )
    return row


def run_row(spec: dict) -> dict:
    """Measure one row in this process (see the module docstring). Never raises for a backend's failure."""
    row = empty_row(spec)
    backend = BackendSpec.from_json(spec["backend"])
    device, mode, seed = spec["device"], spec["mode"], spec["seed"]
    dtype = DTYPES[spec["dtype"]]
    t_row = time.perf_counter()
    stage = "import"
    try:
        t0 = time.perf_counter()
        _backends.prepare(backend)
        row["import_s"] = time.perf_counter() - t0

        stage = "setup"
        meter = MemoryMeter(device)
        meter.start()
        row["mem_source"] = meter.source
        case = build_case(spec["workload"], spec["case"], spec["size"], mode, device, dtype, seed)
        row["info"] = case.info
        _sync(device)

        stage = "first_call"
        t0 = time.perf_counter()
        fn = _backends.wrap(backend, case.fn)
        step = make_step(case, fn, mode)
        out = step()
        _sync(device)
        row["first_call_s"] = time.perf_counter() - t0
        if backend.kind == "thunder":
            row.update(_thunder_stats(fn))

        stage = "timing"
        if case.kind == "overhead":
            out, times = _time_overhead(case, fn, device, spec)
            row["calls"] = sum(n for n, _ in times)
            per_call = [t / n for n, t in times]
        else:
            out, _ = _time_steps(step, device, spec["warmup"], 0)
            first_peak = meter.peak()
            meter.reset_peak()
            out, per_call = _time_steps(step, device, 0, spec["iters"])
            row["steady_peak_mem_bytes"] = meter.peak()
        row["step_time_s"] = statistics.median(per_call)
        row["step_time_min_s"] = min(per_call)
        row["step_time_max_s"] = max(per_call)
        row["peak_mem_bytes"] = meter.peak() if case.kind == "overhead" else max(first_peak, row["steady_peak_mem_bytes"])

        got_out = out
        got_grads = _grads(case) if mode == "train" else {}
        steps_taken = 1 + spec["warmup"] + spec["iters"] if case.kind == "train-step" else 1
        row["grads_missing"] = sorted(name for name, g in got_grads.items() if g is None)
        if mode == "train" and isinstance(out, torch.Tensor) and out.numel() == 1:
            row["loss"] = float(out)
        del fn, step, case, out
        gc.collect()

        stage = "reference"
        ref_case = build_case(spec["workload"], spec["case"], spec["size"], mode, device, dtype, seed)
        ref_step = make_step(ref_case, ref_case.fn, mode)
        for _ in range(steps_taken):  # a train-step row changed the parameters at every step
            ref_out = ref_step()
        _sync(device)
        row["max_diff_out"] = max_abs_diff(got_out, ref_out)
        if mode == "train":
            row["max_diff_grad"] = _grad_diff(got_grads, _grads(ref_case))
    except Exception as e:
        row["error"] = _format_error(e)
        row["error_stage"] = stage
        row["traceback"] = traceback.format_exc()[-6000:]
    row["worker_wall_s"] = time.perf_counter() - t_row
    row["load_avg_1m"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return row


def _time_steps(step: Callable, device: str, warmup: int, iters: int) -> tuple[object, list[float]]:
    out = None
    for _ in range(warmup):
        out = None
        out = step()
    _sync(device)
    times = []
    if device.startswith("cuda"):
        events = []
        for _ in range(iters):
            out = None
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = step()
            end.record()
            events.append((start, end))
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) / 1000.0 for s, e in events]
    else:
        for _ in range(iters):
            out = None
            t0 = time.perf_counter()
            out = step()
            times.append(time.perf_counter() - t0)
    return out, times


def _time_overhead(case: Case, fn: Callable, device: str, spec: dict) -> tuple[object, list[tuple[int, float]]]:
    """timeit-style: ``repeat`` loops of ``calls // repeat`` calls; returns (calls, seconds) per loop."""
    repeat = max(1, spec["overhead_repeat"])
    number = max(1, spec["overhead_calls"] // repeat)
    args = case.args
    loops = []
    with torch.no_grad():
        for _ in itertools.repeat(None, max(100, number // 10)):  # warmup
            out = fn(*args)
        _sync(device)
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in itertools.repeat(None, number):
                fn(*args)
            _sync(device)
            loops.append((number, time.perf_counter() - t0))
        out = fn(*args)
    return out, loops


# --------------------------------------------------------------------------------------------------
# many rows, each backend (by default each row) in a fresh subprocess
# --------------------------------------------------------------------------------------------------


@dataclass
class RunConfig:
    workloads: list[str]
    backends: list[BackendSpec]
    modes: list[str]
    device: str
    dtype: str
    size: str
    iters: int = 20
    warmup: int = 3
    seed: int = 0
    overhead_calls: int = 20000
    overhead_repeat: int = 5
    # "row": a fresh subprocess per row (fresh first-call and memory figures; the default)
    # "backend": one subprocess per backend, running all its rows; "none": in this process (debugging)
    isolation: str = "row"
    timeout_s: float = 3600.0  # per row
    warm_cache: bool = False  # False: each subprocess gets empty Inductor/Triton caches (cold compiles)
    verbose: bool = False  # let the workers' output through
    extra_meta: dict = field(default_factory=dict)

    def specs(self) -> list[dict]:
        """The JSON-able description of each row, as sent to the workers."""
        common = dict(
            size=self.size,
            device=self.device,
            dtype=self.dtype,
            seed=self.seed,
            iters=self.iters,
            warmup=self.warmup,
            overhead_calls=self.overhead_calls,
            overhead_repeat=self.overhead_repeat,
        )
        return [
            dict(workload=workload, case=case, mode=mode, backend=b.to_json(), **common)
            for workload, case, mode in plan_rows(self.workloads, self.modes)
            for b in self.backends
        ]


def _error_row(spec: dict, message: str, stage: str = "worker") -> dict:
    row = empty_row(spec)
    row.update(error=message, error_stage=stage)
    return row


def run_specs_in_subprocess(specs: list[dict], cfg: RunConfig) -> list[dict]:
    """Run ``specs`` in one fresh ``python -m benchmarks.worker``; a crash or timeout becomes error rows."""
    with tempfile.TemporaryDirectory(prefix="thunder-bench-") as tmp:
        tmp = Path(tmp)
        spec_path, out_path, log_path = tmp / "specs.json", tmp / "rows.json", tmp / "worker.log"
        spec_path.write_text(json.dumps(specs))
        env = os.environ.copy()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        if not cfg.warm_cache:
            env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor-cache")
            env["TRITON_CACHE_DIR"] = str(tmp / "triton-cache")
        cmd = [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(out_path)]
        failure = None
        with open(log_path, "w") as log:
            try:
                proc = subprocess.run(
                    cmd,
                    env=env,
                    stdout=None if cfg.verbose else log,
                    stderr=None if cfg.verbose else subprocess.STDOUT,
                    timeout=cfg.timeout_s * len(specs),
                )
                if proc.returncode != 0:
                    failure = f"worker exited with code {proc.returncode}"
            except subprocess.TimeoutExpired:
                failure = f"worker timed out after {cfg.timeout_s * len(specs):.1f} s"
        rows = json.loads(out_path.read_text()) if out_path.exists() else []
        if len(rows) < len(specs):
            tail = log_path.read_text()[-3000:] if log_path.exists() else ""
            msg = (failure or "worker produced no result") + (f"; output tail:\n{tail}" if tail else "")
            rows += [_error_row(s, msg) for s in specs[len(rows) :]]
        return rows


def add_ratios(rows: list[dict]) -> None:
    """Add ``*_vs_eager`` and ``*_vs_torchcompile`` (this row's figure / the reference's, same workload/case/mode)."""
    refs: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if r.get("error") is None:
            refs.setdefault((r["workload"], r["case"], r["mode"]), {}).setdefault(r["backend_kind"], r)
    for r in rows:
        group = refs.get((r["workload"], r["case"], r["mode"]), {})
        for ref_kind in ("eager", "torchcompile"):
            ref = group.get(ref_kind)
            for metric, short in (("step_time_s", "step"), ("first_call_s", "first_call"), ("peak_mem_bytes", "mem")):
                a, b = r.get(metric), (ref or {}).get(metric)
                ok = r.get("error") is None and a is not None and b is not None and b > 0
                r[f"{short}_vs_{ref_kind}"] = a / b if ok else None


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def collect_meta(cfg: RunConfig, started: str | None = None) -> dict:
    import platform

    meta = {
        "date": started or _now(),  # when the run started
        "finished": _now(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name() if cfg.device.startswith("cuda") and torch.cuda.is_available() else None,
        "thunder": _dist_version("thunder-core"),
        "git_commit": _git_commit(),
        "load_avg_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "config": {
            "workloads": cfg.workloads,
            "backends": [b.name for b in cfg.backends],
            "modes": cfg.modes,
            "device": cfg.device,
            "dtype": cfg.dtype,
            "size": cfg.size,
            "iters": cfg.iters,
            "warmup": cfg.warmup,
            "seed": cfg.seed,
            "overhead_calls": cfg.overhead_calls,
            "overhead_repeat": cfg.overhead_repeat,
            "isolation": cfg.isolation,
            "warm_cache": cfg.warm_cache,
        },
    }
    meta.update(cfg.extra_meta)
    return meta


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or None


def _dist_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def run_benchmarks(cfg: RunConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Run every row of ``cfg``; returns ``{"meta": {...}, "rows": [...]}`` with the ratios filled in."""
    started = _now()
    specs = cfg.specs()
    if cfg.isolation == "row":
        groups = [[s] for s in specs]
    elif cfg.isolation == "backend":
        by_backend: dict[str, list[dict]] = {}
        for s in specs:
            by_backend.setdefault(BackendSpec.from_json(s["backend"]).name, []).append(s)
        groups = list(by_backend.values())
    elif cfg.isolation == "none":
        groups = [[s] for s in specs]
    else:
        raise ValueError(f"unknown isolation {cfg.isolation!r}; choose row, backend or none")

    rows: list[dict] = []
    done = 0
    for group in groups:
        if progress:
            for s in group:
                progress(f"[{done + 1}/{len(specs)}] {_label(s)} ...")
        results = [run_row(s) for s in group] if cfg.isolation == "none" else run_specs_in_subprocess(group, cfg)
        for r in results:
            done += 1
            if progress:
                progress(f"    {_summary(r)}")
        rows.extend(results)
    add_ratios(rows)
    return {"meta": collect_meta(cfg, started), "rows": rows}


def _label(spec: dict) -> str:
    name = BackendSpec.from_json(spec["backend"]).name
    return f"{spec['workload']}/{spec['case']} {spec['mode']} {name}"


def _summary(row: dict) -> str:
    from benchmarks.report import fmt_time

    label = f"{row['workload']}/{row['case']} {row['mode']} {row['backend']}"
    if row.get("error"):
        return f"{label}: ERROR ({row['error_stage']}) {row['error'].splitlines()[0][:200]}"
    return (
        f"{label}: step {fmt_time(row['step_time_s'])}, first call {fmt_time(row['first_call_s'])}, "
        f"max diff {row['max_diff_out']:.3g}"
    )


def write_json(result: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def _thunder_stats(jitted) -> dict:
    """Compile-time breakdown and the saved-for-backward set of a thunder-jitted callable."""
    import thunder

    stats = thunder.compile_stats(jitted)
    return {
        "thunder_trace_ms": stats.last_trace_time_ms,
        "thunder_transform_ms": stats.last_transform_time_ms,
        "saved_for_backward": stats.saved_for_backward,
        "saved_for_backward_bytes": stats.saved_for_backward_bytes,
    }
