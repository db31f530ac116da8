"""``gnnagg-bench``: the benchmark harness on the command line.

Subcommands::

    gnnagg-bench run [--suite quick|full] [--config results.json] [--out DIR] [--quiet]
                     [--seeds N] [--device auto|cpu|cuda] [--only sizegen speed real poly]
    gnnagg-bench sizegen [--tasks ...] [--aggregators ...] [--epochs N] ...   size generalisation
    gnnagg-bench speed [--parts aggr segment recurrent poly] [--full]          speed and memory
    gnnagg-bench real [--datasets ...] [--aggregators ...] [--download]         real data
                      [--poly off|with|only] [--poly-normalize log1p|density]
                                            ``with``/``only``: also / only GINE without and
                                            with polynomial features on the molecule sets
    gnnagg-bench train --out DIR [...]      the DDP-capable training entry point (see
                                            ``torchrun --nproc_per_node=K -m gnnagg.bench.train``)
    gnnagg-bench list [--json]              aggregators, tasks, data sets, suites
    gnnagg-bench report RESULTS_JSON        rebuild report.md and the plots from a results.json

Every run writes ``results.json``, ``report.md`` and PNG plots to
``experiments/results/<suite>-<timestamp>/`` (or ``--out``) and prints where they are.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..data import TASKS
from .config import (
    POLY_DATASETS,
    POLY_NORMALIZATIONS,
    QUICK_AGGREGATORS,
    REAL_DATASETS,
    SPEED_PARTS,
    SUITES,
    PolyConfig,
    RealConfig,
    SizeGenConfig,
    SpeedConfig,
    SuiteConfig,
    suite_config,
    suite_from_dict,
)
from .registry import AGGREGATORS

__all__ = ["build_parser", "main"]

SECTIONS = ("sizegen", "speed", "real", "poly")
POLY_MODES = ("off", "with", "only")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: experiments/results/...)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where models and benchmarks run (auto: CUDA when available)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads, also for the benchmark worker processes (quick suite: 1, "
        "robust on a shared machine; full suite: every core)",
    )


def _names(
    parser: argparse.ArgumentParser,
    flag: str,
    choices: list[str],
    default: Sequence[str],
    metavar: str,
) -> None:
    """A ``--flag NAME [NAME ...]`` option whose help lists ``choices``."""
    parser.add_argument(
        flag,
        nargs="+",
        default=list(default),
        choices=choices,
        metavar=metavar,
        help=f"choices: {', '.join(choices)}",
    )


def _training(parser: argparse.ArgumentParser, defaults: SizeGenConfig | RealConfig) -> None:
    """``--seeds`` (how many), ``--epochs`` and ``--hidden``, defaulting to ``defaults``."""
    parser.add_argument("--seeds", type=_positive_int, default=len(defaults.seeds))
    parser.add_argument("--epochs", type=_positive_int, default=defaults.epochs)
    parser.add_argument("--hidden", type=_positive_int, default=defaults.hidden)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gnnagg-bench`` (all subcommands)."""
    from .train import add_train_arguments

    parser = argparse.ArgumentParser(
        prog="gnnagg-bench",
        description="Benchmarks of gnnagg's aggregators next to PyTorch Geometric's: size "
        "generalisation, speed and memory, real data. Start with `gnnagg-bench run`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="run a whole suite (the default quick suite is what `make bench` runs)",
        description="Run a benchmark suite and write results.json, report.md and plots.",
    )
    run.add_argument(
        "--suite",
        default=None,
        choices=list(SUITES),
        help="quick (default): < 15 min on a 2-core CPU, no network; full: every task and data set",
    )
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        help="rerun the config of a results.json (or a JSON file of a SuiteConfig)",
    )
    run.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds")
    run.add_argument(
        "--only", nargs="+", choices=list(SECTIONS), default=None, help="run only these sections"
    )
    _common(run)

    sizegen = sub.add_parser(
        "sizegen",
        help="size generalisation only",
        description="Train on multisets of sizes 2-16, test on larger ones, per aggregator.",
    )
    defaults = SizeGenConfig()
    _names(sizegen, "--tasks", sorted(TASKS), defaults.tasks, "TASK")
    _names(sizegen, "--aggregators", list(AGGREGATORS), QUICK_AGGREGATORS, "NAME")
    _training(sizegen, defaults)
    sizegen.add_argument("--num-train", type=_positive_int, default=defaults.num_train)
    sizegen.add_argument("--num-val", type=_positive_int, default=defaults.num_val)
    sizegen.add_argument("--num-test", type=_positive_int, default=defaults.num_test)
    sizegen.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size)
    sizegen.add_argument("--lr", type=float, default=defaults.lr)
    sizegen.add_argument(
        "--test-sizes",
        nargs="+",
        type=_positive_int,
        default=list(defaults.test_sizes),
        metavar="N",
    )
    sizegen.add_argument(
        "--no-regularise",
        dest="regularise",
        action="store_false",
        help="no associativity / permutation regulariser for gnnagg's LCM[gru], GRU, LSTM",
    )
    _common(sizegen)

    speed = sub.add_parser(
        "speed",
        help="speed and memory benchmarks (experiments/bench_*.py)",
        description="Time and memory of the aggregators and kernels, next to PyG.",
    )
    speed.add_argument(
        "--parts",
        nargs="+",
        default=list(SpeedConfig().parts),
        choices=list(SPEED_PARTS),
    )
    speed.add_argument(
        "--full",
        action="store_true",
        help="full mode: more repeats and sizes, PyG's padded methods on every case",
    )
    _common(speed)

    real = sub.add_parser(
        "real",
        help="real data sets",
        description="Small GNNs with a few aggregators on molecules and MUTAG.",
    )
    real_defaults = RealConfig()
    real.add_argument(
        "--datasets",
        nargs="+",
        default=list(real_defaults.datasets),
        choices=list(REAL_DATASETS),
    )
    _names(real, "--aggregators", list(AGGREGATORS), real_defaults.aggregators, "NAME")
    _training(real, real_defaults)
    real.add_argument("--layers", type=_positive_int, default=real_defaults.layers)
    real.add_argument(
        "--download",
        action="store_true",
        help="fetch the full data sets (falls back to the fixtures without network)",
    )
    real.add_argument("--data-root", default=None, help="data cache folder (default: gnnagg's)")
    real.add_argument(
        "--poly",
        default="off",
        choices=list(POLY_MODES),
        help="the polynomial-feature experiment (GINE without and with AddEquivariantPolynomials "
        f"features on {', '.join(POLY_DATASETS)} among --datasets): with = next to the "
        "aggregators, only = instead of them",
    )
    real.add_argument(
        "--poly-normalize",
        default=PolyConfig().normalize,
        choices=list(POLY_NORMALIZATIONS),
        help="normalisation of the polynomial features",
    )
    _common(real)

    train = sub.add_parser(
        "train",
        help="the training entry point (runs unchanged under torchrun with DDP)",
        description="Train multiset models, in one process or under "
        "`torchrun --nproc_per_node=K -m gnnagg.bench.train` (DDP, gloo on CPU, nccl on GPU).",
    )
    add_train_arguments(train)

    listing = sub.add_parser("list", help="list aggregators, tasks, data sets and suites")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    report = sub.add_parser("report", help="rebuild report.md and the plots from results.json")
    report.add_argument("results", type=Path, help="a results.json written by gnnagg-bench")
    report.add_argument("--out", type=Path, default=None, help="default: next to results.json")
    return parser


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gnnagg-bench: error: --device cuda was given but torch sees no GPU")
    return name


