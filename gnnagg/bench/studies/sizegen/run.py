"""Training every ``(task, seed, aggregator)`` job of a size-generalisation config, and the
summary over seeds.

For each task and seed the splits are generated once (:func:`gnnagg.data.make_splits`) and
shared by all aggregators, so aggregators are compared on identical data. Each job trains one
:class:`~gnnagg.bench.studies.sizegen.model.SetClassifier` with
:func:`~gnnagg.bench.studies.sizegen.train.fit_multiset`; the summary gives mean and sample
standard deviation over seeds of the best-validation model's accuracy at every test size, and
of the models matched at each validation threshold (their accuracies, and the steps and
CPU-seconds each seed took to get there).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...stats import mean_std
from ...training import DistContext
from .baselines import constant_baselines
from .config import SizeGenConfig
from .data import build_splits
from .jobs import checkpoint_path, run_jobs
from .train import fit_multiset

__all__ = ["run_sizegen", "summarise_sizegen"]


def summarise_sizegen(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, aggregator), in run order: ``val`` and ``test`` (size -> mean/std/n)
    accuracies over seeds, mean training time, the seeds, the epochs and steps each seed
    trained and why it stopped, ``ms_per_step`` (training CPU-ms per step, mean/std/n),
    ``matched`` (:func:`matched_summary`), ``level_gaps`` (:func:`level_gap_summary`) and,
    when measured, ``val_at_size`` (``{"size", "final", "at_best"}``, mean/std/n each).
    Results written before the fair protocol lack the newer keys."""
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
        if all("matched" in m for m in members):
            rows[-1].update(
                {
                    "steps": [m["steps"] for m in members],
                    "stopped": [m["stopped"] for m in members],
                    "train_cpu_s": statistics.fmean(m["train_cpu_s"] for m in members),
                    "ms_per_step": mean_std(
                        [1000 * m["train_cpu_s"] / max(m["steps"], 1) for m in members]
                    ),
                    "matched": matched_summary(members),
                    "level_gaps": level_gap_summary(members),
                }
            )
    return rows


def matched_summary(members: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per threshold reached by any seed: ``reached`` (seeds that reached it, of ``seeds``),
    and over those seeds mean/std/n of the ``val`` at the crossing, of ``steps`` and ``cpu_s``
    to it, and of ``test`` accuracy per size."""
    keys = sorted({k for m in members for k in m["matched"]}, key=float)
    out = {}
    for key in keys:
        hits = [m["matched"][key] for m in members if key in m["matched"]]
        sizes = list(hits[0]["test_acc"])
        out[key] = {
            "reached": len(hits),
            "seeds": len(members),
            "val": mean_std([h["val"] for h in hits]),
            "steps": mean_std([h["step"] for h in hits]),
            "cpu_s": mean_std([h["cpu_s"] for h in hits]),
            "test": {s: mean_std([h["test_acc"][s] for h in hits]) for s in sizes},
        }
    return out


def level_gap_summary(members: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean/std over seeds of the associativity gap and the state norm at each tree level, for
    the kept models and for the models matched at each threshold (``None`` when the
    aggregator has no such diagnostic)."""
    gaps = [m.get("level_gaps") for m in members]
    if any(g is None for g in gaps):
        return None

    def per_level(diagnostics: list[dict[str, Any]]) -> list[dict[str, Any]]:
        depth = min(len(d["levels"]) for d in diagnostics)
        return [
            {
                "level": k,
                "gap": mean_std([d["levels"][k]["gap"] for d in diagnostics]),
                "norm": mean_std([d["levels"][k]["norm"] for d in diagnostics]),
            }
            for k in range(depth)
        ]

    keys = sorted({k for g in gaps for k in g["matched"]}, key=float)
    return {
        "size": gaps[0]["kept"]["size"],
        "kept": per_level([g["kept"] for g in gaps]),
        "matched": {
            key: per_level([g["matched"][key] for g in gaps if key in g["matched"]])
            for key in keys
        },
    }


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
    "baselines"}`` (baselines per task: :func:`.baselines.constant_baselines`).

    ``progress`` shows a tqdm bar counted in epochs (with ETA); epochs a job resumes past
    count as done. With ``config.checkpoints`` every job checkpoints into
    ``out_dir/checkpoints/`` and resumes from there; with ``config.jobs > 1`` jobs run in
    that many worker processes (:mod:`gnnagg.bench.jobs`).
    """
    from tqdm.auto import tqdm

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
