"""Running the mesh study: the data per ℓ, one (ℓ, model, seed) job per trained model (in this
process or in worker processes, kept as checkpoints), the reference predictors, the summary
over seeds and the field picture's arrays."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from ....data import MeshSimulation, mesh_simulation
from ....data.simulation import RECIPE_VERSION
from ....models import (
    MODELS_REVISION,
    EdgeFeatureModel,
    GraphTransformer,
    MeanDeltaBaseline,
    MeshGraphNet,
    MeshSimulator,
    NodeFeatureModel,
    PersistenceBaseline,
    SolverOracle,
    edge_input_channels,
    node_input_channels,
    one_step_rmse,
    rollout,
    rollout_rmse,
)
from ...checkpoints import load_checkpoint, save_checkpoint, settings_digest
from ...jobs import run_in_processes, worker_memo
from ...registry import build_aggregator, mesh_mask
from ...stats import mean_std
from ...validation import NUMBER, check_shape
from .config import MeshConfig, parse_model_name
from .train import PLATEAU_TOLERANCE, ROLLOUT_BATCH, half_budget_moved, train_and_evaluate

__all__ = [
    "MESH_CHECKPOINT_FORMAT",
    "build_model",
    "mesh_job_path",
    "pair_half_budget",
    "run_converged",
    "run_mesh",
    "summarise_mesh_runs",
]

# 2: MeshGraphNet aggregates the edge MLP's output (as the reference does), not e + e'.
MESH_CHECKPOINT_FORMAT = "gnnagg-mesh-job/2"
# MeshConfig fields that change what one (ℓ, model, seed) job computes: a kept job is reused
# only under the same values, the same model and data code (MODELS_REVISION, the generator's
# RECIPE_VERSION) and the same device type
# (whose timings it holds).
_JOB_FIELDS = (
    "dim", "nodes", "trajectories", "val_trajectories", "test_trajectories", "steps",
    "geometry", "heads", "positions", "train_steps", "batch_size", "lr", "weight_decay",
    "warmup_steps", "noise", "normalizer_batches", "val_points", "max_seconds", "budget_clock",
    "one_step_stride", "data_seed",
)  # fmt: skip
# Fields are stored in results.json for the picture only up to this many nodes.
_MAX_FIELD_NODES = 50_000


def build_model(spec: dict[str, Any], config: MeshConfig) -> torch.nn.Module:
    """The step model of a parsed model name (:func:`~.config.parse_model_name`), adapted to
    :class:`~gnnagg.models.MeshStepModel`, taking the node features of its positions."""
    dim, hidden = config.dim, spec["hidden"]
    in_channels = node_input_channels(dim, position_features=_absolute(spec, config))
    if spec["family"] == "mgn":
        aggr = "sum" if spec["aggr"] == "sum" else build_aggregator(spec["aggr"], hidden)
        model = MeshGraphNet(
            in_channels, hidden, 1, edge_dim=edge_input_channels(dim), num_layers=spec["depth"],
            aggr=aggr,
        )  # fmt: skip
        return EdgeFeatureModel(model)
    model = GraphTransformer(
        in_channels, hidden, 1, heads=config.heads, num_layers=spec["depth"],
        mask=mesh_mask(spec["mask"]),
    )  # fmt: skip
    return NodeFeatureModel(model)


def _absolute(spec: dict[str, Any], config: MeshConfig) -> bool:
    return config.model_positions(spec) == "absolute"


def _simulation(
    config: MeshConfig, ell: float, data_root: str | Path | None = None
) -> MeshSimulation:
    return mesh_simulation(
        config.dim, config.nodes, config.trajectories, config.steps, ell=ell,
        seed=config.data_seed, splits=config.splits(), geometry=config.geometry,
        root=data_root, cache=config.cache,
    )  # fmt: skip


def _data_row(sim: MeshSimulation, ell: float, seconds: float) -> dict[str, Any]:
    edges = [int(sim.graph(t).edge_index.shape[1]) for t in range(sim.num_trajectories)]
    return {
        "ell": ell,
        "nodes": sim.num_nodes,
        "edges": round(sum(edges) / len(edges)),
        "meshes": sim.num_meshes,
        "geometry": sim.config.geometry,
        "spacing": sum(m.spacing for m in sim.meshes) / sim.num_meshes,
        "trajectories": {k: len(v) for k, v in sim.splits.items()},
        "steps": sim.num_steps,
        "delta_rms": sim.delta_rms("train"),
        "load_s": round(seconds, 2),
    }


def _baseline_row(name: str, predictor: Any, sim: MeshSimulation, config: MeshConfig):
    rolled = rollout_rmse(predictor, sim, "test", ROLLOUT_BATCH)
    one_step = one_step_rmse(predictor, sim, "test", ROLLOUT_BATCH, stride=config.one_step_stride)
    return {
        "name": name,
        "ell": sim.config.ell,
        "one_step_rmse": one_step,
        "rollout_rmse": rolled["rmse"],
        "rollout_rmse_per_step": rolled["rmse_per_step"],
        "inference_s_per_step": rolled["seconds_per_graph_step"],
    }


def _rounded(values: Any, digits: int = 5) -> list[Any]:
    return [float(f"{v:.{digits}g}") for v in values]


def _field(sim: MeshSimulation, simulator: Any, name: str, trajectory: int) -> dict[str, Any]:
    predicted, _ = rollout(simulator, sim, [trajectory])
    step = sim.num_steps
    mesh = sim.graph(trajectory).mesh
    return {
        "ell": sim.config.ell,
        "model": name,
        "trajectory": trajectory,
        "step": step,
        "pos": [_rounded(p, 6) for p in mesh.pos.tolist()],
        "cells": mesh.cells.tolist(),
        "true": _rounded(sim.u[trajectory, step].tolist()),
        "predicted": _rounded(predicted[0, step].tolist()),
    }


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def mesh_job_path(out_dir: Path, ell: float, name: str, seed: int, train_steps: int) -> Path:
    """Where the job ``(ell, name, seed)`` trained ``train_steps`` steps is kept in ``out_dir``
    by a run with ``checkpoints`` (so a run at twice the steps into the same folder reuses it
    as its half-budget run)."""
    return (
        Path(out_dir) / "checkpoints" / f"mesh-ell{ell:g}-{name}-seed{seed}-steps{train_steps}.pt"
    )


def _job_fingerprint(config: MeshConfig, ell: float, name: str, seed: int, device: str) -> str:
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    # Sub-mesh training joins the fingerprint only when asked for, so that jobs kept from
    # whole-mesh runs stay reusable.
    parts = {"partitions": config.partitions} if config.partitions > 1 else {}
    return settings_digest(
        config, _JOB_FIELDS, ell=ell, name=name, seed=seed, device=device_type,
        models=MODELS_REVISION, data=RECIPE_VERSION, **parts,
    )  # fmt: skip


def _simulator(spec: dict[str, Any], config: MeshConfig, state: dict[str, Any] | None = None):
    simulator = MeshSimulator(
        build_model(spec, config), config.dim, position_features=_absolute(spec, config)
    )
    if state is not None:
        simulator.load_state_dict(state)
    return simulator


def _train_job(
    sim: MeshSimulation, name: str, seed: int, config: MeshConfig, device: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and evaluate one model for one seed on ``sim``: ``(record, weights)`` (the
    weights on the CPU)."""
    spec = parse_model_name(name, config.heads)
    kept: list[MeshSimulator] = []
    cpu_start = time.process_time()
    record = train_and_evaluate(
        name,
        lambda: build_model(spec, config),
        sim,
        config,
        seed,
        position_features=_absolute(spec, config),
        device=device,
        on_trained=kept.append,
    )
    record.update(_spec_fields(spec, config))
    record["cpu_time_s"] = round(time.process_time() - cpu_start, 1)
    weights = {k: v.detach().cpu() for k, v in kept[0].state_dict().items()}
    return record, weights


