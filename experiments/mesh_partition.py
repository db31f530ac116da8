"""Partitioned training against whole-mesh training on the mesh study's data.

One model of the mesh study (``gnnagg.bench.studies.mesh``; default ``gt-2x32-adjacency``) is
trained per seed with the study's protocol (``MeshConfig``'s defaults: AdamW with warm-up and
a cosine decay, input noise a fraction of the data's Δu RMS, online normalisers, validation
rollouts and the plateau check; ``fit_mesh_model``), on the study's data (a geometry and a
Delaunay mesh per trajectory), from the same initial weights and the same batches and noise:

* ``whole``: every step on whole meshes (the study as it is);
* ``partitioned``: the same steps, each on one part of the trajectory's mesh split into
  ``--parts`` sub-meshes (halos of the model's reach), the loss on its core
  (``MeshConfig(partitions=P)``);
* ``partitioned-epochs``: the same with ``P`` times the steps (and warm-up), so that every
  node is in a loss as often as with ``whole``;
* ``whole-long``: whole meshes with the steps of ``partitioned-epochs`` (equal steps with it).

Each trained model is rolled out on every test trajectory twice: on the whole meshes
(``rollout_rmse``) and stitched from the parts (``StitchedSimulator``); the largest difference
of one predicted step between the two is recorded too. Results go to ``--out`` (JSON,
rewritten after every run; a rerun with the same settings resumes from it).

    OMP_NUM_THREADS=1 python experiments/mesh_partition.py --out results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gnnagg._files import write_figure, write_text
from gnnagg.attention import GraphAttention
from gnnagg.bench.studies.mesh.config import MeshConfig, parse_model_name
from gnnagg.bench.studies.mesh.partitioned import SubMeshSteps, mesh_partitions
from gnnagg.bench.studies.mesh.run import build_model
from gnnagg.bench.studies.mesh.train import train_and_evaluate
from gnnagg.data import NODE_TYPES, mesh_simulation
from gnnagg.models import (
    MeanDeltaBaseline,
    MeshSimulator,
    PersistenceBaseline,
    StitchedSimulator,
    rollout_rmse,
)

VARIANTS = ("whole", "partitioned", "partitioned-epochs", "whole-long")
_OBSTACLE = NODE_TYPES.index("obstacle")
_STUDY = MeshConfig()


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ell", type=float, default=4.0)
    parser.add_argument("--model", default="gt-2x32-adjacency")
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--nodes", type=int, default=_STUDY.nodes)
    parser.add_argument("--trajectories", type=int, default=_STUDY.trajectories)
    parser.add_argument("--steps", type=int, default=_STUDY.steps)
    parser.add_argument("--train-steps", type=int, default=_STUDY.train_steps)
    parser.add_argument("--warmup-steps", type=int, default=_STUDY.warmup_steps)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path, default=None,
                        help="only draw the learning curves of --out into this PNG")
    parser.add_argument("--step-cost", type=int, default=0, metavar="N",
                        help="only time N training steps on whole meshes and on sub-meshes, "
                             "per attention backend, interleaved, into --out")
    return parser.parse_args()


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _configs(args: argparse.Namespace) -> dict[str, MeshConfig]:
    base = MeshConfig(
        ells=(args.ell,), models=(args.model,), seeds=tuple(args.seeds), nodes=args.nodes,
        trajectories=args.trajectories, steps=args.steps, train_steps=args.train_steps,
        warmup_steps=args.warmup_steps, budget_clock="cpu",
    )  # fmt: skip
    p = args.parts
    return {
        "whole": base,
        "partitioned": dataclasses.replace(base, partitions=p),
        "partitioned-epochs": dataclasses.replace(
            base, partitions=p, train_steps=p * base.train_steps,
            warmup_steps=p * base.warmup_steps,
        ),  # fmt: skip
        "whole-long": dataclasses.replace(
            base, train_steps=p * base.train_steps, warmup_steps=p * base.warmup_steps
        ),
    }


def _stitched(simulator: MeshSimulator, sim, parts: int) -> dict[str, Any]:
    """Whole-mesh and stitched inference of a trained simulator on the test trajectories."""
    cpu = time.process_time()
    partitions = mesh_partitions(sim, parts, simulator)
    stitched = StitchedSimulator(simulator, partitions)
    rolled = rollout_rmse(stitched, sim, "test", 8)
    test = sim.split("test")[:4]
    u = sim.u[test, sim.num_steps // 2].to(simulator.dtype)
    one_whole = simulator.predict_next(u, test, sim)
    one_parts = stitched.predict_next(u, test, sim)
    return {
        "rollout_rmse_stitched": rolled["rmse"],
        "one_step_max_abs_difference": float((one_whole - one_parts).abs().max()),
        "stitched_eval_cpu_s": round(time.process_time() - cpu, 1),
    }


def _partition_stats(sim, parts: int, simulator: MeshSimulator) -> dict[str, Any]:
    partitions = mesh_partitions(sim, parts, simulator)
    built = [partitions.of(int(t)) for t in range(sim.num_trajectories)]
    halos = [p.halo_fraction() for p in built]
    sizes = [part.num_nodes for p in built for part in p.parts]
    return {
        "method": built[0].method, "parts": parts, "num_layers": built[0].num_layers,
        "reach": built[0].reach, "meshes": len(built),
        "halo_fraction": {"mean": statistics.fmean(halos), "min": min(halos), "max": max(halos)},
        "sub_mesh_nodes": {"min": min(sizes), "max": max(sizes)},
    }  # fmt: skip


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant in VARIANTS:
        mine = [run for run in runs if run["variant"] == variant]
        if not mine:
            continue
        row: dict[str, Any] = {"seeds": [run["seed"] for run in mine],
                               "steps": mine[0]["steps"]}
        for key in ("rollout_rmse", "rollout_rmse_stitched", "one_step_rmse",
                    "time_per_step_s", "one_step_max_abs_difference"):
            row[key] = _mean_std([run[key] for run in mine])
        row["converged"] = [run["plateau"]["converged"] for run in mine]
        row["plateau_moved"] = [run["plateau"]["moved"] for run in mine]
        summary[variant] = row
    if "whole" in summary:
        whole = summary["whole"]
        for variant, row in summary.items():
            if variant == "whole":
                continue
            ratio = row["rollout_rmse"]["mean"] / whole["rollout_rmse"]["mean"]
            row["over_whole_rollout_rmse"] = ratio
            row["within_10_percent"] = abs(ratio - 1) <= 0.10
            row["over_whole_time_per_step"] = (row["time_per_step_s"]["mean"]
                                               / whole["time_per_step_s"]["mean"])
    if "partitioned-epochs" in summary and "whole-long" in summary:
        row, long = summary["partitioned-epochs"], summary["whole-long"]
        ratio = row["rollout_rmse"]["mean"] / long["rollout_rmse"]["mean"]
        row["over_whole_long_rollout_rmse"] = ratio
        row["within_10_percent_of_whole_long"] = abs(ratio - 1) <= 0.10
    return summary


def plot_curves(record: dict[str, Any], path: Path) -> Path:
    """The validation rollout RMSE over training per variant (mean over seeds, min to max
    shaded), against optimiser steps and against whole-mesh passes (steps x the fraction of
    the mesh in a step's loss)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for variant in VARIANTS:
        runs = [run for run in record["runs"] if run["variant"] == variant]
        if not runs:
            continue
        steps = [point["step"] for point in runs[0]["curve"]]
        scale = 1.0 / runs[0]["partitions"]
        for axis, key, factor in ((axes[0], "val_rollout_rmse", 1.0),
                                  (axes[1], "val_rollout_rmse", scale),
                                  (axes[2], "train_loss", 1.0)):
            values = torch.tensor([[p[key] for p in run["curve"]] for run in runs])
            x = [step * factor for step in steps]
            axis.plot(x, values.mean(0).tolist(), label=f"{variant} ({len(runs)} seeds)")
            axis.fill_between(x, values.min(0).values.tolist(), values.max(0).values.tolist(),
                              alpha=0.2)
    axes[0].set_xlabel("optimiser steps")
    axes[1].set_xlabel("whole-mesh passes (steps / parts for sub-meshes)")
    axes[2].set_xlabel("optimiser steps")
    axes[0].set_ylabel("validation rollout RMSE (2 trajectories)")
    axes[1].set_ylabel("validation rollout RMSE")
    axes[2].set_ylabel("training loss (normalised MSE)")
    for axis in axes:
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    written = write_figure(figure, path, dpi=110)
    plt.close(figure)
    return written


def step_cost(args: argparse.Namespace, sim, spec: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds of one training step (forward, backward; no optimiser) on a whole mesh and
    on a sub-mesh, per attention backend ("auto" and "sparse"), over ``args.step_cost`` steps
    of the same transitions, in rounds that alternate the four so that the load moves all."""
    config = _configs(args)["whole"]
    torch.manual_seed(0)
    simulator = MeshSimulator(build_model(spec, config), config.dim)
    steps = SubMeshSteps(simulator, sim, args.parts, seed=0)
    pairs = sim.transition_index("train")[: args.step_cost]
    free_of = {int(t): sim.node_types([int(t)]) != _OBSTACLE for t in pairs[:, 0]}

    def step(kind: str, traj: Tensor, step_index: Tensor) -> None:
        u, free = sim.u[traj, step_index], free_of[int(traj[0])]
        delta = sim.u[traj, step_index + 1] - u
        if kind == "whole":
            prediction = simulator(u, traj, sim, accumulate=True)[free]
            target = simulator.output_normalizer(delta[free].reshape(-1, 1), accumulate=True)
        else:
            prediction, target = steps(traj, u, delta, free)
        (prediction.reshape(-1) - target.reshape(-1)).pow(2).mean().backward()

    seconds = {f"{kind}/{backend}": 0.0 for kind in ("whole", "sub-mesh")
               for backend in ("auto", "sparse")}
    for round_index, pair in enumerate(torch.cat([pairs[:1], pairs])):
        traj, index = pair[:1], pair[1:]
        for name in seconds:
            kind, backend = name.split("/")
            for module in simulator.modules():
                if isinstance(module, GraphAttention):
                    module.backend = backend
            start = time.process_time()
            step(kind, traj, index)
            if round_index:  # the first round warms up
                seconds[name] += time.process_time() - start
    return {"steps": len(pairs), "cpu_s_per_step": {k: v / len(pairs) for k, v in seconds.items()}}


def main() -> None:
    args = _arguments()
    if args.plot is not None:
        print(plot_curves(json.loads(args.out.read_text()), args.plot))
        return
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    configs = _configs(args)
    base = configs["whole"]
    spec = parse_model_name(args.model, base.heads)
    absolute = base.model_positions(spec) == "absolute"
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("out", "seeds", "variants", "plot", "step_cost")}
    previous: list[dict[str, Any]] = []
    used = set(args.variants)
    if args.out.exists():
        kept = json.loads(args.out.read_text())
        if kept.get("settings") == settings:
            previous = kept["runs"]
            used |= {run["variant"] for run in previous}
    start = time.perf_counter()
    sim = mesh_simulation(
        base.dim, base.nodes, base.trajectories, base.steps, ell=args.ell, seed=base.data_seed,
        splits=base.splits(), geometry=base.geometry, cache=base.cache,
    )  # fmt: skip
    if args.step_cost:
        load_before = _load()
        cost = step_cost(args, sim, spec)
        write_text(args.out, json.dumps({
            "settings": settings, "step_cost": cost, "load_before": load_before,
            "load_after": _load(), "threads": torch.get_num_threads(),
            "machine": {"processor": _cpu_name(), "torch": torch.__version__},
        }, indent=1) + "\n")  # fmt: skip
        print(json.dumps(cost, indent=1))
        return
    probe = MeshSimulator(build_model(spec, base), base.dim, position_features=absolute)
    record: dict[str, Any] = {
        "settings": settings,
        "config": {v: dataclasses.asdict(c) for v, c in configs.items() if v in used},
        "machine": {"processor": _cpu_name(), "platform": platform.platform(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "data": {"nodes": sim.num_nodes, "meshes": sim.num_meshes,
                 "geometry": sim.config.geometry, "steps": sim.num_steps,
                 "train_transitions": len(sim.transition_index("train")),
                 "trajectories": {k: len(v) for k, v in sim.splits.items()}},
        "partition": _partition_stats(sim, args.parts, probe),
        "baselines": {
            name: rollout_rmse(predictor, sim, "test", 8)["rmse"]
            for name, predictor in (("persistence", PersistenceBaseline()),
                                    ("mean-delta", MeanDeltaBaseline(sim, "train")))
        },
        "runs": previous,
    }
    done = {(run["variant"], run["seed"]) for run in previous}
    # The comparison at equal steps first, then the long runs.
    short = ("whole", "partitioned")
    order = [(v, s) for s in args.seeds for v in args.variants if v in short]
    order += [(v, s) for s in args.seeds for v in args.variants if v not in short]
    for variant, seed in order:
        if (variant, seed) in done:
            continue
        config, load_before, cpu = configs[variant], _load(), time.process_time()
        trained: list[MeshSimulator] = []
        run = train_and_evaluate(
            args.model, lambda config=config: build_model(spec, config), sim, config, seed,
            position_features=absolute, on_trained=trained.append,
        )  # fmt: skip
        run.update(_stitched(trained[0], sim, args.parts))
        run.update({
            "variant": variant, "partitions": config.partitions,
            "rollout_rmse_per_step": [round(v, 6) for v in run["rollout_rmse_per_step"]],
            "cpu_time_s": round(time.process_time() - cpu, 1),
            "load_before": load_before, "load_after": _load(),
        })  # fmt: skip
        record["runs"].append(run)
        record["summary"] = _summary(record["runs"])
        record["wall_s"] = round(time.perf_counter() - start, 1)
        write_text(args.out, json.dumps(record, indent=1) + "\n")
        print(json.dumps({k: run[k] for k in (
            "variant", "seed", "steps", "time_per_step_s", "rollout_rmse",
            "rollout_rmse_stitched", "plateau", "cpu_time_s", "load_before", "load_after")}),
            flush=True)  # fmt: skip
    record["summary"] = _summary(record["runs"])
    write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["summary"], indent=1))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
