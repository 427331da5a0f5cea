"""`python3 -m benchmarks.compile_profile` (compilation time by pipeline stage) runs, in a subprocess of its own: it
patches Thunder's pipeline functions with timers. No timing is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from benchmarks.compile_profile import STAGES

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_compile_profile_counts_compilations_and_splits_them_by_stage():
    command = [sys.executable, "-m", "benchmarks.compile_profile", "--workloads", "gpt", "--size", "tiny", "--repeat",
               "1", "--profile", "--top", "5"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "== gpt: 1 compilations per repetition" in out
    for stage in [*STAGES, "other"]:
        assert re.search(rf"^{re.escape(stage)} +\d+\.\d{{3}} +\d+\.\d%$", out, re.MULTILINE), stage
    compile_seconds = [float(s) for s in re.findall(r"compilation +median (\d+\.\d+) s", out)]
    assert len(compile_seconds) == 1 and all(s > 0 for s in compile_seconds)
    assert "most own time" in out and "most calls" in out
