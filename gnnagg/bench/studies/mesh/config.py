"""The mesh-simulation config: every field declared once (check, option, override), and the
model names of the study."""

from __future__ import annotations

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
from ...registry import MESH_MASKS
from ...validation import check_finite, check_int, format_bytes

__all__ = [
    "BUDGET_CLOCKS",
    "FULL_MODELS",
    "MESH_BASELINES",
    "MESH_MASKS",
    "QUICK_MODELS",
    "MeshConfig",
    "parse_model_name",
]

MESH_BASELINES: tuple[str, ...] = ("persistence", "mean-delta", "exact-solver")
BUDGET_CLOCKS: tuple[str, ...] = ("auto", "cpu", "wall")
_MGN = re.compile(r"mgn-(\d{1,4})x(\d{1,5})")
_GT = re.compile(r"gt-(\d{1,4})x(\d{1,5})-(" + "|".join(re.escape(m) for m in MESH_MASKS) + ")")
_MAX_DEPTH, _MAX_WIDTH = 64, 4096
# The data generator's node limits per dimension (gnnagg.data.meshes.channel_mesh).
_NODE_LIMITS = {2: (200, 2_000_000), 3: (1_000, 200_000)}
# The stored field u [T, steps + 1, N] (float32) is refused above 4 GiB by the generator; the
# same bound here makes the error name this study's fields.
_MAX_FIELD_BYTES = 4 * 2**30

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
    "mask"}`` for a model name: ``mgn-<steps>x<width>`` (a
    :class:`~gnnagg.models.MeshGraphNet`) or ``gt-<layers>x<width>-<mask>`` (a
    :class:`~gnnagg.models.GraphTransformer` with ``heads`` heads and a mask of
    :data:`MESH_MASKS`); ``ValueError`` naming ``models``."""
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


def _clock(value: Any, name: str) -> str:
    return names(BUDGET_CLOCKS)([value], name)[0]


@dataclass
class MeshConfig(StudyConfig):
    """Mesh simulation: ``dim``-D data of ``nodes`` nodes, ``trajectories`` trajectories (80 /
    10 / 10 % train / val / test, at least one each) of ``steps`` steps per value of ``ells``
    (generated from ``data_seed``; kept in the data cache when ``cache``); every model of
    ``models`` trained per seed of ``seeds`` for ``epochs`` passes over the training
    transitions and/or ``max_seconds`` seconds (at least one budget) counted by
    ``budget_clock`` (``"cpu"``: the job's own CPU seconds, which other load on a shared
    machine does not shrink; ``"wall"``; ``"auto"``: CPU on the CPU, wall on a GPU, whose work
    the CPU clock does not see), ``batch_size`` meshes per step, Adam from ``lr`` down to
    ``lr_final`` (exponential decay over the budget), Gaussian input noise of ``noise_std`` on
    the free nodes, the normalisers fed ``warmup_batches`` batches before the first update;
    evaluated on the first ``eval_trajectories`` test trajectories (``None``: all) next to the
    ``baselines``, the 1-step RMSE from every ``one_step_stride``-th step of them (the
    rollout covers every step).

    ``jobs``: train up to this many (ℓ, model, seed) jobs at once, each in its own process with
    ``max(1, threads // jobs)`` torch threads (1: one after another in this process).
    ``checkpoints``: keep every finished job (its record and trained weights) in the run's
    output folder, and take it from there instead of training it again when the run is
    repeated into the same folder with the same settings (models, seeds and ℓ may be added).
    """

    dim: int = setting(2, integer(minimum=2, maximum=3), "2 or 3")
    nodes: int = setting(10_000, integer(maximum=2_000_000), "mesh nodes")
    trajectories: int = setting(
        50, integer(minimum=3, maximum=100_000), "trajectories (80/10/10 % train/val/test)",
    )  # fmt: skip
    steps: int = setting(100, integer(maximum=100_000), "time steps per trajectory")
    ells: tuple[float, ...] = setting(
        (1.0, 6.0), _distinct(_ell), "diffusion lengths per step, in mesh spacings",
        metavar="ELL",
    )  # fmt: skip
    models: tuple[str, ...] = setting(
        FULL_MODELS, _distinct(_model),
        "mgn-<steps>x<width> or gt-<layers>x<width>-<mask>, masks: " + ", ".join(MESH_MASKS),
        metavar="MODEL",
    )  # fmt: skip
    heads: int = setting(4, integer(maximum=256), "attention heads")
    seeds: tuple[int, ...] = seeds_setting((0, 1, 2))
    epochs: int | None = setting(
        None, optional(integer(maximum=1_000_000)), "epochs per model (default: time budget)",
    )  # fmt: skip
    max_seconds: float | None = setting(
        300.0, optional(finite(positive=True, maximum=7 * 86400)),
        "training seconds per model and seed (0: no limit)",
        from_cli=lambda seconds: seconds or None,
    )  # fmt: skip
    budget_clock: str = setting(
        "auto", _clock,
        "what --max-seconds counts: cpu (this job's CPU seconds), wall, or auto (cpu on the "
        "CPU, wall on a GPU)",
        choices=lambda: BUDGET_CLOCKS,
    )  # fmt: skip
    batch_size: int = batch_size_setting(2)
    lr: float = lr_setting(1e-3)
    lr_final: float = setting(1e-5, finite(positive=True, maximum=10.0), "final learning rate")
    noise_std: float = setting(0.01, finite(maximum=100.0), "input noise (standard deviation)")
    warmup_batches: int = setting(
        20, integer(minimum=0, maximum=1_000_000),
        "batches that feed the normalisers before the first update",
    )  # fmt: skip
    eval_trajectories: int | None = setting(
        2, optional(integer()), "test trajectories rolled out (0: all)",
        from_cli=lambda count: count or None,
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
        field_bytes = 4 * self.nodes * self.trajectories * (self.steps + 1)
        if field_bytes > _MAX_FIELD_BYTES:
            raise ValueError(
                f"nodes, trajectories, steps: the stored field would take "
                f"{format_bytes(field_bytes)}, more than the generator's "
                f"{format_bytes(_MAX_FIELD_BYTES)}"
            )
        for name in self.models:
            parse_model_name(name, self.heads)
        if self.epochs is None and self.max_seconds is None:
            raise ValueError("epochs, max_seconds: set at least one training budget")
        if self.lr_final > self.lr:
            raise ValueError(f"lr_final: expected at most lr={self.lr}, got {self.lr_final}")
        if self.one_step_stride > self.steps:
            raise ValueError(
                f"one_step_stride: expected at most steps={self.steps}, got {self.one_step_stride}"
            )
