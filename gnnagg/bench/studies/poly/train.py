"""Training the polynomial-feature study's models: one ``(data set, features, model, seed)``
job each, in this process or in worker processes, and the summary over seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...jobs import run_in_processes, worker_memo
from ...stats import mean_std
from ...training import seed_everything, seeded_loaders, train_best_on_val
from .config import FEATURE_MODES, PolyConfig
from .data import feature_cache_dir, plain_splits, prepare_features, regression_baselines
from .model import POLY_MODELS, PolyGINE

__all__ = ["fit_poly", "run_poly", "summarise_poly"]


def _scores(model: nn.Module, loader: Any, mean: float, std: float, device: str) -> dict:
    model.eval()
    errors = []
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            pred = model(batch) * std + mean
            errors.append((pred - batch.y.view(-1, 1).float()).cpu())
    error = torch.cat(errors)
    return {"mae": float(error.abs().mean()), "rmse": float(error.square().mean().sqrt())}


def fit_poly(
    name: str,
    splits: dict[str, list[Any]],
    model_name: str,
    features: str,
    seed: int,
    config: PolyConfig,
    channels: dict[str, int],
    metric: str = "mae",
    device: str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train one :class:`~gnnagg.bench.studies.poly.model.PolyGINE` (``model_name``
    of :data:`~gnnagg.bench.studies.poly.model.POLY_MODELS`) on ``splits``
    (``{"train", "val", "test"}``: lists of graphs, carrying the polynomial attributes unless
    ``features == "none"``, with ``channels`` ``{"graph", "node", "edge"}`` of them), keeping
    the best epoch on validation ``metric``.

    Returns a record with ``dataset``, ``model``, ``features``, ``seed``, ``metric``, ``val``
    (its best value), ``test`` (``mae``, ``rmse`` at the best epoch), ``best_epoch``,
    ``epochs``, ``train_time_s``, ``epoch_time_s`` and ``epoch_cpu_s`` (wall and CPU seconds
    per epoch), ``num_params``, ``input_widths``
    (``node``, ``edge``, ``graph``: the widths of the layers that take the embeddings) and
    ``curve`` (per epoch: ``train_loss``, ``val``, ``lr``).
    """
    if model_name not in POLY_MODELS:
        raise ValueError(f"model_name: expected one of {list(POLY_MODELS)}, got {model_name!r}")
    if features not in FEATURE_MODES:
        raise ValueError(f"features: expected one of {list(FEATURE_MODES)}, got {features!r}")
    if metric not in ("mae", "rmse"):
        raise ValueError(f"metric: expected 'mae' or 'rmse', got {metric!r}")
    seed_everything(seed)
    # The loader's own generator: every variant draws the same batches for one seed.
    loaders = seeded_loaders(
        splits["train"], splits["val"], splits["test"], config.batch_size, seed
    )
    y = torch.cat([data.y.view(-1) for data in splits["train"]]).float()
    mean = float(y.mean())
    std = float(y.std().clamp_min(1e-6)) if y.numel() > 1 else 1.0
    use = features != "none"
    model = PolyGINE(
        config.hidden_channels,
        config.num_layers,
        graph_poly=channels["graph"] if use else 0,
        node_poly=channels["node"] if use else 0,
        edge_poly=channels["edge"] if use else 0,
        virtual_node=model_name == "gine_vn",
    ).to(device)
    history: list[dict[str, float]] = []
    best, best_epoch, train_time = train_best_on_val(
        model,
        loaders["train"],
        config.epochs,
        config.lr,
        lambda batch: F.mse_loss(model(batch), (batch.y.view(-1, 1).float() - mean) / std),
        lambda: _scores(model, loaders["val"], mean, std, device)[metric],
        device=device,
        on_epoch=on_epoch,
        schedule=config.schedule,
        history=history,
    )
    return {
        "dataset": name,
        "model": model_name,
        "features": features,
        "seed": seed,
        "metric": metric,
        "val": best,
        "test": _scores(model, loaders["test"], mean, std, device),
        "best_epoch": best_epoch,
        "epochs": config.epochs,
        "train_time_s": round(train_time, 3),
        "epoch_time_s": round(train_time / config.epochs, 4),
        "epoch_cpu_s": round(sum(h["cpu_s"] for h in history) / len(history), 4),
        "num_params": sum(p.numel() for p in model.parameters()),
        "input_widths": {
            "node": model.node_in.in_features,
            "edge": model.edge_in.in_features,
            "graph": model.head[0].in_features,
        },
        "curve": {
            key: [round(float(h[key]), 6) for h in history] for key in ("train_loss", "val", "lr")
        },
    }