def _mesh_job(
    ell: float,
    name: str,
    seed: int,
    config_data: dict[str, Any],
    device: str,
    data_root: str | None = None,
    on_epoch: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One (ℓ, model, seed) job of :func:`run_mesh` in a worker process of
    :func:`~gnnagg.bench.jobs.run_in_processes`."""
    config = MeshConfig(**config_data)
    sim = worker_memo(("mesh", ell), lambda: _simulation(config, ell, data_root))
    result = _train_job(sim, name, seed, config, device)
    if on_epoch is not None:
        on_epoch(1)
    return result


def _spec_fields(spec: dict[str, Any], config: MeshConfig) -> dict[str, Any]:
    return {
        "family": spec["family"],
        "depth": spec["depth"],
        "hidden": spec["hidden"],
        "mask": spec["mask"],
        "aggr": spec["aggr"],
        "positions": config.model_positions(spec),
    }


def _load_job(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The kept job at ``path`` if it exists and was computed with the same settings."""
    if not path.exists():
        return None
    state = load_checkpoint(path, MESH_CHECKPOINT_FORMAT)
    if state.get("fingerprint") != fingerprint:
        return None
    # A file whose sha256 was recomputed after it was changed by hand: what the run reads of
    # it must have its types, or the run would fail far from here (or report nonsense).
    weights = state.get("weights")
    try:
        check_shape(state.get("record"), _RECORD_SHAPE, "record")
        if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
        ):
            raise ValueError("weights: expected a state dict of tensors")
    except ValueError as error:
        raise ValueError(
            f"checkpoint {path}: not a job this run can reuse ({error}); delete it and its "
            ".sha256 file"
        ) from None
    return state


