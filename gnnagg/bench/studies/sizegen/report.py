"""The size-generalisation block of ``report.md``: the table per task with its constant
baselines, the comparison with the LCM paper, and the plot ``sizegen_<task>.png`` (accuracy
against multiset size per aggregator, mean ± std over seeds, the training range shaded);
then, for runs of the fair protocol, the comparison at matched validation accuracy, the cost
to fit and the LCMs' associativity gap per tree level (:mod:`.matched`), with the plot
``matched_<task>.png``.

Every table ends with the baselines of :mod:`~gnnagg.bench.studies.sizegen.baselines` (the
constant predictor, the best constant of each size, uniform chance) and marks the accuracies
that do not beat them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...._files import write_figure
from ...registry import AGGREGATORS
from ...registry import aggregator_label as _label
from ...section import ReportBlock
from ...stats import percent as _pct
from ...validation import NUMBER, STATS, check_shape
from .matched import cost_table, level_gap_table, matched_rows, matched_table, plot_matched

__all__ = [
    "RESULT_SHAPE",
    "baseline_note",
    "check_result",
    "lcm_paper_comparison",
    "plot_sizegen",
    "report",
    "run_notes",
    "sizegen_table",
    "task_baselines",
    "wide_validation_lines",
]

# What report() reads of a result.
RESULT_SHAPE = {
    "runs": list,
    "summary": [
        {
            "task": str,
            "aggregator": str,
            "val": STATS,
            "test": {str: STATS},
            "train_time_s": NUMBER,
        }
    ],
    # Per task, as baselines.constant_baselines returns them.
    "baselines?": {
        str: {
            "label": int,
            "exact": bool,
            "chance": NUMBER,
            "constant": {str: NUMBER},
            "best_constant": {str: NUMBER},
            "best_label": {str: int},
        }
    },
}




def check_result(result: Any, name: str = "sizegen") -> None:
    """``ValueError`` naming the key when ``result`` is not what :func:`report` reads."""
    check_shape(result, RESULT_SHAPE, name)
    for i, row in enumerate(result["summary"]):
        if not row["test"] or not all(key.isdigit() for key in row["test"]):
            raise ValueError(f"{name}.summary[{i}].test: expected sizes as keys")


def report(result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
    """The block of ``report.md`` for ``result`` (run with ``config``); plots into ``out_dir``."""
    lines: list[str] = []
    files: dict[str, Path] = {}
    summary = result["summary"]
    lines.append(
        f"Trained on multisets of sizes {min(config['train_sizes'])}–"
        f"{max(config['train_sizes'])} ({config['num_train']} training multisets, "
        f"{_length(config)}, batch {config['batch_size']}, Adam lr {config['lr']}, "
        f"width {config['hidden_channels']}); tested on {config['num_test']} multisets of each "
        "size. "
        f"Accuracy in %, mean ± sample std over seeds {list(config['seeds'])}; the model "
        "kept is the best on validation (sizes 2–16). Regularisers: "
        + _regularisers(config)
        + _lcm_options(config)
    )
    lines += [""] + run_notes(summary, config)
    for task in config["tasks"]:
        baselines = task_baselines(result, config, task)
        lines += [f"### {task}", "", sizegen_table(summary, task, baselines), ""]
        if baselines is not None:
            lines += [baseline_note(baselines), ""]
        lines += wide_validation_lines(summary, task)
        path = plot_sizegen(summary, task, out_dir / f"sizegen_{task}.png")
        files[f"sizegen_{task}"] = path
        lines += [f"![accuracy vs size, {task}]({path.name})", ""]
        lines += _matched_lines(summary, task, out_dir, files, baselines)
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
            lines += [f"* {b}" for b in lcm_paper_comparison(summary, task, baselines)]
            lines.append("")
        if any(r["task"] == task and r["aggregator"] == "pyg_lcm" for r in summary):
            lines += [PYG_LCM_NOTE, ""]
    return ReportBlock(lines, files)



def _length(config: dict[str, Any]) -> str:
    """How long each model trained, in the header's words."""
    cadence = (
        f"validated every {config['eval_every']:,} steps"
        if config.get("eval_every")
        else "validated after every epoch"
    )
    if config.get("patience"):
        return (
            f"until {config['patience']} validations in a row bring no better validation "
            f"accuracy or at most {config['epochs']} epochs, {cadence}"
        )
    return f"{config['epochs']} epochs, {cadence}"


def _regularisers(config: dict[str, Any]) -> str:
    if not config["regularise"] or not config["reg_weight"]:
        return "off."
    schedule = []
    if config.get("reg_every", 1) > 1:
        schedule.append(f"on every {config['reg_every']}th step at {config['reg_every']}x")
    if config.get("reg_warmup"):
        schedule.append(f"ramped up over {config['reg_warmup']:,} steps")
    if config.get("reg_until") is not None:
        schedule.append(f"off from step {config['reg_until']:,}")
    when = f" ({', '.join(schedule)})" if schedule else ""
    return (
        f"{config['reg_weight']} × associativity loss (gnnagg lcm_gru) and "
        f"{config['reg_weight']} × permutation loss (gnnagg gru, lstm){when}."
    )


