"""``report.md`` and PNG plots from a run's ``results.json`` (or the same dict in memory).

Plots (matplotlib, Agg backend, no display needed):

* ``sizegen_<task>.png`` -- accuracy against multiset size per aggregator (mean ± std over
  seeds), the training range shaded;
* ``speed_aggr.png`` -- aggregator time and extra memory against degree skew (uniform,
  hub200, hub5000), gnnagg next to PyG; missing points are runs that failed or were skipped.

``report.md`` holds the tables (the polynomial-feature experiment included, when the suite ran
it) (ready to paste into the README) with the machine they came
from, an honest comparison with what the LCM paper claims, and the notes of the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .machine import describe_machine
from .registry import AGGREGATORS

__all__ = [
    "lcm_paper_comparison",
    "plot_sizegen",
    "plot_speed",
    "poly_table",
    "sizegen_table",
    "write_report",
]

PAPER = (
    "Ong & Veličković, *Learnable Commutative Monoids for Graph Neural Networks* (LoG 2022, "
    "arXiv:2212.08541)"
)

# Checked with PyG 2.8.1: LCMAggregation(4, 4) gives a 2-element set a different output alone
# than batched with a 16-element set.
PYG_LCM_NOTE = (
    "PyG's `LCMAggregation` pads every node to the largest degree in the batch with zeros, and "
    "the zeros enter its GRU-cell tree as elements: a node's output depends on the other "
    "nodes' degrees (the same 2-element set gives a different output alone and batched with a "
    "16-element set). Trained on batches padded to 16 leaves, it meets deeper trees without "
    "padding at sizes 32 and up, which is where `pyg_lcm` collapses above. gnnagg's "
    "`LCMAggregation` reduces each node's own messages only."
)


def _pct(stats: dict[str, float]) -> str:
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def _label(name: str) -> str:
    spec = AGGREGATORS.get(name)
    return f"{name} ({spec.library})" if spec else name


def sizegen_table(summary: list[dict[str, Any]], task: str) -> str:
    """Markdown: one row per aggregator, accuracy (%) in distribution and at each test size;
    the best mean of each column in bold."""
    rows = [r for r in summary if r["task"] == task]
    if not rows:
        return ""
    sizes = sorted(rows[0]["test"], key=int)
    columns = ["val"] + sizes
    best = {}
    for col in columns:
        values = [(r["val"] if col == "val" else r["test"][col])["mean"] for r in rows]
        best[col] = max(values)
    header = (
        "| aggregator | sizes 2–16 (val) | "
        + " | ".join(f"size {s}" for s in sizes)
        + " | s/model |"
    )
    lines = [header, "|---|" + "---:|" * (len(columns) + 1)]
    for r in rows:
        cells = []
        for col in columns:
            stats = r["val"] if col == "val" else r["test"][col]
            cell = _pct(stats)
            cells.append(f"**{cell}**" if stats["mean"] == best[col] else cell)
        lines.append(
            f"| {_label(r['aggregator'])} | " + " | ".join(cells) + f" | {r['train_time_s']:.0f} |"
        )
    return "\n".join(lines)


def _find(summary: list[dict[str, Any]], task: str, names: tuple[str, ...]) -> list[dict]:
    return [r for r in summary if r["task"] == task and r["aggregator"] in names]


def lcm_paper_comparison(summary: list[dict[str, Any]], task: str) -> list[str]:
    """Bullets comparing the paper's claims with the measured numbers of ``task``: LCM against
    the fixed aggregators and against the recurrent ones at the largest test size."""
    rows = [r for r in summary if r["task"] == task]
    if not rows:
        return []
    largest = max(rows[0]["test"], key=int)
    out = []

    def best_of(names: tuple[str, ...]) -> dict[str, Any] | None:
        found = _find(summary, task, names)
        return max(found, key=lambda r: r["test"][largest]["mean"]) if found else None

    lcm = best_of(("lcm_gru", "lcm_conjugated_sum", "lcm_softmax"))
    fixed = best_of(("sum", "mean", "max", "multi", "pna"))
    recurrent = best_of(("gru", "lstm", "pyg_gru", "pyg_lstm"))
    overall = max(rows, key=lambda r: r["test"][largest]["mean"])
    out.append(
        f"Best at size {largest}: {_label(overall['aggregator'])}, "
        f"{_pct(overall['test'][largest])} %."
    )
    for other, what in ((fixed, "the best fixed aggregator"), (recurrent, "the best recurrent")):
        if lcm is None or other is None:
            continue
        a, b = lcm["test"][largest], other["test"][largest]
        margin = max(a["std"], b["std"])
        if a["mean"] > b["mean"] + margin:
            verdict = "ahead"
        elif a["mean"] >= b["mean"] - margin:
            verdict = "level (within one standard deviation)"
        else:
            verdict = "behind"
        out.append(
            f"gnnagg's best LCM ({lcm['aggregator']}, {_pct(a)} %) is {verdict} of {what} "
            f"({_label(other['aggregator'])}, {_pct(b)} %) at size {largest}."
        )
    val_best = max(rows, key=lambda r: r["val"]["mean"])
    out.append(
        f"In distribution (sizes of training) the best is {_label(val_best['aggregator'])} "
        f"with {_pct(val_best['val'])} %; chance is about "
        f"{100 / _num_classes(task):.1f} % for this task."
    )
    return out


def _num_classes(task: str) -> int:
    from ..data import TASKS

    return TASKS[task].num_classes if task in TASKS else 1


def plot_sizegen(summary: list[dict[str, Any]], task: str, path: Path) -> Path:
    """Accuracy against multiset size, one line per aggregator, to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if r["task"] == task]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    ax.axvspan(2, 16, color="0.92", label="training sizes")
    # Up to 13 aggregators share one plot: tab20 keeps their colours apart.
    colours = plt.get_cmap("tab20").colors
    for i, r in enumerate(rows):
        keys = sorted(r["test"], key=int)  # results of older runs may list sizes unsorted
        sizes = [int(s) for s in keys]
        means = [100 * r["test"][s]["mean"] for s in keys]
        stds = [100 * r["test"][s]["std"] for s in keys]
        spec = AGGREGATORS.get(r["aggregator"])
        # Dashed: PyG's aggregators; solid: gnnagg's.
        style = "--" if spec is not None and spec.library == "pyg" else "-"
        ax.errorbar(
            sizes,
            means,
            yerr=stds,
            marker="os^vD"[i % 5],
            ms=4,
            capsize=3,
            ls=style,
            color=colours[(2 * i) % 20 + (2 * i) // 20],
            label=_label(r["aggregator"]),
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("multiset size (test)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Size generalisation: {task} (trained on sizes 2–16)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


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


def _real_table(summary: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> str:
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


def poly_table(poly: dict[str, Any]) -> str:
    """Markdown: per data set, the trivial baseline, then test MAE / RMSE (mean ± std over
    seeds) of GINE without and with polynomial features, with the input widths and the time
    spent computing the features."""
    lines = [
        "| data set | source | model | node/edge/readout input | test MAE | test RMSE | "
        "features (s) | s/model |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    features = {f["dataset"]: f for f in poly.get("features", [])}
    for b in poly.get("baselines", []):
        lines.append(
            f"| {b['dataset']} | {b.get('source')} | *{b['baseline']}* | - | "
            f"{b['test']['mae']:.3f} | {b['test']['rmse']:.3f} | - | - |"
        )
    labels = {"plain": "GINE", "poly": "GINE + polynomial features"}
    for r in poly["summary"]:
        widths = r["input_widths"]
        mae, rmse = r["test"]["mae"], r["test"]["rmse"]
        info = features.get(r["dataset"], {})
        feature_time = f"{info['time_s']:.2f}" if r["variant"] == "poly" and info else "-"
        lines.append(
            f"| {r['dataset']} | {r.get('source')} | {labels.get(r['variant'], r['variant'])} | "
            f"{widths['node']}/{widths['edge']}/{widths['graph']} | "
            f"{mae['mean']:.3f} ± {mae['std']:.3f} | {rmse['mean']:.3f} ± {rmse['std']:.3f} | "
            f"{feature_time} | {r['train_time_s']:.0f} |"
        )
    return "\n".join(lines)


def _section_error(results: dict[str, Any], key: str) -> str | None:
    section = results.get(key)
    if isinstance(section, dict) and section.get("status") == "error":
        return section.get("reason", "unknown error")
    return None


def write_report(results: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and the plots for ``results`` into ``out_dir``; returns their paths
    by name (``"report"``, ``"sizegen_<task>"``, ``"speed_aggr"``)."""
    if not isinstance(results, dict) or "config" not in results:
        raise ValueError("results: expected the dict of a results.json (with a 'config' key)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    config = results["config"]
    machine = results.get("machine", {})
    lines = [f"# gnnagg benchmark: `{config.get('name')}` suite", ""]
    lines.append(f"* Machine: {describe_machine(machine)}")
    load = machine.get("load_average")
    if load:
        lines.append(
            f"* Load average (1 min) at start / end: {load.get('start')} / {load.get('end')} "
            "(other processes on the machine slow every timing down)"
        )
    lines.append(f"* Date: {results.get('created')}; command: `{results.get('command')}`")
    wall = results.get("wall_time_s", {})
    if wall:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in wall.items() if k != "total")
        lines.append(f"* Wall time: {wall.get('total', 0):.0f} s ({parts})")
    lines.append("")

    sizegen = results.get("sizegen")
    error = _section_error(results, "sizegen")
    if sizegen and not error:
        cfg = config["sizegen"]
        summary = sizegen["summary"]
        lines += ["## Size generalisation", ""]
        lines.append(
            f"Trained on multisets of sizes {min(cfg['train_sizes'])}–{max(cfg['train_sizes'])} "
            f"({cfg['num_train']} training multisets, {cfg['epochs']} epochs, batch "
            f"{cfg['batch_size']}, Adam lr {cfg['lr']}, width {cfg['hidden']}); tested on "
            f"{cfg['num_test']} multisets of each size. Accuracy in %, mean ± sample std over "
            f"seeds {list(cfg['seeds'])}; the model kept is the best on validation (sizes "
            f"2–16). Regularisers: "
            + (
                f"{cfg['reg_weight']} × associativity loss (gnnagg lcm_gru) and "
                f"{cfg['reg_weight']} × permutation loss (gnnagg gru, lstm)."
                if cfg["regularise"]
                else "off."
            )
        )
        lines.append("")
        for task in cfg["tasks"]:
            lines += [f"### {task}", "", sizegen_table(summary, task), ""]
            path = plot_sizegen(summary, task, out / f"sizegen_{task}.png")
            files[f"sizegen_{task}"] = path
            lines += [f"![accuracy vs size, {task}]({path.name})", ""]
            if task == "second_minimum":
                lines += [
                    f"**The LCM paper and this run.** The claim of {PAPER} is that "
                    "recurrent aggregators regularised towards permutation "
                    "invariance are competitive with the best permutation-invariant "
                    "aggregators, and that the LCM aggregator, at O(log V) depth, performs "
                    "competitively with the recurrent ones. Its 2nd-minimum models train far "
                    "longer than this suite does (PyG's `lcm_aggr_2nd_min` example: width 128, "
                    "2^16 training multisets, 1000 epochs, about 95 % validation accuracy), so "
                    "the numbers here are early-training numbers on a CPU budget, not a "
                    "reproduction. What this run measured:",
                    "",
                ]
                lines += [f"* {b}" for b in lcm_paper_comparison(summary, task)]
                lines.append("")
            if any(r["task"] == task and r["aggregator"] == "pyg_lcm" for r in summary):
                lines += [PYG_LCM_NOTE, ""]
    elif error:
        lines += ["## Size generalisation", "", f"Failed: `{error}`", ""]

    speed = results.get("speed")
    error = _section_error(results, "speed")
    if speed and not error:
        lines += ["## Speed and memory", ""]
        titles = {
            "aggr": "Aggregators, forward + backward, E = 100k messages into N = 10k nodes, "
            "F = 64 (one fresh process per measurement)",
            "segment": "Segment reductions (time and effective bandwidth)",
            "recurrent": "Recurrent aggregators (gnnagg without padding, PyG padded)",
            "poly": "Equivariant polynomial features",
        }
        for part, entry in speed.items():
            lines += [f"### {titles.get(part, part)}", ""]
            if entry.get("status") != "ok":
                lines += [f"Not run: {entry.get('status')}, {entry.get('reason')}.", ""]
                continue
            table = (entry.get("table") or "(no table)").strip()
            # Scripts that print plain text (not a markdown table) keep their layout in a fence.
            lines += [table if table.startswith("|") else f"```text\n{table}\n```", ""]
            lines += [f"* {n}" for n in entry.get("notes", [])]
            if part == "aggr":
                path = plot_speed(entry["result"], out / "speed_aggr.png")
                files["speed_aggr"] = path
                lines += ["", f"![time and memory vs degree skew]({path.name})"]
            lines.append("")
    elif error:
        lines += ["## Speed and memory", "", f"Failed: `{error}`", ""]

    real = results.get("real")
    error = _section_error(results, "real")
    if real and not error:
        cfg = config["real"]
        lines += ["## Real data", ""]
        lines.append(
            f"{cfg['layers']} message-passing layers of width {cfg['hidden']}, {cfg['epochs']} "
            f"epochs, batch {cfg['batch_size']}, Adam lr {cfg['lr']}, seeds {list(cfg['seeds'])}; "
            "mean ± sample std; the model kept is the best on validation."
        )
        lines += ["", _real_table(real["summary"], real.get("baselines", [])), ""]
        if any(r.get("source") == "fixture" for r in real["summary"]):
            lines.append(
                "* `fixture` rows use the small committed fixtures (tens of test graphs): they "
                "check the pipeline end to end; differences between aggregators there are "
                "mostly noise."
            )
        lines += [f"* {n}" for n in real.get("notes", [])]
        lines.append("")
    elif error:
        lines += ["## Real data", "", f"Failed: `{error}`", ""]

    poly = results.get("poly")
    error = _section_error(results, "poly")
    if poly and not error:
        cfg = config["poly"]
        lines += ["## Polynomial features", ""]
        lines.append(
            f"GINE ({cfg['layers']} layers of width {cfg['hidden']}, {cfg['epochs']} epochs, "
            f"batch {cfg['batch_size']}, Adam lr {cfg['lr']}, seeds {list(cfg['seeds'])}) "
            "without and with `AddEquivariantPolynomials(max_degree="
            f"{cfg['max_degree']}, subset={cfg['subset']!r}, normalize={cfg['normalize']!r})` "
            "features: `poly_x` joins the atom embedding, `poly_edge_attr` the bond embedding, "
            "`poly_graph` the pooled readout. Mean ± sample std; the model kept is the best on "
            "validation MAE; the feature time covers every graph of the three splits."
        )
        lines += ["", poly_table(poly), ""]
        for f in poly.get("features", []):
            channels, nonzero = f["channels"], f["nonzero_channels"]
            lines.append(
                f"* {f['dataset']}: {channels['graph']}/{channels['node']}/{channels['edge']} "
                "graph/node/edge channels, of which "
                f"{nonzero['graph']}/{nonzero['node']}/{nonzero['edge']} are not identically "
                f"zero on these {f['graphs']} graphs (patterns that never occur carry nothing)."
            )
        if any(r.get("source") == "fixture" for r in poly["summary"]):
            lines.append(
                "* `fixture` rows use the small committed fixtures: they check the pipeline; "
                "the difference between the two models there is mostly noise."
            )
        lines += [f"* {n}" for n in poly.get("notes", [])]
        lines.append("")
    elif error:
        lines += ["## Polynomial features", "", f"Failed: `{error}`", ""]

    notes = results.get("notes", [])
    if notes:
        lines += ["## Notes", ""] + [f"* {n}" for n in notes] + [""]
    lines += [
        "## Files",
        "",
        "`results.json` in this folder has every number with its config, seed and machine "
        "(keys: `schema`, `suite`, `created`, `command`, `config`, `machine`, `wall_time_s`, "
        "`sizegen` {`runs`, `summary`}, `speed` {part: {`status`, `result`, `table`, `wall_s`, "
        "`notes`}}, `real` {`runs`, `summary`, `baselines`, `notes`}, `poly` {`runs`, `summary`, "
        "`features`, `baselines`, `notes`}, `plots`, `notes`). Rerun "
        "the same configuration with "
        "`gnnagg-bench run --config results.json`.",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    files["report"] = report
    return files
