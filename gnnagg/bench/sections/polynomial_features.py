"""The polynomial-feature section: GNNs on molecules with and without equivariant polynomial
features (:class:`gnnagg.poly.AddEquivariantPolynomials`, Puny et al. 2023).

For each molecule regression data set (``zinc-plogp``, ``freesolv``, or an OGB molecule
regression set by name such as ``ogbg-molfreesolv`` or ``ogbg-molesol``) and each feature mode:

* ``none``: OGB atom and bond features only;
* ``beyond-2fwl``, ``within-2fwl``, ``all``: that subset of the basis up to ``max_degree``
  (``beyond-2fwl``: the polynomials a 2-FWL model cannot compute itself, the features of the
  paper's PPGN++; ``all``: every connected simple pattern),

the features ``poly_graph [1, C0]``, ``poly_x [N, C1]`` and ``poly_edge_attr [E, C2]`` are
computed once per data set and mode (:func:`gnnagg.bench.polyfeatures.polynomial_features`:
timed, and cached hash-checked under ``<data root>/poly-features/``), with
``normalize="log1p"`` so that counts of very different sizes share one scale. Channels that
are constant on the training graphs carry nothing and are dropped; the others are
standardised with the training graphs' mean and standard deviation. Then every model of
``models`` (:class:`~gnnagg.bench.models.PolyGINE`: ``gine``, or ``gine_vn`` with a virtual
node) is trained per seed: ``poly_x`` joins the atom embedding, ``poly_edge_attr`` the bond
embedding and ``poly_graph`` the pooled readout, each followed by a linear layer, so models
with and without features differ only in the widths of those three inputs.

All variants of one seed see the same graphs in the same order (the same seeded loader),
standardised targets and MSE loss, Adam with the configured schedule; the model kept is the
best on the data set's validation metric (MAE for ``zinc-plogp``, RMSE for FreeSolv as in
OGB), and test MAE and RMSE are reported in the data set's units as mean ± sample std over
seeds, beside the predict-the-training-mean and -median baselines, the learning curves
(``poly_curves_<data set>.png``) and a paragraph on whether the features help.

Predefined configurations: the suites ``poly-zinc`` (the full ``zinc-plogp`` set) and
``poly-freesolv`` (``ogbg-molfreesolv``); the subcommand ``gnnagg-bench poly`` runs any
combination, ``gnnagg-bench real --poly with|only`` the small default next to the real-data
section.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..jobs import MAX_JOBS
from ..models import POLY_MODELS, PolyGINE
from ..real import SCHEDULES, load_real, seeded_loaders, train_best_on_val
from ..report import mean_std
from ..train import seed_everything
from ..validation import NUMBER, STATS, check_bool, check_int, check_names, check_shape
from .base import ReportBlock, RunContext, Section

__all__ = [
    "FEATURE_MODES",
    "PAPER_ZINC_12K",
    "POLY_DATASETS",
    "POLY_MODELS",
    "POLY_NORMALIZATIONS",
    "PolyConfig",
    "PolyGINE",
    "PolynomialFeaturesSection",
    "feature_verdicts",
    "fit_poly",
    "load_poly_dataset",
    "plot_poly_curves",
    "poly_table",
    "prepare_features",
    "regression_baselines",
    "run_poly",
    "summarise_poly",
]

# Molecule regression data sets built from PyPI wheels (OGB molecule sets are named as such).
POLY_DATASETS: tuple[str, ...] = ("zinc-plogp", "freesolv")
# OGB molecule property sets by name: ogb's master list decides at load time which exist.
_OGB_MOLECULES = re.compile(r"ogbg-mol[a-z0-9]+")
# Raw counts are left out: homomorphism counts grow with graph size by orders of magnitude.
POLY_NORMALIZATIONS: tuple[str, ...] = ("log1p", "density")
FEATURE_MODES: tuple[str, ...] = ("none", "beyond-2fwl", "within-2fwl", "all")
# The basis grows about 7 times per degree (degree 6: hundreds of elements, minutes to plan);
# the papers this reproduces stop at 6.
MAX_POLY_DEGREE = 8
_WIDTHS = {"graph": int, "node": int, "edge": int}
# What report() reads of a result.
_RESULT_SHAPE = {
    "runs": [
        {
            "dataset": str,
            "model": str,
            "features": str,
            "metric": str,
            "curve?": {"val": [NUMBER]},
        }
    ],
    "summary": [
        {
            "dataset": str,
            "model": str,
            "features": str,
            "metric": str,
            "val": STATS,
            "input_widths": _WIDTHS,
            "num_params": int,
            "test": {"mae": {**STATS, "n": int}, "rmse": {**STATS, "n": int}},
            "epoch_time_s": NUMBER,
        }
    ],
    "features?": [
        {
            "dataset": str,
            "features": str,
            "max_degree": int,
            "normalize": str,
            "channels": _WIDTHS,
            "kept_channels": _WIDTHS,
            "graphs": int,
            "time_s": (NUMBER, None),
            "load_s": NUMBER,
        }
    ],
    "baselines?": [{"dataset": str, "baseline": str, "test": {"mae": NUMBER, "rmse": NUMBER}}],
    "notes?": [str],
}
# The data set's own metric selects the model: OGB scores FreeSolv by RMSE.
_SELECTION_METRIC = {"zinc-plogp": "mae", "freesolv": "rmse", "ogbg-molfreesolv": "rmse"}
# Puny et al. 2023, "Equivariant Polynomials for Graph Neural Networks" (ICML), Table 2:
# test MAE on ZINC-12k.
PAPER_ZINC_12K: dict[str, float] = {
    "GIN": 0.526,
    "GSN": 0.101,
    "CIN": 0.079,
    "GPS": 0.070,
    "PPGN": 0.079,
    "PPGN++": 0.076,
    "PPGN++(6)": 0.071,
}
PAPER_URL = "https://arxiv.org/abs/2302.11556"


def _check_dataset_names(values: Any, fixture: bool) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"datasets: expected a non-empty list of names, got {values!r}")
    from ...data import OGB_ALIASES

    for name in values:
        if not isinstance(name, str):
            raise ValueError(f"datasets: expected names, got {name!r}")
        if name in POLY_DATASETS or name in OGB_ALIASES:
            continue
        if _OGB_MOLECULES.fullmatch(name):
            if fixture:
                raise ValueError(
                    f"datasets: {name!r} has no committed fixture; set fixture=False "
                    "(downloads from OGB's servers)"
                )
            continue
        raise ValueError(
            f"datasets: unknown {name!r}; valid names are {list(POLY_DATASETS)}, "
            f"{sorted(OGB_ALIASES)} or an OGB molecule set 'ogbg-mol<name>'"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"datasets: names repeat: {list(values)}")
    return tuple(values)


@dataclass
class PolyConfig:
    """Polynomial features: each model of ``models`` (``layers`` layers of width ``hidden``)
    trained per seed with each feature mode of ``features`` on each of ``datasets``; test MAE
    and RMSE, the baselines, the learning curves and the time spent computing the features.

    ``features``: ``"none"`` or a subset of the basis up to ``max_degree`` (at most
    :data:`MAX_POLY_DEGREE`) given to :class:`gnnagg.poly.AddEquivariantPolynomials` with
    ``normalize``. ``schedule``: the learning-rate schedule
    (:func:`~gnnagg.bench.real.train_best_on_val`). ``cache_features`` keeps computed features
    under ``<data root>/poly-features/`` (hash-checked). ``fixture`` and ``data_root`` as in
    :class:`~gnnagg.bench.sections.real.RealConfig`; OGB names other than
    ``ogbg-molfreesolv`` have no fixture and need ``fixture=False``. ``jobs``: train up to
    this many (data set, features, model, seed) jobs at once, each in its own process with
    ``max(1, threads // jobs)`` torch threads and its own copy of the data (1: one after
    another in this process); the features are computed once, before the jobs start, and the
    jobs read them from the cache (without ``cache_features`` every job computes its own).
    """

    datasets: tuple[str, ...] = ("zinc-plogp",)
    models: tuple[str, ...] = ("gine",)
    features: tuple[str, ...] = ("none", "beyond-2fwl")
    seeds: tuple[int, ...] = (0, 1)
    hidden: int = 64
    layers: int = 3
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    schedule: str = "constant"
    max_degree: int = 6
    normalize: str = "log1p"
    fixture: bool = True
    cache_features: bool = True
    data_root: str | None = None
    jobs: int = 1

    def __post_init__(self) -> None:
        from .real import check_model_fields

        check_model_fields(self)
        self.datasets = _check_dataset_names(self.datasets, self.fixture)
        self.models = check_names(self.models, POLY_MODELS, "models")
        self.features = check_names(self.features, FEATURE_MODES, "features")
        for arg in ("models", "features"):
            values = getattr(self, arg)
            if len(set(values)) != len(values):
                raise ValueError(f"{arg}: names repeat: {list(values)}")
        check_int(self.max_degree, "max_degree", maximum=MAX_POLY_DEGREE)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.normalize not in POLY_NORMALIZATIONS:
            raise ValueError(
                f"normalize: expected one of {list(POLY_NORMALIZATIONS)}, got {self.normalize!r}"
            )
        check_bool(self.cache_features, "cache_features")
        check_int(self.jobs, "jobs", maximum=MAX_JOBS)


def load_poly_dataset(
    name: str, fixture: bool, root: str | None
) -> tuple[Any, dict[str, Tensor], str, str | None, str]:
    """``(dataset, split, source, note, metric)`` for a data set of :class:`PolyConfig`.

    ``zinc-plogp`` and ``freesolv`` (also as ``ogbg-molfreesolv``) come from
    :func:`~gnnagg.bench.real.load_real` (the fixture, or the full set with a fallback to the
    fixture); other OGB names from :func:`gnnagg.data.fetch` (OGB's servers), which must be a
    single-target regression set. ``metric`` selects the model: the data set's own.
    """
    from ...data import OGB_ALIASES

    local = OGB_ALIASES.get(name, name)
    if local in POLY_DATASETS:
        dataset, split, source, note = load_real(local, fixture, root)
        return dataset, split, source, note, _SELECTION_METRIC[name]
    from ...data import fetch

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
    from ..polyfeatures import polynomial_features

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
    """Train one :class:`~gnnagg.bench.models.PolyGINE` (``model_name`` of
    :data:`~gnnagg.bench.models.POLY_MODELS`) on ``splits`` (``{"train", "val", "test"}``:
    lists of graphs, carrying the polynomial attributes unless ``features == "none"``, with
    ``channels`` ``{"graph", "node", "edge"}`` of them), keeping the best epoch on validation
    ``metric``.

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
        config.hidden,
        config.layers,
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


def _feature_cache_dir(config: PolyConfig) -> Path | None:
    if not config.cache_features:
        return None
    from ...data import cache_root

    return cache_root(config.data_root) / "poly-features"


def _plain_splits(
    name: str, config: PolyConfig
) -> tuple[dict[str, list[Any]], str, str | None, str]:
    """``(splits, source, note, metric)``: the graphs of data set ``name`` per split."""
    dataset, split, source, note, metric = load_poly_dataset(name, config.fixture, config.data_root)
    plain = {part: [dataset[i] for i in split[part].tolist()] for part in split}
    return plain, source, note, metric


def _poly_job(
    name: str,
    mode: str,
    model_name: str,
    seed: int,
    config_data: dict[str, Any],
    channels: dict[str, int],
    device: str,
    on_epoch: Callable[..., None],
) -> dict[str, Any]:
    """One (data set, features, model, seed) of :func:`run_poly` in a worker process of
    :func:`~gnnagg.bench.jobs.run_in_processes`."""
    from ..jobs import worker_memo

    config = PolyConfig(**config_data)

    def build() -> tuple[dict[str, list[Any]], str, str]:
        plain, source, _, metric = _plain_splits(name, config)
        if mode == "none":
            return plain, source, metric
        splits, _ = prepare_features(plain, mode, config, _feature_cache_dir(config))
        return splits, source, metric

    splits, source, metric = worker_memo(("poly", name, mode), build)
    run = fit_poly(
        name, splits, model_name, mode, seed, config, channels, metric, device, on_epoch=on_epoch
    )
    run["source"] = source
    return run


def run_poly(
    config: PolyConfig, device: str = "cpu", progress: bool = True, threads: int = 1
) -> dict[str, Any]:
    """Every (data set, features, model, seed) of ``config``; returns ``{"runs", "summary",
    "features", "baselines", "notes"}``: ``features`` has one record per data set and mode
    (see :func:`prepare_features`, plus ``dataset``, ``source`` and ``sizes``), ``baselines``
    the :func:`regression_baselines` of each data set. With ``config.jobs > 1`` the training
    runs in that many worker processes sharing ``threads`` torch threads; the runs come back
    in the same order as without."""
    import dataclasses

    from tqdm.auto import tqdm

    from ..jobs import run_in_processes

    if not isinstance(config, PolyConfig):
        raise TypeError(f"config: expected a PolyConfig, got {type(config).__name__}")
    runs: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    notes: list[str] = []
    calls: list[tuple[Any, ...]] = []
    config_data = dataclasses.asdict(config)
    cache_dir = _feature_cache_dir(config)
    per_dataset = len(config.features) * len(config.models) * len(config.seeds)
    total = len(config.datasets) * per_dataset * config.epochs
    with tqdm(total=total, desc="poly features", unit="epoch", disable=not progress) as bar:
        for name in config.datasets:
            plain, source, note, metric = _plain_splits(name, config)
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
                                (name, mode, model_name, seed, config_data, channels, device)
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


def _study(suite: str, seeds: tuple[int, ...]) -> PolyConfig | None:
    """The configurations of the suites ``poly-zinc`` and ``poly-freesolv``."""
    if suite == "poly-zinc":
        # Full zinc-plogp (10k/1k/1k). Measured at 1 thread on the 2-core CPU: 6.0 (GINE),
        # 7.6 (GINE + virtual node), 6.3/7.5 (beyond-2fwl) and 9.2/9.6 (all) CPU seconds per
        # epoch, so 60 epochs x 3 seeds x these 6 variants take about 2.3 CPU hours, plus about
        # 2 CPU minutes for the features once; cosine annealing to 1 % of lr by the last epoch.
        return PolyConfig(
            datasets=("zinc-plogp",),
            models=POLY_MODELS,
            features=("none", "beyond-2fwl", "all"),
            seeds=seeds,
            hidden=64,
            layers=4,
            epochs=60,
            batch_size=128,
            lr=2e-3,
            schedule="cosine",
            fixture=False,
        )
    if suite == "poly-freesolv":
        # 642 molecules (513 train): well under a minute per model on an idle core.
        return PolyConfig(
            datasets=("ogbg-molfreesolv",),
            models=POLY_MODELS,
            features=("none", "beyond-2fwl", "all"),
            seeds=seeds,
            hidden=64,
            layers=4,
            epochs=50,
            batch_size=32,
            lr=1e-3,
            schedule="cosine",
            fixture=False,
        )
    return None


class PolynomialFeaturesSection(Section):
    """GNNs with and without :class:`gnnagg.poly.AddEquivariantPolynomials` features
    (:class:`PolyConfig`)."""

    name: ClassVar[str] = "poly"
    title: ClassVar[str] = "Polynomial features"
    config_type: ClassVar[type] = PolyConfig
    command: ClassVar[str | None] = "poly"
    command_help: ClassVar[str] = "molecules with and without polynomial features"
    command_description: ClassVar[str] = (
        "GINE (and GINE with a virtual node) on molecule regression sets without and with "
        "equivariant polynomial features. Predefined studies: `gnnagg-bench run --suite "
        "poly-zinc` and `--suite poly-freesolv`."
    )
    result_keys: ClassVar[str] = "`poly` {`runs`, `summary`, `features`, `baselines`, `notes`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> PolyConfig | None:
        # Not in the quick suite: its 15-minute budget is spent on the other sections.
        if suite == "smoke":
            return PolyConfig(
                seeds=seeds,
                features=("none", "all"),
                hidden=8,
                layers=1,
                epochs=1,
                batch_size=64,
                max_degree=3,
            )
        if suite == "full":
            return PolyConfig(
                datasets=POLY_DATASETS,
                seeds=seeds,
                hidden=128,
                layers=4,
                epochs=100,
                fixture=False,
            )
        return _study(suite, seeds)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from ..options import add_jobs_option, add_names, add_training_options, positive_int

        defaults = PolyConfig()
        parser.add_argument(
            "--datasets",
            nargs="+",
            default=list(defaults.datasets),
            metavar="NAME",
            help=f"{', '.join(POLY_DATASETS)}, ogbg-molfreesolv, or any OGB molecule "
            "regression set by name (ogbg-molesol, ogbg-mollipo: downloaded from OGB's "
            "servers, needs --download and internet access)",
        )
        add_names(parser, "--models", list(POLY_MODELS), defaults.models, "MODEL")
        add_names(parser, "--features", list(FEATURE_MODES), defaults.features, "MODE")
        add_training_options(parser, defaults)
        parser.add_argument("--layers", type=positive_int, default=defaults.layers)
        parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
        parser.add_argument("--lr", type=float, default=defaults.lr)
        parser.add_argument("--schedule", default=defaults.schedule, choices=list(SCHEDULES))
        parser.add_argument("--max-degree", type=positive_int, default=defaults.max_degree)
        parser.add_argument(
            "--normalize", default=defaults.normalize, choices=list(POLY_NORMALIZATIONS)
        )
        parser.add_argument(
            "--download",
            action="store_true",
            help="the full data sets (zinc-plogp and freesolv fall back to their fixtures "
            "without network)",
        )
        parser.add_argument(
            "--no-feature-cache",
            action="store_true",
            help="compute the features without reading or writing the cache",
        )
        parser.add_argument(
            "--data-root", default=None, help="data cache folder (default: gnnagg's)"
        )
        add_jobs_option(parser)

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            self.name: PolyConfig(
                datasets=tuple(args.datasets),
                models=tuple(args.models),
                features=tuple(args.features),
                seeds=tuple(range(args.seeds)),
                hidden=args.hidden,
                layers=args.layers,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                schedule=args.schedule,
                max_degree=args.max_degree,
                normalize=args.normalize,
                fixture=not args.download,
                cache_features=not args.no_feature_cache,
                data_root=args.data_root,
                jobs=args.jobs,
            )
        }

    def choices(self) -> dict[str, list[str]]:
        return {
            "poly_datasets": [*POLY_DATASETS, "ogbg-molfreesolv", "ogbg-mol<name>"],
            "poly_models": list(POLY_MODELS),
            "poly_features": list(FEATURE_MODES),
        }

    def run(self, config: PolyConfig, context: RunContext) -> dict[str, Any]:
        return run_poly(config, context.device, context.progress, context.threads)

    def check_result(self, result: Any) -> None:
        check_shape(result, _RESULT_SHAPE, self.name)
        for i, row in enumerate(result["summary"]):
            if row["metric"] not in row["test"]:
                raise ValueError(f"{self.name}.summary[{i}]: test has no {row['metric']!r}")

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        lines = [
            f"{', '.join(MODEL_LABELS.get(m, m) for m in config['models'])} "
            f"({config['layers']} layers of width {config['hidden']}, {config['epochs']} epochs, "
            f"batch {config['batch_size']}, Adam lr {config['lr']} with a {config['schedule']} "
            f"schedule, seeds {list(config['seeds'])}) without and with "
            f"`AddEquivariantPolynomials(max_degree={config['max_degree']}, "
            f"normalize={config['normalize']!r})` features: `poly_x` joins the atom embedding, "
            "`poly_edge_attr` the bond embedding, `poly_graph` the pooled readout; channels "
            "constant on the training graphs are dropped, the others standardised. Mean ± "
            "sample std over seeds; the model kept is the best on the validation metric "
            "(`val`); s/epoch is the wall time of training plus validation, CPU s the CPU time "
            "this process spent on it (the wall time grows with the machine's load)."
        ]
        lines += ["", poly_table(result), ""]
        runs = result.get("runs", [])
        if runs and all("epoch_cpu_s" in r and "epochs" in r for r in runs):
            cpu_hours = sum(r["epoch_cpu_s"] * r["epochs"] for r in runs) / 3600
            wall_hours = sum(r.get("train_time_s", 0.0) for r in runs) / 3600
            lines += [
                f"Training took {cpu_hours:.2f} CPU hours ({wall_hours:.2f} h of wall time) "
                f"for {len(runs)} models.",
                "",
            ]
        if result.get("features"):
            lines += [feature_table(result["features"]), ""]
        files: dict[str, Path] = {}
        for name in dict.fromkeys(r["dataset"] for r in result["summary"]):
            path = plot_poly_curves(result["runs"], name, out_dir / f"poly_curves_{name}.png")
            if path is not None:
                files[f"poly_curves_{name}"] = path
                lines += [f"![learning curves, {name}]({path.name})", ""]
        verdicts = feature_verdicts(result["summary"])
        if verdicts:
            lines += ["**Do the features help?**", ""]
            lines += [f"* {v}" for v in verdicts]
            lines.append("")
        if any(r["dataset"] == "zinc-plogp" for r in result["summary"]):
            lines += [paper_comparison(result["summary"]), ""]
        if any(r.get("source") == "fixture" for r in result["summary"]):
            lines.append(
                "* `fixture` rows use the small committed fixtures: they check the pipeline; "
                "differences between the models there are mostly noise."
            )
        lines += [f"* {n}" for n in result.get("notes", [])]
        lines.append("")
        return ReportBlock(lines, files)


