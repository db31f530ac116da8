"""The molecule regression data of the polynomial-feature study, its constant baselines, and
the polynomial features attached to every graph (computed once per data set and mode, cached,
standardised on the training graphs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...datasets import load_real
from .config import POLY_DATASETS, PolyConfig
from .features import polynomial_features

__all__ = [
    "feature_cache_dir",
    "load_poly_dataset",
    "plain_splits",
    "prepare_features",
    "regression_baselines",
]

# The data set's own metric selects the model: OGB scores FreeSolv by RMSE.
_SELECTION_METRIC = {"zinc-plogp": "mae", "freesolv": "rmse", "ogbg-molfreesolv": "rmse"}

def load_poly_dataset(
    name: str, download: bool, root: str | Path | None
) -> tuple[Any, dict[str, Tensor], str, str | None, str]:
    """``(dataset, split, source, note, metric)`` for a data set of :class:`PolyConfig`.

    ``zinc-plogp`` and ``freesolv`` (also as ``ogbg-molfreesolv``) come from
    :func:`~gnnagg.bench.datasets.load_real` (the fixture, or the full set with a fallback to the
    fixture); other OGB names from :func:`gnnagg.data.fetch` (OGB's servers), which must be a
    single-target regression set. ``metric`` selects the model: the data set's own.
    """
    from ....data import OGB_ALIASES

    local = OGB_ALIASES.get(name, name)
    if local in POLY_DATASETS:
        dataset, split, source, note = load_real(local, download, root)
        return dataset, split, source, note, _SELECTION_METRIC[name]
    from ....data import fetch

    dataset = fetch(name, root)
    task_type = getattr(dataset, "task_type", None)
    if task_type != "regression" or getattr(dataset, "num_tasks", 1) != 1:
        raise ValueError(
            f"datasets: {name!r} is a {task_type} set with {getattr(dataset, 'num_tasks', '?')} "
            "tasks; this section regresses one target"
        )
    metric = getattr(dataset, "eval_metric", "rmse")
    if metric not in ("mae", "rmse"):
        raise ValueError(f"datasets: {name!r} is scored by {metric!r}, expected mae or rmse")
    raw = dataset.get_idx_split()
    split = {"train": raw["train"], "val": raw["valid"], "test": raw["test"]}
    return dataset, split, "full", None, metric


def regression_baselines(train_y: Tensor, test_y: Tensor) -> list[dict[str, Any]]:
    """Test MAE and RMSE of predicting the training mean (the best constant for RMSE) and the
    training median (the best constant for MAE): what a model must beat to have learnt
    anything."""
    train_y, test_y = train_y.double().view(-1), test_y.double().view(-1)
    rows = []
    for what, value in (
        ("predict the training mean", train_y.mean()),
        ("predict the training median", train_y.median()),
    ):
        error = test_y - value
        rows.append(
            {
                "baseline": what,
                "value": float(value),
                "test": {
                    "mae": float(error.abs().mean()),
                    "rmse": float(error.square().mean().sqrt()),
                },
            }
        )
    return rows


# Rows per step of the column statistics: bounds the float64 copy (edge features of the full
# ZINC set are 560k rows by hundreds of channels).
_STATS_ROWS = 1 << 16
# Below this standard deviation on the training graphs a channel counts as constant.
_CONSTANT = 1e-6


def _column_stats(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Per-column mean and sample standard deviation of ``matrix`` in float64, accumulated
    over row blocks (zeros for fewer than two rows)."""
    rows, width = matrix.shape
    if rows < 2:
        return torch.zeros(width, dtype=torch.float64), torch.zeros(width, dtype=torch.float64)
    total = torch.zeros(width, dtype=torch.float64)
    for start in range(0, rows, _STATS_ROWS):
        total += matrix[start : start + _STATS_ROWS].double().sum(dim=0)
    mean = total / rows
    squares = torch.zeros(width, dtype=torch.float64)
    for start in range(0, rows, _STATS_ROWS):
        squares += (matrix[start : start + _STATS_ROWS].double() - mean).square().sum(dim=0)
    return mean, (squares / (rows - 1)).sqrt()


def prepare_features(
    splits: dict[str, list[Any]],
    mode: str,
    config: PolyConfig,
    cache_dir: Path | None,
    progress: bool = False,
) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """``splits`` with ``poly_graph``/``poly_x``/``poly_edge_attr`` attached for feature mode
    ``mode`` (not ``"none"``), and a record of the features.

    The features of all three splits are computed in one pass (or read from ``cache_dir``);
    channels constant on the training graphs are dropped and the others standardised with
    the training graphs' mean and standard deviation. The record holds ``features`` (the
    mode), ``channels`` (basis widths), ``kept_channels``, ``time_s`` and ``cpu_s`` (wall and
    CPU time of the computation), ``cached``, ``load_s``, ``graphs`` and
    ``graphs_with_features`` (graphs with any non-zero feature before standardisation).
    """
    order = ("train", "val", "test")
    graphs = [g for part in order for g in splits[part]]
    tensors, info = polynomial_features(
        graphs,
        max_degree=config.max_degree,
        subset=mode,
        normalize=config.normalize,
        cache_dir=cache_dir,
        progress=progress,
    )
    train = splits["train"]
    rows_train = {
        "graph": len(train),
        "node": sum(int(g.num_nodes) for g in train),
        "edge": sum(int(g.edge_index.shape[1]) for g in train),
    }
    # Which graphs have any non-zero feature at all (before standardisation): on molecules a
    # pattern set can be all zero except on a few graphs.
    counts = {
        "graph": torch.ones(len(graphs), dtype=torch.long),
        "node": torch.tensor([int(g.num_nodes) for g in graphs]),
        "edge": torch.tensor([int(g.edge_index.shape[1]) for g in graphs]),
    }
    touched = torch.zeros(len(graphs), dtype=torch.bool)
    for short, matrix in tensors.items():
        owner = torch.repeat_interleave(torch.arange(len(graphs)), counts[short])
        if matrix.shape[1]:
            touched[owner[(matrix != 0).any(dim=1)]] = True
    kept: dict[str, Tensor] = {}
    for short, matrix in tensors.items():
        mean, std = _column_stats(matrix[: rows_train[short]])
        # Rounding leaves a constant column a standard deviation of ~1e-16, not 0.
        columns = torch.nonzero(std > _CONSTANT).view(-1)
        selected = matrix.index_select(1, columns)
        selected.sub_(mean[columns].float()).div_(std[columns].float())
        kept[short] = selected
    del tensors
    offsets = {"graph": 0, "node": 0, "edge": 0}
    attributes = {"graph": "poly_graph", "node": "poly_x", "edge": "poly_edge_attr"}
    out: dict[str, list[Any]] = {}
    for part in order:
        out[part] = []
        for graph in splits[part]:
            data = graph.clone()
            counts = {
                "graph": 1,
                "node": int(graph.num_nodes),
                "edge": int(graph.edge_index.shape[1]),
            }
            for short, n in counts.items():
                start = offsets[short]
                data[attributes[short]] = kept[short][start : start + n]
                offsets[short] = start + n
            out[part].append(data)
    record = {
        "features": mode,
        "max_degree": config.max_degree,
        "normalize": config.normalize,
        "channels": info["channels"],
        "kept_channels": {k: int(v.shape[1]) for k, v in kept.items()},
        "time_s": info["time_s"],
        "cpu_s": info.get("cpu_s"),
        "cached": info["cached"],
        "load_s": info["load_s"],
        "graphs": len(graphs),
        "graphs_with_features": int(touched.sum()),
    }
    return out, record


def feature_cache_dir(config: PolyConfig, data_root: str | Path | None) -> Path | None:
    """Where computed features are cached (``None``: ``config.cache_features`` is off)."""
    if not config.cache_features:
        return None
    from ....data import cache_root

    return cache_root(data_root) / "poly-features"


def plain_splits(
    name: str, config: PolyConfig, data_root: str | Path | None
) -> tuple[dict[str, list[Any]], str, str | None, str]:
    """``(splits, source, note, metric)``: the graphs of data set ``name`` per split."""
    dataset, split, source, note, metric = load_poly_dataset(name, config.download, data_root)
    plain = {part: [dataset[i] for i in split[part].tolist()] for part in split}
    return plain, source, note, metric