def _threads(args: argparse.Namespace) -> int:
    return args.threads if args.threads is not None else SuiteConfig().threads


def _config_from_file(path: Path) -> SuiteConfig:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SystemExit(f"gnnagg-bench: error: --config {path}: {error}") from None
    if isinstance(data, dict) and "config" in data and "schema" in data:
        data = data["config"]
    try:
        return suite_from_dict(data)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"gnnagg-bench: error: --config {path}: {error}") from None


def _with_seeds(config: SuiteConfig, num_seeds: int) -> SuiteConfig:
    """``config`` with every section that trains over seeds using seeds ``0..num_seeds-1``."""
    changes = {}
    for name in SECTIONS:
        section = getattr(config, name)
        if section is not None and hasattr(section, "seeds"):
            changes[name] = replace(section, seeds=tuple(range(num_seeds)))
    return replace(config, **changes)


def _suite(args: argparse.Namespace) -> SuiteConfig:
    device = _device(args.device)
    if args.command == "run":
        if args.config is not None:
            if args.suite is not None:
                raise ValueError("--suite and --config: give one (a config is a whole suite)")
            config = _config_from_file(args.config)
            config = replace(config, device=device if args.device != "auto" else config.device)
            if args.seeds is not None:
                config = _with_seeds(config, args.seeds)
        else:
            config = suite_config(args.suite or "quick", args.seeds, device)
        if args.only:
            missing = [s for s in args.only if getattr(config, s) is None]
            if missing:
                raise ValueError(
                    f"--only: the {config.name} suite has no {', '.join(missing)} section "
                    f"(sections: {', '.join(s for s in SECTIONS if getattr(config, s))})"
                )
            config = replace(config, **{s: None for s in SECTIONS if s not in args.only})
        return config if args.threads is None else replace(config, threads=_threads(args))
    if args.command == "sizegen":
        section = SizeGenConfig(
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
        return SuiteConfig(
            "sizegen", sizegen=section, speed=None, real=None, device=device, threads=_threads(args)
        )
    if args.command == "speed":
        base = suite_config("full" if args.full else "quick").speed
        section = replace(base, parts=tuple(args.parts))
        return SuiteConfig(
            "speed", sizegen=None, speed=section, real=None, device=device, threads=_threads(args)
        )
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
    poly = None
    if args.poly != "off":
        datasets = tuple(d for d in args.datasets if d in POLY_DATASETS)
        if not datasets:
            raise ValueError(
                f"--poly: needs a molecule regression data set ({', '.join(POLY_DATASETS)}) "
                "among --datasets"
            )
        poly = PolyConfig(
            datasets=datasets,
            seeds=section.seeds,
            hidden=args.hidden,
            layers=args.layers,
            epochs=args.epochs,
            normalize=args.poly_normalize,
            fixture=not args.download,
            data_root=args.data_root,
        )
    return SuiteConfig(
        "real",
        sizegen=None,
        speed=None,
        real=None if args.poly == "only" else section,
        poly=poly,
        device=device,
        threads=_threads(args),
    )


def _list(as_json: bool) -> None:
    from ..data import DATASETS

    listing = {
        "aggregators": {
            k: {"library": v.library, "description": v.description} for k, v in AGGREGATORS.items()
        },
        "tasks": {k: v.target for k, v in TASKS.items()},
        "datasets": list(DATASETS),
        "real_benchmark_datasets": list(REAL_DATASETS),
        "suites": list(SUITES),
        "speed_parts": list(SPEED_PARTS),
    }
    if as_json:
        print(json.dumps(listing, indent=1))
        return
    print("Aggregators (--aggregators):")
    for name, info in listing["aggregators"].items():
        print(f"  {name:20s} {info['description']}")
    print("Synthetic tasks (--tasks):")
    for name, target in listing["tasks"].items():
        print(f"  {name:20s} {target}")
    print(f"Real data sets (--datasets): {', '.join(REAL_DATASETS)}")
    print(f"Suites (--suite): {', '.join(SUITES)}")
    print(f"Speed parts (--parts): {', '.join(SPEED_PARTS)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gnnagg-bench``; returns the exit status (also for ``sys.exit``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "list":
        _list(args.json)
        return 0
    if args.command == "train":
        from .train import run_training, training_config

        try:
            training_config(args)  # option errors as usage errors, before any work
        except ValueError as error:
            parser.error(str(error))
        results = run_training(args)
        if results is not None:
            print(f"wrote {args.out / 'results.json'}")
        return 0
    if args.command == "report":
        from .report import write_report

        try:
            results = json.loads(args.results.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            parser.error(f"results: cannot read {args.results}: {error}")
        try:
            files = write_report(results, args.out or args.results.parent)
        except ValueError as error:
            parser.error(str(error))
        print(f"Report: {files['report']}")
        return 0

    from .runner import run_suite

    try:
        config = _suite(args)
    except ValueError as error:
        parser.error(str(error))
    command = "gnnagg-bench " + shlex.join(argv)
    results, out = run_suite(config, args.out, progress=not args.quiet, command=command)
    total = results["wall_time_s"].get("total", 0.0)
    print(f"\n{config.name} suite finished in {total / 60:.1f} min")
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"Report:  {out / 'report.md'}")
    print(f"Results: {out / 'results.json'}")
    if results["plots"]:
        print(f"Plots:   {', '.join(results['plots'])}")
    failed = [
        k
        for k in SECTIONS
        if isinstance(results.get(k), dict) and results[k].get("status") == "error"
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
