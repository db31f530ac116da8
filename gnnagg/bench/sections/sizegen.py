"""The size-generalisation section: train on multisets of sizes 2-16, test on larger ones.

For each task and seed the splits are generated once (:func:`gnnagg.data.make_splits`, graph
form: one star graph per multiset) and shared by all aggregators, so aggregators are compared
on identical data. Each (task, seed, aggregator) trains one :class:`~gnnagg.bench.models.
SetClassifier` with :func:`~gnnagg.bench.train.fit_multiset`; the summary gives mean and sample
standard deviation over seeds of the best-validation model's accuracy at every test size.

Here are also its suites, options, table, plot (``sizegen_<task>.png``: accuracy against
multiset size per aggregator, mean ± std over seeds, the training range shaded) and the
comparison with the LCM paper.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...data import TASKS, TRAIN_SIZES
from ..registry import AGGREGATORS, check_aggregators
from ..report import aggregator_label as _label
from ..report import mean_std
from ..report import percent as _pct
from ..validation import (
    NUMBER,
    STATS,
    check_bool,
    check_finite,
    check_int,
    check_memory,
    check_names,
    check_seeds,
    check_shape,
)
from .base import ReportBlock, RunContext, Section

__all__ = [
    "QUICK_AGGREGATORS",
    "SizeGenConfig",
    "SizeGenSection",
    "add_multiset_training_options",
    "lcm_paper_comparison",
    "plot_sizegen",
    "run_sizegen",
    "sizegen_table",
    "summarise_sizegen",
]

# PyG's fixed and learnable aggregators next to every gnnagg aggregator: the line-up that
# answers "does gnnagg's LCM generalise like the recurrent ones, and better than PyG's?".
QUICK_AGGREGATORS: tuple[str, ...] = (
    "sum",
    "mean",
    "max",
    "pna",
    "pyg_lcm",
    "pyg_gru",
    "lcm_gru",
    "lcm_conjugated_sum",
    "lcm_softmax",
    "gru",
    "lstm",
)
# Held per multiset while training: its star graph as a PyG Data object (about 1.5 kB of
# Python objects) and 8 bit features plus an edge per element (about 100 bytes each).
_BYTES_PER_MULTISET = 1536
_BYTES_PER_ELEMENT = 100
_MAX_SIZE = 1 << 20
# What report() reads of a result.
_RESULT_SHAPE = {
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
}


@dataclass
class SizeGenConfig:
    """Size generalisation: train on multisets of ``train_sizes``, test on ``test_sizes``.

    The model is an encoder ``Linear(8, hidden) + ReLU`` over each element's bits, the
    aggregator over the star edges into the readout node, and a decoder MLP; cross-entropy.
    With ``regularise``, gnnagg's approximately associative LCM (``lcm_gru``) adds
    ``reg_weight * associativity_loss()`` and gnnagg's GRU/LSTM add
    ``reg_weight * permutation_loss()`` to the loss. The model kept is the one with the best
    validation accuracy (validation multisets have training sizes).

    Every field is validated: ``lr`` finite and positive, ``reg_weight`` finite and
    non-negative, sizes positive ints, and the data of all splits must fit in this machine's
    memory (refused before anything is generated, with the memory it would need).
    """

    tasks: tuple[str, ...] = ("second_minimum",)
    aggregators: tuple[str, ...] = QUICK_AGGREGATORS
    seeds: tuple[int, ...] = (0, 1)
    hidden: int = 64
    num_train: int = 8192
    num_val: int = 256
    num_test: int = 256
    train_sizes: tuple[int, ...] = TRAIN_SIZES
    test_sizes: tuple[int, ...] = (16, 32, 64, 128)
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-2
    regularise: bool = True
    reg_weight: float = 0.1
    reg_samples: int = 256

    def __post_init__(self) -> None:
        self.tasks = check_names(self.tasks, sorted(TASKS), "tasks")
        if isinstance(self.aggregators, (list, tuple)) and not all(
            isinstance(a, str) for a in self.aggregators
        ):
            raise ValueError(f"aggregators: expected names, got {self.aggregators!r}")
        self.aggregators = check_aggregators(self.aggregators)
        self.seeds = check_seeds(self.seeds)
        check_int(self.hidden, "hidden", maximum=1 << 14)
        for name in ("num_train", "num_val", "num_test", "batch_size"):
            check_int(getattr(self, name), name)
        check_int(self.epochs, "epochs", maximum=1_000_000)
        check_int(self.reg_samples, "reg_samples", maximum=1 << 20)
        for arg in ("train_sizes", "test_sizes"):
            sizes = getattr(self, arg)
            if isinstance(sizes, str) or not isinstance(sizes, (list, tuple)) or not sizes:
                raise ValueError(f"{arg}: expected a non-empty list of sizes, got {sizes!r}")
            for n in sizes:
                check_int(n, arg, maximum=_MAX_SIZE)
        self.train_sizes = tuple(self.train_sizes)
        # Ascending and distinct: reports and plots read the last size as the largest.
        self.test_sizes = tuple(sorted(set(self.test_sizes)))
        self.lr = check_finite(self.lr, "lr", positive=True)
        self.reg_weight = check_finite(self.reg_weight, "reg_weight")
        check_bool(self.regularise, "regularise")
        mean_train = statistics.fmean(self.train_sizes)
        elements = (self.num_train + self.num_val) * mean_train + self.num_test * sum(
            self.test_sizes
        )
        multisets = self.num_train + self.num_val + self.num_test * len(self.test_sizes)
        check_memory(
            multisets * _BYTES_PER_MULTISET + elements * _BYTES_PER_ELEMENT,
            "num_train, num_val, num_test, test_sizes",
            f"{multisets:,} multisets of {int(elements):,} elements",
        )


def summarise_sizegen(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, aggregator), in run order: ``val`` and ``test`` (size -> mean/std/n)
    accuracies over seeds, mean training time and the seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["task"], run["aggregator"]), []).append(run)
    rows = []
    for (task, aggregator), members in groups.items():
        sizes = list(members[0]["test_acc"])
        rows.append(
            {
                "task": task,
                "aggregator": aggregator,
                "seeds": [m["seed"] for m in members],
                "val": mean_std([m["val_acc"] for m in members]),
                "test": {s: mean_std([m["test_acc"][s] for m in members]) for s in sizes},
                "train_time_s": statistics.fmean(m["train_time_s"] for m in members),
                "num_params": members[0]["num_params"],
            }
        )
    return rows


def run_sizegen(
    config: SizeGenConfig, device: str = "cpu", progress: bool = True
) -> dict[str, Any]:
    """Train every (task, seed, aggregator) of ``config``; returns ``{"runs", "summary"}``.

    ``progress`` shows a tqdm bar counted in epochs (with ETA).
    """
    from tqdm.auto import tqdm

    from ..train import DistContext, build_splits, fit_multiset

    if not isinstance(config, SizeGenConfig):
        raise TypeError(f"config: expected a SizeGenConfig, got {type(config).__name__}")
    ctx = DistContext(device=device)
    total = len(config.tasks) * len(config.seeds) * len(config.aggregators) * config.epochs
    runs: list[dict[str, Any]] = []
    with tqdm(total=total, desc="size generalisation", unit="epoch", disable=not progress) as bar:
        for task in config.tasks:
            for seed in config.seeds:
                splits = build_splits(task, seed, config)
                for aggregator in config.aggregators:
                    bar.set_postfix_str(f"{task} {aggregator} seed {seed}")

                    def tick(epoch: int, val_acc: float) -> None:
                        bar.update(1)

                    record, _ = fit_multiset(
                        task, aggregator, seed, config, ctx, splits, on_epoch=tick
                    )
                    runs.append(record)
    return {"runs": runs, "summary": summarise_sizegen(runs)}


def add_multiset_training_options(parser: argparse.ArgumentParser) -> None:
    """The data and optimiser options of multiset training, shared by ``gnnagg-bench
    sizegen`` and the training entry point ``gnnagg-bench train``: ``--num-train``,
    ``--num-val``, ``--num-test``, ``--batch-size``, ``--lr``, ``--test-sizes`` and
    ``--no-regularise``, defaulting to :class:`SizeGenConfig`'s."""
    from ..options import positive_int

    defaults = SizeGenConfig()
    parser.add_argument("--num-train", type=positive_int, default=defaults.num_train)
    parser.add_argument("--num-val", type=positive_int, default=defaults.num_val)
    parser.add_argument("--num-test", type=positive_int, default=defaults.num_test)
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument(
        "--test-sizes",
        nargs="+",
        type=positive_int,
        default=list(defaults.test_sizes),
        metavar="N",
    )
    parser.add_argument(
        "--no-regularise",
        dest="regularise",
        action="store_false",
        help="no associativity / permutation regulariser for gnnagg's LCM[gru], GRU, LSTM",
    )


