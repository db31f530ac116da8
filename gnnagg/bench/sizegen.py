"""Size generalisation: train on small multisets, test on larger ones, for every aggregator.

For each task and seed the splits are generated once (:func:`gnnagg.data.make_splits`, graph
form: one star graph per multiset) and shared by all aggregators, so aggregators are compared
on identical data. Each (task, seed, aggregator) trains one :class:`~gnnagg.bench.models.
SetClassifier` with :func:`~gnnagg.bench.train.fit_multiset`; the summary gives mean and sample
standard deviation over seeds of the best-validation model's accuracy at every test size.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .config import SizeGenConfig
from .train import DistContext, build_splits, fit_multiset

__all__ = ["mean_std", "run_sizegen", "summarise_sizegen"]


def mean_std(values: Sequence[float]) -> dict[str, float | int]:
    """``{"mean", "std", "n"}``: the sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values: needs at least one value")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


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
