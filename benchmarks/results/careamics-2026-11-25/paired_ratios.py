"""Paired ratios from the shared harness's ``runner.py`` output (one JSON line per process).

Within one rep of one file, command 0 is CAREamics and the others are cellvae; each cellvae
run is divided by the CAREamics run of the same rep (run minutes apart, under the same load).

Run: ``python paired_ratios.py final_*.jsonl``
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def _label(row: dict) -> str:
    name = row.get("size") or row.get("preset")
    extra = [row.get("precision", "")] if row.get("tool") == "cellvae" else []
    if row.get("compile"):
        extra.append("compile")
    if "tile" in row:
        extra.append(f"tile {row['tile']}/{row['overlap']}")
    return " ".join([name, *[e for e in extra if e]])


def _value(row: dict) -> float:
    return row["patches_per_s_e2e"] if row["mode"] == "lightning" else row["pixels_per_s"]


def main(paths: list[str]) -> None:
    for path in paths:
        reps: dict[int, dict[int, dict]] = defaultdict(dict)
        for line in Path(path).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                reps[row["rep"]][row["cmd_index"]] = row
        values, ratios = defaultdict(list), defaultdict(list)
        for rows in reps.values():
            for i, row in sorted(rows.items()):
                values[(i, _label(row))].append(_value(row))
                if i and 0 in rows:
                    ratios[(i, _label(row))].append(_value(row) / _value(rows[0]))
        unit = "patches/s" if "train" in Path(path).name else "px/s"
        print(Path(path).name)
        for (i, label), v in sorted(values.items()):
            r = ratios.get((i, label))
            shown = ""
            if r:
                each = [round(x, 2) for x in r]
                shown = f", paired ratio {each} median {statistics.median(r):.2f}"
            print(
                f"  {label:34s} {unit} {[round(x, 1) for x in v]} median "
                f"{statistics.median(v):.1f}" + shown
            )


if __name__ == "__main__":
    main(sys.argv[1:])
