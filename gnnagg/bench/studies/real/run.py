"""Real data: small GNNs with a few aggregators on molecules (ZINC penalised logP, FreeSolv) and
MUTAG, from :func:`gnnagg.data.fetch`.

Without ``download`` (the quick suite) the committed fixtures are used: 200 molecules split
160/20/20 for ``zinc-plogp`` and ``freesolv``, 41 graphs for ``mutag``; numbers on 20 test
molecules are noisy and say more about the pipeline than about the aggregators. With
``download`` the real data set is fetched, and when that fails (no network) the fixture is
used instead and the record says so (``source`` and ``note``).

Regression targets are standardised with the training mean and standard deviation for the loss
(MSE); MAE and RMSE are reported in the original units. MUTAG is classified (cross-entropy,
accuracy) on a fixed seeded 80/10/10 split. The model kept is the best on validation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...datasets import DATASET_TASKS, DatasetTask, load_real
from ...registry import AGGREGATORS, degree_histogram
from ...stats import mean_std
from ...training import seed_everything, seeded_loaders, train_best_on_val
from .config import RealConfig
from .model import GraphModel

__all__ = ["fit_real", "run_real", "summarise_real", "trivial_baseline"]


def _degree_histogram(dataset: Any, ids: Tensor) -> Tensor:
    """In-degree histogram over the nodes of the graphs ``ids`` (PNA's ``deg``)."""
    targets, num_nodes = [], 0
    for i in ids.tolist():
        data = dataset[i]
        targets.append(data.edge_index[1] + num_nodes)
        num_nodes += data.num_nodes
    index = torch.cat(targets) if targets else torch.zeros(0, dtype=torch.long)
    return degree_histogram(index, num_nodes)


def _targets(batch: Any, task: DatasetTask) -> Tensor:
    y = batch.y
    if task.kind == "classification":
        return y.view(-1).long()
    return y.view(-1, 1).float()


def _scores(
    model: nn.Module, loader: Any, task: DatasetTask, mean: float, std: float, device: str
) -> dict[str, float]:
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device)
            out, _ = model(batch)
            preds.append(out.cpu())
            targets.append(_targets(batch, task).cpu())
    pred, target = torch.cat(preds), torch.cat(targets)
    if task.kind == "classification":
        return {"accuracy": float((pred.argmax(-1) == target).float().mean())}
    error = pred * std + mean - target
    return {
        "mae": float(error.abs().mean()),
        "rmse": float(error.square().mean().sqrt()),
    }


