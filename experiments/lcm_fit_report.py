"""Summarise runs of ``experiments/lcm_screen.py``: steps and CPU-s to validation thresholds,
accuracy out of distribution at the first validation reaching each, and a plot of the curves.

    python experiments/lcm_fit_report.py OUT RUN.json [RUN.json ...] [--reference gru]

Writes ``OUT/results.json`` (the runs, keyed by their names), ``OUT/report.md`` (one table per
width: steps / CPU-s to each threshold and their ratio to the reference run of that width,
CPU-ms per step, test accuracy at sizes 32 and 64 at the highest threshold every run reached)
and ``OUT/curves.png`` (validation accuracy against steps and against training CPU-s). Each
run is one seed: a table of one seed ranks levers, it does not measure a spread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def load_runs(paths: list[Path]) -> dict[str, dict]:
    runs = {}
    for path in paths:
        run = json.loads(path.read_text())
        runs[run["args"]["name"]] = run
    return runs


def table(runs: dict[str, dict], reference: str) -> list[str]:
    """Markdown rows for runs of one width, the reference first."""
    names = sorted(runs, key=lambda n: (n != reference, n))
    keys = sorted({k for r in runs.values() for k in r["crossings"]}, key=float)
    common = [k for k in keys if all(k in r["crossings"] for r in runs.values())]
    matched = common[-1] if common else None
    ref = runs.get(reference)
    header = ["run", "seed", "CPU-ms/step"] + [f"steps / CPU-s to {k}" for k in keys]
    if matched:
        header += [f"size 32 / 64 at val ≥ {matched} (%)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        run = runs[name]
        row = [name, str(run["args"]["seed"]), f"{run['ms_per_step']:.1f}"]
        for k in keys:
            c = run["crossings"].get(k)
            if c is None:
                last = run["curve"][-1]
                row.append(f"not by {last[0]:,} (val {last[2]:.3f})")
                continue
            cell = f"{c['step']:,} / {c['cpu_s']:.0f}"
            r = ref["crossings"].get(k) if ref is not None and name != reference else None
            if r is not None:
                cell += f" ({c['step'] / r['step']:.2f}x / {c['cpu_s'] / r['cpu_s']:.2f}x)"
            row.append(cell)
        if matched:
            acc = run["crossings"][matched]["test_acc"]
            row.append(f"{100 * acc['32']:.1f} / {100 * acc['64']:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def plot(runs: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted({r["args"]["width"] for r in runs.values()})
    fig, axes = plt.subplots(len(widths), 2, figsize=(11, 4 * len(widths)), squeeze=False)
    for row, width in zip(axes, widths):
        for name, run in sorted(runs.items()):
            if run["args"]["width"] != width:
                continue
            steps, cpu, val = zip(*[(c[0], c[1], c[2]) for c in run["curve"]])
            style = "k-" if run["args"]["aggregator"] == "gru" else "-"
            row[0].plot(steps, val, style, label=name)
            row[1].plot(cpu, val, style, label=name)
        for ax, xlabel in zip(row, ("training steps", "training CPU-s (1 thread)")):
            ax.set(xlabel=xlabel, ylabel="validation accuracy (sizes 2-16)",
                   title=f"width {width}, seed 0")
            ax.grid(alpha=0.3)
        row[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--reference", default="gru", help="the aggregator the ratios are to")
    args = parser.parse_args()
    runs = load_runs(args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(runs, indent=1) + "\n")
    lines = ["# LCM fit speed: a one-seed screen", ""]
    for width in sorted({r["args"]["width"] for r in runs.values()}):
        group = {n: r for n, r in runs.items() if r["args"]["width"] == width}
        ref = next((n for n, r in group.items() if r["args"]["aggregator"] == args.reference), "")
        lines += [f"## Width {width}", ""] + table(group, ref) + [""]
    (args.out / "report.md").write_text("\n".join(lines))
    plot(runs, args.out / "curves.png")


if __name__ == "__main__":
    main()
