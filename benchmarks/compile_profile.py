"""Where `thunder.jit`'s compilation spends its time: process time per workload, split by pipeline stage.

Three workloads, each compiling from scratch (a fresh `thunder.jit` every repetition):

- ``opinfo``: the first ``--opinfos`` OpInfos of PyTorch's ``op_db`` in float32, 4 samples each, forward and
  gradients, exactly as ``tests/test_opinfo.py`` checks them (most of the test suite's time is this);
- ``gpt``: the first training step (forward, ``backward()``) of the benchmarks' nanoGPT-style GPT-2 at a size;
- ``llama``: the first training step of the 2-layer transformers Llama of ``tests/models``.

Timings are ``time.process_time`` (CPU time of this process: the machine is shared, so wall time is noise),
the median and minimum over ``--repeat`` repetitions. The compilation time is split by pipeline stage
(exclusive process time of each stage's functions, the mean of the repetitions; the verifier, which runs between
passes, is its own row). ``--profile`` runs one more repetition under cProfile and prints the functions with the
most own time and the most calls (cProfile slows Python code several times over, so its seconds are not the
process times above; its call counts are exact).

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

# stage -> the functions timed as that stage: (module, attribute) patched where the pipeline looks them up
STAGES: dict[str, list[tuple[str, str]]] = {
    "trace acquisition": [("thunder.frontend.jit", "acquire_trace")],
    "nn.Module read recorder on/off": [("thunder.frontend.guards", "_install_module_patch"),
                                       ("thunder.frontend.guards", "_remove_module_patch")],
    "before autodiff (transforms, dce)": [("thunder.frontend.compile", "before_autodiff")],
    "autodiff (joint, split)": [("thunder.frontend.compile", "forward_and_backward")],
    "after autodiff": [("thunder.frontend.compile", "after_autodiff")],
    "fusion": [("thunder.frontend.compile", "fuse_regions")],
    "claiming": [("thunder.frontend.compile", "claim_operators")],
    "delete last used": [("thunder.frontend.compile", "del_last_used")],
    "codegen (source + exec)": [("thunder.core.trace:TraceCtx", "python_callable")],
    "guards (checks, hot call)": [("thunder.frontend.jit:ThunderFunction", "_add_checks")],
    "trace verifier": [("thunder.frontend.compile", "_maybe_verify")],
}
OUTERMOST = ("thunder.frontend.jit:ThunderFunction", "_compile")  # the rest of compilation: "other"


_TIMED_SOURCE = """
def timed(*args, **kwargs):
    nested = clock._nested
    if stage == "other" and not nested:
        clock.compilations += 1
    start = process_time()
    nested.append(0.0)
    try:
        return fn(*args, **kwargs)
    finally:
        elapsed = process_time() - start
        inner = nested.pop()
        clock.seconds[stage] = clock.seconds.get(stage, 0.0) + elapsed - inner
        if nested:
            nested[-1] += elapsed
"""


class StageClock:
    """Process time inside each stage's functions, exclusive: a stage's time excludes the stages it calls (the
    verifier between passes is its own row), and "other" is the compilation outside every stage."""

    def __init__(self):
        import importlib

        self.seconds: dict[str, float] = {}
        self.compilations = 0
        self._nested: list[float] = []
        for stage, entries in [*STAGES.items(), ("other", [OUTERMOST])]:
            for path, name in entries:
                module_name, _, class_name = path.partition(":")
                owner = importlib.import_module(module_name)
                owner = getattr(owner, class_name) if class_name else owner
                setattr(owner, name, self._timed(getattr(owner, name), stage))

    def _timed(self, fn: Callable, stage: str) -> Callable:
        # Compiled under a "<thunder..." file name: acquisition runs inside Thunder's guard recorder, which would
        # otherwise take this wrapper for user code and guard its closure (a gc scan of the heap per compilation)
        namespace = {"fn": fn, "stage": stage, "clock": self, "process_time": time.process_time}
        exec(compile(_TIMED_SOURCE, "<thunder compile_profile>", "exec"), namespace)
        return namespace["timed"]

    def reset(self) -> None:
        self.seconds = {}

    def total(self) -> float:
        return sum(self.seconds.values())

    def table(self) -> str:
        total = self.total()
        lines = [f"{'stage (process time, exclusive, per repetition)':40} {'seconds':>9} {'share':>7}"]
        for stage in [*STAGES, "other"]:
            seconds = self.seconds.get(stage, 0.0)
            lines.append(f"{stage:40} {seconds:9.3f} {seconds / total if total else 0.0:7.1%}")
        return "\n".join(lines)


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


def process_times(run: Callable[[], None], repeat: int, clock: StageClock) -> tuple[list[float], list[float], dict]:
    """(whole workload, compilation alone) process times of each repetition, after one warm-up (imports, torch's
    own first-call caches, sample generation's lazy set-up), and the stages' seconds averaged over the repetitions."""
    run()
    times, compile_times, stages = [], [], {}
    for _ in range(repeat):
        _forget_compiled_sources()
        gc.collect()
        clock.reset()
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
        compile_times.append(clock.total())
        for stage, seconds in clock.seconds.items():
            stages[stage] = stages.get(stage, 0.0) + seconds / repeat
    clock.seconds = stages
    return times, compile_times, stages


def _forget_compiled_sources() -> None:
    """Each repetition compiles as a fresh process would: without the code objects of the previous ones."""
    from thunder.core import codegen

    memo = getattr(codegen, "_compile_small_source", None)
    if memo is not None:
        memo.cache_clear()


def _summary(times: list[float]) -> str:
    return f"median {statistics.median(times):.3f} s, min {min(times):.3f} s ({', '.join(f'{t:.3f}' for t in times)})"


def top_functions(stats: pstats.Stats, key: str, limit: int) -> str:
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats(key).print_stats(limit)
    text = out.getvalue()
    return text[text.find("   ncalls") :]


def profile(run: Callable[[], None]) -> pstats.Stats:
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
    clock = StageClock()
    for name in args.workloads.split(","):
        run = make_workload(name, args)
        clock.compilations = 0
        times, compile_times, _ = process_times(run, args.repeat, clock)
        print(f"== {name}: {clock.compilations // (args.repeat + 1)} compilations per repetition; process time over "
              f"{args.repeat} repetitions:\n   whole workload {_summary(times)}\n   compilation    {_summary(compile_times)}",
              flush=True)  # fmt: skip
        print(clock.table(), flush=True)
        if args.profile:
            stats = profile(run)
            print("\n-- most own time --")
            print(top_functions(stats, "tottime", args.top))
            print("-- most calls --")
            print(top_functions(stats, "ncalls", args.top), flush=True)


if __name__ == "__main__":
    main()