# What run_mesh and summarise_mesh_runs read of a kept job's record.
_RECORD_SHAPE = {
    "name": str, "seed": int, "ell": NUMBER, "family": str, "depth": int, "hidden": int,
    "mask": (str, None), "aggr": (str, None), "positions": str, "num_params": int,
    "steps": NUMBER, "stopped_by": str, "train_time_s": NUMBER,
    "time_per_step_s": (NUMBER, None), "one_step_rmse": NUMBER, "rollout_rmse": NUMBER,
    "rollout_rmse_per_step": [NUMBER], "inference_s_per_step": NUMBER,
    "train_peak_extra_bytes": NUMBER, "noise_std": NUMBER,
    "plateau": {"converged": (bool, None), "moved": (NUMBER, None)},
    "curve": [{"step": NUMBER, "val_rollout_rmse": NUMBER, "train_loss": NUMBER}],
    "clock?": str, "cpu_time_s?": NUMBER,
}  # fmt: skip


def run_converged(run: dict[str, Any]) -> bool | None:
    """Whether one seed's run converged: its plateau check and, where the run has a
    ``half_budget`` run beside it, the half-budget check (``None``: a check could not run)."""
    checks = [run["plateau"]["converged"]]
    if "half_budget" in run:
        moved = run["half_budget"]["moved"]
        checks.append(None if moved is None else moved <= PLATEAU_TOLERANCE)
    return None if None in checks else all(checks)


def pair_half_budget(run: dict[str, Any], half: dict[str, Any]) -> dict[str, Any]:
    """``run`` with ``"half_budget"``: the steps, final validation rollout, test all-rollout
    RMSE of ``half`` (the same model and seed trained with half the steps) and
    :func:`~.train.half_budget_moved` between the two."""
    return {
        **run,
        "half_budget": {
            "steps": half["steps"],
            "val_rollout_rmse": half["curve"][-1]["val_rollout_rmse"] if half["curve"] else None,
            "rollout_rmse": half["rollout_rmse"],
            "moved": half_budget_moved(run["curve"], half["curve"]),
        },
    }


