"""The speed-and-memory section: time and memory of the aggregators and kernels next to PyG.

The parts it runs are :mod:`gnnagg.bench.speed`'s; here are its suites, options, tables and the
plot ``speed_aggr.png`` (aggregator time and extra memory against degree skew, gnnagg next to
PyG; missing points are runs that failed or were skipped).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from ..config import SPEED_PARTS, SpeedConfig
from .base import ReportBlock, RunContext, Section

__all__ = ["SpeedSection", "plot_speed"]

_TITLES = {
    "aggr": "Aggregators, forward + backward, E = 100k messages into N = 10k nodes, "
    "F = 64 (one fresh process per measurement)",
    "segment": "Segment reductions (time and effective bandwidth)",
    "recurrent": "Recurrent aggregators (gnnagg without padding, PyG padded)",
    "poly": "Equivariant polynomial features",
}


class SpeedSection(Section):
    """Speed and memory benchmarks, part by part (:class:`~gnnagg.bench.config.SpeedConfig`)."""

    name: ClassVar[str] = "speed"
    title: ClassVar[str] = "Speed and memory"
    config_type: ClassVar[type] = SpeedConfig
    command: ClassVar[str | None] = "speed"
    command_help: ClassVar[str] = "speed and memory benchmarks"
    command_description: ClassVar[str] = (
        "Time and memory of the aggregators and kernels, next to PyG."
    )
    result_keys: ClassVar[str] = "`speed` {part: {`status`, `result`, `table`, `wall_s`, `notes`}}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> SpeedConfig | None:
        if suite == "quick":
            return SpeedConfig()
        if suite == "full":
            return SpeedConfig(
                parts=SPEED_PARTS,
                quick=False,
                aggr_methods=None,
                aggr_cases=("uniform", "hub200", "hub5000"),
                aggr_unpadded_cases=(),
                timeout_s=900.0,
                cap_gb=16.0,
            )
        if suite == "smoke":
            return SpeedConfig(
                parts=("segment",), quick=True, smoke=True, aggr_methods=("pyg Sum",),
                aggr_cases=("uniform",), aggr_unpadded_cases=(), timeout_s=120.0,
            )  # fmt: skip
        return None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--parts",
            nargs="+",
            default=list(SpeedConfig().parts),
            choices=list(SPEED_PARTS),
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="full mode: more repeats and sizes, PyG's padded methods on every case",
        )

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        base = self.suite_config("full" if args.full else "quick", ())
        return {self.name: dataclasses.replace(base, parts=tuple(args.parts))}

    def choices(self) -> dict[str, list[str]]:
        return {"speed_parts": list(SPEED_PARTS)}

    def run(self, config: SpeedConfig, context: RunContext) -> dict[str, Any]:
        from ..speed import run_speed

        return run_speed(
            config, context.device, context.progress, context.options.get("speed_folder")
        )

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        block = ReportBlock()
        lines = block.lines
        for part, entry in result.items():
            lines += [f"### {_TITLES.get(part, part)}", ""]
            if entry.get("status") != "ok":
                lines += [f"Not run: {entry.get('status')}, {entry.get('reason')}.", ""]
                continue
            table = (entry.get("table") or "(no table)").strip()
            # Parts that print plain text (not a markdown table) keep their layout in a fence.
            lines += [table if table.startswith("|") else f"```text\n{table}\n```", ""]
            lines += [f"* {n}" for n in entry.get("notes", [])]
            if part == "aggr":
                path = plot_speed(entry["result"], out_dir / "speed_aggr.png")
                block.files["speed_aggr"] = path
                lines += ["", f"![time and memory vs degree skew]({path.name})"]
            lines.append("")
        return block


def plot_speed(result: dict[str, Any], path: Path) -> Path:
    """Time and extra memory against degree skew for every method of ``bench_aggr``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110)
    for method in methods:
        by_case = {r["case"]: r for r in rows if r["method"] == method}
        xs, ms, mb = [], [], []
        for i, case in enumerate(cases):
            r = by_case.get(case, {})
            if r.get("status") == "ok":
                xs.append(i)
                ms.append(max(r["ms"], 1e-3))
                mb.append(max(r["extra_mb"], 0.1))
        style = "--" if method.startswith("pyg") else "-"
        axes[0].plot(xs, ms, marker="o", ls=style, label=method)
        axes[1].plot(xs, mb, marker="o", ls=style, label=method)
    for ax, ylabel in zip(axes, ("forward+backward (ms)", "extra memory (MB)")):
        ax.set_xticks(range(len(cases)), cases)
        ax.set_yscale("log")
        ax.set_xlabel("degree profile (E = 100k messages, F = 64)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle("Aggregators vs degree skew (missing points: failed or skipped)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
