"""The polynomial-feature section: the same small GINE model with and without
:class:`gnnagg.poly.AddEquivariantPolynomials` features.

For each molecule regression data set (``zinc-plogp``, ``freesolv``; loaded like
:mod:`gnnagg.bench.real`: the committed fixture, or the real data with a fallback to the
fixture) the features ``poly_graph [1, C0]``, ``poly_x [N, C1]`` and ``poly_edge_attr [E, C2]``
are computed once (timed), with ``normalize="log1p"`` so that counts of very different sizes
share one scale. Then a :class:`PolyGINE` regression model is trained per seed twice:

* ``plain``: OGB atom and bond embeddings only;
* ``poly``: ``poly_x`` concatenated to the atom embedding, ``poly_edge_attr`` to the bond
  embedding and ``poly_graph`` to the pooled readout (each followed by a linear layer, so the
  only difference between the two models is the width of those three inputs).

Both variants see the same graphs in the same order (the same seeded loader), standardised
targets and MSE loss; the model kept is the best on validation MAE, and test MAE and RMSE are
reported in the data set's units as mean ± sample std over seeds.

It has no subcommand of its own: ``gnnagg-bench real --poly with|only`` runs it (see
:class:`~gnnagg.bench.sections.real.RealSection`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..real import (
    DATASET_TASKS,
    load_real,
    seeded_loaders,
    train_best_on_val,
    trivial_baseline,
)
from ..report import mean_std
from ..train import seed_everything
from ..validation import NUMBER, STATS, check_int, check_names, check_shape
from .base import ReportBlock, RunContext, Section

__all__ = [
    "POLY_DATASETS",
    "POLY_NORMALIZATIONS",
    "POLY_SUBSETS",
    "POLY_VARIANTS",
    "PolyConfig",
    "PolyGINE",
    "PolynomialFeaturesSection",
    "add_poly_features",
    "fit_poly",
    "poly_table",
    "run_poly",
    "summarise_poly",
]

# The experiment regresses molecular properties with OGB atom/bond features.
POLY_DATASETS: tuple[str, ...] = ("zinc-plogp", "freesolv")
# Raw counts are left out: homomorphism counts grow with graph size by orders of magnitude.
POLY_NORMALIZATIONS: tuple[str, ...] = ("log1p", "density")
POLY_SUBSETS: tuple[str, ...] = ("beyond-2fwl", "within-2fwl", "all")
# The basis grows about 7 times per degree (degree 6: hundreds of elements, minutes to plan);
# the papers this reproduces stop at 6.
MAX_POLY_DEGREE = 8
_WIDTHS = {"graph": int, "node": int, "edge": int}
# What report() reads of a result.
_RESULT_SHAPE = {
    "summary": [
        {
            "dataset": str,
            "variant": str,
            "input_widths": _WIDTHS,
            "test": {"mae": STATS, "rmse": STATS},
            "train_time_s": NUMBER,
        }
    ],
    "features?": [
        {
            "dataset": str,
            "channels": _WIDTHS,
            "nonzero_channels": _WIDTHS,
            "graphs": int,
            "time_s": NUMBER,
        }
    ],
    "baselines?": [{"dataset": str, "baseline": str, "test": {"mae": NUMBER, "rmse": NUMBER}}],
    "notes?": [str],
}


@dataclass
class PolyConfig:
    """Polynomial features: a GINE regression model (``layers`` layers of width ``hidden``)
    trained per seed without and with :class:`gnnagg.poly.AddEquivariantPolynomials` features
    (``max_degree`` at most :data:`MAX_POLY_DEGREE`, ``subset``, ``normalize``) on each of
    ``datasets``; test MAE (and RMSE) and the time spent computing the features.

    ``fixture`` and ``data_root`` as in :class:`~gnnagg.bench.sections.real.RealConfig`.
    """

    datasets: tuple[str, ...] = ("zinc-plogp",)
    seeds: tuple[int, ...] = (0, 1)
    hidden: int = 64
    layers: int = 3
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    max_degree: int = 6
    subset: str = "beyond-2fwl"
    normalize: str = "log1p"
    fixture: bool = True
    data_root: str | None = None

    def __post_init__(self) -> None:
        from .real import check_model_fields

        self.datasets = check_names(self.datasets, POLY_DATASETS, "datasets")
        check_model_fields(self)
        check_int(self.max_degree, "max_degree", maximum=MAX_POLY_DEGREE)
        if self.subset not in POLY_SUBSETS:
            raise ValueError(f"subset: expected one of {list(POLY_SUBSETS)}, got {self.subset!r}")
        if self.normalize not in POLY_NORMALIZATIONS:
            raise ValueError(
                f"normalize: expected one of {list(POLY_NORMALIZATIONS)}, got {self.normalize!r}"
            )


POLY_VARIANTS: tuple[str, ...] = ("plain", "poly")
# Graphs per call of the transform: on a batch the sparse evaluator works on the
# block-diagonal graph, about 500 times faster than one call per molecule (0.03 s against
# 17 s for the 200 fixture molecules), while a chunk keeps the memory bounded on full data.
_CHUNK = 1024


class PolyGINE(nn.Module):
    """GINE regression model over OGB molecules, optionally with polynomial features.

    ``h = node_in([AtomEncoder(x), poly_x])``, ``e = edge_in([BondEncoder(edge_attr),
    poly_edge_attr])``, ``layers`` residual :class:`~torch_geometric.nn.GINEConv` layers,
    mean pooling, ``head([pooled, poly_graph])``. With every ``*_poly`` width 0 the
    polynomial attributes are ignored and this is the plain model.

    Args:
        hidden: width of the embeddings and layers.
        layers: number of GINE layers.
        graph_poly, node_poly, edge_poly: channels of ``poly_graph``, ``poly_x`` and
            ``poly_edge_attr`` (0: not used).
    """

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 3,
        graph_poly: int = 0,
        node_poly: int = 0,
        edge_poly: int = 0,
    ) -> None:
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
        from torch_geometric.nn import GINEConv

        for name, value in (("hidden", hidden), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        for name, value in (
            ("graph_poly", graph_poly),
            ("node_poly", node_poly),
            ("edge_poly", edge_poly),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
        self.graph_poly, self.node_poly, self.edge_poly = graph_poly, node_poly, edge_poly
        self.atom_encoder = AtomEncoder(hidden)
        self.bond_encoder = BondEncoder(hidden)
        # The plain model keeps these layers too (width hidden -> hidden), so the two variants
        # differ only in the input widths, not in depth.
        self.node_in = nn.Linear(hidden + node_poly, hidden)
        self.edge_in = nn.Linear(hidden + edge_poly, hidden)
        self.convs = nn.ModuleList(
            GINEConv(
                nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden)),
                train_eps=True,
            )
            for _ in range(layers)
        )
        self.head = nn.Sequential(
            nn.Linear(hidden + graph_poly, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, batch: Any) -> Tensor:
        """Standardised predictions ``[num_graphs, 1]`` for a PyG ``Batch``."""
        from torch_geometric.utils import scatter

        h = self.atom_encoder(batch.x)
        e = self.bond_encoder(batch.edge_attr)
        if self.node_poly:
            h = torch.cat([h, batch.poly_x.to(h.dtype)], dim=-1)
        if self.edge_poly:
            e = torch.cat([e, batch.poly_edge_attr.to(e.dtype)], dim=-1)
        h, e = self.node_in(h), self.edge_in(e)
        for conv in self.convs:
            h = h + torch.relu(conv(h, batch.edge_index, e))
        pooled = scatter(h, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
        if self.graph_poly:
            pooled = torch.cat([pooled, batch.poly_graph.to(pooled.dtype)], dim=-1)
        return self.head(pooled)


def add_poly_features(graphs: list[Any], config: PolyConfig) -> tuple[list[Any], dict[str, Any]]:
    """``(graphs with poly_graph/poly_x/poly_edge_attr as float32, info)``.

    ``info`` holds the transform's settings, ``channels`` ``{"graph", "node", "edge"}``,
    ``nonzero_channels`` (channels not identically zero on these graphs: a pattern that never
    occurs in molecules carries no information) and ``time_s``, the wall time of the transform
    (the basis enumeration included).
    """
    from torch_geometric.data import Batch

    from ...poly import AddEquivariantPolynomials

    start = time.perf_counter()
    transform = AddEquivariantPolynomials(
        max_degree=config.max_degree,
        orders=(0, 1, 2),
        subset=config.subset,
        normalize=config.normalize,
    )
    out: list[Any] = []
    for i in range(0, len(graphs), _CHUNK):
        batch = transform(Batch.from_data_list(graphs[i : i + _CHUNK]))
        out.extend(batch.to_data_list())
    elapsed = time.perf_counter() - start
    keys = {"graph": "poly_graph", "node": "poly_x", "edge": "poly_edge_attr"}
    nonzero = {}
    for short, key in keys.items():
        # float64 counts are exact; float32 is what the model consumes.
        for data in out:
            data[key] = data[key].float()
        stacked = torch.cat([data[key] for data in out]) if out else torch.zeros(0, 0)
        nonzero[short] = int((stacked != 0).any(dim=0).sum()) if stacked.numel() else 0
    info = {
        "max_degree": config.max_degree,
        "subset": config.subset,
        "normalize": config.normalize,
        "channels": {short: len(transform.basis[order]) for order, short in enumerate(keys)},
        "nonzero_channels": nonzero,
        "graphs": len(out),
        "time_s": round(elapsed, 3),
    }
    return out, info


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
    variant: str,
    seed: int,
    config: PolyConfig,
    channels: dict[str, int],
    device: str = "cpu",
    on_epoch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train one :class:`PolyGINE` (``variant`` ``"plain"`` or ``"poly"``) on ``splits``
    (``{"train", "val", "test"}``: lists of graphs carrying the polynomial attributes).

    Returns a record with ``dataset``, ``variant``, ``seed``, ``val_mae`` (the best), ``test``
    (``mae``, ``rmse`` at the best epoch), ``best_epoch``, ``epochs``, ``train_time_s``,
    ``num_params`` and ``input_widths`` (``node``, ``edge``, ``graph``: the widths of the
    layers that take the embeddings, with the polynomial channels when ``variant="poly"``).
    """
    if variant not in POLY_VARIANTS:
        raise ValueError(f"variant: expected one of {list(POLY_VARIANTS)}, got {variant!r}")
    seed_everything(seed)
    # The loader's own generator: both variants draw the same batches for one seed.
    loaders = seeded_loaders(
        splits["train"], splits["val"], splits["test"], config.batch_size, seed
    )
    y = torch.cat([data.y.view(-1) for data in splits["train"]]).float()
    mean, std = float(y.mean()), float(y.std().clamp_min(1e-6))
    use = variant == "poly"
    model = PolyGINE(
        config.hidden,
        config.layers,
        graph_poly=channels["graph"] if use else 0,
        node_poly=channels["node"] if use else 0,
        edge_poly=channels["edge"] if use else 0,
    ).to(device)
    best, best_epoch, train_time = train_best_on_val(
        model,
        loaders["train"],
        config.epochs,
        config.lr,
        lambda batch: F.mse_loss(model(batch), (batch.y.view(-1, 1).float() - mean) / std),
        lambda: _scores(model, loaders["val"], mean, std, device)["mae"],
        device=device,
        on_epoch=on_epoch,
    )
    return {
        "dataset": name,
        "variant": variant,
        "seed": seed,
        "val_mae": best,
        "test": _scores(model, loaders["test"], mean, std, device),
        "best_epoch": best_epoch,
        "epochs": config.epochs,
        "train_time_s": round(train_time, 3),
        "num_params": sum(p.numel() for p in model.parameters()),
        "input_widths": {
            "node": model.node_in.in_features,
            "edge": model.edge_in.in_features,
            "graph": model.head[0].in_features,
        },
    }