def _lcm_options(config: dict[str, Any]) -> str:
    options = [
        f"{name} {config[key]}"
        for key, name in (("lcm_leaf", "leaf"), ("lcm_init", "init"))
        if config.get(key) is not None
    ]
    if config.get("lcm_layer_norm"):
        options.append("layer-normalised combinations")
    return f" gnnagg LCMs: {', '.join(options)}." if options else ""


def _matched_lines(
    summary: list[dict[str, Any]],
    task: str,
    out_dir: Path,
    files: dict[str, Path],
    baselines: dict[str, Any] | None = None,
) -> list[str]:
    """The report's fair-protocol part for ``task`` (empty for results without it)."""
    rows = matched_rows(summary, task)
    if not rows:
        return []
    sizes = sorted(rows[0]["test"], key=int)
    shown = [s for s in ("32", "64") if s in sizes] or sizes[-1:]
    lines = [
        "**At matched validation accuracy.** Each aggregator's model at the first validation "
        "that reached each threshold, tested like the kept model: out-of-distribution "
        "accuracy apart from how fast the aggregator fits (seeds that never reached a "
        "threshold are left out and counted as k/n).",
        "",
    ]
    for size in shown:
        floor = ""
        if baselines is not None and size in baselines["constant"]:
            floor = (
                f" (the constant predictor scores {100 * baselines['constant'][size]:.1f}, the "
                f"best constant of this size {100 * baselines['best_constant'][size]:.1f})"
            )
        lines += [
            f"Accuracy at size {size} (%){floor}:",
            "",
            matched_table(summary, task, size),
            "",
        ]
    path = plot_matched(summary, task, shown[-1], out_dir / f"matched_{task}.png")
    if path is not None:
        files[f"matched_{task}"] = path
        lines += [f"![size {shown[-1]} against validation accuracy, {task}]({path.name})", ""]
    lines += [
        "**Cost to fit.** Training steps and training CPU-seconds (validation excluded) to the "
        "first validation reaching each threshold, mean ± std over the seeds that reached it:",
        "",
        cost_table(summary, task),
        "",
    ]
    gaps = level_gap_table(summary, task)
    if gaps:
        lines += [
            "**Associativity per tree level.** ‖(a⊕b)⊕c − a⊕(b⊕c)‖ / ‖a⊕(b⊕c)‖ over 1,024 "
            "triples of the states each level of the reduction trees holds (0: the leaves), "
            "on the test multisets of one size, mean ± std over seeds:",
            "",
            gaps,
            "",
        ]
    return lines


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


def task_baselines(result: dict[str, Any], config: dict[str, Any], task: str) -> dict | None:
    """The baselines of ``task`` (:func:`.baselines.constant_baselines`): those stored in
    ``result`` or, for results written before they were, computed from ``config``; ``None``
    for a task this version does not know."""
    from ....data import TASKS
    from .baselines import constant_baselines

    stored = result.get("baselines", {}).get(task)
    if stored is not None:
        return stored
    if task not in TASKS:
        return None
    return constant_baselines(task, config["train_sizes"], config["test_sizes"])


def _not_above(mean: float, baselines: dict[str, Any] | None, col: str) -> str:
    """The table's markers for a mean accuracy that does not beat a baseline."""
    if baselines is None or col not in baselines["constant"]:
        return ""
    marks = ""
    if mean <= baselines["constant"][col]:
        marks += "†"
    if mean <= baselines["best_constant"][col]:
        marks += "‡"
    return marks


def sizegen_table(
    summary: list[dict[str, Any]], task: str, baselines: dict[str, Any] | None = None
) -> str:
    """Markdown: one row per aggregator, accuracy (%) in distribution and at each test size;
    the best mean of each column in bold.

    With ``baselines`` (:func:`.baselines.constant_baselines`) three rows follow: the
    constant predictor (the training distribution's most common label), the best
    constant of each size and uniform chance; a cell marked † is not above the constant
    predictor, ‡ not above the best constant of its size.
    """
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
            cell = _pct(stats) + _not_above(stats["mean"], baselines, col)
            cells.append(f"**{cell}**" if stats["mean"] == best[col] else cell)
        lines.append(
            f"| {_label(r['aggregator'])} | " + " | ".join(cells) + f" | {r['train_time_s']:.0f} |"
        )
    if baselines is not None:

        def baseline_row(name: str, values: dict[str, float]) -> str:
            cells = [f"{100 * values[c]:.1f}" if c in values else "–" for c in columns]
            return f"| *{name}* | " + " | ".join(cells) + " | – |"

        lines.append(
            baseline_row(f"constant predictor (label {baselines['label']})", baselines["constant"])
        )
        lines.append(baseline_row("best constant of each size", baselines["best_constant"]))
        chance = {c: baselines["chance"] for c in columns}
        lines.append(baseline_row("uniform chance", chance))
    return "\n".join(lines)


