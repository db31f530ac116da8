"""The mesh-attention section: one masked attention layer per mask and path next to PyG's
``TransformerConv``, the masks' build cost and block density, and a large mask build
(:mod:`gnnagg.bench.attention` does the measuring, each row in a fresh process).

The targets it reports against (Garnier et al. 2025 at our scale; CPU numbers with 1 thread,
side by side in one run): on the 30k-node mesh with the adjacency mask, H = 4, C = 64, the
sparse path at least 3x faster than ``TransformerConv`` forward + backward with at least 3x
less peak extra memory; building ``khop(2) | dilated_window(4, 8) | global_tokens(4)`` on 300k
nodes in under 10 s and 2 GB, with BlockMask tables under 50 MB and a Morton block density of
at most 1.5 %.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..section import ReportBlock, RunContext, Section
from ..validation import NUMBER, check_finite, check_int, check_names, check_shape

__all__ = ["AttentionConfig", "AttentionSection"]

_PARTS = ("layer", "masks", "big")
_MASKS = ("adjacency", "khop2", "khop2+dilated", "khop2+dilated+global")
_PATHS = ("sparse", "flex", "dense", "TransformerConv")
_MESHES = ("delaunay", "lattice")
# A 3-D mesh of 10M nodes needs about 10 GB for its edges alone: beyond this machine's kind.
_MAX_NODES = 10_000_000

_LAYER_ROW = {"mask": str, "path": str, "status": str}
_MASK_ROW = {"mask": str, "status": str}
_RESULT_SHAPE = {"layer?": [_LAYER_ROW], "masks?": [_MASK_ROW], "big?": {"status": str}}
# What the report reads of a measured row.
_MEASURED_MASK_ROW = {
    "build_s": NUMBER, "nnz": int, "density_index": NUMBER, "density_morton": NUMBER,
    "density_rcm": NUMBER, "block_mask_mb": NUMBER,
}  # fmt: skip
_MEASURED_BIG = {
    "build_s": NUMBER, "extra_mb": NUMBER, "nnz": int, "block_mask_mb": NUMBER,
    "density_morton": NUMBER,
}  # fmt: skip


@dataclass
class AttentionConfig:
    """Mesh attention: ``parts`` of :mod:`gnnagg.bench.attention` on a 3-D ``mesh`` of
    ``nodes`` nodes (``big_nodes`` for the ``big`` build), ``heads`` x ``channels`` per head
    from ``in_channels`` input features; ``masks`` and ``paths`` of the layer part (``paths``
    ``None``: sparse and ``TransformerConv``, plus flex on CUDA; the dense path runs only up
    to 4,000 nodes). ``repeats`` timed calls after a warm-up; ``cap_gb`` caps a CPU worker's
    address space, ``timeout_s`` each measurement."""

    parts: tuple[str, ...] = ("layer", "masks")
    mesh: str = "delaunay"
    nodes: int = 3_000
    big_mesh: str = "lattice"
    big_nodes: int = 300_000
    heads: int = 4
    channels: int = 64
    in_channels: int = 64
    masks: tuple[str, ...] = _MASKS
    paths: tuple[str, ...] | None = None
    repeats: int = 2
    cap_gb: float = 16.0
    timeout_s: float = 900.0

    def __post_init__(self) -> None:
        self.parts = check_names(self.parts, _PARTS, "parts")
        self.mesh = check_names([self.mesh], _MESHES, "mesh")[0]
        self.big_mesh = check_names([self.big_mesh], _MESHES, "big_mesh")[0]
        self.nodes = check_int(self.nodes, "nodes", 8, _MAX_NODES)
        self.big_nodes = check_int(self.big_nodes, "big_nodes", 8, _MAX_NODES)
        self.heads = check_int(self.heads, "heads", 1, 256)
        self.channels = check_int(self.channels, "channels", 1, 4096)
        self.in_channels = check_int(self.in_channels, "in_channels", 1, 4096)
        self.masks = check_names(self.masks, _MASKS, "masks")
        if self.paths is not None:
            self.paths = check_names(self.paths, _PATHS, "paths")
        self.repeats = check_int(self.repeats, "repeats", 1, 100)
        self.cap_gb = check_finite(self.cap_gb, "cap_gb", positive=True, maximum=1 << 20)
        self.timeout_s = check_finite(self.timeout_s, "timeout_s", positive=True, maximum=86400)


def _ratio_lines(rows: list[dict[str, Any]]) -> list[str]:
    by_path = {(r.get("mask"), r.get("path")): r for r in rows}
    ours, theirs = by_path.get(("adjacency", "sparse")), by_path.get(
        ("adjacency", "TransformerConv")
    )
    keys = ("fwd_bwd_ms", "extra_mb")
    if not ours or not theirs or not all(k in ours and k in theirs for k in keys):
        return []
    speed = theirs["fwd_bwd_ms"] / max(ours["fwd_bwd_ms"], 1e-9)
    memory = theirs["extra_mb"] / max(ours["extra_mb"], 1e-3)
    return [
        f"Adjacency mask, sparse path vs `TransformerConv`, side by side in this run: "
        f"**{speed:.1f}x** faster forward + backward, **{memory:.1f}x** less peak extra memory "
        "(target on the 30k-node mesh: at least 3x each).",
        "",
    ]


class AttentionSection(Section):
    """Mesh graph attention (:class:`AttentionConfig`)."""

    name: ClassVar[str] = "attention"
    title: ClassVar[str] = "Mesh graph attention"
    config_type: ClassVar[type] = AttentionConfig
    command: ClassVar[str | None] = "attention"
    command_help: ClassVar[str] = "mesh attention: masks, paths, block density vs TransformerConv"
    command_description: ClassVar[str] = (
        "One masked attention layer per mask and path next to PyG's TransformerConv on a 3-D "
        "mesh; mask build cost and block density per node ordering; a large mask build."
    )
    result_keys: ClassVar[str] = "`attention` {`layer`: [row], `masks`: [row], `big`: row}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> AttentionConfig | None:
        if suite == "quick":
            return AttentionConfig(nodes=3_000, repeats=1, timeout_s=300.0)
        if suite == "full":
            return AttentionConfig(parts=_PARTS, nodes=30_000, big_nodes=300_000)
        if suite == "smoke":
            return AttentionConfig(
                parts=_PARTS, nodes=300, big_nodes=2_000, masks=("adjacency",),
                paths=("sparse", "TransformerConv"), repeats=1, timeout_s=120.0,
            )  # fmt: skip
        return None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--parts", nargs="+", choices=_PARTS, default=list(_PARTS))
        parser.add_argument("--nodes", type=int, default=30_000)
        parser.add_argument("--mesh", choices=_MESHES, default="delaunay")
        parser.add_argument("--big-nodes", type=int, default=300_000)
        parser.add_argument("--big-mesh", choices=_MESHES, default="lattice")
        parser.add_argument("--heads", type=int, default=4)
        parser.add_argument("--channels", type=int, default=64, help="channels per head")
        parser.add_argument("--masks", nargs="+", choices=_MASKS, default=list(_MASKS))
        parser.add_argument("--paths", nargs="+", choices=_PATHS, default=None)
        parser.add_argument("--repeats", type=int, default=2)

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        config = AttentionConfig(
            parts=tuple(args.parts), nodes=args.nodes, mesh=args.mesh, big_nodes=args.big_nodes,
            big_mesh=args.big_mesh, heads=args.heads, channels=args.channels,
            masks=tuple(args.masks), paths=None if args.paths is None else tuple(args.paths),
            repeats=args.repeats,
        )  # fmt: skip
        return {self.name: config}

    def choices(self) -> dict[str, list[str]]:
        return {"attention_masks": list(_MASKS), "attention_paths": list(_PATHS)}

    def run(self, config: AttentionConfig, context: RunContext) -> dict[str, Any]:
        from tqdm.auto import tqdm

        from ..attention import run_attention

        paths = config.paths or (
            ("sparse", "TransformerConv") + (("flex",) if context.device == "cuda" else ())
        )
        spec = {
            **{f.name: getattr(config, f.name) for f in dataclasses.fields(config)},
            "device": context.device,
            "folder": context.out_dir,
        }
        with tqdm(desc="attention", unit="row", disable=not context.progress) as bar:
            return run_attention(
                spec, config.parts, config.masks, tuple(paths), lambda row: bar.update(1)
            )

    def check_result(self, result: Any) -> None:
        check_shape(result, _RESULT_SHAPE, self.name)
        for i, row in enumerate(result.get("layer", [])):
            for key in ("fwd_ms", "fwd_bwd_ms", "extra_mb"):
                if key in row:
                    check_shape(row[key], NUMBER, f"{self.name}.layer[{i}].{key}")
        for i, row in enumerate(result.get("masks", [])):
            if row["status"] == "ok":
                check_shape(row, _MEASURED_MASK_ROW, f"{self.name}.masks[{i}]")
        big = result.get("big")
        if big is not None and big["status"] == "ok":
            check_shape(big, _MEASURED_BIG, f"{self.name}.big")

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        from ..attention import format_layer_table, format_mask_table

        block = ReportBlock()
        lines = block.lines
        size = (
            f"{config.get('mesh')} mesh, N = {config.get('nodes')}, H = {config.get('heads')}, "
            f"C = {config.get('channels')} per head"
        )
        if "layer" in result:
            lines += [f"### One attention layer ({size})", "", format_layer_table(result["layer"])]
            lines += ["", *_ratio_lines(result["layer"])]
        if "masks" in result:
            lines += [f"### Mask build and block density at block 128 ({size})", ""]
            lines += [format_mask_table(result["masks"]), ""]
        big = result.get("big")
        if big is not None:
            lines += [f"### Building `{big.get('mask', 'the widest mask')}` on "
                      f"{big.get('nodes', config.get('big_nodes'))} nodes", ""]  # fmt: skip
            if big.get("status") == "ok":
                lines += [
                    f"{big['build_s']} s, {big['extra_mb']} MB peak extra memory, "
                    f"{big['nnz']} attended pairs; BlockMask tables {big['block_mask_mb']} MB, "
                    f"Morton block density {100 * big['density_morton']:.3g} % "
                    "(targets at 300k nodes: < 10 s, < 2 GB, < 50 MB, <= 1.5 %).",
                    "",
                ]
            else:
                lines += [f"Not run: {big.get('status')}.", ""]
        return block
