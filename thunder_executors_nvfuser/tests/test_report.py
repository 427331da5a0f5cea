"""The region report, on the CPU (claims widened to CPU tensors, plans replayed with torch: test only)."""

from __future__ import annotations

import torch
from plan_interpreter import interpret_build
from thunder_executors_nvfuser.executor import NvFuserExecutor
from thunder_executors_nvfuser.report import format_report, fusion_report

import thunder


def test_report_lists_forward_and_backward_regions_with_their_first_call_time():
    ex = NvFuserExecutor(device_types=("cpu",), build=interpret_build)
    jfn = thunder.jit(lambda x: torch.tanh(x * 2 + 1).sum(), executors=[ex])
    x = torch.randn(4, 8, requires_grad=True)
    jfn(x).backward()
    rows = fusion_report(jfn)
    assert {r["trace"] for r in rows} == {"forward", "backward"}
    assert all(r["status"] == "nvfuser" and r["first_call_ms"] > 0 for r in rows)
    assert "regions, first calls" in format_report(jfn)
    torch.testing.assert_close(x.grad, 2 * (1 - torch.tanh(x * 2 + 1) ** 2))
