"""Plots of saved benchmark results: step time, first call and peak memory per workload and backend.

    python -m benchmarks --plot benchmarks/results/h100.json [--plot-dir benchmarks/results/plots]

One PNG per metric; each has one panel per (workload, case, mode) row group and one bar per backend, with
the bar's ratio to eager written above it (the figure all speed claims here are made in).
"""

from __future__ import annotations

from pathlib import Path

METRICS = (
    ("step_time_s", "step time", "ms", 1e3),
    ("first_call_s", "first call", "s", 1.0),
    ("peak_mem_bytes", "peak memory", "MiB", 1 / 2**20),
)


def _groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("error") is None:
            groups.setdefault((r["workload"], r["case"], r["mode"]), []).append(r)
    return groups


def plot_results(result: dict, out_dir: str | Path) -> list[Path]:
    """Write one PNG per metric into `out_dir` and return their paths; rows with an error are left out."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    groups = _groups(result["rows"])
    if not groups:
        raise ValueError("no result rows without an error to plot")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = result.get("meta", {})
    config = meta.get("config", {})
    described = (meta.get("gpu") or meta.get("cpu"), config.get("dtype"), config.get("size"), meta.get("date"))
    title_suffix = ", ".join(str(v) for v in described if v)
    paths = []
    for metric, label, unit, scale in METRICS:
        fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups) + 1, 4.2), squeeze=False)
        for ax, ((workload, case, mode), rows) in zip(axes[0], groups.items()):
            rows = [r for r in rows if r.get(metric) is not None]
            names = [r["backend"] for r in rows]
            values = [r[metric] * scale for r in rows]
            eager = next((r[metric] * scale for r in rows if r["backend_kind"] == "eager"), None)
            bars = ax.bar(range(len(values)), values, color=[_color(r["backend_kind"]) for r in rows])
            for bar, v in zip(bars, values):
                if eager:
                    ax.annotate(f"{v / eager:.2f}x", (bar.get_x() + bar.get_width() / 2, v), ha="center",
                                va="bottom", fontsize=7)  # fmt: skip
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
            ax.set_title(f"{workload}/{case} {mode}" if case != workload else f"{workload} {mode}", fontsize=9)
            ax.set_ylabel(f"{label} ({unit})", fontsize=8)
        fig.suptitle(f"{label} (ratio to eager above each bar){' - ' + title_suffix if title_suffix else ''}")
        fig.tight_layout()
        path = out_dir / f"{metric.removesuffix('_s').removesuffix('_bytes')}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _color(kind: str) -> str:
    return {"eager": "#888888", "torchcompile": "#e8a33d"}.get(kind, "#3d7be8")
