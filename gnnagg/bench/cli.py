"""``gnnagg-bench``: the benchmark harness on the command line.

Subcommands (``run``, ``train``, ``list`` and ``report`` here; one per study that has a
subcommand, from the registry :data:`gnnagg.bench.studies.SECTIONS`; each study's options are
its config's fields, see ``gnnagg-bench <study> --help``)::

    gnnagg-bench run [--suite quick|full|smoke|paper|poly-zinc|poly-freesolv]
                     [--config results.json] [--out DIR] [--quiet] [--seeds N]
                     [--device auto|cpu|cuda] [--only SECTION ...] [--jobs N] [--epochs N]
                     [--job-minutes M] [--tasks ...] [--batch-size B] [--lr LR]
    gnnagg-bench sizegen [--tasks ...] [--aggregators ...] [--epochs N] ...   size generalisation
    gnnagg-bench speed [--parts aggr segment recurrent poly] [--full]          speed and memory
    gnnagg-bench real [--datasets ...] [--aggregators ...] [--download]         real data
                      [--poly off|with|only] [--poly-normalize log1p|density]
                                            ``with``/``only``: also / only GINE without and
                                            with polynomial features on the molecule sets
    gnnagg-bench poly [--datasets ... ogbg-mol<name>] [--models gine gine_vn]  polynomial
                      [--features none beyond-2fwl within-2fwl all] [--download]  features
    gnnagg-bench attention [--nodes N] [--masks ...] [--paths ...] [--parts layer masks big]
                                            mesh attention vs TransformerConv, block density
    gnnagg-bench mesh [--dim 2|3] [--nodes N] [--ells ...] [--models ...]  learned mesh
                                            simulators: MeshGraphNet vs masked transformers
    gnnagg-bench train --out DIR [...]      the DDP-capable training entry point (also
                                            ``torchrun --nproc_per_node=K --no-python
                                            gnnagg-bench train ...``)
    gnnagg-bench train-mesh --out DIR [...] the mesh study's training, also under ``torchrun
                                            --nproc_per_node=K --no-python gnnagg-bench
                                            train-mesh --batch-size B ...`` (B a multiple of K)
    gnnagg-bench list [--json]              aggregators, tasks, data sets, suites, sections
    gnnagg-bench report RESULTS_JSON        rebuild report.md and the plots from a results.json

Every run writes ``results.json``, ``report.md`` and PNG plots to ``--out``, or else to
``<suite>-<timestamp>/`` in ``$GNNAGG_BENCH_RESULTS`` or ``./gnnagg-bench-results``, and prints
where they are. Data sets are read and built in ``--data-root`` (else ``$GNNAGG_DATA``, else
``~/.cache/gnnagg``): a config file never chooses where gnnagg writes. A ``--config`` or
``results.json`` that is not valid, or an ``--out`` that cannot be a folder, fails with one
line on stderr and exit status 2; bad options are usage errors (also exit status 2).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..data import DATASETS, TASKS
from .config import SuiteConfig, suite_config, suite_from_dict
from .fields import add_override_options, apply_overrides, positive_int
from .registry import AGGREGATORS
from .report import write_report
from .runner import run_conditions, run_suite, write_study_run
from .studies import SECTIONS, SUITES
from .studies.mesh.entry import add_train_mesh_arguments, run_mesh_training
from .studies.mesh.entry import training_config as mesh_training_config
from .studies.sizegen.entry import add_train_arguments, run_training, training_config
from .validation import read_json

__all__ = ["build_parser", "main"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: a new folder per run in $GNNAGG_BENCH_RESULTS, else in "
        "./gnnagg-bench-results)",
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
        type=positive_int,
        default=None,
        help="torch threads, also for the benchmark worker processes (quick suite: 1, "
        "robust on a shared machine; full suite: every core)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="data cache folder to read and build data sets in (default: $GNNAGG_DATA, else "
        "~/.cache/gnnagg)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gnnagg-bench`` (all subcommands)."""
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
        help="; ".join(f"{s.name}: {s.description}" for s in SUITES.values()) + " (default: quick)",
    )
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        help="rerun the config of a results.json (or a JSON file of a SuiteConfig)",
    )
    run.add_argument("--seeds", type=positive_int, default=None, help="number of seeds")
    overrides = run.add_argument_group(
        "overrides", "change the suite's value in every study that has the setting"
    )
    add_override_options(overrides, [section.config_type for section in SECTIONS.values()])
    run.add_argument(
        "--only", nargs="+", choices=list(SECTIONS), default=None, help="run only these sections"
    )
    _common(run)

    for section in SECTIONS.values():
        if section.command is None:
            continue
        command = sub.add_parser(
            section.command,
            help=section.command_help,
            description=section.command_description or section.command_help,
        )
        section.add_arguments(command)
        _common(command)
        command.set_defaults(section=section.name)

    train = sub.add_parser(
        "train",
        help="the training entry point (runs unchanged under torchrun with DDP)",
        description="Train multiset models, in one process or under "
        "`torchrun --nproc_per_node=K --no-python gnnagg-bench train` (DDP, gloo on CPU, nccl "
        "on GPU).",
    )
    add_train_arguments(train)

    train_mesh = sub.add_parser(
        "train-mesh",
        help="the mesh study's training (runs unchanged under torchrun with DDP)",
        description="Train mesh-study models (the options of `gnnagg-bench mesh`), in one "
        "process or under `torchrun --nproc_per_node=K --no-python gnnagg-bench train-mesh "
        "--batch-size B` (DDP, gloo on CPU, nccl on GPU; B, the global batch, a multiple of "
        "K). Writes results.json and report.md as `gnnagg-bench mesh` does, and the models.",
    )
    add_train_mesh_arguments(train_mesh)

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