def summarise_mesh_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (name, ℓ), in run order: mean ± sample std over seeds of both RMSEs and of
    the cost (training time per step, inference time per step), the mean per-step rollout
    curve and validation curve, the steps taken, whether every seed converged (``None``: some
    seed's check could not run; see :func:`pair_half_budget` for the half-budget check) and
    whether a time cap stopped any seed; the model's parts, ``num_params`` and the clock of
    the first seed; memory the largest over seeds."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["name"], run["ell"]), []).append(run)
    rows = []
    for (name, ell), members in groups.items():
        first = members[0]
        curves = torch.tensor([m["rollout_rmse_per_step"] for m in members], dtype=torch.float64)
        converged = [run_converged(m) for m in members]
        halves = [m["half_budget"] for m in members if "half_budget" in m]
        lengths = {len(m["curve"]) for m in members}
        val_curve = []
        if len(lengths) == 1:
            for points in zip(*(m["curve"] for m in members)):
                val_curve.append(
                    {
                        "step": points[0]["step"],
                        "val_rollout_rmse": mean_std([p["val_rollout_rmse"] for p in points]),
                        "train_loss": mean_std([p["train_loss"] for p in points]),
                    }
                )
        per_step = [m["time_per_step_s"] for m in members if m["time_per_step_s"] is not None]
        rows.append(
            {
                "name": name,
                "ell": ell,
                **{k: first[k] for k in ("family", "depth", "hidden", "mask", "aggr", "positions")},
                "seeds": [m["seed"] for m in members],
                "num_params": first["num_params"],
                "one_step_rmse": mean_std([m["one_step_rmse"] for m in members]),
                "rollout_rmse": mean_std([m["rollout_rmse"] for m in members]),
                "rollout_rmse_per_step": curves.mean(dim=0).tolist(),
                "val_curve": val_curve,
                "converged": None if None in converged else all(converged),
                "plateau_moved": [m["plateau"]["moved"] for m in members],
                "half_budget_moved": [h["moved"] for h in halves],
                "half_budget_rollout_rmse": (
                    mean_std([h["rollout_rmse"] for h in halves]) if halves else None
                ),
                "capped": any(m["stopped_by"] == "max_seconds" for m in members),
                "steps": mean_std([m["steps"] for m in members]),
                "train_time_s": mean_std([m["train_time_s"] for m in members]),
                "time_per_step_s": mean_std(per_step) if per_step else None,
                "inference_s_per_step": mean_std([m["inference_s_per_step"] for m in members]),
                "train_peak_extra_bytes": max(m["train_peak_extra_bytes"] for m in members),
                "noise_std": first["noise_std"],
                "clock": first["clock"],
            }
        )
    return rows


def run_mesh(
    config: MeshConfig,
    device: str = "cpu",
    progress: bool = True,
    out_dir: str | Path | None = None,
    threads: int = 1,
    data_root: str | Path | None = None,
) -> dict[str, Any]:
    """Generate the data, train and evaluate every model per seed and ℓ, and the baselines.

    The generated data sets are cached in ``data_root`` (``None``: the default of
    :func:`gnnagg.data.cache_root`) when ``config.cache`` is on.

    With ``config.checkpoints`` every finished job is kept in ``out_dir`` (see
    :func:`mesh_job_path`) and reused when the run is repeated; with ``config.jobs > 1`` the
    jobs run in that many worker processes sharing ``threads`` torch threads.

    With ``config.half_budget_check`` every (ℓ, model, seed) is also trained with half the
    steps; each run then carries its ``"half_budget"`` comparison (:func:`pair_half_budget`)
    and the half-budget runs' records are returned as ``"half_budget_runs"`` (empty without).

    Returns ``{"data": [per ℓ], "runs": [per model, seed and ℓ], "half_budget_runs",
    "summary": [per model and ℓ],
    "baselines": [per baseline and ℓ], "fields": [per ℓ, 2-D only], "cpu_time_s" (this run,
    worker processes included), "cpu_time_all_runs_s" (also the CPU time of the jobs taken
    from earlier runs), "resumed_jobs", "wall_time_s", "load_average_start",
    "load_average_end"}``.
    """
    from tqdm.auto import tqdm

    if not isinstance(config, MeshConfig):
        raise TypeError(f"config: expected a MeshConfig, got {type(config).__name__}")
    if config.checkpoints and out_dir is None:
        raise ValueError("out_dir: checkpoints need the run's output folder")
    cpu_start, wall_start, load_start = time.process_time(), time.perf_counter(), _load()
    specs = {name: parse_model_name(name, config.heads) for name in config.models}
    # Every (ℓ, model, seed) is trained with the study's steps and, for the half-budget check,
    # with half of them: a job is (ℓ, model, seed, steps), run under its budget's config.
    budgets = {config.train_steps: config}
    if config.half_budget_check:
        half = config.half_budget()
        budgets[half.train_steps] = half
    data, baselines, fields = [], [], []
    records: dict[tuple[float, str, int, int], dict[str, Any]] = {}
    best: dict[float, dict[str, Any]] = {}
    pending: list[tuple[float, str, int, int]] = []
    resumed, worker_cpu = [], 0.0

    def keep(job: tuple[float, str, int, int], record: dict[str, Any], weights: Any) -> None:
        records[job] = record
        ell, name, _, steps = job
        if steps != config.train_steps:
            return
        if ell not in best or record["rollout_rmse"] < best[ell]["rmse"]:
            best[ell] = {"rmse": record["rollout_rmse"], "name": name, "weights": weights}

    def save(job: tuple[float, str, int, int], record: dict[str, Any], weights: Any) -> None:
        if config.checkpoints:
            ell, name, seed, steps = job
            state = {
                "format": MESH_CHECKPOINT_FORMAT,
                "fingerprint": _job_fingerprint(budgets[steps], ell, name, seed, device),
                "record": record,
                "weights": weights,
            }
            save_checkpoint(state, mesh_job_path(Path(out_dir), ell, name, seed, steps))

    def add_field(sim: MeshSimulation, ell: float) -> None:
        if ell in best and config.dim == 2 and sim.num_nodes <= _MAX_FIELD_NODES:
            chosen = best[ell]
            simulator = _simulator(specs[chosen["name"]], config, chosen["weights"])
            trajectory = int(sim.split("test")[0])
            fields.append(_field(sim, simulator, chosen["name"], trajectory))

    total = len(config.ells) * len(config.models) * len(config.seeds) * len(budgets)
    with tqdm(total=total, desc="mesh", unit="model", disable=not progress) as bar:
        for ell in config.ells:
            t0 = time.perf_counter()
            sim = _simulation(config, ell, data_root)
            data.append(_data_row(sim, ell, time.perf_counter() - t0))
            predictors = {
                "persistence": PersistenceBaseline,
                "mean-delta": lambda sim=sim: MeanDeltaBaseline(sim, "train"),
                "exact-solver": SolverOracle,
            }
            for name in config.baselines:
                baselines.append(_baseline_row(name, predictors[name](), sim, config))
            waiting = False
            for name in config.models:
                for seed in config.seeds:
                    for steps, job_config in budgets.items():
                        job = (ell, name, seed, steps)
                        if config.checkpoints:
                            path = mesh_job_path(Path(out_dir), *job)
                            fingerprint = _job_fingerprint(job_config, ell, name, seed, device)
                            state = _load_job(path, fingerprint)
                            if state is not None:
                                keep(job, state["record"], state["weights"])
                                resumed.append(state["record"])
                                bar.update(1)
                                continue
                        if config.jobs > 1:
                            pending.append(job)
                            waiting = True
                            continue
                        bar.set_postfix_str(f"ℓ={ell:g} {name} seed {seed} {steps} steps")
                        record, weights = _train_job(sim, name, seed, job_config, device)
                        save(job, record, weights)
                        keep(job, record, weights)
                        bar.update(1)
            if not waiting:
                add_field(sim, ell)
            del sim
        if pending:
            # Model by model (its seeds, ℓ and budgets together), in the order of `models`: a
            # run stopped part-way has kept whole rows of the models listed first.
            pending.sort(key=lambda job: (config.models.index(job[1]), config.seeds.index(job[2])))
            root = None if data_root is None else str(data_root)
            calls = [
                (ell, name, seed, dataclasses.asdict(budgets[steps]), device, root)
                for ell, name, seed, steps in pending
            ]

            def finished(index: int, result: tuple[dict[str, Any], Any]) -> None:
                nonlocal worker_cpu
                record, weights = result
                worker_cpu += record["cpu_time_s"]
                save(pending[index], record, weights)
                keep(pending[index], record, weights)

            run_in_processes(_mesh_job, calls, config.jobs, threads, bar, on_result=finished)
            for ell in dict.fromkeys(job[0] for job in pending):
                add_field(_simulation(config, ell, data_root), ell)
    fields.sort(key=lambda field: config.ells.index(field["ell"]))
    full, half = config.train_steps, config.train_steps // 2
    runs, half_runs = [], []
    for ell in config.ells:
        for name in config.models:
            for seed in config.seeds:
                run = records[(ell, name, seed, full)]
                if config.half_budget_check:
                    half_runs.append(records[(ell, name, seed, half)])
                    run = pair_half_budget(run, half_runs[-1])
                runs.append(run)
    summary = summarise_mesh_runs(runs)
    cpu_time = time.process_time() - cpu_start + worker_cpu
    return {
        "data": data,
        "runs": runs,
        "half_budget_runs": half_runs,
        "summary": summary,
        "baselines": baselines,
        "fields": fields,
        "cpu_time_s": round(cpu_time, 1),
        "cpu_time_all_runs_s": round(cpu_time + sum(r.get("cpu_time_s", 0.0) for r in resumed), 1),
        "resumed_jobs": len(resumed),
        "wall_time_s": round(time.perf_counter() - wall_start, 1),
        "load_average_start": load_start,
        "load_average_end": _load(),
    }
