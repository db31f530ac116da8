"""The size-generalisation section: train on multisets of sizes 2-16, test on larger ones.

For each task and seed the splits are generated once (:func:`gnnagg.data.make_splits`, graph
form: one star graph per multiset) and shared by all aggregators, so aggregators are compared
on identical data. Each (task, seed, aggregator) trains one :class:`~gnnagg.bench.models.
SetClassifier` with :func:`~gnnagg.bench.train.fit_multiset`; the summary gives mean and sample
standard deviation over seeds of the best-validation model's accuracy at every test size.

Here are also its suites, options, table, plot (``sizegen_<task>.png``: accuracy against
multiset size per aggregator, mean ± std over seeds, the training range shaded) and the
comparison with the LCM paper. Every table ends with the baselines of
:mod:`gnnagg.bench.baselines` (the constant predictor, the best constant of each size, uniform
chance) and marks the accuracies that do not beat them.

The ``paper`` suite (:func:`paper_config`, ``gnnagg-bench run --suite paper``) is the LCM
paper's second-minimum setting at full size: hours of CPU, so its jobs checkpoint into the
output folder and a rerun with the same ``--out`` continues them; ``--jobs`` runs several at
once in worker processes (:mod:`gnnagg.bench.jobs`), ``--job-minutes`` and ``--epochs`` cut
it short.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ...data import TASKS, TRAIN_SIZES
from ..jobs import MAX_JOBS
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
    "PAPER_AGGREGATORS",
    "QUICK_AGGREGATORS",
    "SizeGenConfig",
    "SizeGenSection",
    "add_multiset_training_options",
    "baseline_note",
    "lcm_paper_comparison",
    "run_notes",
    "wide_validation_lines",
    "paper_config",
    "plot_sizegen",
    "run_sizegen",
    "sizegen_table",
    "summarise_sizegen",
    "task_baselines",
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

    Long runs (the ``paper`` suite):

    * ``shuffle_elements``: every epoch, reorder the elements inside each training multiset
      (seeded by seed and epoch) for the order-sensitive aggregators (recurrent ones and
      non-associative LCM trees), as the LCM paper suggests; invariant aggregators see the
      same data either way and skip it.
    * ``val_at_size``: also measure validation accuracy on ``num_val`` multisets of this size
      after every epoch (PyG's ``lcm_aggr_2nd_min`` example reports it at size 32); it does
      not select the model.
    * ``checkpoints``: write ``checkpoints/<task>-<aggregator>-seed<k>.pt`` in the run's
      output folder after every epoch; a run given the same output folder continues every
      job from its checkpoint (also with more ``epochs``).
    * ``jobs``: train up to this many (task, aggregator, seed) jobs at once, each in its own
      process with ``max(1, threads // jobs)`` torch threads (1: in this process).
    * ``time_budget_s``: stop each job after the epoch in which its training time in this
      run passes this many seconds (``None``: no limit); the report gives the epochs done.
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
    shuffle_elements: bool = False
    val_at_size: int | None = None
    checkpoints: bool = False
    jobs: int = 1
    time_budget_s: float | None = None

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
        check_bool(self.shuffle_elements, "shuffle_elements")
        check_bool(self.checkpoints, "checkpoints")
        check_int(self.jobs, "jobs", maximum=MAX_JOBS)
        if self.val_at_size is not None:
            check_int(self.val_at_size, "val_at_size", maximum=_MAX_SIZE)
        if self.time_budget_s is not None:
            self.time_budget_s = check_finite(self.time_budget_s, "time_budget_s", positive=True)
        mean_train = statistics.fmean(self.train_sizes)
        elements = (self.num_train + self.num_val) * mean_train + self.num_test * sum(
            self.test_sizes
        )
        multisets = self.num_train + self.num_val + self.num_test * len(self.test_sizes)
        if self.val_at_size is not None:
            elements += self.num_val * self.val_at_size
            multisets += self.num_val
        check_memory(
            multisets * _BYTES_PER_MULTISET + elements * _BYTES_PER_ELEMENT,
            "num_train, num_val, num_test, test_sizes",
            f"{multisets:,} multisets of {int(elements):,} elements",
        )


def summarise_sizegen(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, aggregator), in run order: ``val`` and ``test`` (size -> mean/std/n)
    accuracies over seeds, mean training time, the seeds, the epochs each seed trained and,
    when measured, ``val_at_size`` (``{"size", "final", "at_best"}``, mean/std/n each)."""
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
                "epochs_done": [m.get("epochs_done", m.get("epochs")) for m in members],
                "val_at_size": _wide_summary(members),
            }
        )
    return rows


