"""Size-generalisation jobs in worker processes: where their checkpoints live, and the pool.

One job is one (task, seed, aggregator) of a :class:`~gnnagg.bench.sections.sizegen.
SizeGenConfig`. :func:`run_jobs` runs them in ``config.jobs`` processes started with ``spawn``
(a fresh interpreter: no forked OpenMP or torch state), each with ``max(1, threads // jobs)``
torch threads, and forwards their finished epochs to a progress bar. Scripts that call it must
guard their entry point with ``if __name__ == "__main__":`` (``spawn`` imports the main
module); ``gnnagg-bench`` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sections.sizegen import SizeGenConfig

__all__ = ["checkpoint_path", "run_jobs"]


def checkpoint_path(out_dir: Path, task: str, aggregator: str, seed: int) -> Path:
    """Where the job ``(task, aggregator, seed)`` keeps its checkpoint inside ``out_dir``."""
    return Path(out_dir) / "checkpoints" / f"{task}-{aggregator}-seed{seed}.pt"


# The splits of the (task, seed) a worker process built last: its next job usually shares them.
_WORKER: dict[str, Any] = {}


def _init_worker(threads: int, queue: Any) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["queue"] = queue


def _worker_job(
    job: int,
    task: str,
    aggregator: str,
    seed: int,
    config_data: dict[str, Any],
    device: str,
    checkpoint: str | None,
) -> dict[str, Any]:
    from .sections.sizegen import SizeGenConfig
    from .train import DistContext, build_splits, fit_multiset

    config = SizeGenConfig(**config_data)
    key = (task, seed)
    if _WORKER.get("splits_key") != key:
        _WORKER["splits"], _WORKER["splits_key"] = build_splits(task, seed, config), key
    queue = _WORKER.get("queue")

    def tick(epoch: int, val_acc: float) -> None:
        if queue is not None:
            queue.put((job, epoch))

    record, _ = fit_multiset(
        task,
        aggregator,
        seed,
        config,
        DistContext(device=device),
        _WORKER["splits"],
        on_epoch=tick,
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
    """Train ``jobs`` (``(task, seed, aggregator)``) in ``config.jobs`` processes; the
    records in job order. ``checkpoint_of(task, aggregator, seed)`` gives each job's
    checkpoint file (or ``None``); ``bar`` (tqdm) counts finished epochs. A job that raises
    fails the whole call, after the others already started have stopped (their checkpoints
    keep what they did)."""
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    try:
        ticks = manager.Queue()
        seen = [0] * len(jobs)
        records: list[dict[str, Any] | None] = [None] * len(jobs)
        data = dataclasses.asdict(config)
        with ProcessPoolExecutor(
            max_workers=min(config.jobs, len(jobs)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(max(1, threads // config.jobs), ticks),
        ) as pool:
            futures = {}
            for i, (task, seed, aggregator) in enumerate(jobs):
                path = checkpoint_of(task, aggregator, seed)
                args = (
                    i,
                    task,
                    aggregator,
                    seed,
                    data,
                    device,
                    None if path is None else str(path),
                )
                futures[pool.submit(_worker_job, *args)] = i
            pending = set(futures)
            try:
                while pending:
                    finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    while True:
                        try:
                            job, epoch = ticks.get_nowait()
                        except queue_module.Empty:
                            break
                        bar.update(max(0, epoch - seen[job]))
                        seen[job] = max(seen[job], epoch)
                    for future in finished:
                        records[futures[future]] = future.result()
                        bar.set_postfix_str(f"{len(futures) - len(pending)}/{len(jobs)} jobs done")
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return records
    finally:
        manager.shutdown()
