r"""The mesh-simulation study: learned simulators trained on generated advection–diffusion
data, MeshGraphNet next to masked graph transformers (``gnnagg-bench mesh``).

It tests the claims of Garnier et al. 2025, "Training Transformers for Mesh-Based
Simulations" (`arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_): *the smallest masked
transformer matches MeshGraphNet with several times fewer parameters and is faster per step*,
and *K-hop neighbourhoods, dilated windows and global attention lower the all-rollout error at
large* :math:`\ell`.

The protocol (the default of ``gnnagg-bench mesh`` and of every suite):

* **data** per value of :math:`\ell` (the diffusion length per step in mesh spacings,
  :func:`gnnagg.data.mesh_simulation`): every trajectory on a geometry of its own (obstacle
  position and radius drawn from the seed, a fresh Delaunay mesh), so that the test
  trajectories' geometries are never seen in training and coordinates cannot stand in for a
  node's identity; initial blobs and ℓ counted in mesh spacings;
* **equal training**: the same optimiser steps for every model, AdamW with warm-up and a
  cosine schedule, input noise a fixed fraction of the data's Δu RMS
  (:mod:`~gnnagg.bench.studies.mesh.train`); a model is *not converged* when its validation
  rollout still moves by more than 5 % over the last 20 % of the steps, or when the same
  model trained with half the steps ends more than 5 % away from it (each budget with its
  own schedule), and a claim is only judged from converged models;
* **equal inputs**: the same node features for every family, with geometry only through edge
  vectors (``positions="relative"``, as the reference MeshGraphNet) unless asked otherwise
  (``:absolute`` rows are the ablation);
* **evaluation** on every test trajectory over the seeds (mean ± std): 1-step and all-rollout
  RMSE, next to persistence, the mean change at each place of the channel in the training
  data and the exact solver (its RMSE must be 0: a check of the evaluation itself); the cost
  (training time per step, inference time per step, parameters, peak memory) in a table of
  its own. ``--max-seconds`` can cap a job's training; a capped job is flagged in every table.

Models are named ``mgn-<steps>x<hidden>[-<aggr>]`` and ``gt-<layers>x<hidden>-<mask>``
(:func:`~gnnagg.bench.studies.mesh.config.parse_model_name`); ``mgn-6x32-gru`` is a
MeshGraphNet whose processor aggregates with gnnagg's GRU. The suites' configurations and what
they cost are on the benchmarks page (``docs/benchmarks/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ...section import ReportBlock, RunContext, Section
from . import report as _report
from .config import MESH_AGGREGATORS, MESH_BASELINES, MESH_MASKS, POSITIONS, MeshConfig
from .run import run_mesh

__all__ = ["MeshSection"]


class MeshSection(Section):
    """Learned mesh simulators (:class:`MeshConfig`)."""

    name: ClassVar[str] = "mesh"
    title: ClassVar[str] = "Mesh simulation: MeshGraphNet vs masked graph transformers"
    config_type: ClassVar[type] = MeshConfig
    command: ClassVar[str | None] = "mesh"
    command_help: ClassVar[str] = "learned mesh simulators: MeshGraphNet vs graph transformers"
    command_description: ClassVar[str] = (
        "Next-step training of MeshGraphNet and masked GraphTransformers on generated "
        "advection-diffusion data (a geometry per trajectory) at one or more diffusion lengths "
        "per step (ell), the same optimiser steps and inputs for every model; 1-step and "
        "all-rollout RMSE on unseen geometries next to persistence, the mean change and the "
        "exact solver, with convergence checks (a plateau, and a run with half the steps "
        "ending within 5 %), and the cost in a table of its own. Models: "
        "mgn-<steps>x<width>[-<aggr>], gt-<layers>x<width>-<mask> with masks "
        + ", ".join(MESH_MASKS)
        + ". The default is the CPU study (2-3 CPU-hours with --jobs 2)."
    )
    result_keys: ClassVar[str] = (
        "`mesh` {`data`, `runs`, `summary`, `baselines`, `fields`, `cpu_time_s`}"
    )

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> MeshConfig | None:
        if suite == "quick":
            return MeshConfig(
                nodes=500, trajectories=14, val_trajectories=2, test_trajectories=4, steps=20,
                models=("mgn-4x16", "gt-2x16-adjacency", "gt-2x16-khop2+dilated+global"),
                seeds=seeds, train_steps=300, warmup_steps=30, val_points=10,
            )  # fmt: skip
        if suite == "full":
            return MeshConfig(seeds=seeds, checkpoints=True)
        if suite == "smoke":
            return MeshConfig(
                nodes=300, trajectories=5, val_trajectories=1, test_trajectories=1, steps=4,
                ells=(2.0,), models=("mgn-2x8", "gt-1x8-khop2+dilated+global"), heads=2,
                seeds=seeds, train_steps=6, warmup_steps=2, val_points=2, normalizer_batches=2,
                cache=False,
            )  # fmt: skip
        return None

    def choices(self) -> dict[str, list[str]]:
        return {
            "mesh_models": ["mgn-<steps>x<width>[-<aggr>]", "gt-<layers>x<width>-<mask>"],
            "mesh_masks": list(MESH_MASKS),
            "mesh_aggregators": list(MESH_AGGREGATORS),
            "mesh_positions": list(POSITIONS),
            "mesh_baselines": list(MESH_BASELINES),
        }

    def run(self, config: MeshConfig, context: RunContext) -> dict[str, Any]:
        return run_mesh(
            config, context.device, context.progress, context.out_dir, context.threads,
            context.data_root,
        )

    def check_result(self, result: Any) -> None:
        _report.check_result(result, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        return _report.report(result, config, out_dir)
