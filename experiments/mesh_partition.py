"""Partitioned training against whole-mesh training on the mesh study's data.

One step model of the mesh study (``gnnagg.bench.studies.mesh``; default ``mgn-6x32``) is
trained per seed twice with the study's recipe (Adam with exponential learning-rate decay, MSE
on the normalised change over the free nodes, input noise, normalisers fed before the first
update), the same number of optimiser steps, the same batches of transitions and the same
initial weights:

* ``whole``: every step on ``batch_size`` whole meshes;
* ``partitioned``: every step on ``batch_size`` copies of one sub-mesh of a ``P``-part
  partition (:func:`gnnagg.models.partition_mesh`, halos of the model's depth), the loss on
  its core's free nodes only; the parts take turns in a shuffled order;
* ``partitioned-epochs``: the same with ``P`` times the steps, so that every node is in a
  loss as often as with ``whole`` (the same epochs; the learning-rate decay stretched).

Each trained model is rolled out on the test trajectories twice: on the whole mesh
(:func:`~gnnagg.models.rollout_rmse`) and stitched from the parts
(:class:`~gnnagg.models.StitchedSimulator`); the largest difference of one predicted step
between the two is recorded too. Results go to ``--out`` (JSON, rewritten after every run; a
rerun with the same settings resumes from it).

    OMP_NUM_THREADS=1 python experiments/mesh_partition.py --out results.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from gnnagg._files import write_text
from gnnagg.bench.registry import mesh_mask
from gnnagg.bench.studies.mesh.config import MeshConfig, parse_model_name
from gnnagg.bench.studies.mesh.run import build_model
from gnnagg.data import NODE_TYPES, mesh_simulation
from gnnagg.models import (
    MeanDeltaBaseline,
    MeshSimulator,
    PersistenceBaseline,
    StitchedSimulator,
    partition_mesh,
    rollout_rmse,
    sub_mesh_forward,
)

_OBSTACLE = NODE_TYPES.index("obstacle")
VARIANTS = ("whole", "partitioned", "partitioned-epochs")
_STUDY = MeshConfig()  # the study's training recipe (lr, decay, noise, warm-up, batch size)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dim", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--trajectories", type=int, default=50)
    parser.add_argument("--steps", type=int, default=100, help="time steps per trajectory")
    parser.add_argument("--ell", type=float, default=1.0)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--model", default="mgn-6x32")
    parser.add_argument("--heads", type=int, default=_STUDY.heads)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--method", default="auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-steps", type=int, default=400, help="optimiser steps per run")
    parser.add_argument("--batch-size", type=int, default=_STUDY.batch_size)
    parser.add_argument("--lr-final", type=float, default=_STUDY.lr_final)
    parser.add_argument("--warmup-batches", type=int, default=_STUDY.warmup_batches)
    parser.add_argument("--eval-trajectories", type=int, default=None,
                        help="test trajectories rolled out (default: all)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        choices=VARIANTS)
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args()


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _train(simulator: MeshSimulator, sim, partition, variant: str, args, seed: int):
    """The study's recipe for ``args.train_steps`` steps; ``variant`` picks whole meshes or
    one sub-mesh per step. Returns the record of the run."""
    generator = torch.Generator().manual_seed(seed)
    transitions = sim.transition_index("train")
    free = sim.node_type != _OBSTACLE
    optimiser = torch.optim.Adam(simulator.parameters(), lr=_STUDY.lr)
    decay = math.log(args.lr_final / _STUDY.lr)
    part_order: list[int] = []
    steps = args.train_steps * (partition.num_parts if variant == "partitioned-epochs" else 1)

    def batch(pairs: torch.Tensor):
        traj, step = pairs[:, 0], pairs[:, 1]
        current = sim.u[traj, step].to(simulator.dtype)
        noise = torch.randn(current.shape, generator=generator).to(current.dtype)
        current = current + _STUDY.noise_std * noise * free
        return traj, current, sim.u[traj, step + 1].to(current.dtype) - current

    def predict(traj, current, delta, accumulate: bool):
        """(prediction, normalised target) on the loss nodes of this step."""
        if variant == "whole":
            columns = free.nonzero()[:, 0]
            prediction = simulator(current, traj, sim, accumulate)[:, columns]
        else:
            if not part_order:
                part_order.extend(torch.randperm(partition.num_parts, generator=generator).tolist())
            part = partition.parts[part_order.pop()]
            prediction = sub_mesh_forward(simulator, current, traj, sim, part, accumulate)
            prediction = prediction[:, : part.num_core]
            core_free = free[part.core]
            prediction, columns = prediction[:, core_free], part.core[core_free]
        target = simulator.output_normalizer(delta[:, columns].reshape(-1, 1), accumulate)
        return prediction.reshape(-1, 1), target

    simulator.train()
    with torch.no_grad():
        for _ in range(args.warmup_batches):
            chosen = torch.randint(len(transitions), (args.batch_size,), generator=generator)
            predict(*batch(transitions[chosen]), accumulate=True)
    losses, order = [], torch.zeros(0, 2, dtype=torch.int64)
    cpu_start = time.process_time()
    for step in range(steps):
        if len(order) < args.batch_size:
            order = transitions[torch.randperm(len(transitions), generator=generator)]
        pairs, order = order[: args.batch_size], order[args.batch_size :]
        for group in optimiser.param_groups:
            group["lr"] = _STUDY.lr * math.exp(decay * step / steps)
        prediction, target = predict(*batch(pairs), accumulate=True)
        loss = (prediction - target).pow(2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    cpu = time.process_time() - cpu_start
    simulator.eval()
    tail = losses[-max(1, len(losses) // 10) :]
    return {"train_steps": steps, "train_cpu_s": round(cpu, 1),
            "cpu_s_per_step": round(cpu / steps, 4),
            "final_loss": statistics.fmean(tail), "first_loss": losses[0]}


def _evaluate(simulator: MeshSimulator, sim, partition, args) -> dict[str, Any]:
    limit = args.eval_trajectories
    stitched = StitchedSimulator(simulator, partition)
    cpu_start = time.process_time()
    whole = rollout_rmse(simulator, sim, "test", 8, max_trajectories=limit)
    parts = rollout_rmse(stitched, sim, "test", 8, max_trajectories=limit)
    test = sim.split("test")[:4]
    u = sim.u[test, sim.num_steps // 2]
    one_whole = simulator.predict_next(u.to(simulator.dtype), test, sim)
    one_parts = stitched.predict_next(u, test, sim)
    return {
        "rollout_rmse": whole["rmse"],
        "rollout_rmse_stitched": parts["rmse"],
        "rollout_rmse_per_step": [round(v, 6) for v in whole["rmse_per_step"]],
        "stitched_minus_whole_rollout_rmse": parts["rmse"] - whole["rmse"],
        "one_step_max_abs_difference": float((one_whole - one_parts).abs().max()),
        "one_step_field_max_abs": float(u.abs().max()),
        "eval_cpu_s": round(time.process_time() - cpu_start, 1),
        "test_trajectories": whole["trajectories"],
    }


def _summary(runs: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant in variants:
        mine = [run for run in runs if run["variant"] == variant]
        if not mine:
            continue
        row = {"seeds": [run["seed"] for run in mine]}
        for key in ("rollout_rmse", "rollout_rmse_stitched", "one_step_max_abs_difference",
                    "cpu_s_per_step"):
            values = [run[key] for run in mine]
            row[key] = {"mean": statistics.fmean(values),
                        "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        summary[variant] = row
    for variant in variants:
        if variant != "whole" and "whole" in summary and variant in summary:
            ratio = (summary[variant]["rollout_rmse"]["mean"]
                     / summary["whole"]["rollout_rmse"]["mean"])
            summary[variant]["over_whole_rollout_rmse"] = ratio
            summary[variant]["within_10_percent"] = abs(ratio - 1) <= 0.10
    return summary


def main() -> None:
    args = _arguments()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = parse_model_name(args.model, args.heads)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("out", "seeds", "variants")}
    settings["recipe"] = {k: getattr(_STUDY, k) for k in ("lr", "noise_std")}
    previous: list[dict[str, Any]] = []
    if args.out.exists():
        kept = json.loads(args.out.read_text())
        if kept.get("settings") == settings:
            previous = kept["runs"]
    start = time.perf_counter()
    sim = mesh_simulation(args.dim, args.nodes, args.trajectories, args.steps, ell=args.ell,
                          seed=args.data_seed)
    # Halos of the model's reach: its edges (MeshGraphNet) or its mask (GraphTransformer).
    mask = mesh_mask(spec["mask"]) if spec["family"] == "gt" else None
    partition = partition_mesh(sim.edge_index, args.parts, num_layers=spec["depth"], mask=mask,
                               pos=sim.pos, method=args.method)
    record: dict[str, Any] = {
        "settings": settings,
        "machine": {"processor": _cpu_name(), "platform": platform.platform(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "data": {"nodes": sim.num_nodes, "edges": int(sim.edge_index.size(1)),
                 "train_transitions": len(sim.transition_index("train")),
                 "test_trajectories": len(sim.split("test"))},
        "partition": {
            "method": partition.method, "parts": partition.num_parts,
            "num_layers": partition.num_layers, "reach": partition.reach,
            "halo_fraction": round(partition.halo_fraction(), 4),
            "core_nodes": [part.num_core for part in partition.parts],
            "sub_mesh_nodes": [part.num_nodes for part in partition.parts],
        },
        "baselines": {
            name: rollout_rmse(predictor, sim, "test", 8, max_trajectories=args.eval_trajectories)[
                "rmse"]
            for name, predictor in (("persistence", PersistenceBaseline()),
                                    ("mean-delta", MeanDeltaBaseline(sim, split="train")))
        },
        "runs": previous,
    }
    done = {(run["variant"], run["seed"]) for run in previous}
    for seed in args.seeds:
        for variant in args.variants:
            if (variant, seed) in done:
                continue
            load_before = _load()
            torch.manual_seed(seed)  # the same initial weights for both variants
            simulator = MeshSimulator(build_model(spec, args.dim, args.heads), args.dim,
                                      position_features=spec["family"] == "gt")
            run = {"variant": variant, "seed": seed,
                   **_train(simulator, sim, partition, variant, args, seed),
                   **_evaluate(simulator, sim, partition, args),
                   "load_before": load_before, "load_after": _load()}
            record["runs"].append(run)
            record["summary"] = _summary(record["runs"], list(VARIANTS))
            record["wall_s"] = round(time.perf_counter() - start, 1)
            write_text(args.out, json.dumps(record, indent=1) + "\n")
            print(json.dumps({k: v for k, v in run.items() if k != "rollout_rmse_per_step"
                              and k != "test_trajectories"}), flush=True)
    record["summary"] = _summary(record["runs"], [v for v in VARIANTS if v in args.variants])
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