def baseline_note(baselines: dict[str, Any]) -> str:
    """The sentence under a table that says what its baseline rows are."""
    how = "computed exactly" if baselines["exact"] else "estimated by sampling 65,536 multisets"
    best = ", ".join(f"{n}: {lab}" for n, lab in baselines["best_label"].items() if n != "val")
    return (
        f"Baselines ({how} from the label distribution, values i.i.d. uniform): the *constant "
        f"predictor* always answers {baselines['label']}, the most common label of the "
        "training distribution (sizes 2–16) — what a model that learned only the label prior "
        "scores, and the number to beat; the *best constant of each size* answers that size's "
        f"most common label ({best}), which a model trained on small multisets cannot know. "
        "† marks a mean not above the constant predictor, ‡ one not above the best constant."
    )


def run_notes(summary: list[dict[str, Any]], config: dict[str, Any]) -> list[str]:
    """Lines on how the runs were trained beyond the header: element shuffles, and jobs that
    stopped on the time budget before ``epochs`` (with how to continue them)."""
    lines = []
    if config.get("shuffle_elements"):
        lines += [
            "Elements were reshuffled inside every training multiset each epoch for the "
            "order-sensitive aggregators (recurrent ones and the GRU-monoid LCM trees).",
            "",
        ]
    def budget_epochs(r: dict[str, Any]) -> list[int]:
        # A plateau before the cap is the protocol working; only the budget cuts runs short.
        # Rows without ``stopped`` (older results) count every run below the cap.
        stops = r.get("stopped") or [None] * len(r["epochs_done"])
        return [
            e for e, why in zip(r["epochs_done"], stops)
            if e < config["epochs"] and why in ("budget", None)
        ]  # fmt: skip

    short = [
        f"{_label(r['aggregator'])} ({r['task']}): {min(cut)}–{max(cut)} "
        f"({len(cut)} of {len(r['epochs_done'])} seeds)"
        for r in summary
        if r.get("epochs_done") and (cut := budget_epochs(r))
    ]
    if short:
        how = (
            "rerun the same command with the same `--out` to continue from the checkpoints"
            if config.get("checkpoints")
            else "rerun with checkpoints on and a longer budget"
        )
        lines += [
            f"**Stopped by the time budget before {config['epochs']} epochs** (epochs done "
            f"over seeds): {'; '.join(short)}. These are not final numbers; {how}.",
            "",
        ]
    return lines


def wide_validation_lines(summary: list[dict[str, Any]], task: str) -> list[str]:
    """The validation accuracy at ``val_at_size`` per aggregator (the number PyG's
    ``lcm_aggr_2nd_min`` example prints, about 95 % after its 1,000 epochs at size 32)."""
    rows = [r for r in summary if r["task"] == task and r.get("val_at_size")]
    if not rows:
        return []
    size = rows[0]["val_at_size"]["size"]
    lines = [
        f"Validation accuracy at size {size} (%; after the last epoch, and of the kept "
        f"model), the number PyG's `lcm_aggr_2nd_min` example reports (~95 % after 1,000 "
        "epochs at lr 1e-4):",
        "",
    ]
    for r in rows:
        wide = r["val_at_size"]
        lines.append(
            f"* {_label(r['aggregator'])}: {_pct(wide['final'])} last epoch, "
            f"{_pct(wide['at_best'])} kept model"
        )
    return lines + [""]


def _find(summary: list[dict[str, Any]], task: str, names: tuple[str, ...]) -> list[dict]:
    return [r for r in summary if r["task"] == task and r["aggregator"] in names]


def lcm_paper_comparison(
    summary: list[dict[str, Any]], task: str, baselines: dict[str, Any] | None = None
) -> list[str]:
    """Bullets comparing the paper's claims with the measured numbers of ``task``: LCM against
    the fixed aggregators and against the recurrent ones at the largest test size, and (with
    ``baselines``) which aggregators do not beat the constant predictor."""
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
    if baselines is not None and largest in baselines["constant"]:
        for key, what in (
            ("constant", "the constant predictor"),
            ("best_constant", f"the best constant of size {largest}"),
        ):
            level = baselines[key][largest]
            losers = [_label(r["aggregator"]) for r in rows if r["test"][largest]["mean"] <= level]
            out.append(
                f"At size {largest}, {what} scores {100 * level:.1f} %; "
                + (
                    f"not above it: {', '.join(losers)}."
                    if losers
                    else "every aggregator is above it."
                )
            )
    return out


def _num_classes(task: str) -> int:
    from ....data import TASKS

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
    write_figure(fig, path)
    plt.close(fig)
    return path