MODEL_LABELS = {"gine": "GINE", "gine_vn": "GINE + virtual node"}


def _cell(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def poly_table(poly: dict[str, Any]) -> str:
    """Markdown: per data set, the constant baselines, then one row per model and feature
    mode: the validation metric, test MAE and RMSE (mean ± std over seeds), the input widths,
    parameters, seconds per epoch and the best epochs."""
    lines = [
        "| data set | source | model | features | node/edge/readout input | params | val | "
        "test MAE | test RMSE | s/epoch (CPU s) | best epochs |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for b in poly.get("baselines", []):
        lines.append(
            f"| {b['dataset']} | {b.get('source')} | *{b['baseline']}* | - | - | - | - | "
            f"{b['test']['mae']:.3f} | {b['test']['rmse']:.3f} | - | - |"
        )
    for r in poly["summary"]:
        widths = r["input_widths"]
        lines.append(
            f"| {r['dataset']} | {r.get('source')} | {MODEL_LABELS.get(r['model'], r['model'])} "
            f"| {r['features']} | {widths['node']}/{widths['edge']}/{widths['graph']} | "
            f"{r['num_params']:,} | {r['metric'].upper()} {_cell(r['val'])} | "
            f"{_cell(r['test']['mae'])} | {_cell(r['test']['rmse'])} | "
            f"{r['epoch_time_s']:.1f} ({r.get('epoch_cpu_s', float('nan')):.1f}) | "
            f"{', '.join(map(str, r.get('best_epochs', [])))} |"
        )
    return "\n".join(lines)


def feature_table(features: list[dict[str, Any]]) -> str:
    """Markdown: per data set and feature mode, the channels of the basis and those kept, and
    the time the features took to compute (once; later runs read them from the cache)."""
    lines = [
        "| data set | features | graph/node/edge channels | kept (not constant on train) | "
        "computed in s (CPU s) | graphs (with a non-zero feature) | from cache |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for f in features:
        c, k = f["channels"], f["kept_channels"]
        cached = f"yes (read in {f['load_s']:.1f} s)" if f.get("cached") else "no"
        time_s = f"{f['time_s']:.1f}" if f.get("time_s") is not None else "?"
        if f.get("cpu_s") is not None:
            time_s += f" ({f['cpu_s']:.1f})"
        lines.append(
            f"| {f['dataset']} | {f['features']} (degree ≤ {f['max_degree']}, "
            f"{f['normalize']}) | {c['graph']}/{c['node']}/{c['edge']} | "
            f"{k['graph']}/{k['node']}/{k['edge']} | {time_s} | {f['graphs']} "
            f"({f.get('graphs_with_features', '?')}) | {cached} |"
        )
    return "\n".join(lines)


def feature_verdicts(summary: list[dict[str, Any]]) -> list[str]:
    """One sentence per (data set, model, feature mode other than ``none``): the change of the
    test metric against the same model without features, and whether it exceeds twice the
    standard error of the difference of the seed means (``sqrt(s1²/n1 + s2²/n2)``). A mode
    whose channels are all constant on the training graphs (same input widths as without
    features) is said to be the model without features."""
    out = []
    plain = {(r["dataset"], r["model"]): r for r in summary if r["features"] == "none"}
    for r in summary:
        base = plain.get((r["dataset"], r["model"]))
        if r["features"] == "none" or base is None:
            continue
        metric = r["metric"]
        a, b = base["test"][metric], r["test"][metric]
        diff = b["mean"] - a["mean"]
        relative = 100 * diff / a["mean"] if a["mean"] else float("nan")
        label = MODEL_LABELS.get(r["model"], r["model"])
        if r.get("input_widths") is not None and r["input_widths"] == base.get("input_widths"):
            out.append(
                f"{r['dataset']}, {label} + {r['features']}: no feature channel varies on the "
                "training graphs, so this is the model without features (same numbers)."
            )
            continue
        what = (
            f"{r['dataset']}, {label} + {r['features']}: test {metric.upper()} "
            f"{a['mean']:.3f} → {b['mean']:.3f} ({diff:+.3f}, {relative:+.1f} %)"
        )
        if min(a["n"], b["n"]) < 2:
            out.append(f"{what}; one seed: no estimate of the seed spread, no verdict.")
            continue
        se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
        if diff < -2 * se:
            verdict = "lower by more than twice the standard error: the features help here"
        elif diff > 2 * se:
            verdict = "higher by more than twice the standard error: the features hurt here"
        else:
            verdict = "within twice the standard error: no effect distinguishable from seeds"
        out.append(f"{what}; standard error of the difference {se:.3f} over seeds: {verdict}.")
    return out


def paper_comparison(summary: list[dict[str, Any]]) -> str:
    """The paragraph that sets this run's ``zinc-plogp`` numbers beside Puny et al.'s."""
    rows = [r for r in summary if r["dataset"] == "zinc-plogp"]
    best = min(rows, key=lambda r: r["test"]["mae"]["mean"])
    p = PAPER_ZINC_12K
    gain = 100 * (p["PPGN++(6)"] - p["PPGN"]) / p["PPGN"]
    return (
        f"**Against the paper.** [Puny et al. 2023]({PAPER_URL}) report test MAE on ZINC-12k "
        f"of {p['PPGN']:.3f} for PPGN and {p['PPGN++(6)']:.3f} for PPGN++(6), which adds the "
        f"degree-5 and -6 polynomials beyond 2-FWL ({gain:+.0f} %), beside GIN {p['GIN']:.3f}, "
        f"GSN {p['GSN']:.3f}, CIN {p['CIN']:.3f} and GPS {p['GPS']:.3f}. Those numbers are not "
        "comparable with this table: ZINC-12k is a fixed subset of ZINC with the labels its "
        "authors computed (constrained solubility, the same penalised-logP formula), while "
        "`zinc-plogp` is another 12,000 molecules of ZINC (the MOSES training set) labelled "
        "here by RDKit, and the models differ (2-FWL PPGN models there, message passing "
        f"here). The best row here is {MODEL_LABELS.get(best['model'], best['model'])} + "
        f"{best['features']} at {best['test']['mae']['mean']:.3f} MAE; what carries over is "
        "the relative change each model sees from the features (above), not the absolute "
        "values."
    )


def plot_poly_curves(runs: list[dict[str, Any]], dataset: str, path: Path) -> Path | None:
    """Validation metric against epoch for ``dataset``, one panel per model and one line per
    feature mode (mean over seeds, band from the lowest to the highest seed), to ``path``
    (PNG); ``None`` when the runs carry no curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in runs if r["dataset"] == dataset and r.get("curve", {}).get("val")]
    if not mine:
        return None
    models = list(dict.fromkeys(r["model"] for r in mine))
    modes = list(dict.fromkeys(r["features"] for r in mine))
    fig, axes = plt.subplots(
        1, len(models), figsize=(5.5 * len(models), 4.2), dpi=110, squeeze=False, sharey=True
    )
    colours = plt.get_cmap("tab10").colors
    for ax, model in zip(axes[0], models):
        for i, mode in enumerate(modes):
            curves = [
                r["curve"]["val"] for r in mine if r["model"] == model and r["features"] == mode
            ]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            stacked = torch.tensor([c[:length] for c in curves], dtype=torch.float64)
            epochs = range(1, length + 1)
            # Dashed black on top: a mode without varying channels repeats it exactly.
            colour = "black" if mode == "none" else colours[i % 10]
            style = {"ls": "--", "zorder": 3} if mode == "none" else {}
            ax.plot(epochs, stacked.mean(0).tolist(), color=colour, label=mode, **style)
            ax.fill_between(
                epochs, stacked.min(0).values.tolist(), stacked.max(0).values.tolist(),
                color=colour, alpha=0.2,
            )  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(MODEL_LABELS.get(model, model))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="features", fontsize=8)
    axes[0][0].set_ylabel(f"validation {mine[0]['metric'].upper()}")
    fig.suptitle(f"Learning curves: {dataset}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
