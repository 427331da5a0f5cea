"""The OpInfo sweep (tests/opinfo_check.py) through the nvFuser executor's planner on the CPU: every OpInfo of
PyTorch's `op_db` under `thunder.jit(executors=[nvFuser claiming CPU tensors, plans replayed by torch])`, against
eager. It checks what the planner decides (claims, casts, broadcasts, reductions, views at a region's edges) on
every sample, not nvFuser itself (the GPU tests do that).

Run from the repository root: `python3 thunder_executors_nvfuser/tests/sweep_plans.py [--dtypes float32,bfloat16]
[--grad] [--ops abs,add] [--limit N]`; one line per (OpInfo, dtype) that fails, and a summary.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2]))

from plan_interpreter import interpret_build  # noqa: E402
from thunder_executors_nvfuser.executor import NvFuserExecutor  # noqa: E402
from thunder_executors_nvfuser.options import NvFuserOptions  # noqa: E402

from tests.opinfo_check import opinfo_name, run_opinfo, selected_pairs, sweep_argument_parser  # noqa: E402


def plan_executor() -> NvFuserExecutor:
    return NvFuserExecutor(NvFuserOptions(), device_types=("cpu",), build=interpret_build)


def main() -> None:
    parser = sweep_argument_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--grad", action="store_true")
    args = parser.parse_args()
    executor = plan_executor()
    pairs = failed_pairs = samples = 0
    start = time.perf_counter()
    for opinfo, dtype in selected_pairs(args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                outcomes = list(run_opinfo(opinfo, args.device, dtype, args.grad, args.limit, executors=[executor]))
            except Exception as error:
                print(f"{opinfo_name(opinfo)} {dtype}: sample generation failed: {error!r}"[:300], flush=True)
                continue
        pairs += 1
        samples += len(outcomes)
        failed = [o for o in outcomes if o.kind in ("error", "mismatch")]
        if failed:
            failed_pairs += 1
            first = failed[0]
            print(f"{opinfo_name(opinfo)} {dtype}: {len(failed)}/{len(outcomes)} failed; sample {first.index}: "
                  f"{first.kind}: {first.message[:300]!r}", flush=True)  # fmt: skip
    print(f"{pairs} (OpInfo, dtype) pairs, {samples} samples, {failed_pairs} pairs failing, "
          f"{time.perf_counter() - start:.0f} s; fusions compiled {executor.stats.compilations}")


if __name__ == "__main__":
    main()
