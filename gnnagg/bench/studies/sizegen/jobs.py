"""The size-generalisation jobs -- one ``(task, seed, aggregator)`` each -- in worker processes
(:func:`gnnagg.bench.jobs.run_in_processes`), and where each keeps its checkpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...jobs import run_in_processes, worker_memo
from ...training import DistContext
from .config import SizeGenConfig
from .data import build_splits
from .train import fit_multiset

__all__ = ["checkpoint_path", "run_jobs"]


def checkpoint_path(out_dir: Path, task: str, aggregator: str, seed: int) -> Path:
    """Where the job ``(task, aggregator, seed)`` keeps its checkpoint inside ``out_dir``."""
    return Path(out_dir) / "checkpoints" / f"{task}-{aggregator}-seed{seed}.pt"



def _sizegen_job(
    task: str,
    aggregator: str,
    seed: int,
    config_data: dict[str, Any],
    device: str,
    checkpoint: str | None,
    on_epoch: Callable[..., None],
) -> dict[str, Any]:
    config = SizeGenConfig(**config_data)
    splits = worker_memo(("sizegen", task, seed), lambda: build_splits(task, seed, config))
    record, _ = fit_multiset(
        task,
        aggregator,
        seed,
        config,
        DistContext(device=device),
        splits,
        on_epoch=on_epoch,
        checkpoint=checkpoint,
    )
    return record


def run_jobs(
    config: SizeGenConfig,
    jobs: list[tuple[str, int, str]],
    device: str,
    threads: int,
    checkpoint_of: Callable[[str, str, int], Path | None],
    bar: Any,
) -> list[dict[str, Any] | None]:
    """Train the size-generalisation ``jobs`` (``(task, seed, aggregator)``) in
    ``config.jobs`` processes; the records in job order. ``checkpoint_of(task, aggregator,
    seed)`` gives each job's checkpoint file (or ``None``); ``bar`` (tqdm) counts finished
    epochs. A job that raises fails the whole call (the checkpoints keep what the others
    did)."""
    data = dataclasses.asdict(config)
    calls = []
    for task, seed, aggregator in jobs:
        path = checkpoint_of(task, aggregator, seed)
        calls.append((task, aggregator, seed, data, device, None if path is None else str(path)))
    return run_in_processes(_sizegen_job, calls, config.jobs, threads, bar)