def _wide_summary(members: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean/std over seeds of the validation accuracy at ``val_at_size`` (final epoch and at
    the kept model), or ``None`` when the runs did not measure it."""
    wide = [m.get("val_at_size") for m in members]
    if any(w is None for w in wide):
        return None
    return {
        "size": wide[0]["size"],
        "final": mean_std([w["final"] for w in wide]),
        "at_best": mean_std([w["at_best"] for w in wide]),
    }


def run_sizegen(
    config: SizeGenConfig,
    device: str = "cpu",
    progress: bool = True,
    out_dir: str | Path | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Train every (task, seed, aggregator) of ``config``; returns ``{"runs", "summary",
    "baselines"}`` (baselines per task: :func:`~gnnagg.bench.baselines.constant_baselines`).

    ``progress`` shows a tqdm bar counted in epochs (with ETA); epochs a job resumes past
    count as done. With ``config.checkpoints`` every job checkpoints into
    ``out_dir/checkpoints/`` and resumes from there; with ``config.jobs > 1`` jobs run in
    that many worker processes (:mod:`gnnagg.bench.jobs`).
    """
    from tqdm.auto import tqdm

    from ..baselines import constant_baselines
    from ..jobs import checkpoint_path, run_jobs
    from ..train import DistContext, build_splits, fit_multiset

    if not isinstance(config, SizeGenConfig):
        raise TypeError(f"config: expected a SizeGenConfig, got {type(config).__name__}")
    if config.checkpoints and out_dir is None:
        raise ValueError("out_dir: checkpoints need the run's output folder")
    jobs = [
        (task, seed, aggregator)
        for task in config.tasks
        for seed in config.seeds
        for aggregator in config.aggregators
    ]

    def checkpoint_of(task: str, aggregator: str, seed: int) -> Path | None:
        if not config.checkpoints:
            return None
        return checkpoint_path(Path(out_dir), task, aggregator, seed)

    records: list[dict[str, Any] | None] = [None] * len(jobs)
    total = len(jobs) * config.epochs
    with tqdm(total=total, desc="size generalisation", unit="epoch", disable=not progress) as bar:
        if config.jobs == 1:
            ctx = DistContext(device=device)
            splits_key, splits = None, None
            for i, (task, seed, aggregator) in enumerate(jobs):
                if splits_key != (task, seed):
                    splits_key, splits = (task, seed), build_splits(task, seed, config)
                bar.set_postfix_str(f"{task} {aggregator} seed {seed}")
                seen = [0]

                def tick(epoch: int, val_acc: float, seen: list[int] = seen) -> None:
                    bar.update(epoch - seen[0])
                    seen[0] = epoch

                records[i], _ = fit_multiset(
                    task,
                    aggregator,
                    seed,
                    config,
                    ctx,
                    splits,
                    on_epoch=tick,
                    checkpoint=checkpoint_of(task, aggregator, seed),
                )
        else:
            records = run_jobs(config, jobs, device, threads, checkpoint_of, bar)
    runs = [r for r in records if r is not None]
    baselines = {
        task: constant_baselines(task, config.train_sizes, config.test_sizes)
        for task in config.tasks
    }
    return {"runs": runs, "summary": summarise_sizegen(runs), "baselines": baselines}


# The quick suite's batch and learning rate come from a 10-epoch sweep on second_minimum
# (8,192 multisets, width 64, seed 0, 1 torch thread on a shared 2-core machine at load average
# 9-11): validation accuracy in % (sizes 2-16, 256 multisets; the constant predictor scores
# 1.2 %) / seconds for the 10 epochs.
#
#   aggregator          b512 lr1e-2  b512 lr2e-2  b512 lr3e-3  b256 lr3e-3  b128 lr3e-3  b128 lr1e-3
#   sum                  25.0 / 5                               16.8 / 5     25.0 / 8     12.1 / 7
#   max                  36.3 / 9     43.0 / 10
#   mean                  9.0 / 6     14.1 / 6
#   pna                  37.1 / 19    32.0 / 18
#   pyg_lcm               5.9 / 59    11.3 / 65
#   pyg_gru               7.8 / 27    13.7 / 31
#   lcm_gru               5.1 / 47     5.9 / 115*   2.7 / 174*   5.9 / 59     9.4 / 79     3.1 / 94
#   lcm_conjugated_sum   43.0 / 22     4.3 / 24
#   lcm_softmax          34.8 / 17    30.5 / 17
#   gru                  17.6 / 29    30.1 / 35     3.9 / 30     9.0 / 36    21.9 / 69     6.6 / 62
#   lstm                 10.2 / 50    10.2 / 46
#   (* timed while a test run shared the machine)
#
# lr 2e-2 helps some aggregators but collapses the conjugated-sum LCM; lr <= 3e-3 at batch 512
# and lr 1e-3 at batch 128 learn far slower; batch 128 at lr 3e-3 learns more per epoch but
# costs 1.7-2.4 times as much per epoch and is not ahead at equal time. Batch 512 at lr 1e-2
# stays; after its 30 epochs every aggregator is far above the constant predictor in
# distribution (18-62 % in the README's run).


# The paper suite's line-up: the LCM paper's comparison (fixed, PNA-style, recurrent and LCM
# aggregators), PyG's learnable ones next to gnnagg's.
PAPER_AGGREGATORS: tuple[str, ...] = (
    "sum",
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


def paper_config(seeds: tuple[int, ...] = (0, 1, 2)) -> SizeGenConfig:
    """The ``paper`` suite: PyG's ``lcm_aggr_2nd_min`` setting (65,536 training multisets of
    sizes 2–16, width 128, batch 128, validation at size 32) with Adam at lr 1e-3 for 100
    epochs, the regulariser at weight 0.1, elements reshuffled every epoch, 1,024 test
    multisets at sizes 16–256, checkpoints on.

    lr 1e-3 rather than the example's 1e-4: at width 128, batch 128 and 65,536 multisets,
    gnnagg's GRU-monoid LCM reached 64 % at size 32 after 16 epochs at 1e-3 and 12 % after
    18 epochs at 1e-4 (1 CPU thread). 100 epochs (51,200 steps) rather than the example's
    1,000 at 1e-4: a run continues from its checkpoints with more ``epochs``.

    Cost: CPU seconds per epoch at 1 thread, from 50 steps each on a shared 2-core Xeon
    (load average 10.5-11; contention inflates CPU time too, so an idle core is faster: the
    GRU-monoid LCM took 18 s per epoch there unloaded): sum 2.4, max 3.5, PNA 7.9, PyG LCM
    32.7, PyG GRU 17.9, LCM[gru] 37.1, LCM[conjugated_sum] 11.5, LCM[softmax] 8.0, GRU 25.7,
    LSTM 41.2; 188 s per epoch for the line-up, so 100 epochs x 3 seeds is about 16 CPU hours
    (about 8 on idle cores), or 4-8 hours of wall time with ``--jobs 2`` on 2 idle cores.
    """
    return SizeGenConfig(
        tasks=("second_minimum",),
        aggregators=PAPER_AGGREGATORS,
        seeds=tuple(seeds),
        hidden=128,
        num_train=65536,
        num_val=1024,
        num_test=1024,
        test_sizes=(16, 32, 64, 128, 256),
        epochs=100,
        batch_size=128,
        lr=1e-3,
        regularise=True,
        reg_weight=0.1,
        shuffle_elements=True,
        val_at_size=32,
        checkpoints=True,
    )


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
    result_keys: ClassVar[str] = "`sizegen` {`runs`, `summary`, `baselines`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> SizeGenConfig | None:
        if suite == "quick":
            # Batch 512 at lr 1e-2 for 30 epochs: the sweep above found no better setting at
            # equal wall time. 1,024 test multisets per size (about +-1.5 points; 256 gave
            # +-3) for a few per cent more time.
            return SizeGenConfig(seeds=seeds, num_test=1024)
        if suite == "smoke":
            return SizeGenConfig(
                tasks=("maximum",), aggregators=("sum", "lcm_softmax"), seeds=seeds, hidden=8,
                num_train=32, num_val=8, num_test=8, test_sizes=(20,), epochs=1, batch_size=16,
            )  # fmt: skip
        if suite == "paper":
            return paper_config(seeds)
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
        from ..options import add_jobs_option, add_names, add_training_options, positive_int

        defaults = SizeGenConfig()
        add_names(parser, "--tasks", sorted(TASKS), defaults.tasks, "TASK")
        add_names(parser, "--aggregators", list(AGGREGATORS), QUICK_AGGREGATORS, "NAME")
        add_training_options(parser, defaults)
        add_multiset_training_options(parser)
        parser.add_argument(
            "--shuffle-elements",
            action="store_true",
            help="reorder each training multiset every epoch (order-sensitive aggregators)",
        )
        parser.add_argument(
            "--val-at-size",
            type=positive_int,
            default=None,
            metavar="N",
            help="also report validation accuracy at this size every epoch (PyG's example: 32)",
        )
        parser.add_argument(
            "--checkpoints",
            action="store_true",
            help="checkpoint every job into OUT/checkpoints and resume from there when rerun",
        )
        add_jobs_option(parser)
        parser.add_argument(
            "--job-minutes",
            type=float,
            default=None,
            help="wall-clock budget per training job in this run",
        )

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
                shuffle_elements=args.shuffle_elements,
                val_at_size=args.val_at_size,
                checkpoints=args.checkpoints,
                jobs=args.jobs,
                time_budget_s=None if args.job_minutes is None else 60.0 * args.job_minutes,
            )
        }

    def run(self, config: SizeGenConfig, context: RunContext) -> dict[str, Any]:
        return run_sizegen(
            config, context.device, context.progress, context.out_dir, context.threads
        )

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
    """The baselines of ``task`` (:func:`~gnnagg.bench.baselines.constant_baselines`): those
    stored in ``result`` or, for results written before they were, computed from ``config``;
    ``None`` for a task this version does not know."""
    from ...data import TASKS
    from ..baselines import constant_baselines

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

    With ``baselines`` (:func:`~gnnagg.bench.baselines.constant_baselines`) three rows follow:
    the constant predictor (the training distribution's most common label), the best
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
    short = [
        f"{_label(r['aggregator'])} ({r['task']}): {min(r['epochs_done'])}–{max(r['epochs_done'])}"
        for r in summary
        if r.get("epochs_done") and min(r["epochs_done"]) < config["epochs"]
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