class SizeGenSection(Section):
    """Size generalisation per task, aggregator and seed (:class:`SizeGenConfig`)."""

    name: ClassVar[str] = "sizegen"
    title: ClassVar[str] = "Size generalisation"
    config_type: ClassVar[type] = SizeGenConfig
    command: ClassVar[str | None] = "sizegen"
    command_help: ClassVar[str] = "size generalisation only"
    command_description: ClassVar[str] = (
        "Train on multisets of sizes 2-16, test on larger ones, per aggregator."
    )
    result_keys: ClassVar[str] = "`sizegen` {`runs`, `summary`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> SizeGenConfig | None:
        if suite == "quick":
            return SizeGenConfig(seeds=seeds)
        if suite == "smoke":
            return SizeGenConfig(
                tasks=("maximum",), aggregators=("sum", "lcm_softmax"), seeds=seeds, hidden=8,
                num_train=32, num_val=8, num_test=8, test_sizes=(20,), epochs=1, batch_size=16,
            )  # fmt: skip
        if suite == "full":
            return SizeGenConfig(
                tasks=tuple(sorted(TASKS)),
                aggregators=tuple(AGGREGATORS),
                seeds=seeds,
                hidden=128,
                num_train=16384,
                num_val=512,
                num_test=512,
                test_sizes=(16, 32, 64, 128, 256),
                epochs=100,
                batch_size=512,
                lr=5e-3,
            )
        return None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from ..options import add_names, add_training_options

        defaults = SizeGenConfig()
        add_names(parser, "--tasks", sorted(TASKS), defaults.tasks, "TASK")
        add_names(parser, "--aggregators", list(AGGREGATORS), QUICK_AGGREGATORS, "NAME")
        add_training_options(parser, defaults)
        add_multiset_training_options(parser)

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            self.name: SizeGenConfig(
                tasks=tuple(args.tasks),
                aggregators=tuple(args.aggregators),
                seeds=tuple(range(args.seeds)),
                hidden=args.hidden,
                num_train=args.num_train,
                num_val=args.num_val,
                num_test=args.num_test,
                test_sizes=tuple(args.test_sizes),
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                regularise=args.regularise,
            )
        }

    def run(self, config: SizeGenConfig, context: RunContext) -> dict[str, Any]:
        return run_sizegen(config, context.device, context.progress)

    def check_result(self, result: Any) -> None:
        check_shape(result, _RESULT_SHAPE, self.name)
        for i, row in enumerate(result["summary"]):
            if not row["test"] or not all(key.isdigit() for key in row["test"]):
                raise ValueError(f"{self.name}.summary[{i}].test: expected sizes as keys")

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        lines: list[str] = []
        files: dict[str, Path] = {}
        summary = result["summary"]
        lines.append(
            f"Trained on multisets of sizes {min(config['train_sizes'])}–"
            f"{max(config['train_sizes'])} ({config['num_train']} training multisets, "
            f"{config['epochs']} epochs, batch {config['batch_size']}, Adam lr {config['lr']}, "
            f"width {config['hidden']}); tested on {config['num_test']} multisets of each size. "
            f"Accuracy in %, mean ± sample std over seeds {list(config['seeds'])}; the model "
            "kept is the best on validation (sizes 2–16). Regularisers: "
            + (
                f"{config['reg_weight']} × associativity loss (gnnagg lcm_gru) and "
                f"{config['reg_weight']} × permutation loss (gnnagg gru, lstm)."
                if config["regularise"]
                else "off."
            )
        )
        lines.append("")
        for task in config["tasks"]:
            lines += [f"### {task}", "", sizegen_table(summary, task), ""]
            path = plot_sizegen(summary, task, out_dir / f"sizegen_{task}.png")
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
        return ReportBlock(lines, files)


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
    from ...data import TASKS

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