def summarise_poly(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (data set, variant): ``val_mae`` and test ``mae``/``rmse`` as mean/std/n over
    seeds, mean training time, parameters and input widths."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["variant"]), []).append(run)
    rows = []
    for (name, variant), members in groups.items():
        rows.append(
            {
                "dataset": name,
                "variant": variant,
                "source": members[0].get("source"),
                "val_mae": mean_std([m["val_mae"] for m in members]),
                "test": {k: mean_std([m["test"][k] for m in members]) for k in ("mae", "rmse")},
                "train_time_s": sum(m["train_time_s"] for m in members) / len(members),
                "num_params": members[0]["num_params"],
                "input_widths": members[0]["input_widths"],
                "seeds": [m["seed"] for m in members],
            }
        )
    return rows


def run_poly(config: PolyConfig, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Every (data set, variant, seed) of ``config``; returns ``{"runs", "summary",
    "features", "baselines", "notes"}``: ``features`` has one entry per data set (see
    :func:`add_poly_features`, plus ``dataset``, ``source`` and ``sizes``)."""
    from tqdm.auto import tqdm

    if not isinstance(config, PolyConfig):
        raise TypeError(f"config: expected a PolyConfig, got {type(config).__name__}")
    runs: list[dict[str, Any]] = []
    features: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    notes: list[str] = []
    total = len(config.datasets) * len(POLY_VARIANTS) * len(config.seeds) * config.epochs
    with tqdm(total=total, desc="poly features", unit="epoch", disable=not progress) as bar:
        for name in config.datasets:
            if DATASET_TASKS[name].kind != "regression":
                raise ValueError(f"datasets: {name!r} is not a molecule regression data set")
            dataset, split, source, note = load_real(name, config.fixture, config.data_root)
            if note:
                notes.append(f"{name}: {note}")
            baselines.append({**trivial_baseline(name, dataset, split), "source": source})
            # Features only for the graphs that are used, in one pass over all three splits.
            order = list(split)
            ids = [i for part in order for i in split[part].tolist()]
            graphs, info = add_poly_features([dataset[i] for i in ids], config)
            splits, offset = {}, 0
            for part in order:
                n = int(split[part].numel())
                splits[part], offset = graphs[offset : offset + n], offset + n
            features.append(
                {
                    "dataset": name,
                    "source": source,
                    "sizes": {k: len(v) for k, v in splits.items()},
                    **info,
                }
            )
            for variant in POLY_VARIANTS:
                for seed in config.seeds:
                    bar.set_postfix_str(f"{name} {variant} seed {seed}")
                    record = fit_poly(
                        name,
                        splits,
                        variant,
                        seed,
                        config,
                        info["channels"],
                        device,
                        on_epoch=lambda _epoch: bar.update(1),
                    )
                    record["source"] = source
                    runs.append(record)
    return {
        "runs": runs,
        "summary": summarise_poly(runs),
        "features": features,
        "baselines": baselines,
        "notes": notes,
    }


class PolynomialFeaturesSection(Section):
    """GINE with and without :class:`gnnagg.poly.AddEquivariantPolynomials` features
    (:class:`PolyConfig`)."""

    name: ClassVar[str] = "poly"
    title: ClassVar[str] = "Polynomial features"
    config_type: ClassVar[type] = PolyConfig
    result_keys: ClassVar[str] = "`poly` {`runs`, `summary`, `features`, `baselines`, `notes`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> PolyConfig | None:
        # Not in the quick suite: its 15-minute budget is spent on the other sections.
        if suite == "smoke":
            return PolyConfig(
                seeds=seeds, hidden=8, layers=1, epochs=1, batch_size=64, max_degree=3
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
        return None

    def run(self, config: PolyConfig, context: RunContext) -> dict[str, Any]:
        return run_poly(config, context.device, context.progress)

    def check_result(self, result: Any) -> None:
        check_shape(result, _RESULT_SHAPE, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        lines = [
            f"GINE ({config['layers']} layers of width {config['hidden']}, {config['epochs']} "
            f"epochs, batch {config['batch_size']}, Adam lr {config['lr']}, seeds "
            f"{list(config['seeds'])}) without and with `AddEquivariantPolynomials(max_degree="
            f"{config['max_degree']}, subset={config['subset']!r}, "
            f"normalize={config['normalize']!r})` features: `poly_x` joins the atom embedding, "
            "`poly_edge_attr` the bond embedding, `poly_graph` the pooled readout. Mean ± sample "
            "std; the model kept is the best on validation MAE; the feature time covers every "
            "graph of the three splits."
        ]
        lines += ["", poly_table(result), ""]
        for f in result.get("features", []):
            channels, nonzero = f["channels"], f["nonzero_channels"]
            lines.append(
                f"* {f['dataset']}: {channels['graph']}/{channels['node']}/{channels['edge']} "
                "graph/node/edge channels, of which "
                f"{nonzero['graph']}/{nonzero['node']}/{nonzero['edge']} are not identically "
                f"zero on these {f['graphs']} graphs (patterns that never occur carry nothing)."
            )
        if any(r.get("source") == "fixture" for r in result["summary"]):
            lines.append(
                "* `fixture` rows use the small committed fixtures: they check the pipeline; "
                "the difference between the two models there is mostly noise."
            )
        lines += [f"* {n}" for n in result.get("notes", [])]
        lines.append("")
        return ReportBlock(lines)


def poly_table(poly: dict[str, Any]) -> str:
    """Markdown: per data set, the trivial baseline, then test MAE / RMSE (mean ± std over
    seeds) of GINE without and with polynomial features, with the input widths and the time
    spent computing the features."""
    lines = [
        "| data set | source | model | node/edge/readout input | test MAE | test RMSE | "
        "features (s) | s/model |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    features = {f["dataset"]: f for f in poly.get("features", [])}
    for b in poly.get("baselines", []):
        lines.append(
            f"| {b['dataset']} | {b.get('source')} | *{b['baseline']}* | - | "
            f"{b['test']['mae']:.3f} | {b['test']['rmse']:.3f} | - | - |"
        )
    labels = {"plain": "GINE", "poly": "GINE + polynomial features"}
    for r in poly["summary"]:
        widths = r["input_widths"]
        mae, rmse = r["test"]["mae"], r["test"]["rmse"]
        info = features.get(r["dataset"], {})
        feature_time = f"{info['time_s']:.2f}" if r["variant"] == "poly" and info else "-"
        lines.append(
            f"| {r['dataset']} | {r.get('source')} | {labels.get(r['variant'], r['variant'])} | "
            f"{widths['node']}/{widths['edge']}/{widths['graph']} | "
            f"{mae['mean']:.3f} ± {mae['std']:.3f} | {rmse['mean']:.3f} ± {rmse['std']:.3f} | "
            f"{feature_time} | {r['train_time_s']:.0f} |"
        )
    return "\n".join(lines)
