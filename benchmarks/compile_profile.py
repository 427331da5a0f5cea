"""Where `thunder.jit`'s compilation spends its time: process time per workload, split by pipeline stage.

Three workloads, each compiling from scratch (a fresh `thunder.jit` every repetition):

- ``opinfo``: the first ``--opinfos`` OpInfos of PyTorch's ``op_db`` in float32, 4 samples each, forward and
  gradients, exactly as ``tests/test_opinfo.py`` checks them (most of the test suite's time is this);
- ``gpt``: the first training step (forward, ``backward()``) of the benchmarks' nanoGPT-style GPT-2 at a size;
- ``llama``: the first training step of the 2-layer transformers Llama of ``tests/models``.

Timings are ``time.process_time`` (CPU time of this process: the machine is shared, so wall time is noise),
the median and minimum over ``--repeat`` repetitions. ``--profile`` runs one more repetition under cProfile
and prints the compile time by stage (the cumulative time of the stage's entry points; the verifier, which
runs between passes, is its own row) and the functions with the most own time and the most calls.

    python3 -m benchmarks.compile_profile --workloads opinfo,gpt,llama --repeat 5 --profile
    THUNDER_DEBUG_VERIFY=1 python3 -m benchmarks.compile_profile --workloads opinfo   # as the test suite runs

Call counts are deterministic: compare them between two builds where process times are too close to call.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import time
from collections.abc import Callable

import torch

# stage -> entry points (module path suffix, function name); the cumulative time of each is summed
STAGES: dict[str, list[tuple[str, str]]] = {
    "trace acquisition": [("frontend/tracer.py", "acquire_trace")],
    "before autodiff (transforms, dce)": [("frontend/compile.py", "before_autodiff")],
    "autodiff (joint, split)": [("transforms/autodiff.py", "forward_and_backward")],
    "after autodiff": [("frontend/compile.py", "after_autodiff")],
    "fusion": [("transforms/fusion.py", "fuse_regions")],
    "claiming": [("transforms/claim_operators.py", "claim_operators")],
    "delete last used": [("transforms/del_last_used.py", "del_last_used")],
    "codegen (source + exec)": [("core/trace.py", "python_callable")],
    "guards (checks, hot call)": [("frontend/jit.py", "_add_checks")],
    "trace verifier": [("core/verify.py", "verify_trace")],
}
TOTAL = ("frontend/jit.py", "_compile")


def opinfo_workload(count: int) -> Callable[[], None]:
    """The first `count` OpInfos with float32 support, checked as tests/test_opinfo.py checks them."""
    from tests.opinfo_check import run_opinfo, sweep_dtypes, sweep_opinfos

    opinfos = [o for o in sweep_opinfos() if torch.float32 in sweep_dtypes(o, "cpu")][:count]

    def run() -> None:
        for opinfo in opinfos:
            for _ in run_opinfo(opinfo, "cpu", torch.float32, check_grad=True, sample_limit=4):
                pass

    return run


def _training_step(build: Callable[[], torch.nn.Module], inputs: Callable[[], tuple]) -> Callable[[], None]:
    import thunder

    def run() -> None:
        torch.manual_seed(0)
        model = build()
        args, kwargs = inputs()
        loss = thunder.jit(model)(*args, **kwargs)
        loss = loss if isinstance(loss, torch.Tensor) else loss.loss
        loss.backward()

    return run


def gpt_workload(size: str) -> Callable[[], None]:
    from benchmarks.models import GPT, GPTConfig

    config = GPTConfig.preset(size)

    def inputs():
        g = torch.Generator().manual_seed(1)
        idx = torch.randint(0, config.vocab_size, (config.batch_size, config.block_size), generator=g)
        return (idx, torch.roll(idx, -1, dims=1)), {}

    return _training_step(lambda: GPT(config), inputs)


def llama_workload() -> Callable[[], None]:
    from tests.models.test_hf_models import build, causal_lm_inputs

    return _training_step(lambda: build("llama"), lambda: ((), causal_lm_inputs()))


def make_workload(name: str, args) -> Callable[[], None]:
    if name == "opinfo":
        return opinfo_workload(args.opinfos)
    if name == "gpt":
        return gpt_workload(args.size)
    if name == "llama":
        return llama_workload()
    raise SystemExit(f"unknown workload {name!r}: choose from opinfo, gpt, llama")


def process_times(run: Callable[[], None], repeat: int) -> list[float]:
    run()  # warm-up: imports, torch's own first-call caches, sample generation's lazy set-up
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return times


def _cumulative(stats: pstats.Stats, entry: tuple[str, str]) -> tuple[float, int]:
    suffix, name = entry
    seconds, calls = 0.0, 0
    for (file, _, func), (_, ncalls, _, cumtime, _) in stats.stats.items():
        if func == name and file.replace("\\", "/").endswith(suffix):
            seconds += cumtime
            calls += ncalls
    return seconds, calls


def stage_table(stats: pstats.Stats) -> str:
    total, compiles = _cumulative(stats, TOTAL)
    lines = [f"compilations: {compiles}, compile time under the profiler: {total:.3f} s", "",
             f"{'stage':40} {'seconds':>9} {'share':>7} {'calls':>7}"]  # fmt: skip
    for stage, entries in STAGES.items():
        seconds = sum(_cumulative(stats, e)[0] for e in entries)
        calls = sum(_cumulative(stats, e)[1] for e in entries)
        share = seconds / total if total else 0.0
        lines.append(f"{stage:40} {seconds:9.3f} {share:7.1%} {calls:7d}")
    return "\n".join(lines)


def top_functions(stats: pstats.Stats, key: str, limit: int) -> str:
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats(key).print_stats(limit)
    text = out.getvalue()
    return text[text.find("   ncalls") :]


def profile(run: Callable[[], None], limit: int) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    return pstats.Stats(profiler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="opinfo,gpt,llama", help="comma-separated: opinfo, gpt, llama")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions after one warm-up (default 5)")
    parser.add_argument("--opinfos", type=int, default=100, help="OpInfos in the opinfo workload (default 100)")
    parser.add_argument("--size", default="small", help="the gpt workload's preset (default small)")
    parser.add_argument("--profile", action="store_true", help="stage split and top functions under cProfile")
    parser.add_argument("--top", type=int, default=25, help="functions listed with --profile (default 25)")
    args = parser.parse_args(argv)
    for name in args.workloads.split(","):
        run = make_workload(name, args)
        times = process_times(run, args.repeat)
        print(f"== {name}: process time median {statistics.median(times):.3f} s, min {min(times):.3f} s "
              f"over {len(times)} repetitions ({', '.join(f'{t:.3f}' for t in times)})", flush=True)  # fmt: skip
        if args.profile:
            stats = profile(run, args.top)
            print(stage_table(stats))
            print("\n-- most own time --")
            print(top_functions(stats, "tottime", args.top))
            print("-- most calls --")
            print(top_functions(stats, "ncalls", args.top), flush=True)


if __name__ == "__main__":
    main()
