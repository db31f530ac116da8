"""``gnnagg-bench train``: the size-generalisation trainer as a command, in one process or
many under ``torchrun`` with DDP::

    gnnagg-bench train --tasks second_minimum --aggregators lcm_gru gru --out DIR
    torchrun --nproc_per_node=2 --no-python gnnagg-bench train --out DIR ...
    torchrun --nproc_per_node=2 -m gnnagg.bench.studies.sizegen.entry --out DIR ...

Its options are the size-generalisation config's (:class:`SizeGenConfig`, one declaration
each) plus ``--device``, ``--threads`` and ``--out``; every ``(task, seed, aggregator)`` of
the config is trained in turn. Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
set) each process joins the process group (``gloo`` on the CPU, ``nccl`` on CUDA, one GPU per
local rank).

Outputs in ``--out``: rank 0 writes ``results.json``::

    {"config": {...}, "world_size": K, "backend": "gloo", "machine": {...},
     "runs": [{"task", "aggregator", "seed", "val_acc", "best_epoch", "epochs",
               "test_acc": {"16": ...}, "train_time_s", "num_params", "param_digest"}]}

and every rank writes ``rank<r>.json`` with ``{"rank", "world_size", "param_digest":
{"<task>/<aggregator>/<seed>": sha256 of the final parameters}}``, so that agreement across
ranks can be checked.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ...._files import write_text
from ...fields import add_options, config_from_args, positive_int
from ...machine import machine_info
from ...training import init_distributed
from .config import SizeGenConfig
from .data import build_splits
from .train import fit_multiset

__all__ = ["add_train_arguments", "main", "run_training", "training_config"]

# What `gnnagg-bench train` trains when no option says otherwise.
_DEFAULTS = {"aggregators": ("lcm_gru",), "seeds": (0,)}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the training entry point (also those of ``gnnagg-bench train``)."""
    add_options(parser, SizeGenConfig)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="torch threads per process"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def training_config(args: argparse.Namespace) -> SizeGenConfig:
    """The configuration the entry point runs; ``ValueError`` names a bad option."""
    return config_from_args(args, SizeGenConfig(**_DEFAULTS))


def run_training(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run the training entry point from parsed arguments; rank 0 returns the results."""
    config = training_config(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ctx = init_distributed(args.device)
    try:
        runs, digests = [], {}
        for task in config.tasks:
            for seed in config.seeds:
                splits = build_splits(task, seed, config)
                for aggregator in config.aggregators:
                    record, _ = fit_multiset(task, aggregator, seed, config, ctx, splits)
                    runs.append(record)
                    digests[f"{task}/{aggregator}/{seed}"] = record["param_digest"]
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        rank_file = {"rank": ctx.rank, "world_size": ctx.world_size, "param_digest": digests}
        write_text(out / f"rank{ctx.rank}.json", json.dumps(rank_file, indent=1) + "\n")
        if ctx.rank != 0:
            return None
        results = {
            "config": asdict(config),
            "world_size": ctx.world_size,
            "backend": ctx.backend,
            "machine": machine_info(ctx.device),
            "runs": runs,
        }
        write_text(out / "results.json", json.dumps(results, indent=1) + "\n")
        return results
    finally:
        if ctx.distributed:
            dist.barrier()
            dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m gnnagg.bench.studies.sizegen.entry`` (also under ``torchrun``)."""
    parser = argparse.ArgumentParser(
        prog="gnnagg-bench train",
        description="Train multiset models, in one process or under torchrun (DDP).",
    )
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        training_config(args)
    except ValueError as error:
        parser.error(str(error))
    results = run_training(args)
    if results is not None:
        for run in results["runs"]:
            accs = ", ".join(f"{k}: {v:.3f}" for k, v in run["test_acc"].items())
            print(f"{run['task']} {run['aggregator']} seed {run['seed']}: "
                  f"val {run['val_acc']:.3f}; test {accs}")
        print(f"wrote {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
