r"""The mesh-simulation section: learned simulators trained on generated advection–diffusion
data, MeshGraphNet next to masked graph transformers (``gnnagg-bench mesh``).

It tests, on this machine and within its budget, the claims of Garnier et al. 2025,
"Training Transformers for Mesh-Based Simulations" (`arXiv:2508.18051
<https://arxiv.org/abs/2508.18051>`_): *the smallest masked transformer matches MeshGraphNet
while being several times faster and smaller*, and *K-hop neighbourhoods, dilated windows and
global attention lower the rollout error*.

Per value of :math:`\ell` (the diffusion length per step in mesh spacings,
:func:`gnnagg.data.mesh_simulation`; a step moves information about :math:`\ell` hops) one data
set is generated (cached, hash-checked), and every model is trained per seed with
MeshGraphNet's recipe (:mod:`gnnagg.models.simulator`, :mod:`gnnagg.bench.mesh_rollout`: Δu
targets, input noise, online normalisers, Adam with an exponentially decaying learning rate over
the budget) and evaluated on the test trajectories: the 1-step RMSE (from true states) and the
all-rollout RMSE (autoregressive over whole trajectories), mean ± sample std over seeds, with the
number of parameters, training time per epoch, inference time per step (one mesh, from batched
rollouts), and the peak memory training added. Three reference rows need no training:
persistence (:math:`u^{t+1} = u^t`), the per-node mean change of the training data
(:math:`u^{t+1} = u^t + \overline{\Delta u}`) and the exact solver (its RMSE must be 0: a check
of the evaluation itself).

Models are named ``mgn-<steps>x<hidden>`` (:class:`~gnnagg.models.MeshGraphNet` with
``steps`` message-passing steps of width ``hidden``; ``mgn-15x128`` is the paper's) and
``gt-<layers>x<hidden>-<mask>`` (:class:`~gnnagg.models.GraphTransformer`, ``heads``
heads, the node coordinates among its inputs since it has no edge features), with masks
``adjacency``, ``khop2``, ``khop2+dilated`` (``| dilated_window(4, 8, "morton")``) and
``khop2+dilated+global`` (``| global_tokens(4)``).

Configurations and their cost (CPU times with one torch thread on a shared 2-core VM, load
average about 9; a quiet core is 3-5 times faster):

* ``quick`` (``make bench``): 2-D, 1,000 nodes, 8 trajectories (6 train, 1 val, 1 test) of 20
  steps, :math:`\ell \in \{1, 4\}`, ``mgn-6x32`` and ``gt-2x32`` with three masks, 8 s of
  training per model and seed, 2 seeds: 3.3 minutes wall, 80 s of CPU (measured at load
  average 7; the report prints it). At this budget the models reach the trivial baselines at
  best: the run checks the pipeline and shows the cost side of the claims, not their accuracy
  side.
* ``full``: the 2-D study, 10,000 nodes, 50 trajectories of 100 steps, :math:`\ell \in
  \{1, 6\}`, ``mgn-15x128``, ``mgn-6x64`` and ``gt`` at 2x32 (four masks), 4x64 (two) and
  8x128, 300 CPU-s of training per model and seed, 3 seeds, evaluated on one test
  trajectory (100 rollout steps, and one-step predictions from every 5th step).
  Measured on a 2-core Xeon (seeds 0 and 1): 1.9-2.0 CPU-hours per seed, 5-7 CPU-minutes per job
  and 12-13 for ``mgn-15x128`` (3-4 s per inference step at 10k nodes); about 6 CPU-hours
  for the three seeds, 3 hours of wall time with ``--jobs 2`` (the report prints the
  measured CPU time).
  Its data: about 25 s per :math:`\ell` to generate, 200 MB each in the cache.
  The suite keeps every finished (ℓ, model, seed) job in ``OUT/checkpoints/`` (``MeshConfig.
  checkpoints``), so the study can be spread over several runs into the same ``--out``, and
  ``--jobs 2 --threads 2`` trains two jobs at once on two cores.
  ``mgn-15x128`` costs about 45 MFLOP per node and training step (0.9 TFLOP per batch of two
  10k-node meshes), so 300 s on this CPU buy it only a handful of steps: a GPU
  (``--device cuda``) is what makes the large models' numbers meaningful.
* 3-D (``gnnagg-bench mesh --dim 3 --nodes 30000 --device cuda``): the data take about 20 s
  per trajectory on one CPU core (one sparse LU each), about 20 minutes for 50 trajectories,
  12 MB per trajectory; ``mgn-15x128`` then needs about 0.1 GFLOP per node and training step
  (14 edges per node; 3 TFLOP per 30k-node mesh): minutes per epoch on a GPU (estimated),
  days on this CPU. Larger meshes
  are accepted up to the data generator's limits (3-D: 200,000 nodes).
* ``smoke``: 300 nodes, 4 trajectories of 5 steps, one small model of each kind, one epoch:
  seconds.

The field pictures (``tripcolor`` of the predicted field next to the true one and their
difference) are drawn for 2-D runs, from the best model at each :math:`\ell`.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..jobs import MAX_JOBS
from ..section import ReportBlock, RunContext, Section
from ..validation import (
    NUMBER,
    STATS,
    check_bool,
    check_finite,
    check_int,
    check_seeds,
    check_shape,
    format_bytes,
)

__all__ = [
    "MESH_BASELINES",
    "MESH_CHECKPOINT_FORMAT",
    "MESH_MASKS",
    "MeshConfig",
    "MeshSection",
    "claims_lines",
    "mesh_job_path",
    "mesh_table",
    "parse_model_name",
    "run_mesh",
]

MESH_MASKS: tuple[str, ...] = ("adjacency", "khop2", "khop2+dilated", "khop2+dilated+global")
MESH_BASELINES: tuple[str, ...] = ("persistence", "mean-delta", "exact-solver")
_BASELINE_LABELS = {
    "persistence": "persistence (u' = u)",
    "mean-delta": "mean Δu per node",
    "exact-solver": "exact solver (check: 0)",
}
_MGN = re.compile(r"mgn-(\d{1,4})x(\d{1,5})")
_GT = re.compile(r"gt-(\d{1,4})x(\d{1,5})-(" + "|".join(re.escape(m) for m in MESH_MASKS) + ")")
_MAX_DEPTH, _MAX_WIDTH = 64, 4096
# The data generator's node limits per dimension (gnnagg.data.meshes.channel_mesh).
_NODE_LIMITS = {2: (200, 2_000_000), 3: (1_000, 200_000)}
# The stored field u [T, steps + 1, N] (float32) is refused above 4 GiB by the generator; the
# same bound here makes the error name this section's fields.
_MAX_FIELD_BYTES = 4 * 2**30
# Fields are stored in results.json for the picture only up to this many nodes.
_MAX_FIELD_NODES = 50_000

QUICK_MODELS = ("mgn-6x32", "gt-2x32-adjacency", "gt-2x32-khop2", "gt-2x32-khop2+dilated+global")
FULL_MODELS = (
    "mgn-15x128",
    "mgn-6x64",
    "gt-2x32-adjacency",
    "gt-2x32-khop2",
    "gt-2x32-khop2+dilated",
    "gt-2x32-khop2+dilated+global",
    "gt-4x64-adjacency",
    "gt-4x64-khop2+dilated+global",
    "gt-8x128-adjacency",
)


def parse_model_name(name: Any, heads: int = 4) -> dict[str, Any]:
    """``{"family": "mgn", "depth", "hidden"}`` or ``{"family": "gt", "depth", "hidden",
    "mask"}`` for a model name (see the module docstring); ``ValueError`` naming ``models``."""
    if not isinstance(name, str):
        raise ValueError(f"models: expected model names, got {name!r}")
    for family, pattern in (("mgn", _MGN), ("gt", _GT)):
        match = pattern.fullmatch(name)
        if match is None:
            continue
        depth, hidden = int(match.group(1)), int(match.group(2))
        if not 1 <= depth <= _MAX_DEPTH or not 1 <= hidden <= _MAX_WIDTH:
            raise ValueError(
                f"models: {name!r}: depth must lie in [1, {_MAX_DEPTH}] and width in "
                f"[1, {_MAX_WIDTH}]"
            )
        spec: dict[str, Any] = {"family": family, "depth": depth, "hidden": hidden}
        if family == "gt":
            if hidden % heads:
                raise ValueError(
                    f"models: {name!r}: width {hidden} is not divisible by heads={heads}"
                )
            spec["mask"] = match.group(3)
        return spec
    raise ValueError(
        f"models: unknown {name!r}; expected mgn-<steps>x<width> (e.g. mgn-15x128) or "
        f"gt-<layers>x<width>-<mask> (e.g. gt-2x32-khop2) with a mask in {list(MESH_MASKS)}"
    )


@dataclass
class MeshConfig:
    """Mesh simulation: ``dim``-D data of ``nodes`` nodes, ``trajectories`` trajectories (80 /
    10 / 10 % train / val / test, at least one each) of ``steps`` steps per value of ``ells``
    (generated from ``data_seed``; kept in the data cache when ``cache``); every model of
    ``models`` trained per seed of ``seeds`` for ``epochs`` passes over the training
    transitions and/or ``max_seconds`` seconds (at least one budget) counted by
    ``budget_clock`` (see :class:`~gnnagg.bench.mesh_rollout.MeshTrainingConfig`: ``"auto"``
    counts CPU seconds of the job's process on the CPU, so that other load on a shared machine
    does not shrink the budget, and wall seconds on a GPU), ``batch_size`` meshes per
    step, Adam from ``lr`` down to ``lr_final``, input noise ``noise_std``; evaluated on the
    first ``eval_trajectories`` test trajectories (``None``: all) next to the ``baselines``,
    the 1-step RMSE from every ``one_step_stride``-th step of them (the rollout covers every
    step).

    ``jobs``: train up to this many (ℓ, model, seed) jobs at once, each in its own process with
    ``max(1, threads // jobs)`` torch threads (1: one after another in this process).
    ``checkpoints``: keep every finished job (its record and trained weights) in the run's
    output folder, and take it from there instead of training it again when the run is
    repeated into the same folder with the same settings (models, seeds and ℓ may be added).
    """

    dim: int = 2
    nodes: int = 10_000
    trajectories: int = 50
    steps: int = 100
    ells: tuple[float, ...] = (1.0, 6.0)
    models: tuple[str, ...] = FULL_MODELS
    heads: int = 4
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int | None = None
    max_seconds: float | None = 300.0
    budget_clock: str = "auto"
    batch_size: int = 2
    lr: float = 1e-3
    lr_final: float = 1e-5
    noise_std: float = 0.01
    warmup_batches: int = 20
    eval_trajectories: int | None = 2
    one_step_stride: int = 1
    baselines: tuple[str, ...] = MESH_BASELINES
    data_seed: int = 0
    cache: bool = True
    jobs: int = 1
    checkpoints: bool = False

    def __post_init__(self) -> None:
        self.dim = check_int(self.dim, "dim", 2, 3)
        low, high = _NODE_LIMITS[self.dim]
        self.nodes = check_int(self.nodes, "nodes", low, high)
        self.trajectories = check_int(self.trajectories, "trajectories", 3, 100_000)
        self.steps = check_int(self.steps, "steps", 1, 100_000)
        field_bytes = 4 * self.nodes * self.trajectories * (self.steps + 1)
        if field_bytes > _MAX_FIELD_BYTES:
            raise ValueError(
                f"nodes, trajectories, steps: the stored field would take "
                f"{format_bytes(field_bytes)}, more than the generator's "
                f"{format_bytes(_MAX_FIELD_BYTES)}"
            )
        if isinstance(self.ells, (str, bytes)) or not isinstance(self.ells, (list, tuple)):
            raise ValueError(f"ells: expected a list of numbers, got {self.ells!r}")
        if not self.ells:
            raise ValueError("ells: needs at least one value")
        self.ells = tuple(check_finite(e, "ells", positive=True, maximum=16.0) for e in self.ells)
        if len(set(self.ells)) != len(self.ells):
            raise ValueError(f"ells: values repeat: {list(self.ells)}")
        self.heads = check_int(self.heads, "heads", 1, 256)
        if isinstance(self.models, (str, bytes)) or not isinstance(self.models, (list, tuple)):
            raise ValueError(f"models: expected a list of model names, got {self.models!r}")
        self.models = tuple(self.models)
        for name in self.models:
            parse_model_name(name, self.heads)
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models: names repeat: {list(self.models)}")
        self.seeds = check_seeds(self.seeds)
        if self.epochs is None and self.max_seconds is None:
            raise ValueError("epochs, max_seconds: set at least one training budget")
        if self.epochs is not None:
            self.epochs = check_int(self.epochs, "epochs", 1, 1_000_000)
        if self.max_seconds is not None:
            self.max_seconds = check_finite(
                self.max_seconds, "max_seconds", positive=True, maximum=7 * 86400
            )
        from ..mesh_rollout import check_budget_clock

        check_budget_clock(self.budget_clock)
        self.batch_size = check_int(self.batch_size, "batch_size", 1, 4096)
        self.lr = check_finite(self.lr, "lr", positive=True, maximum=10.0)
        self.lr_final = check_finite(self.lr_final, "lr_final", positive=True, maximum=10.0)
        if self.lr_final > self.lr:
            raise ValueError(f"lr_final: expected at most lr={self.lr}, got {self.lr_final}")
        self.noise_std = check_finite(self.noise_std, "noise_std", maximum=100.0)
        self.warmup_batches = check_int(self.warmup_batches, "warmup_batches", 0, 1_000_000)
        if self.eval_trajectories is not None:
            self.eval_trajectories = check_int(self.eval_trajectories, "eval_trajectories", 1)
        self.one_step_stride = check_int(self.one_step_stride, "one_step_stride", 1, self.steps)
        if isinstance(self.baselines, (str, bytes)) or not isinstance(
            self.baselines, (list, tuple)
        ):
            raise ValueError(f"baselines: expected a list of names, got {self.baselines!r}")
        self.baselines = tuple(self.baselines)
        unknown = [b for b in self.baselines if b not in MESH_BASELINES]
        if unknown:
            raise ValueError(f"baselines: unknown {unknown}; valid are {list(MESH_BASELINES)}")
        self.data_seed = check_int(self.data_seed, "data_seed", 0, 2**32 - 1)
        self.cache = check_bool(self.cache, "cache")
        self.jobs = check_int(self.jobs, "jobs", 1, MAX_JOBS)
        self.checkpoints = check_bool(self.checkpoints, "checkpoints")


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _build_model(spec: dict[str, Any], dim: int, heads: int) -> Any:
    from ...models import (
        EdgeFeatureModel,
        GraphTransformer,
        MeshGraphNet,
        NodeFeatureModel,
        edge_input_channels,
        node_input_channels,
    )
    from ..studies.attention.run import make_mask

    if spec["family"] == "mgn":
        model = MeshGraphNet(
            node_input_channels(dim), spec["hidden"], 1, edge_dim=edge_input_channels(dim),
            num_layers=spec["depth"],
        )  # fmt: skip
        return EdgeFeatureModel(model)
    model = GraphTransformer(
        node_input_channels(dim, position_features=True), spec["hidden"], 1,
        heads=heads, num_layers=spec["depth"], mask=make_mask(spec["mask"]),
    )  # fmt: skip
    return NodeFeatureModel(model)


def _simulation(config: MeshConfig, ell: float) -> Any:
    from ...data import mesh_simulation

    return mesh_simulation(
        config.dim, config.nodes, config.trajectories, config.steps, ell=ell,
        seed=config.data_seed, cache=config.cache,
    )  # fmt: skip


def _baseline_row(name: str, predictor: Any, sim: Any, config: MeshConfig) -> dict[str, Any]:
    from ...models import one_step_rmse, rollout_rmse

    limit = config.eval_trajectories
    rolled = rollout_rmse(predictor, sim, "test", batch_size=8, max_trajectories=limit)
    return {
        "name": name,
        "ell": sim.config.ell,
        "one_step_rmse": one_step_rmse(
            predictor, sim, "test", 8, max_trajectories=limit, stride=config.one_step_stride
        ),
        "rollout_rmse": rolled["rmse"],
        "rollout_rmse_per_step": rolled["rmse_per_step"],
        "inference_s_per_step": rolled["seconds_per_graph_step"],
    }


def _rounded(values: Any, digits: int = 5) -> list[Any]:
    return [float(f"{v:.{digits}g}") for v in values]


def _field(sim: Any, simulator: Any, name: str, trajectory: int) -> dict[str, Any]:
    from ...models import rollout

    predicted, _ = rollout(simulator, sim, [trajectory])
    step = sim.num_steps
    return {
        "ell": sim.config.ell,
        "model": name,
        "trajectory": trajectory,
        "step": step,
        "pos": [_rounded(p, 6) for p in sim.mesh.pos.tolist()],
        "cells": sim.mesh.cells.tolist(),
        "true": _rounded(sim.u[trajectory, step].tolist()),
        "predicted": _rounded(predicted[0, step].tolist()),
    }


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


MESH_CHECKPOINT_FORMAT = "gnnagg-mesh-job/1"
# MeshConfig fields that change what one (ℓ, model, seed) job computes: a kept job is reused
# only under the same values (and the same device, whose timings it holds).
_JOB_FIELDS = (
    "dim", "nodes", "trajectories", "steps", "heads", "epochs", "max_seconds", "budget_clock",
    "batch_size", "lr", "lr_final", "noise_std", "warmup_batches", "eval_trajectories",
    "one_step_stride", "data_seed",
)  # fmt: skip


def mesh_job_path(out_dir: Path, ell: float, name: str, seed: int) -> Path:
    """Where the job ``(ell, name, seed)`` of a run with ``checkpoints`` is kept in
    ``out_dir``."""
    return Path(out_dir) / "checkpoints" / f"mesh-ell{ell:g}-{name}-seed{seed}.pt"


def _job_fingerprint(config: MeshConfig, ell: float, name: str, seed: int, device: str) -> str:
    from ..checkpoints import settings_digest

    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    return settings_digest(config, _JOB_FIELDS, ell=ell, name=name, seed=seed, device=device_type)


def _simulator(spec: dict[str, Any], config: MeshConfig, state: dict[str, Any] | None = None):
    from ...models import MeshSimulator

    simulator = MeshSimulator(
        _build_model(spec, config.dim, config.heads),
        config.dim,
        position_features=spec["family"] == "gt",
    )
    if state is not None:
        simulator.load_state_dict(state)
    return simulator


def _train_job(
    sim: Any, name: str, seed: int, config: MeshConfig, device: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and evaluate one model for one seed on ``sim``: ``(record, weights)`` (the
    weights on the CPU)."""
    from ..mesh_rollout import MeshTrainingConfig, train_and_evaluate

    spec = parse_model_name(name, config.heads)
    training = MeshTrainingConfig(
        epochs=config.epochs, max_seconds=config.max_seconds, budget_clock=config.budget_clock,
        batch_size=config.batch_size, lr=config.lr, lr_final=config.lr_final,
        noise_std=config.noise_std, warmup_batches=config.warmup_batches, seed=seed,
    )  # fmt: skip
    kept: list[Any] = []
    cpu_start = time.process_time()
    record = train_and_evaluate(
        name,
        lambda: _build_model(spec, config.dim, config.heads),
        sim,
        training,
        position_features=spec["family"] == "gt",
        device=device,
        max_trajectories=config.eval_trajectories,
        on_trained=kept.append,
        one_step_stride=config.one_step_stride,
    )
    record.pop("config")
    record["family"] = spec["family"]
    record["mask"] = spec.get("mask")
    record["cpu_time_s"] = round(time.process_time() - cpu_start, 1)
    weights = {k: v.detach().cpu() for k, v in kept[0].state_dict().items()}
    return record, weights


def _mesh_job(
    ell: float,
    name: str,
    seed: int,
    config_data: dict[str, Any],
    device: str,
    on_epoch: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One (ℓ, model, seed) job of :func:`run_mesh` in a worker process of
    :func:`~gnnagg.bench.jobs.run_in_processes`."""
    from ..jobs import worker_memo

    config = MeshConfig(**config_data)
    sim = worker_memo(("mesh", ell), lambda: _simulation(config, ell))
    result = _train_job(sim, name, seed, config, device)
    if on_epoch is not None:
        on_epoch(1)
    return result


def _load_job(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """The kept job at ``path`` if it exists and was computed with the same settings."""
    from ..checkpoints import load_checkpoint

    if not path.exists():
        return None
    state = load_checkpoint(path, MESH_CHECKPOINT_FORMAT)
    return state if state.get("fingerprint") == fingerprint else None


def run_mesh(
    config: MeshConfig,
    device: str = "cpu",
    progress: bool = True,
    out_dir: str | Path | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Generate the data, train and evaluate every model per seed and ℓ, and the baselines.

    With ``config.checkpoints`` every finished job is kept in ``out_dir`` (see
    :func:`mesh_job_path`) and reused when the run is repeated; with ``config.jobs > 1`` the
    jobs run in that many worker processes sharing ``threads`` torch threads.

    Returns ``{"data": [per ℓ], "runs": [per model, seed and ℓ], "summary": [per model and ℓ],
    "baselines": [per baseline and ℓ], "fields": [per ℓ, 2-D only], "cpu_time_s" (this run,
    worker processes included), "cpu_time_all_runs_s" (also the CPU time of the jobs taken
    from earlier runs), "resumed_jobs", "wall_time_s", "load_average_start",
    "load_average_end"}``.
    """
    import dataclasses

    from tqdm.auto import tqdm

    from ...models import MeanDeltaBaseline, PersistenceBaseline, SolverOracle
    from ..checkpoints import save_checkpoint
    from ..jobs import run_in_processes
    from ..mesh_rollout import summarise_mesh_runs

    if not isinstance(config, MeshConfig):
        raise TypeError(f"config: expected a MeshConfig, got {type(config).__name__}")
    if config.checkpoints and out_dir is None:
        raise ValueError("out_dir: checkpoints need the run's output folder")
    cpu_start, wall_start, load_start = time.process_time(), time.perf_counter(), _load()
    specs = {name: parse_model_name(name, config.heads) for name in config.models}
    data, baselines, fields = [], [], []
    records: dict[tuple[float, str, int], dict[str, Any]] = {}
    best: dict[float, dict[str, Any]] = {}
    pending: list[tuple[float, str, int]] = []
    resumed, worker_cpu = [], 0.0

    def keep(ell: float, name: str, seed: int, record: dict[str, Any], weights: Any) -> None:
        records[(ell, name, seed)] = record
        if ell not in best or record["rollout_rmse"] < best[ell]["rmse"]:
            best[ell] = {"rmse": record["rollout_rmse"], "name": name, "weights": weights}

    def save(ell: float, name: str, seed: int, record: dict[str, Any], weights: Any) -> None:
        if config.checkpoints:
            save_checkpoint(
                {
                    "format": MESH_CHECKPOINT_FORMAT,
                    "fingerprint": _job_fingerprint(config, ell, name, seed, device),
                    "record": record,
                    "weights": weights,
                },
                mesh_job_path(Path(out_dir), ell, name, seed),
            )

    def add_field(sim: Any, ell: float) -> None:
        if ell in best and config.dim == 2 and sim.num_nodes <= _MAX_FIELD_NODES:
            chosen = best[ell]
            simulator = _simulator(specs[chosen["name"]], config, chosen["weights"])
            trajectory = int(sim.split("test")[0])
            fields.append(_field(sim, simulator, chosen["name"], trajectory))

    total = len(config.ells) * len(config.models) * len(config.seeds)
    with tqdm(total=total, desc="mesh", unit="model", disable=not progress) as bar:
        for ell in config.ells:
            t0 = time.perf_counter()
            sim = _simulation(config, ell)
            data.append({
                "ell": ell, "nodes": sim.num_nodes, "edges": int(sim.edge_index.shape[1]),
                "spacing": float(sim.mesh.spacing),
                "trajectories": {k: len(v) for k, v in sim.splits.items()},
                "steps": sim.num_steps, "load_s": round(time.perf_counter() - t0, 2),
            })  # fmt: skip
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
                    if config.checkpoints:
                        path = mesh_job_path(Path(out_dir), ell, name, seed)
                        state = _load_job(path, _job_fingerprint(config, ell, name, seed, device))
                        if state is not None:
                            keep(ell, name, seed, state["record"], state["weights"])
                            resumed.append(state["record"])
                            bar.update(1)
                            continue
                    if config.jobs > 1:
                        pending.append((ell, name, seed))
                        waiting = True
                        continue
                    bar.set_postfix_str(f"ℓ={ell:g} {name} seed {seed}")
                    record, weights = _train_job(sim, name, seed, config, device)
                    save(ell, name, seed, record, weights)
                    keep(ell, name, seed, record, weights)
                    bar.update(1)
            if not waiting:
                add_field(sim, ell)
            del sim
        if pending:
            # Seed by seed, so that a run stopped part-way has kept whole seeds of the study.
            pending.sort(key=lambda job: config.seeds.index(job[2]))
            config_data = dataclasses.asdict(config)
            calls = [(ell, name, seed, config_data, device) for ell, name, seed in pending]

            def finished(index: int, result: tuple[dict[str, Any], Any]) -> None:
                nonlocal worker_cpu
                record, weights = result
                worker_cpu += record["cpu_time_s"]
                save(*pending[index], record, weights)
                keep(*pending[index], record, weights)

            run_in_processes(_mesh_job, calls, config.jobs, threads, bar, on_result=finished)
            for ell in dict.fromkeys(ell for ell, _, _ in pending):
                add_field(_simulation(config, ell), ell)
    fields.sort(key=lambda field: config.ells.index(field["ell"]))
    runs = [
        records[(ell, name, seed)]
        for ell in config.ells
        for name in config.models
        for seed in config.seeds
    ]
    summary = summarise_mesh_runs(runs)
    for row in summary:
        spec = specs[row["name"]]
        row["family"], row["mask"] = spec["family"], spec.get("mask")
        row["depth"], row["hidden"] = spec["depth"], spec["hidden"]
    cpu_time = time.process_time() - cpu_start + worker_cpu
    return {
        "data": data,
        "runs": runs,
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


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------

_SUMMARY_ROW = {
    "name": str,
    "ell": NUMBER,
    "family": str,
    "num_params": int,
    "one_step_rmse": STATS,
    "rollout_rmse": STATS,
    "rollout_rmse_per_step": [NUMBER],
    "train_time_s": STATS,
    "time_per_epoch_s": (STATS, None),
    "inference_s_per_step": STATS,
    "train_peak_extra_bytes": NUMBER,
    "steps": STATS,
    "clock?": str,
}
_BASELINE_ROW = {
    "name": str,
    "ell": NUMBER,
    "one_step_rmse": NUMBER,
    "rollout_rmse": NUMBER,
    "rollout_rmse_per_step": [NUMBER],
    "inference_s_per_step": NUMBER,
}
_FIELD = {
    "ell": NUMBER,
    "model": str,
    "trajectory": int,
    "step": int,
    "pos": [[NUMBER]],
    "cells": [[int]],
    "true": [NUMBER],
    "predicted": [NUMBER],
}
_RESULT_SHAPE = {
    "data": [{"ell": NUMBER, "nodes": int, "edges": int}],
    "summary": [_SUMMARY_ROW],
    "baselines": [_BASELINE_ROW],
    "fields?": [_FIELD],
    "cpu_time_s": NUMBER,
    "cpu_time_all_runs_s?": NUMBER,
    "resumed_jobs?": int,
    "wall_time_s": NUMBER,
}


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.3g}"


def _stats(stats: dict[str, float], digits: int = 3) -> str:
    return f"{stats['mean']:.{digits}g} ± {stats['std']:.2g}"


def _time_unit(rows: list[dict[str, Any]]) -> str:
    """``"CPU-s"`` when every row's training was timed by the process's CPU clock."""
    return "CPU-s" if rows and all(r.get("clock") == "cpu" for r in rows) else "s"


def mesh_table(result: dict[str, Any], ell: float) -> str:
    """Markdown: the baselines, then every model at ``ell`` (parameters, training, inference,
    memory, both RMSEs as mean ± std over seeds)."""
    unit = _time_unit([r for r in result["summary"] if r["ell"] == ell])
    lines = [
        f"| model | parameters | train {unit}/epoch | train steps | train {unit} | "
        "inference ms/step | train peak extra memory | 1-step RMSE | rollout RMSE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in result["baselines"]:
        if b["ell"] != ell:
            continue
        lines.append(
            f"| *{_BASELINE_LABELS.get(b['name'], b['name'])}* | 0 | - | - | - | "
            f"{_ms(b['inference_s_per_step'])} | - | {b['one_step_rmse']:.3g} | "
            f"{b['rollout_rmse']:.3g} |"
        )
    for r in result["summary"]:
        if r["ell"] != ell:
            continue
        epoch = r["time_per_epoch_s"]
        lines.append(
            f"| {r['name']} | {r['num_params']:,} | "
            f"{_stats(epoch) if epoch else '-'} | {r['steps']['mean']:.0f} | "
            f"{r['train_time_s']['mean']:.3g} | {_ms(r['inference_s_per_step']['mean'])} | "
            f"{format_bytes(r['train_peak_extra_bytes'])} | {_stats(r['one_step_rmse'])} | "
            f"{_stats(r['rollout_rmse'])} |"
        )
    return "\n".join(lines)


def _verdict(supported: bool | None) -> str:
    return {True: "**supported**", False: "**not supported**", None: "**not resolved**"}[supported]


def _lower(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """Whether ``a``'s rollout RMSE is below ``b``'s beyond the spread over seeds (``None``:
    within it)."""
    gap = b["rollout_rmse"]["mean"] - a["rollout_rmse"]["mean"]
    noise = a["rollout_rmse"]["std"] + b["rollout_rmse"]["std"]
    if abs(gap) <= noise:
        return None
    return gap > 0


def claims_lines(result: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The paragraph that says which of the paper's claims this run supports, per ℓ, from the
    numbers (thresholds: *matches* = rollout RMSE within 10 % of MeshGraphNet's or lower;
    *several times* = at least 2x; *lower* = by more than the sum of the two spreads over
    seeds), with the run's budget."""
    budget = (
        f"{config['dim']}-D, {config['nodes']:,} nodes, {config['trajectories']} trajectories "
        f"of {config['steps']} steps, "
        + (f"{config['epochs']} epoch(s)" if config.get("epochs") else "")
        + (" or " if config.get("epochs") and config.get("max_seconds") else "")
        + (
            f"{config['max_seconds']:g} {_time_unit(result['summary'])} of training"
            if config.get("max_seconds")
            else ""
        )
        + f" per model and seed, {len(config['seeds'])} seed(s); the section took "
        f"{result['cpu_time_s'] / 60:.1f} CPU-minutes ({result['wall_time_s'] / 60:.1f} min "
        "wall)"
    )
    if result.get("resumed_jobs"):
        budget += (
            f", after {result['resumed_jobs']} job(s) kept from earlier runs into this folder: "
            f"{result['cpu_time_all_runs_s'] / 60:.1f} CPU-minutes over all runs"
        )
    lines = [f"**What this run says about the paper's claims** (budget: {budget}).", ""]
    for ell in [d["ell"] for d in result["data"]]:
        rows = [r for r in result["summary"] if r["ell"] == ell]
        base = {b["name"]: b for b in result["baselines"] if b["ell"] == ell}
        parts: list[str] = []
        trivial = [base[k] for k in ("persistence", "mean-delta") if k in base]
        best = min(trivial, key=lambda b: b["rollout_rmse"]) if trivial else None
        if best is not None and rows:
            label = f"the {_BASELINE_LABELS[best['name']]} baseline ({best['rollout_rmse']:.3g})"
            beat = [r for r in rows if r["rollout_rmse"]["mean"] < best["rollout_rmse"]]
            if not beat:
                parts.append(
                    f"no model beats {label} over the rollout: at this budget the models have "
                    "not learned more of the dynamics than a trivial predictor, so the "
                    "comparisons below are between undertrained models"
                )
            else:
                parts.append(f"{len(beat)} of {len(rows)} models beat {label} over the rollout")
        mgns = [r for r in rows if r["family"] == "mgn"]
        gts = [r for r in rows if r["family"] == "gt"]
        if mgns and gts:
            mgn = max(mgns, key=lambda r: r["num_params"])
            small = min(gts, key=lambda r: (r["num_params"], r["rollout_rmse"]["mean"]))
            ratio_err = small["rollout_rmse"]["mean"] / max(mgn["rollout_rmse"]["mean"], 1e-300)
            faster = mgn["inference_s_per_step"]["mean"] / max(
                small["inference_s_per_step"]["mean"], 1e-300
            )
            epoch_m, epoch_s = mgn["time_per_epoch_s"], small["time_per_epoch_s"]
            train_faster = (
                epoch_m["mean"] / max(epoch_s["mean"], 1e-300) if epoch_m and epoch_s else None
            )
            smaller = mgn["num_params"] / max(small["num_params"], 1)
            matches = ratio_err <= 1.1
            quick = faster >= 2 and (train_faster is None or train_faster >= 2) and smaller >= 2
            # Matching a reference that has not learned more than a trivial predictor says
            # nothing about accuracy: the claim's accuracy side stays open.
            untrained = best is not None and mgn["rollout_rmse"]["mean"] >= best["rollout_rmse"]
            verdict = None if untrained and quick else matches and quick
            train_text = f", training epoch {train_faster:.2g}x" if train_faster else ""
            parts.append(
                f"claim 1 (the smallest masked transformer matches MeshGraphNet while several "
                f"times faster and smaller) is {_verdict(verdict)}: `{small['name']}` "
                f"(the smallest transformer, its best mask) has {ratio_err:.2g}x the rollout "
                f"RMSE of `{mgn['name']}` (the largest "
                f"MeshGraphNet here); speed-ups (MeshGraphNet's time over the transformer's): "
                f"inference step {faster:.2g}x{train_text}; {smaller:.2g}x fewer parameters"
                + (
                    f"; but `{mgn['name']}` does not beat {label} in this budget "
                    f"({mgn['steps']['mean']:.0f} training steps), so matching it says nothing "
                    "about accuracy"
                    if untrained
                    else ""
                )
            )
        chains = _mask_chains(gts)
        if chains:
            texts = []
            verdicts = []
            for size, by_mask in chains.items():
                adjacency = by_mask["adjacency"]
                wider = [m for m in MESH_MASKS[1:] if m in by_mask]
                outcome = [_lower(by_mask[m], adjacency) for m in wider]
                verdicts += outcome
                texts.append(
                    f"at {size}, adjacency {adjacency['rollout_rmse']['mean']:.3g} vs "
                    + ", ".join(
                        f"{m} {by_mask[m]['rollout_rmse']['mean']:.3g} "
                        f"({ {True: 'lower', False: 'higher', None: 'within noise'}[o] })"
                        for m, o in zip(wider, outcome)
                    )
                )
            overall = (
                True
                if all(v is True for v in verdicts)
                else (False if any(v is False for v in verdicts) else None)
            )
            parts.append(
                f"claim 2 (K-hop, dilated windows and global attention lower the rollout "
                f"error) is {_verdict(overall)}: " + "; ".join(texts)
            )
        elif gts:
            parts.append(
                "claim 2 is not tested: no transformer size was run with the adjacency "
                "mask and a wider one"
            )
        lines.append(f"* ℓ = {ell:g}: " + "; ".join(parts) + ".")
    lines += [
        "",
        "Thresholds: *matches* means a rollout RMSE at most 10 % above MeshGraphNet's; "
        "*several times* at least 2x; *lower* by more than the sum of the two spreads over "
        "seeds (else *not resolved*). A short budget favours small, fast models; the paper "
        "trains for days on GPUs, so a claim this run does not support is not refuted by it.",
        "",
    ]
    return lines


def _mask_chains(gts: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Transformer sizes run with the adjacency mask and at least one wider mask."""
    sizes: dict[str, dict[str, dict[str, Any]]] = {}
    for r in gts:
        sizes.setdefault(f"{r['depth']}x{r['hidden']}", {})[r["mask"]] = r
    return {k: v for k, v in sizes.items() if "adjacency" in v and len(v) > 1}


def _plots(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    from ..mesh_rollout import plot_field_arrays

    files: dict[str, Path] = {}
    ells = [d["ell"] for d in result["data"]]
    if not ells:
        return files
    fig, axes = plt.subplots(1, len(ells), figsize=(6 * len(ells), 4.2), dpi=110, squeeze=False)
    for ax, ell in zip(axes[0], ells):
        for b in result["baselines"]:
            if b["ell"] == ell and b["name"] != "exact-solver":
                curve = b["rollout_rmse_per_step"]
                ax.plot(range(1, len(curve) + 1), curve, "k--" if b["name"] == "persistence"
                        else "k:", label=_BASELINE_LABELS[b["name"]])  # fmt: skip
        for r in result["summary"]:
            if r["ell"] == ell:
                curve = r["rollout_rmse_per_step"]
                ax.plot(range(1, len(curve) + 1), curve, label=r["name"])
        ax.set_xlabel("time step")
        ax.set_ylabel("rollout RMSE (mean over seeds)")
        ax.set_title(f"ℓ = {ell:g}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    files["mesh_rollout"] = out_dir / "mesh_rollout.png"
    fig.savefig(files["mesh_rollout"])
    plt.close(fig)

    fig, axes = plt.subplots(1, len(ells), figsize=(6 * len(ells), 4.2), dpi=110, squeeze=False)
    for ax, ell in zip(axes[0], ells):
        for b in result["baselines"]:
            if b["ell"] == ell and b["name"] == "persistence":
                ax.axhline(b["rollout_rmse"], color="k", ls="--", label="persistence")
        for r in result["summary"]:
            if r["ell"] != ell:
                continue
            x, y = r["train_time_s"]["mean"], r["rollout_rmse"]["mean"]
            ax.errorbar([x], [y], yerr=[r["rollout_rmse"]["std"]], fmt="o" if r["family"] ==
                        "mgn" else "s", capsize=3, label=r["name"])  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("training time per model (s, mean over seeds)")
        ax.set_ylabel("rollout RMSE")
        ax.set_title(f"cost–accuracy, ℓ = {ell:g}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    files["mesh_cost_accuracy"] = out_dir / "mesh_cost_accuracy.png"
    fig.savefig(files["mesh_cost_accuracy"])
    plt.close(fig)

    for field in result.get("fields", []):
        key = f"mesh_field_ell{field['ell']:g}".replace(".", "_")
        files[key] = plot_field_arrays(
            field["pos"], field["cells"], field["true"], field["predicted"],
            out_dir / f"{key}.png",
            f"{field['model']}, ℓ = {field['ell']:g}: trajectory {field['trajectory']}, "
            f"step {field['step']} of the rollout",
        )  # fmt: skip
    return files


class MeshSection(Section):
    """Learned mesh simulators (:class:`MeshConfig`)."""

    name: ClassVar[str] = "mesh"
    title: ClassVar[str] = "Mesh simulation: MeshGraphNet vs masked graph transformers"
    config_type: ClassVar[type] = MeshConfig
    command: ClassVar[str | None] = "mesh"
    command_help: ClassVar[str] = "learned mesh simulators: MeshGraphNet vs graph transformers"
    command_description: ClassVar[str] = (
        "Next-step training of MeshGraphNet and masked GraphTransformers on generated "
        "advection-diffusion data at one or more diffusion lengths per step (ell); 1-step and "
        "all-rollout RMSE next to persistence, training and inference cost. Models: "
        "mgn-<steps>x<width>, gt-<layers>x<width>-<mask> with masks "
        + ", ".join(MESH_MASKS)
        + ". The default is the full 2-D study (hours on a CPU)."
    )
    result_keys: ClassVar[str] = (
        "`mesh` {`data`, `runs`, `summary`, `baselines`, `fields`, `cpu_time_s`}"
    )

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> MeshConfig | None:
        if suite == "quick":
            return MeshConfig(
                nodes=1_000, trajectories=8, steps=20, ells=(1.0, 4.0), models=QUICK_MODELS,
                seeds=seeds, max_seconds=8.0, warmup_batches=5, eval_trajectories=None,
                lr_final=1e-4,
            )  # fmt: skip
        if suite == "full":
            return MeshConfig(
                seeds=seeds, eval_trajectories=1, one_step_stride=5, checkpoints=True
            )
        if suite == "smoke":
            return MeshConfig(
                nodes=300, trajectories=4, steps=5, ells=(2.0,),
                models=("mgn-2x8", "gt-1x8-khop2+dilated+global"), heads=2, seeds=seeds,
                epochs=1, max_seconds=None, warmup_batches=2, eval_trajectories=None,
                cache=False,
            )  # fmt: skip
        return None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from ..fields import positive_int

        d = MeshConfig()
        parser.add_argument("--dim", type=int, default=d.dim, help="2 or 3")
        parser.add_argument("--nodes", type=int, default=d.nodes)
        parser.add_argument("--trajectories", type=int, default=d.trajectories)
        parser.add_argument("--steps", type=int, default=d.steps, help="time steps per trajectory")
        parser.add_argument("--ells", type=float, nargs="+", default=list(d.ells),
                            help="diffusion lengths per step, in mesh spacings")  # fmt: skip
        parser.add_argument("--models", nargs="+", default=list(d.models), metavar="MODEL",
                            help="mgn-<steps>x<width> or gt-<layers>x<width>-<mask>, masks: "
                            + ", ".join(MESH_MASKS))  # fmt: skip
        parser.add_argument("--heads", type=int, default=d.heads)
        parser.add_argument("--seeds", type=positive_int, default=len(d.seeds))
        parser.add_argument("--epochs", type=int, default=None, help="(default: time budget)")
        parser.add_argument("--max-seconds", type=float, default=d.max_seconds,
                            help="training seconds per model and seed (0: no limit)")  # fmt: skip
        from ..mesh_rollout import BUDGET_CLOCKS

        parser.add_argument("--budget-clock", choices=BUDGET_CLOCKS, default=d.budget_clock,
                            help="what --max-seconds counts: cpu (this job's CPU seconds), "
                            "wall, or auto (cpu on the CPU, wall on a GPU)")  # fmt: skip
        parser.add_argument("--batch-size", type=int, default=d.batch_size)
        parser.add_argument("--lr", type=float, default=d.lr)
        parser.add_argument("--eval-trajectories", type=int, default=d.eval_trajectories,
                            help="test trajectories rolled out (0: all)")  # fmt: skip
        parser.add_argument("--one-step-stride", type=int, default=d.one_step_stride,
                            help="1-step RMSE from every this many steps")  # fmt: skip
        parser.add_argument("--baselines", nargs="*", choices=MESH_BASELINES,
                            default=list(d.baselines))  # fmt: skip
        parser.add_argument("--no-cache", action="store_true", help="do not cache the data")
        parser.add_argument(
            "--jobs", type=positive_int, default=1,
            help="training jobs at once, each a worker process with threads // jobs torch threads",
        )
        parser.add_argument("--checkpoints", action="store_true",
                            help="keep every finished job in OUT/checkpoints and reuse it when "
                            "rerun with the same --out")  # fmt: skip

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        config = MeshConfig(
            dim=args.dim, nodes=args.nodes, trajectories=args.trajectories, steps=args.steps,
            ells=tuple(args.ells), models=tuple(args.models), heads=args.heads,
            seeds=tuple(range(args.seeds)), epochs=args.epochs,
            max_seconds=args.max_seconds or None, budget_clock=args.budget_clock,
            batch_size=args.batch_size, lr=args.lr,
            lr_final=min(MeshConfig.lr_final, args.lr),
            eval_trajectories=args.eval_trajectories or None,
            one_step_stride=args.one_step_stride, baselines=tuple(args.baselines),
            cache=not args.no_cache, jobs=args.jobs, checkpoints=args.checkpoints,
        )  # fmt: skip
        return {self.name: config}

    def choices(self) -> dict[str, list[str]]:
        return {
            "mesh_models": ["mgn-<steps>x<width>", "gt-<layers>x<width>-<mask>"],
            "mesh_masks": list(MESH_MASKS),
            "mesh_baselines": list(MESH_BASELINES),
        }

    def run(self, config: MeshConfig, context: RunContext) -> dict[str, Any]:
        return run_mesh(config, context.device, context.progress, context.out_dir, context.threads)

    def check_result(self, result: Any) -> None:
        check_shape(result, _RESULT_SHAPE, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        block = ReportBlock()
        lines = block.lines
        budget = (
            " or ".join(
                ([f"{config['epochs']} epoch(s)"] if config.get("epochs") else [])
                + (
                    [f"{config['max_seconds']:g} {_time_unit(result['summary'])}"]
                    if config.get("max_seconds")
                    else []
                )
            )
            + " of training per model and seed"
        )
        lines += [
            f"MeshGraphNet-style next-step training (Δu targets, input noise "
            f"{config.get('noise_std')}, online normalisers, Adam {config.get('lr')} → "
            f"{config.get('lr_final')}, batch {config.get('batch_size')}, {budget}) on "
            f"generated advection–diffusion data; seeds {list(config.get('seeds', []))}. "
            "RMSEs over the non-obstacle nodes of the test trajectories"
            + (f" (the first {config['eval_trajectories']})" if config.get("eval_trajectories")
               else "")
            + ": 1-step from true states, rollout autoregressive over whole trajectories; "
            "mean ± sample std over seeds. Inference: one step of one mesh from batched rollouts. "
            "Memory: the peak resident memory training added above what the process held "
            "before (0 B: it fitted in memory already held; CUDA: peak allocation).",
            "",
        ]  # fmt: skip
        for d in result["data"]:
            splits = d.get("trajectories", {})
            lines += [
                f"### ℓ = {d['ell']:g} ({d['nodes']:,} nodes, {d['edges']:,} directed edges, "
                f"trajectories train/val/test {splits.get('train')}/{splits.get('val')}/"
                f"{splits.get('test')} of {d.get('steps')} steps)",
                "",
                mesh_table(result, d["ell"]),
                "",
            ]
        lines += claims_lines(result, config)
        files = _plots(result, out_dir)
        block.files.update(files)
        lines += [f"![{key}]({path.name})" for key, path in files.items()] + [""]
        lines += [
            f"Section CPU time {result['cpu_time_s']:.0f} s, wall time "
            f"{result['wall_time_s']:.0f} s; load average at start and end: "
            f"{result.get('load_average_start')} / {result.get('load_average_end')}.",
            "",
        ]
        return block
