"""Printing results: an aligned text table, or a Markdown table for RESULTS.md."""

from __future__ import annotations

import math

HEADERS = (
    "workload",
    "case",
    "mode",
    "backend",
    "step",
    "step/eager",
    "step/tc",
    "first call",
    "first/eager",
    "first/tc",
    "peak mem",
    "mem/eager",
    "mem/tc",
    "max diff out",
    "max diff grad",
)


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_mem(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    return f"{r:.2f}x" if r >= 0.01 else f"{r:.1e}x"


def fmt_diff(d: float | None) -> str:
    if d is None:
        return "-"
    if d == 0:
        return "0"
    if math.isnan(d) or math.isinf(d):
        return str(d)
    return f"{d:.1e}"


def table_rows(rows: list[dict]) -> tuple[list[list[str]], list[str]]:
    """The cells of each row, and the error notes (numbered, referenced from the cells)."""
    cells, notes = [], []
    for r in rows:
        head = [r["workload"], r["case"], r["mode"], r["backend"]]
        if r.get("error"):
            notes.append(
                f"[{len(notes) + 1}] {r['workload']}/{r['case']} {r['mode']} {r['backend']} "
                f"({r.get('error_stage')}): {r['error']}"
            )
            cells.append(head + [f"ERROR [{len(notes)}]"] + ["-"] * (len(HEADERS) - 5))
            continue
        cells.append(
            head
            + [
                fmt_time(r["step_time_s"]),
                fmt_ratio(r.get("step_vs_eager")),
                fmt_ratio(r.get("step_vs_torchcompile")),
                fmt_time(r["first_call_s"]),
                fmt_ratio(r.get("first_call_vs_eager")),
                fmt_ratio(r.get("first_call_vs_torchcompile")),
                fmt_mem(r["peak_mem_bytes"]),
                fmt_ratio(r.get("mem_vs_eager")),
                fmt_ratio(r.get("mem_vs_torchcompile")),
                fmt_diff(r["max_diff_out"]),
                fmt_diff(r["max_diff_grad"]),
            ]
        )
    return cells, notes


def format_table(rows: list[dict], markdown: bool = False) -> str:
    cells, notes = table_rows(rows)
    if markdown:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        if notes:
            lines.append("")
            lines += [n.splitlines()[0] + "  " for n in notes]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(HEADERS)]
    numeric = set(range(4, len(HEADERS)))

    def line(vals):
        return "  ".join(v.rjust(w) if i in numeric else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    out = [line(HEADERS), line(["-" * w for w in widths])] + [line(row) for row in cells]
    if notes:
        out.append("")
        out.append("errors:")
        out += ["  " + n.splitlines()[0][:400] for n in notes]
    return "\n".join(out)


def format_meta(meta: dict) -> str:
    c = meta.get("config", {})
    parts = [
        f"date {meta.get('date')}",
        f"device {c.get('device')} ({meta.get('gpu') or meta.get('cpu')}, {meta.get('cpu_count')} CPUs)",
        f"dtype {c.get('dtype')}",
        f"size {c.get('size')}",
        f"iters {c.get('iters')} warmup {c.get('warmup')}",
        f"torch {meta.get('torch')}",
        f"thunder {meta.get('thunder')}",
    ]
    if meta.get("load_avg_end"):
        parts.append("load avg at end (1/5/15 min) " + "/".join(f"{x:.2f}" for x in meta["load_avg_end"]))
    return "; ".join(parts)