class ConfigFileError(ValueError):
    """A ``--config`` file that cannot be read or is not a valid config."""


def _config_from_file(path: Path) -> SuiteConfig:
    try:
        data = read_json(path)
    except ValueError as error:
        raise ConfigFileError(f"--config {path}: {error}") from None
    if isinstance(data, dict) and "config" in data and "schema" in data:
        data = data["config"]
    if isinstance(data, dict):
        for key, section in list(data.items()):
            # Where data sets are built is the caller's choice, never a shared file's.
            if isinstance(section, dict) and "data_root" in section:
                data[key] = {k: v for k, v in section.items() if k != "data_root"}
                print(
                    f"gnnagg-bench: note: --config {path}: ignored {key}.data_root "
                    f"{section['data_root']!r}; data sets go to --data-root, $GNNAGG_DATA or "
                    "~/.cache/gnnagg",
                    file=sys.stderr,
                )
    try:
        return suite_from_dict(data)
    except (TypeError, ValueError) as error:
        raise ConfigFileError(f"--config {path}: {error}") from None


def _with_seeds(config: SuiteConfig, num_seeds: int) -> SuiteConfig:
    """``config`` with every section that trains over seeds using seeds ``0..num_seeds-1``."""
    seeds = tuple(range(num_seeds))
    return config.replace(
        **{key: SECTIONS[key].with_seeds(c, seeds) for key, c in config.sections.items()}
    )


def _suite(args: argparse.Namespace) -> SuiteConfig:
    device = _device(args.device)
    if args.command == "run":
        if args.config is not None:
            if args.suite is not None:
                raise ValueError("--suite and --config: give one (a config is a whole suite)")
            config = _config_from_file(args.config)
            if args.device != "auto":
                config = config.replace(device=device)
            if args.seeds is not None:
                config = _with_seeds(config, args.seeds)
        else:
            config = suite_config(args.suite or "quick", args.seeds, device)
        if args.only:
            missing = [s for s in args.only if s not in config.sections]
            if missing:
                raise ValueError(
                    f"--only: the {config.name} suite has no {', '.join(missing)} section "
                    f"(sections: {', '.join(config.sections)})"
                )
            config = config.replace(**{s: None for s in config.sections if s not in args.only})
        config = _with_overrides(config, args)
        return config if args.threads is None else config.replace(threads=args.threads)
    section = SECTIONS[args.section]
    threads = args.threads if args.threads is not None else SUITES["quick"].threads
    return SuiteConfig(
        section.command, device=device, threads=threads, **section.configs_from_args(args)
    )


def _with_overrides(config: SuiteConfig, args: argparse.Namespace) -> SuiteConfig:
    """``config`` with the override options of ``run`` applied to every study config that has
    the field; ``ValueError`` when no study of the suite has it or a value is invalid."""
    types = [section.config_type for section in SECTIONS.values()]
    try:
        changed = apply_overrides(config.sections, args, types)
    except ValueError as error:
        raise ValueError(str(error).replace("this suite", f"the {config.name} suite")) from None
    return config.replace(**changed) if changed != config.sections else config


