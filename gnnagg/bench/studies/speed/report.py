"""The speed block of ``report.md``: each part's table and notes, and the plot
``speed_aggr.png`` (aggregator time and extra memory against degree skew, gnnagg next to PyG;
missing points are runs that failed or were skipped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...._files import write_figure
from ...section import ReportBlock
from ...validation import NUMBER, check_shape
from .config import SPEED_PARTS
from .parts import load_part

__all__ = ["check_result", "plot_speed", "report"]

# What report() reads of a part's entry (and of the aggr part's rows, for the plot).
_ENTRY_SHAPE = {"status": str, "reason?": (str, None), "title?": str}
_OK_ENTRY_SHAPE = {"table?": (str, None), "notes?": [str], "result": dict}
_AGGR_ROW_SHAPE = {"case": str, "method": str, "status": str}
_MEASURED_ROW_SHAPE = {"ms": NUMBER, "extra_mb": NUMBER}


def _title(part: str, entry: dict[str, Any]) -> str:
    """The heading of a part: what its run recorded, else its module's ``TITLE`` (results
    written before parts recorded it), else its name."""
    if isinstance(entry.get("title"), str):
        return entry["title"]
    return getattr(load_part(part), "TITLE", part) if part in SPEED_PARTS else part


def check_result(result: Any, name: str = "speed") -> None:
    """``ValueError`` naming the key when ``result`` is not what :func:`report` reads."""
    check_shape(result, {str: _ENTRY_SHAPE}, name)
    for part, entry in result.items():
        if entry["status"] != "ok":
            continue
        check_shape(entry, _OK_ENTRY_SHAPE, f"{name}.{part}")
        if part == "aggr":
            rows = entry["result"].get("rows")
            check_shape(rows, [_AGGR_ROW_SHAPE], f"{name}.aggr.result.rows")
            for i, row in enumerate(rows):
                if row["status"] == "ok":
                    check_shape(row, _MEASURED_ROW_SHAPE, f"{name}.aggr.result.rows[{i}]")


def report(result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
    """The block of ``report.md``: each part's table and notes, the aggr part's plot."""
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
    plotted = False
    for method in methods:
        by_case = {r["case"]: r for r in rows if r["method"] == method}
        xs, ms, mb = [], [], []
        for i, case in enumerate(cases):
            r = by_case.get(case, {})
            if r.get("status") == "ok":
                xs.append(i)
                ms.append(max(r["ms"], 1e-3))
                mb.append(max(r["extra_mb"], 0.1))
        plotted = plotted or bool(xs)
        style = "--" if method.startswith("pyg") else "-"
        axes[0].plot(xs, ms, marker="o", ls=style, label=method)
        axes[1].plot(xs, mb, marker="o", ls=style, label=method)
    for ax, ylabel in zip(axes, ("forward+backward (ms)", "extra memory (MB)")):
        ax.set_xticks(range(len(cases)), cases)
        if plotted:  # a log axis without a point cannot be drawn
            ax.set_yscale("log")
        ax.set_xlabel("degree profile (E = 100k messages, F = 64)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    if plotted:
        axes[1].legend(fontsize=7, loc="best")
    fig.suptitle("Aggregators vs degree skew (missing points: failed or skipped)")
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)
    return path
