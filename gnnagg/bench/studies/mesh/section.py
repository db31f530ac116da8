r"""The mesh-simulation study: learned simulators trained on generated advection–diffusion
data, MeshGraphNet next to masked graph transformers (``gnnagg-bench mesh``).

It tests the claims of Garnier et al. 2025, "Training Transformers for Mesh-Based
Simulations" (`arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_): *the smallest masked
transformer matches MeshGraphNet while being several times faster and smaller*, and *K-hop
neighbourhoods, dilated windows and global attention lower the rollout error*.

Per value of :math:`\ell` (the diffusion length per step in mesh spacings,
:func:`gnnagg.data.mesh_simulation`) one data set is generated (cached, hash-checked), every
model is trained per seed (:mod:`~gnnagg.bench.studies.mesh.train`) and evaluated on the test
trajectories next to three reference predictors: persistence, the per-node mean change of the
training data and the exact solver (its RMSE must be 0: a check of the evaluation itself).
Models are named ``mgn-<steps>x<hidden>`` and ``gt-<layers>x<hidden>-<mask>``
(:func:`~gnnagg.bench.studies.mesh.config.parse_model_name`). The suites' configurations and
what they cost are on the benchmarks page (``docs/benchmarks/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ...section import ReportBlock, RunContext, Section
from . import report as _report
from .config import MESH_BASELINES, MESH_MASKS, QUICK_MODELS, MeshConfig
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
            return MeshConfig(seeds=seeds, eval_trajectories=1, one_step_stride=5, checkpoints=True)
        if suite == "smoke":
            return MeshConfig(
                nodes=300, trajectories=4, steps=5, ells=(2.0,),
                models=("mgn-2x8", "gt-1x8-khop2+dilated+global"), heads=2, seeds=seeds,
                epochs=1, max_seconds=None, warmup_batches=2, eval_trajectories=None,
                cache=False,
            )  # fmt: skip
        return None

    def choices(self) -> dict[str, list[str]]:
        return {
            "mesh_models": ["mgn-<steps>x<width>", "gt-<layers>x<width>-<mask>"],
            "mesh_masks": list(MESH_MASKS),
            "mesh_baselines": list(MESH_BASELINES),
        }

    def run(self, config: MeshConfig, context: RunContext) -> dict[str, Any]:
        return run_mesh(config, context.device, context.progress, context.out_dir, context.threads)

    def check_result(self, result: Any) -> None:
        _report.check_result(result, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        return _report.report(result, config, out_dir)
