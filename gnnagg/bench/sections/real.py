"""The real-data section: small GNNs with a few aggregators on molecules and MUTAG.

Training and scoring are :mod:`gnnagg.bench.real`'s; here are its suites, options and table.
Its subcommand also runs the polynomial-feature section (``--poly with|only``), which shares
its data sets and model sizes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..registry import check_aggregators
from ..report import aggregator_label as _label
from ..validation import (
    NUMBER,
    STATS,
    check_bool,
    check_finite,
    check_int,
    check_names,
    check_optional_path,
    check_seeds,
    check_shape,
)
from .base import ReportBlock, RunContext, Section
from .polynomial_features import POLY_DATASETS, POLY_NORMALIZATIONS, PolyConfig

__all__ = ["POLY_MODES", "REAL_DATASETS", "RealConfig", "RealSection", "real_table"]

POLY_MODES = ("off", "with", "only")
REAL_DATASETS: tuple[str, ...] = ("zinc-plogp", "freesolv", "mutag")
# What report() reads of a result.
_RESULT_SHAPE = {
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


def check_model_fields(config: Any) -> None:
    """The fields the real-data and polynomial-feature configs share: seeds, model and
    training sizes, a finite positive ``lr``, ``fixture`` and ``data_root``."""
    config.seeds = check_seeds(config.seeds)
    check_int(config.hidden, "hidden", maximum=1 << 14)
    check_int(config.layers, "layers", maximum=64)
    check_int(config.epochs, "epochs", maximum=1_000_000)
    check_int(config.batch_size, "batch_size", maximum=1 << 20)
    config.lr = check_finite(config.lr, "lr", positive=True)
    check_bool(config.fixture, "fixture")
    check_optional_path(config.data_root, "data_root")


@dataclass
class RealConfig:
    """Real data: a small GNN (``layers`` aggregation layers of width ``hidden``) per data set
    and aggregator; regression targets report MAE (and RMSE), MUTAG accuracy.

    ``fixture=True`` uses the committed fixtures (no network); ``fixture=False`` fetches the
    real data set and falls back to its fixture, with a note, when it cannot be obtained.
    ``data_root`` is the cache folder passed to :func:`gnnagg.data.fetch` (``None``: its
    default). ``lr`` is finite and positive, ``reg_weight`` finite and non-negative.
    """

    datasets: tuple[str, ...] = ("zinc-plogp",)
    aggregators: tuple[str, ...] = ("sum", "pna", "lcm_conjugated_sum")
    seeds: tuple[int, ...] = (0, 1)
    hidden: int = 64
    layers: int = 3
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    fixture: bool = True
    regularise: bool = True
    reg_weight: float = 0.1
    data_root: str | None = None

    def __post_init__(self) -> None:
        self.datasets = check_names(self.datasets, REAL_DATASETS, "datasets")
        if isinstance(self.aggregators, (list, tuple)) and not all(
            isinstance(a, str) for a in self.aggregators
        ):
            raise ValueError(f"aggregators: expected names, got {self.aggregators!r}")
        self.aggregators = check_aggregators(self.aggregators)
        check_model_fields(self)
        check_bool(self.regularise, "regularise")
        self.reg_weight = check_finite(self.reg_weight, "reg_weight")


class RealSection(Section):
    """Real data sets per aggregator and seed (:class:`RealConfig`)."""

    name: ClassVar[str] = "real"
    title: ClassVar[str] = "Real data"
    config_type: ClassVar[type] = RealConfig
    command: ClassVar[str | None] = "real"
    command_help: ClassVar[str] = "real data sets"
    command_description: ClassVar[str] = "Small GNNs with a few aggregators on molecules and MUTAG."
    result_keys: ClassVar[str] = "`real` {`runs`, `summary`, `baselines`, `notes`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> RealConfig | None:
        if suite == "quick":
            return RealConfig(seeds=seeds)
        if suite == "smoke":
            return RealConfig(
                aggregators=("sum",), seeds=seeds, hidden=8, layers=1, epochs=1, batch_size=64
            )
        if suite == "full":
            return RealConfig(
                datasets=REAL_DATASETS,
                aggregators=("sum", "mean", "max", "pna", "lcm_gru", "lcm_conjugated_sum", "gru"),
                seeds=seeds,
                hidden=128,
                layers=4,
                epochs=100,
                fixture=False,
            )
        return None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from ..options import add_names, add_training_options, positive_int
        from ..registry import AGGREGATORS

        defaults = RealConfig()
        parser.add_argument(
            "--datasets",
            nargs="+",
            default=list(defaults.datasets),
            choices=list(REAL_DATASETS),
        )
        add_names(parser, "--aggregators", list(AGGREGATORS), defaults.aggregators, "NAME")
        add_training_options(parser, defaults)
        parser.add_argument("--layers", type=positive_int, default=defaults.layers)
        parser.add_argument(
            "--download",
            action="store_true",
            help="fetch the full data sets (falls back to the fixtures without network)",
        )
        parser.add_argument(
            "--data-root", default=None, help="data cache folder (default: gnnagg's)"
        )
        parser.add_argument(
            "--poly",
            default="off",
            choices=list(POLY_MODES),
            help="the polynomial-feature experiment (GINE without and with "
            "AddEquivariantPolynomials features on "
            f"{', '.join(POLY_DATASETS)} among --datasets): with = next to the aggregators, "
            "only = instead of them",
        )
        parser.add_argument(
            "--poly-normalize",
            default=PolyConfig().normalize,
            choices=list(POLY_NORMALIZATIONS),
            help="normalisation of the polynomial features",
        )

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        section = RealConfig(
            datasets=tuple(args.datasets),
            aggregators=tuple(args.aggregators),
            seeds=tuple(range(args.seeds)),
            hidden=args.hidden,
            layers=args.layers,
            epochs=args.epochs,
            fixture=not args.download,
            data_root=args.data_root,
        )
        configs: dict[str, Any] = {} if args.poly == "only" else {self.name: section}
        if args.poly != "off":
            datasets = tuple(d for d in args.datasets if d in POLY_DATASETS)
            if not datasets:
                raise ValueError(
                    f"--poly: needs a molecule regression data set ({', '.join(POLY_DATASETS)}) "
                    "among --datasets"
                )
            configs["poly"] = PolyConfig(
                datasets=datasets,
                seeds=section.seeds,
                hidden=args.hidden,
                layers=args.layers,
                epochs=args.epochs,
                normalize=args.poly_normalize,
                fixture=not args.download,
                data_root=args.data_root,
            )
        return configs

    def choices(self) -> dict[str, list[str]]:
        return {"real_benchmark_datasets": list(REAL_DATASETS)}

    def run(self, config: RealConfig, context: RunContext) -> dict[str, Any]:
        from ..real import run_real

        return run_real(config, context.device, context.progress)

    def check_result(self, result: Any) -> None:
        check_shape(result, _RESULT_SHAPE, self.name)
        rows = [("summary", r) for r in result["summary"]]
        rows += [("baselines", r) for r in result.get("baselines", [])]
        for where, row in rows:
            if row["metric"] not in row["test"]:
                raise ValueError(f"{self.name}.{where}: test has no {row['metric']!r}")

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        lines = [
            f"{config['layers']} message-passing layers of width {config['hidden']}, "
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