def summarise_poly(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (data set, model, features): the validation metric and test ``mae``/``rmse``
    as mean/std/n over seeds, the mean wall and CPU time per epoch and training time,
    parameters, input widths, best epochs and the seeds."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["model"], run["features"]), []).append(run)
    rows = []
    for (name, model, features), members in groups.items():
        rows.append(
            {
                "dataset": name,
                "model": model,
                "features": features,
                "source": members[0].get("source"),
                "metric": members[0]["metric"],
                "val": mean_std([m["val"] for m in members]),
                "test": {k: mean_std([m["test"][k] for m in members]) for k in ("mae", "rmse")},
                "epoch_time_s": sum(m["epoch_time_s"] for m in members) / len(members),
                "epoch_cpu_s": sum(m.get("epoch_cpu_s", 0.0) for m in members) / len(members),
                "train_time_s": sum(m["train_time_s"] for m in members) / len(members),
                "num_params": members[0]["num_params"],
                "input_widths": members[0]["input_widths"],
                "best_epochs": [m["best_epoch"] for m in members],
                "seeds": [m["seed"] for m in members],
            }
        )
    return rows


def _poly_job(
    name: str,
    mode: str,
    model_name: str,
    seed: int,
    config_data: dict[str, Any],
    channels: dict[str, int],
    device: str,
    data_root: str | None,
    on_epoch: Callable[..., None],
) -> dict[str, Any]:
    """One (data set, features, model, seed) of :func:`run_poly` in a worker process of
    :func:`~gnnagg.bench.jobs.run_in_processes`."""
    config = PolyConfig(**config_data)

    def build() -> tuple[dict[str, list[Any]], str, str]:
        plain, source, _, metric = plain_splits(name, config, data_root)
        if mode == "none":
            return plain, source, metric
        splits, _ = prepare_features(plain, mode, config, feature_cache_dir(config, data_root))
        return splits, source, metric

    splits, source, metric = worker_memo(("poly", name, mode), build)
    run = fit_poly(
        name, splits, model_name, mode, seed, config, channels, metric, device, on_epoch=on_epoch
    )
    run["source"] = source
    return run


def run_poly(
    config: PolyConfig,
    device: str = "cpu",
    progress: bool = True,
    threads: int = 1,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Every (data set, features, model, seed) of ``config``; returns ``{"runs", "summary",
    "features", "baselines", "notes"}``: ``features`` has one record per data set and mode
    (see :func:`prepare_features`, plus ``dataset``, ``source`` and ``sizes``), ``baselines``
    the :func:`regression_baselines` of each data set. With ``config.jobs > 1`` the training
    runs in that many worker processes sharing ``threads`` torch threads; the runs come back
    in the same order as without. Data sets are read and built in ``data_root``."""
    from tqdm.auto import tqdm

    if not isinstance(config, PolyConfig):
        raise TypeError(f"config: expected a PolyConfig, got {type(config).__name__}")
    runs: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    notes: list[str] = []
    calls: list[tuple[Any, ...]] = []
    config_data = dataclasses.asdict(config)
    cache_dir = feature_cache_dir(config, data_root)
    root = None if data_root is None else str(data_root)
    per_dataset = len(config.features) * len(config.models) * len(config.seeds)
    total = len(config.datasets) * per_dataset * config.epochs
    with tqdm(total=total, desc="poly features", unit="epoch", disable=not progress) as bar:
        for name in config.datasets:
            plain, source, note, metric = plain_splits(name, config, data_root)
            if note:
                notes.append(f"{name}: {note}")
            train_y = torch.cat([g.y.view(-1) for g in plain["train"]])
            test_y = torch.cat([g.y.view(-1) for g in plain["test"]])
            sizes = {part: len(graphs) for part, graphs in plain.items()}
            for row in regression_baselines(train_y, test_y):
                baselines.append({"dataset": name, "source": source, "metric": metric, **row})
            for mode in config.features:
                if mode == "none":
                    splits, channels = plain, {"graph": 0, "node": 0, "edge": 0}
                else:
                    splits, record = prepare_features(plain, mode, config, cache_dir, progress)
                    channels = record["kept_channels"]
                    features.append({"dataset": name, "source": source, "sizes": sizes, **record})
                for model_name in config.models:
                    for seed in config.seeds:
                        if config.jobs > 1:
                            calls.append(
                                (name, mode, model_name, seed, config_data, channels, device, root)
                            )
                            continue
                        bar.set_postfix_str(f"{name} {model_name} {mode} seed {seed}")
                        run = fit_poly(
                            name,
                            splits,
                            model_name,
                            mode,
                            seed,
                            config,
                            channels,
                            metric,
                            device,
                            on_epoch=lambda _epoch: bar.update(1),
                        )
                        run["source"] = source
                        runs.append(run)
                del splits
            del plain
        if calls:
            runs = run_in_processes(_poly_job, calls, config.jobs, threads, bar)
    return {
        "runs": runs,
        "summary": summarise_poly(runs),
        "features": features,
        "baselines": baselines,
        "notes": notes,
    }
