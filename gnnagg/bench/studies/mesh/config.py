"""The mesh-simulation config: every field declared once (check, option, override), and the
model names of the study."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from ...fields import (
    StudyConfig,
    batch_size_setting,
    bool_check,
    finite,
    integer,
    jobs_setting,
    lr_setting,
    names,
    optional,
    seeds_setting,
    setting,
)
from ...registry import AGGREGATORS, MESH_MASKS
from ...validation import check_finite, check_int, format_bytes

__all__ = [
    "ABLATION_MODELS",
    "AGGREGATOR_MODELS",
    "BUDGET_CLOCKS",
    "CPU_MODELS",
    "GEOMETRIES",
    "GPU_MODELS",
    "MESH_AGGREGATORS",
    "MESH_BASELINES",
    "MESH_MASKS",
    "POSITIONS",
    "MeshConfig",
    "parse_model_name",
]

MESH_BASELINES: tuple[str, ...] = ("persistence", "mean-delta", "exact-solver")
BUDGET_CLOCKS: tuple[str, ...] = ("auto", "cpu", "wall")
GEOMETRIES: tuple[str, ...] = ("varied", "fixed")
#: ``relative``: the networks see geometry only through edge vectors (MeshGraphNet's edge
#: features; a transformer's mask); ``absolute``: node coordinates join every node's features.
POSITIONS: tuple[str, ...] = ("relative", "absolute")
#: Aggregators a MeshGraphNet of the study may use in place of the sum: the registry's, except
#: those that need a degree histogram or a sorted index (PyG's padded ones).
MESH_AGGREGATORS: tuple[str, ...] = tuple(
    name
    for name, spec in AGGREGATORS.items()
    if not spec.needs_degree and not name.startswith("pyg_")
)
_AGGR = "|".join(re.escape(a) for a in sorted(MESH_AGGREGATORS, key=len, reverse=True))
_MASK = "|".join(re.escape(m) for m in sorted(MESH_MASKS, key=len, reverse=True))
_POSITIONS = "|".join(POSITIONS)
_MGN = re.compile(rf"mgn-(\d{{1,4}})x(\d{{1,5}})(?:-({_AGGR}))?(?::({_POSITIONS}))?")
_GT = re.compile(rf"gt-(\d{{1,4}})x(\d{{1,5}})-({_MASK})(?::({_POSITIONS}))?")
_MAX_DEPTH, _MAX_WIDTH = 64, 4096
# The data generator's node limits per dimension (gnnagg.data.meshes.channel_mesh).
_NODE_LIMITS = {2: (200, 2_000_000), 3: (1_000, 200_000)}
# The stored field u [T, steps + 1, N] (float32) is refused above 4 GiB by the generator; the
# same bound here makes the error name this study's fields.
_MAX_FIELD_BYTES = 4 * 2**30

#: The CPU study (``--suite full``, the default of ``gnnagg-bench mesh``): MeshGraphNet 6x32
#: against the transformers at the paper's pairings (2x32, 4x64) and the masks at 2x32. In this
#: order jobs run (model by model), so the rows the verdicts need come first.
CPU_MODELS: tuple[str, ...] = (
    "mgn-6x32",
    "gt-2x32-adjacency",
    "gt-2x32-khop2",
    "gt-2x32-khop2+dilated+global",
    "gt-4x64-adjacency",
)
#: Ablations beside the CPU study (``gnnagg-bench mesh --models`` these): absolute coordinates
#: as inputs, and the dilated window without global tokens.
ABLATION_MODELS: tuple[str, ...] = (
    "mgn-6x32:absolute",
    "gt-2x32-adjacency:absolute",
    "gt-2x32-khop2+dilated",
)
#: MeshGraphNet 6x32 with gnnagg's LCM (softmax monoid) and GRU aggregators beside the sum:
#: ``gnnagg-bench mesh --ells 4 --models`` these (they cost 2-3 times the sum's steps).
AGGREGATOR_MODELS: tuple[str, ...] = ("mgn-6x32", "mgn-6x32-lcm_softmax", "mgn-6x32-gru")
#: The GPU configuration (``experiments/run_gpu_mesh.sh``): the paper's MeshGraphNet and the
#: large transformers.
GPU_MODELS: tuple[str, ...] = (
    "mgn-15x128",
    "gt-2x32-adjacency",
    "gt-4x64-adjacency",
    "gt-4x64-khop2+dilated+global",
    "gt-8x128-adjacency",
    "gt-8x128-khop2+dilated+global",
)


def parse_model_name(name: Any, heads: int = 4) -> dict[str, Any]:
    """The parts of a model name as ``{"family", "depth", "hidden", "aggr", "mask",
    "positions"}``:

    * ``mgn-<steps>x<width>[-<aggr>]`` -- a :class:`~gnnagg.models.MeshGraphNet` whose
      processor aggregates with ``aggr`` (one of :data:`MESH_AGGREGATORS`; ``sum`` when
      left out);
    * ``gt-<layers>x<width>-<mask>`` -- a :class:`~gnnagg.models.GraphTransformer` with
      ``heads`` heads and a mask of :data:`MESH_MASKS`;

    either followed by ``:relative`` or ``:absolute`` to set this model's inputs apart from the
    study's ``positions`` (``None`` when not given). ``ValueError`` naming ``models``."""
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
        if family == "gt" and hidden % heads:
            raise ValueError(f"models: {name!r}: width {hidden} is not divisible by heads={heads}")
        return {
            "family": family,
            "depth": depth,
            "hidden": hidden,
            "aggr": (match.group(3) or "sum") if family == "mgn" else None,
            "mask": match.group(3) if family == "gt" else None,
            "positions": match.group(4),
        }
    raise ValueError(
        f"models: unknown {name!r}; expected mgn-<steps>x<width>[-<aggr>] (e.g. mgn-6x32, "
        f"mgn-6x32-gru; aggregators {list(MESH_AGGREGATORS)}) or gt-<layers>x<width>-<mask> "
        f"(e.g. gt-2x32-khop2; masks {list(MESH_MASKS)}), optionally ending in :relative or "
        ":absolute"
    )


