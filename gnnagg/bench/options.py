"""Command-line option helpers shared by ``gnnagg-bench`` and the sections' subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

__all__ = ["add_names", "add_training_options", "positive_int"]


def positive_int(text: str) -> int:
    """An ``argparse`` type: a positive integer, or a usage error that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_names(
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


def add_training_options(parser: argparse.ArgumentParser, defaults: Any) -> None:
    """``--seeds`` (how many), ``--epochs`` and ``--hidden``, defaulting to ``defaults``."""
    parser.add_argument("--seeds", type=positive_int, default=len(defaults.seeds))
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    parser.add_argument("--hidden", type=positive_int, default=defaults.hidden)


def add_jobs_option(parser: argparse.ArgumentParser) -> None:
    """``--jobs N``: training jobs at once, each a worker process of
    :func:`gnnagg.bench.jobs.run_in_processes` (default 1: one after another in this process)."""
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="training jobs at once (worker processes sharing --threads torch threads)",
    )
