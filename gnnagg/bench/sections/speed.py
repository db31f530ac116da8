"""The speed-and-memory section: time and memory of the aggregators and kernels next to PyG.

The parts it runs are the modules of :mod:`gnnagg.bench.speed`; here are its suites, options,
tables and the plot ``speed_aggr.png`` (aggregator time and extra memory against degree skew,
gnnagg next to PyG; missing points are runs that failed or were skipped).

Every part is run on its own: one that fails is reported with its error, without stopping the
other parts. A part's entry in the results is::

    {"status": "ok", "title": <the part's TITLE>, "result": <what its run_part returned>,
     "table": <markdown>, "wall_s": ..., "notes": [...]}
    {"status": "error", "reason": ...}
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..speed import PARTS
from ..speed.recurrent import CASES as _RECURRENT_CASES
from ..speed.recurrent import METHODS as _RECURRENT_METHODS
from ..validation import NUMBER, check_bool, check_finite, check_names, check_shape
from .base import ReportBlock, RunContext, Section

__all__ = ["SPEED_PARTS", "SpeedConfig", "SpeedSection", "plot_speed", "run_speed"]

# Registered in gnnagg.bench.speed.PARTS (a part is a module there plus that line).
SPEED_PARTS: tuple[str, ...] = tuple(PARTS)
# The message sets of the aggr part (gnnagg.bench.speed.messages): E = 100k messages.
_AGGR_CASE = re.compile(r"uniform|random|hub([1-9][0-9]{0,4})")
_MAX_HUB = 10_000 * 10 - (10_000 - 1)


# What report() reads of a part's entry (and of the aggr part's rows, for the plot).
_ENTRY_SHAPE = {"status": str, "reason?": (str, None), "title?": str}
_OK_ENTRY_SHAPE = {"table?": (str, None), "notes?": [str], "result": dict}
_AGGR_ROW_SHAPE = {"case": str, "method": str, "status": str}
_MEASURED_ROW_SHAPE = {"ms": NUMBER, "extra_mb": NUMBER}


def _check_cases(cases: Any, name: str) -> tuple[str, ...]:
    if isinstance(cases, str) or not isinstance(cases, (list, tuple)):
        raise ValueError(f"{name}: expected a list of cases, got {cases!r}")
    for case in cases:
        match = _AGGR_CASE.fullmatch(case) if isinstance(case, str) else None
        if match is None or (match.group(1) and int(match.group(1)) > _MAX_HUB):
            raise ValueError(
                f"{name}: expected 'uniform', 'random' or 'hub<k>' with 1 <= k <= {_MAX_HUB}, "
                f"got {case!r}"
            )
    return tuple(cases)


def _check_methods(methods: Any, name: str) -> tuple[str, ...] | None:
    if methods is None:
        return None
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
        raise ValueError(f"{name}: needs at least one method name, or null for all")
    if not all(isinstance(m, str) and m for m in methods):
        raise ValueError(f"{name}: expected method names, got {methods!r}")
    return tuple(methods)


@dataclass
class SpeedConfig:
    """Speed and memory: the parts of :mod:`gnnagg.bench.speed` (``parts``).

    ``aggr_methods`` are the ``aggr`` part's methods to run (``None``: all of them; the quick
    suite keeps PyG's sum and LCM and three gnnagg aggregators, because every measurement is a
    fresh process). ``aggr_cases`` run for every method; ``aggr_unpadded_cases`` run only for
    methods that do not pad every node to the largest degree (PyG's LCM, GRU and LSTM allocate
    ``[N, max degree, F]``: 12.8 GB at hub5000), which are reported as skipped there.
    ``recurrent_methods`` (``None``: all) run on ``recurrent_cases`` in the ``recurrent``
    part. ``quick``: fewer repeats and sizes; ``smoke``: toy sizes for the smoke suite (every
    part in seconds; the numbers mean nothing). ``cap_gb`` caps the address space of a CPU
    worker process, ``timeout_s`` the seconds per measurement.
    """

    parts: tuple[str, ...] = ("aggr", "segment", "poly")
    quick: bool = True
    smoke: bool = False
    aggr_methods: tuple[str, ...] | None = (
        "pyg Sum",
        "pyg LCM",
        "gnnagg LCM[gru]",
        "gnnagg LCM[conjugated_sum]",
        "gnnagg GRU",
    )
    aggr_cases: tuple[str, ...] = ("uniform", "hub200")
    aggr_unpadded_cases: tuple[str, ...] = ("hub5000",)
    recurrent_cases: tuple[str, ...] = ("uniform", "hub200", "hub5000")
    recurrent_methods: tuple[str, ...] | None = None
    cap_gb: float = 12.0
    timeout_s: float = 180.0

    def __post_init__(self) -> None:
        self.parts = check_names(self.parts, SPEED_PARTS, "parts")
        check_bool(self.quick, "quick")
        check_bool(self.smoke, "smoke")
        self.aggr_methods = _check_methods(self.aggr_methods, "aggr_methods")
        self.aggr_cases = _check_cases(self.aggr_cases, "aggr_cases")
        self.aggr_unpadded_cases = _check_cases(self.aggr_unpadded_cases, "aggr_unpadded_cases")
        self.recurrent_cases = check_names(
            self.recurrent_cases, _RECURRENT_CASES, "recurrent_cases"
        )
        if self.recurrent_methods is not None:
            self.recurrent_methods = check_names(
                self.recurrent_methods, _RECURRENT_METHODS, "recurrent_methods"
            )
        self.cap_gb = check_finite(self.cap_gb, "cap_gb", positive=True, maximum=1 << 20)
        self.timeout_s = check_finite(self.timeout_s, "timeout_s", positive=True, maximum=86400)


def _title(part: str, entry: dict[str, Any]) -> str:
    """The heading of a part: what its run recorded, else its module's ``TITLE`` (results
    written before parts recorded it), else its name."""
    if isinstance(entry.get("title"), str):
        return entry["title"]
    from ..speed import PARTS, load_part

    return getattr(load_part(part), "TITLE", part) if part in PARTS else part


def run_speed(config: SpeedConfig, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Run every part of ``config``; returns ``{part: entry}`` (see the module docstring)."""
    from tqdm.auto import tqdm

    from ..speed import load_part

    if not isinstance(config, SpeedConfig):
        raise TypeError(f"config: expected a SpeedConfig, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for part in config.parts:
        start = time.perf_counter()
        try:
            module = load_part(part)
            # Parts whose row count is only known after the run have no expected_rows.
            expected_rows = getattr(module, "expected_rows", None)
            total = expected_rows(config) if expected_rows is not None else None
            with tqdm(total=total, desc=f"speed: {part}", unit="row", disable=not progress) as bar:

                def tick(row: dict[str, Any]) -> None:
                    bar.update(1)
                    bar.set_postfix_str(f"{row.get('method', '')} {row.get('case', '')}".strip())

                result, notes = module.run_part(config, device, tick)
            table = module.format_table(result)
        except Exception as error:  # a part that fails must not stop the other parts
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            out[part] = {"status": "error", "reason": last[:300]}
            continue
        out[part] = {
            "status": "ok",
            "title": getattr(module, "TITLE", part),
            "result": result,
            "table": table,
            "wall_s": round(time.perf_counter() - start, 1),
            "notes": notes,
        }
    return out


class SpeedSection(Section):
    """Speed and memory benchmarks, part by part (:class:`SpeedConfig`)."""

    name: ClassVar[str] = "speed"
    title: ClassVar[str] = "Speed and memory"
    config_type: ClassVar[type] = SpeedConfig
    command: ClassVar[str | None] = "speed"
    command_help: ClassVar[str] = "speed and memory benchmarks"
    command_description: ClassVar[str] = (
        "Time and memory of the aggregators and kernels, next to PyG."
    )
    result_keys: ClassVar[str] = (
        "`speed` {part: {`status`, `title`, `result`, `table`, `wall_s`, `notes`}}"
    )

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
                parts=("aggr", "segment", "poly"), quick=True, smoke=True,
                aggr_methods=("pyg Sum",), aggr_cases=("uniform",), aggr_unpadded_cases=(),
                timeout_s=120.0,
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
        return run_speed(config, context.device, context.progress)

    def check_result(self, result: Any) -> None:
        check_shape(result, {str: _ENTRY_SHAPE}, self.name)
        for part, entry in result.items():
            if entry["status"] != "ok":
                continue
            check_shape(entry, _OK_ENTRY_SHAPE, f"{self.name}.{part}")
            if part == "aggr":
                rows = entry["result"].get("rows")
                check_shape(rows, [_AGGR_ROW_SHAPE], f"{self.name}.aggr.result.rows")
                for i, row in enumerate(rows):
                    if row["status"] == "ok":
                        check_shape(row, _MEASURED_ROW_SHAPE, f"{self.name}.aggr.result.rows[{i}]")

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        block = ReportBlock()
        lines = block.lines
        for part, entry in result.items():
            lines += [f"### {_title(part, entry)}", ""]
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
    """Time and extra memory against degree skew for every method of the ``aggr`` part."""
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
