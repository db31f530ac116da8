"""Real data: small GNNs with a few aggregators on molecules (ZINC penalised logP, FreeSolv) and
MUTAG, from :func:`gnnagg.data.fetch`.

With ``fixture=True`` (the quick suite) the committed fixtures are used: 200 molecules split
160/20/20 for ``zinc-plogp`` and ``freesolv``, 41 graphs for ``mutag``; numbers on 20 test
molecules are noisy and say more about the pipeline than about the aggregators. With
``fixture=False`` the real data set is fetched, and when that fails (no network) the fixture is
used instead and the record says so (``source`` and ``note``).

Regression targets are standardised with the training mean and standard deviation for the loss
(MSE); MAE and RMSE are reported in the original units. MUTAG is classified (cross-entropy,
accuracy) on a fixed seeded 80/10/10 split. The model kept is the best on validation.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import GraphModel
from .registry import AGGREGATORS, degree_histogram
from .report import mean_std
from .train import seed_everything

if TYPE_CHECKING:
    from .sections.real import RealConfig

__all__ = [
    "DATASET_TASKS",
    "SCHEDULES",
    "DatasetTask",
    "fit_real",
    "load_real",
    "run_real",
    "seeded_loaders",
    "summarise_real",
    "train_best_on_val",
    "trivial_baseline",
]


@dataclass(frozen=True)
class DatasetTask:
    """How a real data set is learnt and scored."""

    kind: str  # "regression" or "classification"
    metric: str  # the primary metric: "mae", "rmse" or "accuracy"
    node_features: int | None  # None: OGB atom features
    edge_features: int | None  # None: OGB bond features
    num_classes: int = 1

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"


DATASET_TASKS: dict[str, DatasetTask] = {
    "zinc-plogp": DatasetTask("regression", "mae", None, None),
    "freesolv": DatasetTask("regression", "rmse", None, None),
    "mutag": DatasetTask("classification", "accuracy", 7, 4, num_classes=2),
}


def _split(name: str, dataset: Any) -> dict[str, Tensor]:
    if hasattr(dataset, "get_idx_split"):
        split = dataset.get_idx_split()
        return {"train": split["train"], "val": split["valid"], "test": split["test"]}
    # TU data sets have no official split: a fixed permutation, the same for every seed.
    n = len(dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_val = n_test = max(1, n // 10)
    return {
        "train": order[: n - n_val - n_test],
        "val": order[n - n_val - n_test : n - n_test],
        "test": order[n - n_test :],
    }


def load_real(
    name: str, fixture: bool = True, root: str | os.PathLike[str] | None = None
) -> tuple[Any, dict[str, Tensor], str, str | None]:
    """``(dataset, split, source, note)`` for data set ``name``.

    ``source`` is ``"fixture"`` or ``"full"``; ``note`` explains a fallback to the fixture.
    """
    from ..data import FetchError, fetch

    if name not in DATASET_TASKS:
        raise ValueError(f"name: unknown data set {name!r}; valid names are {list(DATASET_TASKS)}")
    note = None
    if fixture:
        dataset, source = fetch(name, root, fixture=True), "fixture"
    else:
        try:
            dataset, source = fetch(name, root), "full"
        except FetchError as error:
            first = (str(error).strip().splitlines() or ["FetchError"])[0][:200]
            note = f"the full data set could not be fetched ({first}); used the fixture"
            dataset, source = fetch(name, root, fixture=True), "fixture"
    return dataset, _split(name, dataset), source, note


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


def seeded_loaders(train: Any, val: Any, test: Any, batch_size: int, seed: int) -> dict[str, Any]:
    """``train``/``val``/``test`` loaders; the training loader shuffles with its own generator
    seeded with ``seed``, so that models compared on one seed draw the same batches."""
    from torch_geometric.loader import DataLoader

    return {
        "train": DataLoader(
            train,
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        ),
        "val": DataLoader(val, batch_size=256),
        "test": DataLoader(test, batch_size=256),
    }


SCHEDULES: tuple[str, ...] = ("constant", "cosine", "plateau")
# ReduceLROnPlateau: halve the learning rate after this many epochs without a better
# validation score; cosine annealing ends at this fraction of the initial rate.
PLATEAU_FACTOR, PLATEAU_PATIENCE, COSINE_FLOOR = 0.5, 10, 0.01


def _scheduler(optimiser: Any, schedule: str, epochs: int, lr: float, higher: bool) -> Any:
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=epochs, eta_min=lr * COSINE_FLOOR
        )
    if schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser,
            mode="max" if higher else "min",
            factor=PLATEAU_FACTOR,
            patience=PLATEAU_PATIENCE,
        )
    if schedule != "constant":
        raise ValueError(f"schedule: expected one of {list(SCHEDULES)}, got {schedule!r}")
    return None


def train_best_on_val(
    model: nn.Module,
    train_loader: Any,
    epochs: int,
    lr: float,
    batch_loss: Callable[[Any], Tensor],
    validate: Callable[[], float],
    higher_is_better: bool = False,
    device: str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
    schedule: str = "constant",
    history: list[dict[str, float]] | None = None,
) -> tuple[float | None, int, float]:
    """Train ``model`` with Adam (learning rate ``lr``) for ``epochs`` epochs over
    ``train_loader`` minimising ``batch_loss(batch)``; after each epoch score it with
    ``validate()`` and keep a copy of the best state, then call ``on_epoch(epoch)``.

    ``schedule``: ``"constant"``, ``"cosine"`` (cosine annealing over ``epochs`` down to
    :data:`COSINE_FLOOR` times ``lr``) or ``"plateau"`` (``ReduceLROnPlateau`` on the
    validation score: factor :data:`PLATEAU_FACTOR` after :data:`PLATEAU_PATIENCE` epochs).
    ``history``, when given, receives one record per epoch: ``epoch``, ``train_loss`` (the
    mean batch loss), ``val``, ``lr`` (the rate used in that epoch), ``time_s`` (training
    and validation wall time of the epoch) and ``cpu_s`` (the CPU time this process spent on
    it: on a shared machine the wall time grows with the load, the CPU time much less).

    Reloads the best state into ``model`` and returns ``(best value, best epoch, training
    time in seconds)``.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = _scheduler(optimiser, schedule, epochs, lr, higher_is_better)
    best, best_epoch, best_state = None, 0, None
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_start, epoch_cpu = time.perf_counter(), time.process_time()
        current_lr = float(optimiser.param_groups[0]["lr"])
        model.train()
        total, batches = 0.0, 0
        for batch in train_loader:
            batch = batch.to(device)
            loss = batch_loss(batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, batches = total + float(loss.detach()), batches + 1
        value = validate()
        if scheduler is not None:
            if schedule == "plateau":
                scheduler.step(value)
            else:
                scheduler.step()
        better = best is None or (value > best if higher_is_better else value < best)
        if better:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(model.state_dict())
        if history is not None:
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / max(batches, 1),
                    "val": float(value),
                    "lr": current_lr,
                    "time_s": time.perf_counter() - epoch_start,
                    "cpu_s": time.process_time() - epoch_cpu,
                }
            )
        if on_epoch is not None:
            on_epoch(epoch)
    train_time = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return best, best_epoch, train_time


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
    """Train one :class:`~gnnagg.bench.models.GraphModel` and score it on the test split.

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
        hidden=config.hidden,
        layers=config.layers,
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


def run_real(config: RealConfig, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Every (data set, aggregator, seed) of ``config``; returns ``{"runs", "summary",
    "baselines", "notes"}`` (:func:`trivial_baseline` per data set). ``progress`` shows a tqdm
    bar counted in epochs."""
    from tqdm.auto import tqdm

    from .sections.real import RealConfig

    if not isinstance(config, RealConfig):
        raise TypeError(f"config: expected a RealConfig, got {type(config).__name__}")
    runs: list[dict[str, Any]] = []
    notes: list[str] = []
    baselines: list[dict[str, Any]] = []
    total = len(config.datasets) * len(config.aggregators) * len(config.seeds) * config.epochs
    with tqdm(total=total, desc="real data", unit="epoch", disable=not progress) as bar:
        for name in config.datasets:
            dataset, split, source, note = load_real(name, config.fixture, config.data_root)
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
