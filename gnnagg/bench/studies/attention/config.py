"""The mesh-attention config: every field declared once (check, option)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...._checks import check_int
from ...fields import StudyConfig, finite, integer, names, optional, positive_int, setting
from ...registry import MESH_MASKS

__all__ = [
    "BACKENDS", "BIG_MESHES", "MASKS", "MESHES", "PARTS", "STEP_MODELS", "STEP_OPTIONS",
    "AttentionConfig",
]  # fmt: skip

PARTS: tuple[str, ...] = ("layer", "masks", "big", "step")
MASKS: tuple[str, ...] = MESH_MASKS
# gnnagg's backends of graph_attention, and PyG's TransformerConv as the reference.
BACKENDS: tuple[str, ...] = ("sparse", "flex", "dense", "TransformerConv")
MESHES: tuple[str, ...] = ("delaunay", "lattice")
# The meshes of the big build: the 3-D ones, and the 2-D Delaunay triangulation.
BIG_MESHES: tuple[str, ...] = ("delaunay2d", *MESHES)
# The step part's memory options: activation checkpointing, bfloat16 autocast, both.
STEP_OPTIONS: tuple[str, ...] = ("none", "checkpoint", "bf16", "both")
# The step part's models: gnnagg's, and the same model with PyG's TransformerConv.
STEP_MODELS: tuple[str, ...] = ("GraphTransformer", "TransformerConv")
# A 3-D mesh of 10M nodes needs about 10 GB for its edges alone: beyond this machine's kind.
_MAX_NODES = 10_000_000


def _one_of(valid: tuple[str, ...]) -> Any:
    def check(value: Any, name: str) -> str:
        return names(valid)([value], name)[0]

    return check


def _size(maximum: int) -> Any:
    return integer(minimum=8, maximum=maximum)


def _sizes(maximum: int) -> Any:
    def check(value: Any, name: str) -> tuple[int, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a non-empty list of node counts, got {value!r}")
        return tuple(check_int(v, name, minimum=8, maximum=maximum) for v in value)

    return check


@dataclass
class AttentionConfig(StudyConfig):
    """Mesh attention: ``parts`` (see :mod:`~gnnagg.bench.studies.attention.run`) on a 3-D
    ``mesh`` of ``nodes`` nodes (``big_nodes`` on each of ``big_meshes`` for the ``big``
    build: ``delaunay2d`` is the 2-D triangulation), ``heads`` x
    ``channels`` per head from ``in_channels`` input features; ``masks`` and ``backends`` of
    the layer part (``backends`` ``None``: sparse and ``TransformerConv``, plus flex on CUDA;
    the dense backend runs only up to 4,000 nodes). The ``step`` part trains a
    ``step_layers``-block :class:`~gnnagg.models.GraphTransformer` of width
    ``step_hidden_channels`` with ``step_heads`` heads on the ``mesh`` at each of ``step_nodes``,
    with each of ``step_options`` and ``step_masks`` (``step_models``: also the same model
    with PyG's ``TransformerConv``). ``repeats`` timed calls after a warm-up;
    ``cap_gb`` caps a CPU worker's address space, ``timeout_s`` each measurement."""

    parts: tuple[str, ...] = setting(
        ("layer", "masks"), names(PARTS), "parts to run", choices=lambda: PARTS
    )
    mesh: str = setting("delaunay", _one_of(MESHES), "3-D mesh", choices=lambda: MESHES)
    nodes: int = setting(3_000, _size(_MAX_NODES), "nodes of the mesh", cli_type=positive_int)
    big_meshes: tuple[str, ...] = setting(
        ("delaunay2d", "delaunay"), names(BIG_MESHES), "meshes of the big build",
        choices=lambda: BIG_MESHES,
    )
    big_nodes: int = setting(
        300_000, _size(_MAX_NODES), "nodes of the big build", cli_type=positive_int
    )
    heads: int = setting(4, integer(maximum=256), "attention heads", cli_type=positive_int)
    channels: int = setting(
        64, integer(maximum=4096), "channels per head", cli_type=positive_int
    )
    in_channels: int = setting(
        64, integer(maximum=4096), "input features per node", cli_type=positive_int
    )
    masks: tuple[str, ...] = setting(MASKS, names(MASKS), "masks", choices=lambda: MASKS)
    backends: tuple[str, ...] | None = setting(
        None, optional(names(BACKENDS)),
        "backends of the layer part (default: sparse and TransformerConv, + flex on CUDA)",
        choices=lambda: BACKENDS,
    )  # fmt: skip
    repeats: int = setting(
        2, integer(maximum=100), "timed calls after a warm-up", cli_type=positive_int
    )
    cap_gb: float = setting(
        16.0, finite(positive=True, maximum=1 << 20), "address-space cap of a CPU worker (GB)"
    )
    timeout_s: float = setting(
        900.0, finite(positive=True, maximum=86400), "seconds per measurement"
    )
    step_nodes: tuple[int, ...] = setting(
        (100_000, 300_000), _sizes(_MAX_NODES), "mesh sizes of the step part",
        cli_type=positive_int,
    )  # fmt: skip
    step_hidden_channels: int = setting(
        128, integer(maximum=4096), "model width of the step part", cli_type=positive_int
    )
    step_heads: int = setting(
        8, integer(maximum=256), "heads of the step part", cli_type=positive_int
    )
    step_layers: int = setting(
        2, integer(maximum=64), "blocks of the step part", cli_type=positive_int
    )
    step_options: tuple[str, ...] = setting(
        STEP_OPTIONS, names(STEP_OPTIONS), "memory options of the step part",
        choices=lambda: STEP_OPTIONS,
    )  # fmt: skip
    step_masks: tuple[str, ...] = setting(
        ("adjacency",), names(MASKS), "masks of the step part", choices=lambda: MASKS
    )
    step_models: tuple[str, ...] = setting(
        STEP_MODELS, names(STEP_MODELS), "models of the step part", choices=lambda: STEP_MODELS
    )

    def validate(self) -> None:
        if self.step_hidden_channels % self.step_heads:
            raise ValueError(
                f"step_hidden_channels={self.step_hidden_channels} must be divisible by "
                f"step_heads={self.step_heads}"
            )
