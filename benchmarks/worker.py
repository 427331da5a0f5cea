"""The subprocess side: ``python -m benchmarks.worker SPECS.json ROWS.json``.

Runs each row spec in this (fresh) process with ``harness.run_row`` and rewrites ``ROWS.json`` after each
row, so a crash loses only the rows not yet run.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m benchmarks.worker SPECS.json ROWS.json", file=sys.stderr)
        return 2
    spec_path, out_path = argv
    with open(spec_path) as f:
        specs = json.load(f)

    from benchmarks.harness import run_row

    rows = []
    for spec in specs:
        rows.append(run_row(spec))
        tmp = out_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, default=str)
        os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
