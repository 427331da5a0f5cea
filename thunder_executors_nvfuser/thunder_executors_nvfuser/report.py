"""What the nvFuser executor did for a jitted function: each fusion region of its last compiled forward and
backward, with the number of operations, how many nvFuser fusions run it, its first call's time (nvFuser's
compilation happens there, unless an identical fusion was compiled before) and its status."""

from __future__ import annotations

import thunder
from thunder_executors_nvfuser.runtime import RegionRunner


def fusion_report(jfn) -> list[dict]:
    """One dict per nvFuser region of the last compilation of `jfn`: trace ("forward"/"backward"), name,
    operations, nvfuser_fusions, first_call_ms (None until it ran), status ("nvfuser", "torch (no nvFuser
    work)" for views and creation only, "torch fallback: <reason>" or "not run yet")."""
    rows = []
    backward = thunder.last_backward_traces(jfn)
    for label, traces in (("forward", thunder.last_traces(jfn)), ("backward", backward)):
        if not traces:
            continue
        for bsym in traces[-1].bound_symbols:
            runner = bsym.sym.python_impl
            if isinstance(runner, RegionRunner):
                record = runner.record
                rows.append({"trace": label, "name": record.name, "operations": record.operations,
                             "nvfuser_fusions": record.nvfuser_fusions, "first_call_ms": record.first_call_ms,
                             "status": record.status})  # fmt: skip
    return rows


def format_report(jfn) -> str:
    """fusion_report as a table, with the total first-call time (the compile time nvFuser adds to a first call)."""
    rows = fusion_report(jfn)
    lines = [f"{'trace':<9} {'region':<12} {'ops':>5} {'fusions':>7} {'first call ms':>13}  status"]
    for r in rows:
        ms = "-" if r["first_call_ms"] is None else f"{r['first_call_ms']:.1f}"
        lines.append(f"{r['trace']:<9} {r['name']:<12} {r['operations']:>5} {r['nvfuser_fusions']:>7} {ms:>13}  "
                     f"{r['status']}")  # fmt: skip
    total = sum(r["first_call_ms"] or 0.0 for r in rows)
    lines.append(f"{len(rows)} regions, first calls {total:.1f} ms in all")
    return "\n".join(lines)
