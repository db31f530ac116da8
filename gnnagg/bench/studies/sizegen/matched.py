"""The fair-protocol part of the size-generalisation report: out-of-distribution accuracy at
matched in-distribution accuracy, the cost to fit (steps and CPU-seconds to each validation
threshold), the associativity gap per tree level of the LCMs, and the plot of accuracy at one
size against validation accuracy, one curve per aggregator.

An aggregator that reaches a validation accuracy later is not worse at generalising for it;
comparing every aggregator's model at the first validation that reached the same threshold
separates the two questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...._files import write_figure
from ...registry import AGGREGATORS
from ...registry import aggregator_label as _label
from ...stats import percent as _pct

__all__ = ["cost_table", "level_gap_table", "matched_rows", "matched_table", "plot_matched"]


def matched_rows(summary: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """The rows of ``task`` measured with the fair protocol (they have ``matched``)."""
    return [r for r in summary if r["task"] == task and r.get("matched") is not None]


def _thresholds(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({key for r in rows for key in r["matched"]}, key=float)


def _reached(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    return "" if entry["reached"] == entry["seeds"] else f" ({entry['reached']}/{entry['seeds']})"


def matched_table(summary: list[dict[str, Any]], task: str, size: str) -> str:
    """Markdown: accuracy (%) at test ``size`` of each aggregator's model at the first
    validation reaching each threshold (columns), mean ± std over the seeds that reached it
    (``k/n`` when not all did; – when none did), and of the kept (best-validation) model."""
    rows = matched_rows(summary, task)
    keys = _thresholds(rows)
    if not rows or not keys:
        return ""
    header = (
        "| aggregator | "
        + " | ".join(f"val ≥ {float(k):.2f}" for k in keys)
        + " | kept model (val) |"
    )
    lines = [header, "|---|" + "---:|" * (len(keys) + 1)]
    for r in rows:
        cells = []
        for key in keys:
            entry = r["matched"].get(key)
            if entry is None or size not in entry["test"]:
                cells.append("–")
            else:
                cells.append(_pct(entry["test"][size]) + _reached(entry))
        kept = f"{_pct(r['test'][size])} ({_pct(r['val'])})" if size in r["test"] else "–"
        lines.append(f"| {_label(r['aggregator'])} | " + " | ".join(cells) + f" | {kept} |")
    return "\n".join(lines)


def cost_table(summary: list[dict[str, Any]], task: str) -> str:
    """Markdown: the cost to fit. Per aggregator, steps and training CPU-seconds to the first
    validation reaching each threshold (mean ± std over the seeds that reached it), training
    CPU-milliseconds per step, the steps trained and why training stopped (per seed)."""
    rows = matched_rows(summary, task)
    keys = _thresholds(rows)
    if not rows:
        return ""
    header = (
        "| aggregator | "
        + " | ".join(f"steps / CPU-s to {float(k):.2f}" for k in keys)
        + " | CPU-ms per step | steps trained | stopped |"
    )
    lines = [header, "|---|" + "---:|" * (len(keys) + 2) + "---|"]
    for r in rows:
        cells = []
        for key in keys:
            entry = r["matched"].get(key)
            if entry is None:
                cells.append("–")
                continue
            steps, cpu = entry["steps"], entry["cpu_s"]
            cells.append(
                f"{steps['mean']:,.0f} ± {steps['std']:,.0f} / {cpu['mean']:,.0f} ± "
                f"{cpu['std']:,.0f}{_reached(entry)}"
            )
        ms = r["ms_per_step"]
        stops = ", ".join(f"{s} {r['stopped'].count(s)}" for s in sorted(set(r["stopped"])))
        lines.append(
            f"| {_label(r['aggregator'])} | " + " | ".join(cells)
            + f" | {ms['mean']:.1f} ± {ms['std']:.1f} | "
            + ", ".join(f"{s:,}" for s in r["steps"]) + f" | {stops} |"
        )  # fmt: skip
    return "\n".join(lines)


def level_gap_table(summary: list[dict[str, Any]], task: str) -> str:
    """Markdown: the associativity gap ‖(a⊕b)⊕c − a⊕(b⊕c)‖ / ‖a⊕(b⊕c)‖ on the states of each
    level of the reduction trees (0: the leaves), on the test multisets of one size, for the
    kept models and for the models matched at the highest threshold every seed reached; the
    mean state norm per level of the kept models in the last row of each aggregator."""
    rows = [r for r in matched_rows(summary, task) if r.get("level_gaps")]
    if not rows:
        return ""
    depth = max(len(r["level_gaps"]["kept"]) for r in rows)
    size = rows[0]["level_gaps"]["size"]
    header = (
        f"| aggregator (size {size}) | model | "
        + " | ".join("leaves" if k == 0 else f"level {k}" for k in range(depth))
        + " |"
    )
    lines = [header, "|---|---|" + "---:|" * depth]

    def cells(levels: list[dict[str, Any]], what: str) -> str:
        values = {lv["level"]: lv[what] for lv in levels}
        return " | ".join(
            f"{values[k]['mean']:.3f} ± {values[k]['std']:.3f}" if k in values else "–"
            for k in range(depth)
        )

    for r in rows:
        gaps = r["level_gaps"]
        label = _label(r["aggregator"])
        lines.append(f"| {label} | kept: gap | {cells(gaps['kept'], 'gap')} |")
        full = [
            key
            for key, entry in r["matched"].items()
            if entry["reached"] == entry["seeds"] and key in gaps["matched"]
        ]
        if full:
            key = max(full, key=float)
            lines.append(
                f"| {label} | val ≥ {float(key):.2f}: gap | {cells(gaps['matched'][key], 'gap')} |"
            )
        lines.append(f"| {label} | kept: state norm | {cells(gaps['kept'], 'norm')} |")
    return "\n".join(lines)


def plot_matched(summary: list[dict[str, Any]], task: str, size: str, path: Path) -> Path | None:
    """Accuracy at test ``size`` against validation accuracy, one curve per aggregator: a
    point per threshold that every seed reached (the matched models) and one for the kept
    models, mean ± std over seeds on both axes, to ``path`` (PNG); ``None`` without data."""
    rows = [r for r in matched_rows(summary, task) if size in r["test"]]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    colours = plt.get_cmap("tab20").colors
    for i, r in enumerate(rows):
        points = [
            (entry["val"], entry["test"][size])
            for key, entry in sorted(r["matched"].items(), key=lambda kv: float(kv[0]))
            if entry["reached"] == entry["seeds"] and size in entry["test"]
        ]
        points.append((r["val"], r["test"][size]))
        points.sort(key=lambda p: p[0]["mean"])
        spec = AGGREGATORS.get(r["aggregator"])
        ax.errorbar(
            [100 * v["mean"] for v, _ in points],
            [100 * t["mean"] for _, t in points],
            xerr=[100 * v["std"] for v, _ in points],
            yerr=[100 * t["std"] for _, t in points],
            marker="os^vD"[i % 5],
            ms=4,
            capsize=2,
            ls="--" if spec is not None and spec.library == "pyg" else "-",
            color=colours[(2 * i) % 20 + (2 * i) // 20],
            label=_label(r["aggregator"]),
        )
    ax.set_xlabel("validation accuracy, sizes of training (%)")
    ax.set_ylabel(f"test accuracy at size {size} (%)")
    ax.set_title(f"{task}: size {size} at matched validation accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)
    return path
