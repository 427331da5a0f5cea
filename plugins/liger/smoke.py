"""Runs every operation the `liger` executor claims or fuses once on CUDA, in bfloat16, forward and backward,
against eager float32, and prints one line per case (then a summary; the exit status is the failure count).

    python plugins/liger/smoke.py

It needs a CUDA device and liger-kernel; it uses the comparison of the GPU tests (tests/liger_testing.py).
"""

from __future__ import annotations

import pathlib
import sys
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "tests"))
from liger_testing import check_against_eager, rotate_half  # noqa: E402

DTYPE = torch.bfloat16


def randn(*shape, dtype=DTYPE):
    return torch.randn(*shape, device="cuda", dtype=dtype)


def targets(n, classes):
    t = torch.randint(0, classes, (n,), device="cuda")
    t[::7] = -100
    return t


def rotary(x, freqs):
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos().to(x.dtype) + rotate_half(x) * emb.sin().to(x.dtype)


def linear_cross_entropy(h, w, t):
    return F.cross_entropy(F.linear(h, w).view(-1, w.shape[0]), t)


# name, function, arguments, an operator that must be in the traces
CASES = [
    ("rms_norm", lambda x, w: F.rms_norm(x, (512,), w, 1e-6), lambda: (randn(8, 64, 512), randn(512)),
     "liger.rms_norm_bwd"),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (512,), w, b), lambda: (randn(8, 64, 512), randn(512), randn(512)),
     "liger.layer_norm_bwd"),
    ("cross_entropy", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), lambda: (randn(256, 5000),
                                                                                         targets(256, 5000)),
     "liger.cross_entropy_fwd_with_grad"),
    ("swiglu (silu(a) * b)", lambda a, b: F.silu(a) * b, lambda: (randn(8, 64, 1024), randn(8, 64, 1024)),
     "liger.swiglu_bwd"),
    ("geglu (gelu(a, 'tanh') * b)", lambda a, b: F.gelu(a, approximate="tanh") * b,
     lambda: (randn(8, 64, 1024), randn(8, 64, 1024)), "liger.geglu_bwd"),
    ("rope (x * cos + rotate_half(x) * sin)", rotary,
     lambda: (randn(2, 8, 128, 64), torch.rand(128, 32, device="cuda")), "liger.rope_bwd"),
    ("fused linear cross-entropy", linear_cross_entropy,
     lambda: (randn(4, 128, 512), randn(8000, 512) * 0.05, targets(512, 8000)),
     "liger.fused_linear_cross_entropy_with_grads"),
]  # fmt: skip


def main() -> int:
    if not torch.cuda.is_available():
        print("liger smoke: no CUDA device")
        return 1
    torch.manual_seed(0)
    failures = 0
    for name, fn, make_args, op in CASES:
        try:
            ops = check_against_eager(fn, make_args(), DTYPE, scale=2)
            assert op in ops, f"{op} is not in the execution traces: the executor did not run it"
            print(f"PASS  {name}")
        except Exception:
            failures += 1
            print(f"FAIL  {name}\n{traceback.format_exc()}")
    print(f"liger smoke: {len(CASES) - failures} passed, {failures} failed")
    return failures


if __name__ == "__main__":
    sys.exit(main())
