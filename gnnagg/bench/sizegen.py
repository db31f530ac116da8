"""Size generalisation: train on small multisets, test on larger ones, for every aggregator.

For each task and seed the splits are generated once (:func:`gnnagg.data.make_splits`, graph
form: one star graph per multiset) and shared by all aggregators, so aggregators are compared
on identical data. Each (task, seed, aggregator) trains one :class:`~gnnagg.bench.models.
SetClassifier` with :func:`~gnnagg.bench.train.fit_multiset`; the summary gives mean and sample
standard deviation over seeds of the best-validation model's accuracy at every test size.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import SizeGenConfig
from .train import DistContext, build_splits, fit_multiset

__all__ = ["checkpoint_path", "mean_std", "run_sizegen", "summarise_sizegen"]


def mean_std(values: Sequence[float]) -> dict[str, float | int]:
    """``{"mean", "std", "n"}``: the sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values: needs at least one value")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


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


def checkpoint_path(out_dir: Path, task: str, aggregator: str, seed: int) -> Path:
    """Where the job ``(task, aggregator, seed)`` keeps its checkpoint inside ``out_dir``."""
    return Path(out_dir) / "checkpoints" / f"{task}-{aggregator}-seed{seed}.pt"


# Splits of the (task, seed) a worker process built last: its next job usually shares them.
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
    that many worker processes (``spawn``) with ``max(1, threads // jobs)`` torch threads each.
    """
    from tqdm.auto import tqdm

    from .baselines import constant_baselines

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
            records = _run_in_processes(config, jobs, device, threads, checkpoint_of, bar)
    runs = [r for r in records if r is not None]
    baselines = {
        task: constant_baselines(task, config.train_sizes, config.test_sizes)
        for task in config.tasks
    }
    return {"runs": runs, "summary": summarise_sizegen(runs), "baselines": baselines}


def _run_in_processes(
    config: SizeGenConfig,
    jobs: list[tuple[str, int, str]],
    device: str,
    threads: int,
    checkpoint_of: Callable[[str, str, int], Path | None],
    bar: Any,
) -> list[dict[str, Any] | None]:
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
                future = pool.submit(
                    _worker_job,
                    i,
                    task,
                    aggregator,
                    seed,
                    data,
                    device,
                    None if path is None else str(path),
                )
                futures[future] = i
            pending = set(futures)
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
                    i = futures[future]
                    records[i] = future.result()  # a failed job fails the section
                    bar.set_postfix_str(f"{len(futures) - len(pending)}/{len(jobs)} jobs done")
        return records
    finally:
        manager.shutdown()
