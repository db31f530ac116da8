"""The real-data block of ``report.md``: per data set and aggregator, validation and test
scores beside the trivial baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...registry import aggregator_label as _label
from ...section import ReportBlock
from ...validation import NUMBER, STATS, check_shape

__all__ = ["RESULT_SHAPE", "check_result", "real_table", "report"]

# What report() reads of a result.
RESULT_SHAPE = {
    "summary": [
        {
            "dataset": str,
            "aggregator": str,
            "metric": str,
            "val": STATS,
            "test": {str: STATS},
            "sizes": {"train": int, "val": int, "test": int},
            "train_time_s": NUMBER,
        }
    ],
    "baselines?": [{"dataset": str, "baseline": str, "metric": str, "test": {str: NUMBER}}],
    "notes?": [str],
}



def check_result(result: Any, name: str = "real") -> None:
    """``ValueError`` naming the key when ``result`` is not what :func:`report` reads."""
    check_shape(result, RESULT_SHAPE, name)
    rows = [("summary", r) for r in result["summary"]]
    rows += [("baselines", r) for r in result.get("baselines", [])]
    for where, row in rows:
        if row["metric"] not in row["test"]:
            raise ValueError(f"{name}.{where}: test has no {row['metric']!r}")


def report(result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
    """The block of ``report.md``: the table with the trivial baselines, and notes."""
    lines = [
        f"{config['num_layers']} message-passing layers of width {config['hidden_channels']}, "
        f"{config['epochs']} epochs, batch {config['batch_size']}, Adam lr {config['lr']}, "
        f"seeds {list(config['seeds'])}; mean ± sample std; the model kept is the best on "
        "validation."
    ]
    lines += ["", real_table(result["summary"], result.get("baselines", [])), ""]
    if any(r.get("source") == "fixture" for r in result["summary"]):
        lines.append(
            "* `fixture` rows use the small committed fixtures (tens of test graphs): they "
            "check the pipeline end to end; differences between aggregators there are "
            "mostly noise."
        )
    lines += [f"* {n}" for n in result.get("notes", [])]
    lines.append("")
    return ReportBlock(lines)


def real_table(summary: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> str:
    """Markdown: the trivial baseline of each data set, then one row per (data set,
    aggregator) with the primary metric on validation and test (mean ± std over seeds)."""
    lines = [
        "| data set | source | aggregator | metric | val | test | train/val/test | s/model |",
        "|---|---|---|---|---:|---:|---|---:|",
    ]

    def describe(metric: str) -> str:
        return f"{metric} ({'higher' if metric == 'accuracy' else 'lower'} is better)"

    for b in baselines:
        metric = b["metric"]
        scale, unit = (100, " %") if metric == "accuracy" else (1, "")
        lines.append(
            f"| {b['dataset']} | {b.get('source')} | *{b['baseline']}* | {describe(metric)} | - "
            f"| {scale * b['test'][metric]:.3f}{unit} | - | - |"
        )
    for r in summary:
        metric = r["metric"]
        scale, unit = (100, " %") if metric == "accuracy" else (1, "")
        val = f"{scale * r['val']['mean']:.3f} ± {scale * r['val']['std']:.3f}{unit}"
        test = r["test"][metric]
        test_cell = f"{scale * test['mean']:.3f} ± {scale * test['std']:.3f}{unit}"
        sizes = "/".join(str(r["sizes"][k]) for k in ("train", "val", "test"))
        lines.append(
            f"| {r['dataset']} | {r.get('source')} | {_label(r['aggregator'])} | "
            f"{describe(metric)} | {val} | {test_cell} | {sizes} | {r['train_time_s']:.0f} |"
        )
    return "\n".join(lines)