def _fail(message: str) -> int:
    """Say what is wrong with an input file in one line on stderr; exit status 2."""
    print(f"gnnagg-bench: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _unusable_folder(path: Path) -> str | None:
    """Why ``path`` cannot be the output folder (it is a file, or under one, or cannot be
    created), or ``None``; creates it when missing."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "exists and is not a folder"
    except NotADirectoryError:
        return "a part of it is a file, not a folder"
    except OSError as error:
        return f"cannot be created ({error.strerror or error})"
    return None


def _list(as_json: bool) -> None:
    listing: dict = {
        "aggregators": {
            k: {"library": v.library, "description": v.description} for k, v in AGGREGATORS.items()
        },
        "tasks": {k: v.target for k, v in TASKS.items()},
        "datasets": list(DATASETS),
        "suites": list(SUITES),
        "sections": list(SECTIONS),
    }
    for section in SECTIONS.values():
        listing.update(section.choices())
    if as_json:
        print(json.dumps(listing, indent=1))
        return
    print("Aggregators (--aggregators):")
    for name, info in listing["aggregators"].items():
        print(f"  {name:20s} {info['description']}")
    print("Synthetic tasks (--tasks):")
    for name, target in listing["tasks"].items():
        print(f"  {name:20s} {target}")
    print(f"Suites (--suite): {', '.join(SUITES)}")
    print(f"Sections (--only): {', '.join(SECTIONS)}")
    for section in SECTIONS.values():
        for key, names in section.choices().items():
            print(f"{key}: {', '.join(names)}")


def _train_mesh(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> int:
    """``gnnagg-bench train-mesh``: every rank trains; rank 0 writes the run's files."""
    try:
        config = mesh_training_config(args)  # option errors as usage errors, before any work
    except ValueError as error:
        parser.error(str(error))
    problem = _unusable_folder(args.out)
    if problem is not None:
        return _fail(f"--out {args.out}: {problem}")
    created = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    conditions, start = run_conditions(), time.perf_counter()
    result = run_mesh_training(args)
    if result is None:
        return 0
    import torch

    ranks = result["distributed"]
    device = "cpu" if ranks["device"] == "cpu" else "cuda"
    suite = SuiteConfig("train-mesh", device=device, threads=torch.get_num_threads(), mesh=config)
    notes = []
    if ranks["world_size"] > 1:
        notes.append(
            f"trained on {ranks['world_size']} {ranks['backend']} ranks, each taking "
            f"{ranks['batch_per_rank']} of the {config.batch_size} meshes of a step; training "
            "times per step are rank 0's"
        )
    write_study_run(
        suite, result, args.out, created=created, command="gnnagg-bench " + shlex.join(argv),
        conditions=conditions, wall_time_s=time.perf_counter() - start, notes=notes,
    )  # fmt: skip
    for run in result["runs"]:
        print(
            f"ell {run['ell']:g} {run['name']} seed {run['seed']}: rollout RMSE "
            f"{run['rollout_rmse']:.4g}, 1-step RMSE {run['one_step_rmse']:.4g}"
        )
    print(f"Report:  {args.out / 'report.md'}")
    print(f"Results: {args.out / 'results.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gnnagg-bench``; returns the exit status (also for ``sys.exit``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "list":
        _list(args.json)
        return 0
    if args.command == "train":
        try:
            training_config(args)  # option errors as usage errors, before any work
        except ValueError as error:
            parser.error(str(error))
        problem = _unusable_folder(args.out)
        if problem is not None:
            return _fail(f"--out {args.out}: {problem}")
        results = run_training(args)
        if results is not None:
            print(f"wrote {args.out / 'results.json'}")
        return 0
    if args.command == "train-mesh":
        return _train_mesh(parser, args, argv)
    if args.command == "report":
        try:
            results = read_json(args.results)
            files = write_report(results, args.out or args.results.parent)
        except ValueError as error:
            return _fail(f"{args.results}: {error}")
        print(f"Report: {files['report']}")
        return 0

    try:
        config = _suite(args)
    except ConfigFileError as error:
        return _fail(str(error))
    except ValueError as error:
        parser.error(str(error))
    command = "gnnagg-bench " + shlex.join(argv)
    data_root = getattr(args, "data_root", None)
    if data_root is not None and (Path(data_root).exists() and not Path(data_root).is_dir()):
        return _fail(f"--data-root {data_root}: exists and is not a folder")
    if args.out is not None:
        problem = _unusable_folder(args.out)
        if problem is not None:
            return _fail(f"--out {args.out}: {problem}")
    results, out = run_suite(
        config, args.out, progress=not args.quiet, command=command, data_root=args.data_root
    )
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
        for k in config.sections
        if isinstance(results.get(k), dict) and results[k].get("status") == "error"
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
