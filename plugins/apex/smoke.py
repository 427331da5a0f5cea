"""Runs every operation the `apex` executor claims once on CUDA, in bfloat16 and float16, forward and
backward, against eager float32, and prints one line per case (then a summary; the exit status is the
failure count).

    source .device/build_apex.sh   # on the lent GPU host: builds Apex's two extensions (see README.md)
    python plugins/apex/smoke.py

It uses the comparison of the GPU tests (tests/apex_testing.py).
"""

from __future__ import annotations

import pathlib
import sys
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "tests"))
from apex_testing import check_against_eager  # noqa: E402


def randn(*shape, dtype):
    return torch.randn(*shape, device="cuda", dtype=dtype)


def targets(n, classes):
    t = torch.randint(0, classes, (n,), device="cuda")
    t[::7] = -100
    return t


# name, function, arguments for a dtype, an operator that must be in the traces
CASES = [
    ("layer_norm (affine)", lambda x, w, b: F.layer_norm(x, (512,), w, b),
     lambda d: (randn(8, 64, 512, dtype=d), randn(512, dtype=d), randn(512, dtype=d)), "apex.layer_norm_bwd"),
    ("layer_norm (no parameters)", lambda x: F.layer_norm(x, (512,)), lambda d: (randn(8, 64, 512, dtype=d),),
     "apex.layer_norm_bwd"),
    ("rms_norm (weight)", lambda x, w: F.rms_norm(x, (512,), w, 1e-6),
     lambda d: (randn(8, 64, 512, dtype=d), randn(512, dtype=d)), "apex.rms_norm_bwd"),
    ("rms_norm (no weight)", lambda x: F.rms_norm(x, (512,)), lambda d: (randn(8, 64, 512, dtype=d),),
     "apex.rms_norm_bwd"),
    ("cross_entropy (mean, smoothing)", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
     lambda d: (randn(256, 5000, dtype=d), targets(256, 5000)), "apex.cross_entropy_bwd"),
    ("cross_entropy (none)", lambda x, t: F.cross_entropy(x, t, reduction="none"),
     lambda d: (randn(256, 5000, dtype=d), targets(256, 5000)), "apex.cross_entropy_bwd"),
]  # fmt: skip


def main() -> int:
    if not torch.cuda.is_available():
        print("apex smoke: no CUDA device")
        return 1
    torch.manual_seed(0)
    failures = total = 0
    for dtype in (torch.bfloat16, torch.float16):
        for name, fn, make_args, op in CASES:
            total += 1
            try:
                ops = check_against_eager(fn, make_args(dtype), dtype, scale=3)
                assert op in ops, f"{op} is not in the execution traces: the executor did not run it"
                print(f"PASS  {name} {dtype}")
            except Exception:
                failures += 1
                print(f"FAIL  {name} {dtype}\n{traceback.format_exc()}")
    print(f"apex smoke: {total - failures} passed, {failures} failed")
    return failures


if __name__ == "__main__":
    sys.exit(main())
