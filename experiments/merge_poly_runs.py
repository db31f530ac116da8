"""Merge `poly` results of one study run in parts into one results.json and report.

`gnnagg-bench run --suite poly-zinc --jobs 2` runs the study's jobs side by side in one
command. This script is for a study that was run as separate parts instead, each with
``gnnagg-bench run --config`` of the suite's config restricted to some of its models (one per
model on the 2-core machine, or one model rerun after a fix). It checks that the parts share
every setting but the models (and the number of processes), concatenates their runs,
recomputes the summary and writes ``results.json`` and ``report.md`` into ``--out``::

    python experiments/merge_poly_runs.py --name poly-zinc --out DIR PART1/results.json PART2/...

The merged wall time is the longest part's; the CPU time is the sum over the runs.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from gnnagg.bench.report import write_report
from gnnagg.bench.results import write_results
from gnnagg.bench.studies.poly.train import summarise_poly


def merge(parts: list[dict], name: str) -> dict:
    first = parts[0]
    reference = copy.deepcopy(first["config"]["poly"])
    reference.pop("models")
    reference.pop("jobs", None)  # how many processes trained: not what they computed
    models: list[str] = []
    for part in parts:
        config = copy.deepcopy(part["config"]["poly"])
        models += [m for m in config.pop("models") if m not in models]
        config.pop("jobs", None)
        if config != reference:
            raise ValueError("parts differ in a poly setting other than models")
        if part["poly"] is None or "runs" not in part["poly"]:
            raise ValueError("a part has no finished poly section")
    merged = copy.deepcopy(first)
    merged["suite"] = name
    merged["config"]["name"] = name
    merged["config"]["poly"]["models"] = models
    runs = [run for part in parts for run in part["poly"]["runs"]]
    merged["poly"]["runs"] = runs
    merged["poly"]["summary"] = summarise_poly(runs)
    merged["command"] = " + ".join(str(part.get("command")) for part in parts)
    # The parts ran side by side: the study took as long as the longest part.
    longest = max(part["wall_time_s"].get("total", 0.0) for part in parts)
    merged["wall_time_s"] = {"poly": longest, "total": longest}
    merged["machine"]["load_average"]["end"] = max(
        part["machine"]["load_average"]["end"] or 0.0 for part in parts
    )
    merged["notes"] = [note for part in parts for note in part.get("notes", [])] + [
        f"merged from {len(parts)} runs, one per model "
        "(experiments/merge_poly_runs.py); wall time is the longest part's, CPU time the sum "
        "over the runs: "
        + ", ".join(
            f"{'/'.join(part['config']['poly']['models'])} {part['wall_time_s'].get('total')} s"
            for part in parts
        )
    ]
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", type=Path, help="results.json of each part")
    parser.add_argument("--name", default="poly-zinc")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    parts = [json.loads(path.read_text(encoding="utf-8")) for path in args.parts]
    merged = merge(parts, args.name)
    args.out.mkdir(parents=True, exist_ok=True)
    write_results(merged, args.out)
    files = write_report(merged, args.out)
    print("\n".join(str(path) for path in files.values()))


if __name__ == "__main__":
    main()