def fit_real(
    name: str,
    dataset: Any,
    split: dict[str, Tensor],
    aggregator: str,
    seed: int,
    config: RealConfig,
    device: str = "cpu",
    deg: Tensor | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train one :class:`~gnnagg.bench.studies.real.model.GraphModel`; score it on the test split.

    Returns a record with ``dataset``, ``aggregator``, ``seed``, ``metric`` (the primary
    metric), ``val`` (its best value), ``test`` (every metric at the best epoch),
    ``best_epoch``, ``epochs``, ``train_time_s``, ``num_params`` and ``sizes``.
    """
    task = DATASET_TASKS[name]
    seed_everything(seed)
    train_set = dataset[split["train"]]
    loaders = seeded_loaders(
        train_set, dataset[split["val"]], dataset[split["test"]], config.batch_size, seed
    )
    if task.kind == "regression":
        y = torch.cat([train_set[i].y.view(-1) for i in range(len(train_set))]).float()
        mean, std = float(y.mean()), float(y.std().clamp_min(1e-6))
    else:
        mean, std = 0.0, 1.0
    model = GraphModel(
        aggregator,
        out_dim=task.num_classes,
        hidden_channels=config.hidden_channels,
        num_layers=config.num_layers,
        node_features=task.node_features,
        edge_features=task.edge_features,
        deg=deg,
        regularise=config.regularise,
        reg_weight=config.reg_weight,
    ).to(device)

    def batch_loss(batch: Any) -> Tensor:
        out, reg = model(batch)
        target = _targets(batch, task)
        if task.kind == "classification":
            loss = F.cross_entropy(out, target)
        else:
            loss = F.mse_loss(out, (target - mean) / std)
        return loss + reg

    best, best_epoch, train_time = train_best_on_val(
        model,
        loaders["train"],
        config.epochs,
        config.lr,
        batch_loss,
        lambda: _scores(model, loaders["val"], task, mean, std, device)[task.metric],
        higher_is_better=task.higher_is_better,
        device=device,
        on_epoch=on_epoch,
    )
    return {
        "dataset": name,
        "aggregator": aggregator,
        "seed": seed,
        "metric": task.metric,
        "val": best,
        "test": _scores(model, loaders["test"], task, mean, std, device),
        "best_epoch": best_epoch,
        "epochs": config.epochs,
        "train_time_s": round(train_time, 3),
        "num_params": sum(p.numel() for p in model.parameters()),
        "sizes": {k: int(v.numel()) for k, v in split.items()},
    }


def trivial_baseline(name: str, dataset: Any, split: dict[str, Tensor]) -> dict[str, Any]:
    """Test metrics of predicting the training mean (regression) or the most frequent training
    class (classification): the score a model must beat to have learnt anything."""
    task = DATASET_TASKS[name]

    def targets(ids: Tensor) -> Tensor:
        return torch.cat([dataset[i].y.view(-1) for i in ids.tolist()])

    train, test = targets(split["train"]), targets(split["test"])
    if task.kind == "classification":
        majority = int(torch.mode(train.long()).values)
        scores = {"accuracy": float((test.long() == majority).float().mean())}
        what = "predict the most frequent training class"
    else:
        error = test.float() - train.float().mean()
        scores = {
            "mae": float(error.abs().mean()),
            "rmse": float(error.square().mean().sqrt()),
        }
        what = "predict the training mean"
    return {"dataset": name, "baseline": what, "metric": task.metric, "test": scores}


def summarise_real(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (data set, aggregator): the primary metric on validation and test, and every
    test metric, as mean/std/n over seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["aggregator"]), []).append(run)
    rows = []
    for (name, aggregator), members in groups.items():
        metrics = list(members[0]["test"])
        rows.append(
            {
                "dataset": name,
                "aggregator": aggregator,
                "source": members[0].get("source"),
                "metric": members[0]["metric"],
                "val": mean_std([m["val"] for m in members]),
                "test": {k: mean_std([m["test"][k] for m in members]) for k in metrics},
                "train_time_s": sum(m["train_time_s"] for m in members) / len(members),
                "sizes": members[0]["sizes"],
            }
        )
    return rows


def run_real(
    config: RealConfig,
    device: str = "cpu",
    progress: bool = True,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Every (data set, aggregator, seed) of ``config``; returns ``{"runs", "summary",
    "baselines", "notes"}`` (:func:`trivial_baseline` per data set). ``progress`` shows a tqdm
    bar counted in epochs; data sets are read and built in ``data_root``."""
    from tqdm.auto import tqdm

    if not isinstance(config, RealConfig):
        raise TypeError(f"config: expected a RealConfig, got {type(config).__name__}")
    runs: list[dict[str, Any]] = []
    notes: list[str] = []
    baselines: list[dict[str, Any]] = []
    total = len(config.datasets) * len(config.aggregators) * len(config.seeds) * config.epochs
    with tqdm(total=total, desc="real data", unit="epoch", disable=not progress) as bar:
        for name in config.datasets:
            dataset, split, source, note = load_real(name, config.download, data_root)
            if note:
                notes.append(f"{name}: {note}")
            baselines.append({**trivial_baseline(name, dataset, split), "source": source})
            needs_deg = any(AGGREGATORS[a].needs_degree for a in config.aggregators)
            deg = _degree_histogram(dataset, split["train"]) if needs_deg else None
            for aggregator in config.aggregators:
                for seed in config.seeds:
                    bar.set_postfix_str(f"{name} {aggregator} seed {seed}")
                    record = fit_real(
                        name,
                        dataset,
                        split,
                        aggregator,
                        seed,
                        config,
                        device,
                        deg if AGGREGATORS[aggregator].needs_degree else None,
                        on_epoch=lambda _epoch: bar.update(1),
                    )
                    record["source"] = source
                    runs.append(record)
    return {
        "runs": runs,
        "summary": summarise_real(runs),
        "baselines": baselines,
        "notes": notes,
    }
