"""
Benchmark results
=================

The figures of `benchmarks/RESULTS.md`, plotted. Each section of that file is one run of
``python -m benchmarks`` (its machine, software and command are recorded there); this page reads the file as it
stands in the repository when the documentation is built, so the plots follow the recorded results.

Ratios compare rows of one run only: a step time ratio below 1 is faster than eager PyTorch.
"""

# %%
# Reading the tables
# ------------------
# A results table has one row per workload, case, mode and backend. Times are printed with their unit.
from pathlib import Path

import matplotlib.pyplot as plt


def find_results() -> Path:
    here = Path(__file__).resolve() if "__file__" in globals() else Path.cwd()
    for folder in [here, *here.parents]:
        candidate = folder / "benchmarks" / "RESULTS.md"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("benchmarks/RESULTS.md not found above " + str(here))


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(cell: str) -> float:
    value, unit = cell.split()
    return float(value) * UNITS[unit]


def ratio(cell: str) -> float:
    return float(cell.rstrip("x"))


def results_tables(text: str) -> list[tuple[str, list[dict]]]:
    """(section title, rows) for each section of RESULTS.md holding a `python -m benchmarks` table."""
    tables, title, header, rows = [], None, None, []
    for line in text.splitlines() + [""]:
        if line.startswith("## "):
            title, header, rows = line[3:].strip(), None, []
        elif line.startswith("| workload |"):
            header = [cell.strip() for cell in line.strip("|").split("|")]
            if not {"step/eager", "first call", "mode", "backend"} <= set(header):
                header = None  # a table of another shape (memory, compile stages): not the harness's
        elif header and line.startswith("|") and not line.startswith("|---"):
            rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))))
        elif header and rows:
            tables.append((title, rows))
            header, rows = None, []
    return tables


tables = results_tables(find_results().read_text())
for title, rows in tables:
    print(f"{len(rows):3} rows  {title}")

# %%
# Step time and first call, per run
# ---------------------------------
# Left: the median step time relative to eager PyTorch in the same run (below 1 is faster). Right: the first
# call (wrapping, tracing, compiling and the first step) in seconds, on a log scale.


def plot_run(title: str, rows: list[dict]) -> None:
    rows = [r for r in rows if r["workload"] != "overhead" and r["step/eager"] not in ("", "-")]
    groups = list(dict.fromkeys(f"{r['workload']} {r['mode']}" for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 + 0.45 * len(groups) * len(backends) / 2))
    height = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        by_group = {f"{r['workload']} {r['mode']}": r for r in rows if r["backend"] == backend}
        ys = [g + i * height for g, name in enumerate(groups) if name in by_group]
        picked = [by_group[name] for name in groups if name in by_group]
        left.barh(ys, [ratio(r["step/eager"]) for r in picked], height, label=backend)
        right.barh(ys, [seconds(r["first call"]) for r in picked], height, label=backend)
    for axis in (left, right):
        axis.set_yticks([g + 0.4 - height / 2 for g in range(len(groups))], groups)
        axis.invert_yaxis()
    left.axvline(1.0, color="black", linewidth=0.8)
    left.set_xlabel("step time / eager's")
    right.set_xscale("log")
    right.set_xlabel("first call (s)")
    right.legend(fontsize="small", loc="lower right")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()


for title, rows in tables:
    plot_run(title, rows)
plt.show()
