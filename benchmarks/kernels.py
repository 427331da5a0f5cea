"""Kernel workloads: the single operations that executor packages replace with their own kernels.

Cross-entropy over a large vocabulary, fused linear + cross-entropy, RMSNorm and causal attention, each as
a plain function of leaf tensors (its gradients are the leaves' ``.grad``), so that eager, torch.compile and
every thunder executor list run the same call in the same table as the model workloads. They are not in
the default ``--workloads`` list; ask for them by name (``--workloads kernels`` selects all four).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: cross_entropy: (tokens, vocab); linear_ce: (tokens, hidden, vocab); rms_norm: (rows, width)
CROSS_ENTROPY_SHAPES = {"tiny": (16, 64), "small": (512, 4096), "full": (8192, 50257)}
LINEAR_CE_SHAPES = {"tiny": (16, 32, 64), "small": (512, 256, 4096), "full": (8192, 768, 50257)}
RMS_NORM_SHAPES = {"tiny": (8, 64), "small": (1024, 1024), "full": (8192, 4096)}
#: attention: (batch, heads, head dim); the case names the sequence length and head dim
ATTENTION_BATCH_HEADS = {"tiny": (1, 2), "small": (2, 4), "full": (8, 16)}
ATTENTION_CASES = ("d64_s1024", "d64_s2048", "d64_s4096", "d128_s1024", "d128_s2048", "d128_s4096")
ATTENTION_SMALL_SEQ = {"tiny": 16, "small": 256}  # below "full" every case runs at this sequence length


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target)


def linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(F.linear(x, weight), target)


def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), weight, eps=1e-6)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _leaf(shape, dtype, mode, scale=1.0):
    return (torch.randn(shape, dtype=torch.float32) * scale).to(dtype).requires_grad_(mode == "train")


def build_kernel_case(case_type, workload: str, case: str, size: str, mode: str, device, dtype):
    """A ``Case`` (benchmarks.workloads) for one kernel workload, on `device` from the caller's seed."""
    train = mode == "train"
    with device:
        if workload == "cross_entropy":
            tokens, vocab = CROSS_ENTROPY_SHAPES[size]
            logits, target = _leaf((tokens, vocab), dtype, mode), torch.randint(0, vocab, (tokens,))
            grads = {"logits": logits} if train else {}
            return case_type(workload, case, cross_entropy, (logits, target), "step", None, grads,
                             info={"tokens": tokens, "vocab": vocab})  # fmt: skip
        if workload == "linear_ce":
            tokens, hidden, vocab = LINEAR_CE_SHAPES[size]
            x, w = _leaf((tokens, hidden), dtype, mode), _leaf((vocab, hidden), dtype, mode, scale=hidden**-0.5)
            target = torch.randint(0, vocab, (tokens,))
            grads = {"x": x, "weight": w} if train else {}
            return case_type(workload, case, linear_cross_entropy, (x, w, target), "step", None, grads,
                             info={"tokens": tokens, "hidden": hidden, "vocab": vocab})  # fmt: skip
        if workload == "rms_norm":
            rows, width = RMS_NORM_SHAPES[size]
            x, w = _leaf((rows, width), dtype, mode), _leaf((width,), dtype, mode)
            grad_out = torch.randn(rows, width, dtype=dtype) if train else None
            grads = {"x": x, "weight": w} if train else {}
            return case_type(workload, case, rms_norm, (x, w), "step", grad_out, grads,
                             info={"shape": [rows, width]})  # fmt: skip
        if workload == "attention":
            batch, heads = ATTENTION_BATCH_HEADS[size]
            head_dim, seq = (int(p[1:]) for p in case.split("_"))
            seq = ATTENTION_SMALL_SEQ.get(size, seq)
            q, k, v = (_leaf((batch, heads, seq, head_dim), dtype, mode) for _ in range(3))
            grad_out = torch.randn(batch, heads, seq, head_dim, dtype=dtype) if train else None
            grads = {"q": q, "k": k, "v": v} if train else {}
            return case_type(workload, case, causal_attention, (q, k, v), "step", grad_out, grads,
                             info={"batch": batch, "heads": heads, "seq": seq, "head_dim": head_dim})  # fmt: skip
    raise ValueError(f"unknown kernel workload {workload!r}")