def _distinct(inner: Any) -> Any:
    def check(value: Any, name: str) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected a list, got {value!r}")
        if not value:
            raise ValueError(f"{name}: needs at least one value")
        values = tuple(inner(v, name) for v in value)
        if len(set(values)) != len(values):
            raise ValueError(f"{name}: values repeat: {list(values)}")
        return values

    return check


def _ell(value: Any, name: str) -> float:
    return check_finite(value, name, positive=True, maximum=16.0)


def _model(value: Any, name: str) -> str:
    parse_model_name(value, heads=1)
    return value


def _one_of(valid: tuple[str, ...]) -> Any:
    def check(value: Any, name: str) -> str:
        return names(valid)([value], name)[0]

    return check


@dataclass
class MeshConfig(StudyConfig):
    """The mesh study (see :mod:`~gnnagg.bench.studies.mesh.section` for the protocol).

    Data per value of ``ells``: ``dim``-D meshes of ``nodes`` nodes, ``trajectories``
    trajectories of ``steps`` time steps, of which ``val_trajectories`` validate and
    ``test_trajectories`` test (the rest train), each on a geometry of its own
    (``geometry="varied"``: obstacle position and radius drawn from ``data_seed``, a fresh
    Delaunay mesh each) or all on CylinderFlow's (``"fixed"``); kept in the data cache when
    ``cache``.

    Training, the same for every model of ``models`` and seed of ``seeds``: ``train_steps``
    optimiser steps of ``batch_size`` meshes, AdamW (``lr``, betas 0.9/0.95, ``weight_decay``)
    with ``warmup_steps`` of linear warm-up under a cosine decay to 0, input noise of ``noise``
    times the training data's Δu RMS, the normalisers fed ``normalizer_batches`` batches
    before the first update; the validation rollout measured ``val_points`` times. The node
    features are the same for every family; ``positions`` says whether node coordinates join
    them (``"absolute"``) or geometry enters only through edge vectors (``"relative"``). A
    model name may end in ``:absolute`` or ``:relative`` to run that model the other way (an
    ablation row).

    ``partitions`` > 1 trains on sub-meshes instead of whole meshes
    (:mod:`~gnnagg.bench.studies.mesh.partitioned`): each mesh split into that many parts
    whose halos cover the model's reach, every step on one part of each trajectory's mesh, the
    loss on its core; validation and evaluation stay on whole meshes.

    ``half_budget_check`` also trains every (ℓ, model, seed) with ``train_steps // 2`` steps
    (the schedule decays to 0 at its own end, so this is a run of its own, kept and reused as
    any job is): a model has converged when its validation rollout at the end of both runs
    differs by at most 5 % (:func:`~gnnagg.bench.studies.mesh.train.half_budget_moved`) and
    it moved at most 5 % over the last 20 % of its steps. The second check alone passes
    models that more steps still improve, since the decayed learning rate of a run's last
    steps hardly moves them.

    ``max_seconds`` caps a job's training time (counted by ``budget_clock``: ``"cpu"``, the
    job's own CPU seconds; ``"wall"``; ``"auto"``, CPU on the CPU and wall on a GPU); a job it
    stops is flagged in every table, since the models no longer had equal steps.
    ``one_step_stride``: the 1-step RMSE from every this many steps of the test trajectories
    (the rollout covers every step). ``jobs``: (ℓ, model, seed) jobs at once, each in a
    worker process; ``checkpoints``: keep finished jobs in ``OUT/checkpoints`` and reuse them
    when the run is repeated with the same settings.
    """

    dim: int = setting(2, integer(minimum=2, maximum=3), "2 or 3")
    nodes: int = setting(1_000, integer(maximum=2_000_000), "nodes of every mesh")
    trajectories: int = setting(
        50, integer(minimum=3, maximum=100_000), "trajectories (train + validation + test)"
    )
    val_trajectories: int = setting(2, integer(), "validation trajectories")
    test_trajectories: int = setting(8, integer(), "test trajectories")
    steps: int = setting(50, integer(maximum=100_000), "time steps per trajectory")
    ells: tuple[float, ...] = setting(
        (1.0, 4.0), _distinct(_ell), "diffusion lengths per step, in mesh spacings",
        metavar="ELL",
    )  # fmt: skip
    geometry: str = setting(
        "varied", _one_of(GEOMETRIES),
        "varied: an obstacle and a mesh per trajectory; fixed: CylinderFlow's for all",
        choices=lambda: GEOMETRIES,
    )  # fmt: skip
    models: tuple[str, ...] = setting(
        CPU_MODELS, _distinct(_model),
        "mgn-<steps>x<width>[-<aggr>] or gt-<layers>x<width>-<mask>, optionally :absolute or "
        ":relative; masks: " + ", ".join(MESH_MASKS),
        metavar="MODEL",
    )  # fmt: skip
    heads: int = setting(4, integer(maximum=256), "attention heads")
    positions: str = setting(
        "relative", _one_of(POSITIONS),
        "relative: geometry only through edge vectors; absolute: node coordinates as features",
        choices=lambda: POSITIONS,
    )  # fmt: skip
    seeds: tuple[int, ...] = seeds_setting((0, 1, 2))
    train_steps: int = setting(
        4_000, integer(maximum=10_000_000), "optimiser steps, the same for every model"
    )
    batch_size: int = batch_size_setting(1)
    partitions: int = setting(
        1, integer(maximum=1_000_000),
        "train on sub-meshes: every mesh split into this many parts (halos of the model's "
        "reach), each step on one part per trajectory, the loss on its core; 1: whole meshes",
    )  # fmt: skip
    lr: float = lr_setting(1e-3)
    weight_decay: float = setting(1e-4, finite(maximum=10.0), "AdamW's weight decay")
    warmup_steps: int = setting(
        200, integer(minimum=0, maximum=10_000_000), "steps of linear learning-rate warm-up"
    )
    noise: float = setting(
        0.3, finite(maximum=100.0), "input noise, as a fraction of the training data's Δu RMS"
    )
    normalizer_batches: int = setting(
        20, integer(minimum=0, maximum=1_000_000),
        "batches that feed the normalisers before the first update",
    )  # fmt: skip
    val_points: int = setting(
        20, integer(minimum=2, maximum=10_000), "validation rollouts over the training"
    )
    half_budget_check: bool = setting(
        True, bool_check,
        "also train every model with half the steps (its own cosine schedule); a model has "
        "converged only when the two runs' final validation rollouts are within 5 %",
    )  # fmt: skip
    max_seconds: float | None = setting(
        None, optional(finite(positive=True, maximum=30 * 86400)),
        "cap on a job's training seconds (flagged in every table when hit; 0: no cap)",
        from_cli=lambda seconds: seconds or None,
    )  # fmt: skip
    budget_clock: str = setting(
        "auto", _one_of(BUDGET_CLOCKS),
        "what --max-seconds counts: cpu (this job's CPU seconds), wall, or auto (cpu on the "
        "CPU, wall on a GPU)",
        choices=lambda: BUDGET_CLOCKS,
    )  # fmt: skip
    one_step_stride: int = setting(
        1, integer(maximum=100_000), "1-step RMSE from every this many steps"
    )
    baselines: tuple[str, ...] = setting(
        MESH_BASELINES, names(MESH_BASELINES), "reference predictors",
        choices=lambda: MESH_BASELINES,
    )  # fmt: skip
    data_seed: int = setting(0, integer(minimum=0, maximum=2**32 - 1), "seed of the generated data")
    cache: bool = setting(True, bool_check, "keep the generated data in the data cache")
    jobs: int = jobs_setting()
    checkpoints: bool = setting(
        False, bool_check,
        "keep every finished job in OUT/checkpoints and reuse it when rerun with the same --out",
    )  # fmt: skip

    def validate(self) -> None:
        low, high = _NODE_LIMITS[self.dim]
        check_int(self.nodes, "nodes", low, high)
        if self.val_trajectories + self.test_trajectories >= self.trajectories:
            raise ValueError(
                f"trajectories: {self.trajectories} leave none to train after "
                f"{self.val_trajectories} validation and {self.test_trajectories} test ones"
            )
        field_bytes = 4 * self.nodes * self.trajectories * (self.steps + 1)
        if field_bytes > _MAX_FIELD_BYTES:
            raise ValueError(
                f"nodes, trajectories, steps: the stored field would take "
                f"{format_bytes(field_bytes)}, more than the generator's "
                f"{format_bytes(_MAX_FIELD_BYTES)}"
            )
        for name in self.models:
            parse_model_name(name, self.heads)
        if self.partitions > self.nodes:
            raise ValueError(
                f"partitions: expected at most nodes={self.nodes}, got {self.partitions}"
            )
        if self.warmup_steps >= self.train_steps:
            raise ValueError(
                f"warmup_steps: expected fewer than train_steps={self.train_steps}, got "
                f"{self.warmup_steps}"
            )
        if self.val_points > self.train_steps:
            raise ValueError(
                f"val_points: expected at most train_steps={self.train_steps}, got "
                f"{self.val_points}"
            )
        half = self.train_steps // 2
        if self.half_budget_check and (self.warmup_steps >= half or self.val_points > half):
            raise ValueError(
                f"half_budget_check: the half-budget run of {half} steps needs more steps than "
                f"warmup_steps={self.warmup_steps} and at least val_points={self.val_points}; "
                "raise train_steps or turn the check off"
            )
        if self.one_step_stride > self.steps:
            raise ValueError(
                f"one_step_stride: expected at most steps={self.steps}, got {self.one_step_stride}"
            )

    def splits(self) -> tuple[float, float, float]:
        """The train / validation / test fractions of the data generator."""
        n = self.trajectories
        val, test = self.val_trajectories / n, self.test_trajectories / n
        return (1.0 - val - test, val, test)

    def half_budget(self) -> MeshConfig:
        """The config of the half-budget runs: ``train_steps // 2`` steps, all else equal (the
        check itself off: a half-budget run is not checked against a quarter-budget one)."""
        return dataclasses.replace(
            self, train_steps=self.train_steps // 2, half_budget_check=False
        )

    def model_positions(self, spec: dict[str, Any]) -> str:
        """The positions a parsed model name is run with (its own suffix, else the study's)."""
        return spec["positions"] or self.positions
