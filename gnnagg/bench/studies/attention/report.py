"""The mesh-attention block of ``report.md``: one layer per mask and backend next to PyG's
``TransformerConv``, the masks' build cost and block density, the large build, and one
training step per memory option."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...measure import significant
from ...section import ReportBlock
from ...validation import NUMBER, check_shape

__all__ = [
    "RESULT_SHAPE",
    "check_result",
    "format_big_table",
    "format_layer_table",
    "format_mask_table",
    "format_step_table",
    "report",
]

_LAYER_ROW = {"mask": str, "backend": str, "status": str}
_MASK_ROW = {"mask": str, "status": str}
_STEP_ROW = {"model": str, "option": str, "mask": str, "nodes": int, "status": str}
RESULT_SHAPE = {
    "layer?": [_LAYER_ROW], "masks?": [_MASK_ROW], "big?": [{"status": str}],
    "step?": [_STEP_ROW],
}  # fmt: skip
# What the report reads of a measured row.
_MEASURED_MASK_ROW = {
    "build_s": NUMBER, "nnz": int, "density_index": NUMBER, "density_morton": NUMBER,
    "density_rcm": NUMBER, "block_mask_mb": NUMBER,
}  # fmt: skip
_MEASURED_STEP_ROW = {
    "cpu_s": NUMBER, "wall_ms": NUMBER, "extra_mb": NUMBER, "process_peak_mb": NUMBER
}  # fmt: skip
_MEASURED_BIG = {
    "mesh": str, "build_s": NUMBER, "build_cpu_s": NUMBER, "extra_mb": NUMBER, "nnz": int,
    "threads": int, "block_mask_mb": NUMBER, "density_morton": NUMBER,
}  # fmt: skip


def _ratio_lines(rows: list[dict[str, Any]]) -> list[str]:
    by_backend = {(r.get("mask"), r.get("backend")): r for r in rows}
    ours, theirs = by_backend.get(("adjacency", "sparse")), by_backend.get(
        ("adjacency", "TransformerConv")
    )
    keys = ("fwd_bwd_ms", "extra_mb")
    if not ours or not theirs or not all(k in ours and k in theirs for k in keys):
        return []
    speed = theirs["fwd_bwd_ms"] / max(ours["fwd_bwd_ms"], 1e-9)
    memory = theirs["extra_mb"] / max(ours["extra_mb"], 1e-3)
    cpu = ""
    if "fwd_bwd_cpu_ms" in ours and "fwd_bwd_cpu_ms" in theirs:
        cpu_speed = theirs["fwd_bwd_cpu_ms"] / max(ours["fwd_bwd_cpu_ms"], 1e-9)
        cpu = f" (**{cpu_speed:.1f}x** in CPU time)"
    return [
        f"Adjacency mask, sparse backend vs `TransformerConv`, side by side in this run: "
        f"**{speed:.1f}x** faster forward + backward in wall time{cpu}, **{memory:.1f}x** less "
        "peak extra memory (target on the 30k-node mesh, 1 thread: at least 5x each).",
        "",
    ]


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "-" if value is None else significant(float(value))


def format_layer_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per (mask, backend) with nnz, times, peak extra memory and status."""
    lines = [
        "| mask | backend | attended pairs | fwd ms | fwd+bwd ms | fwd+bwd CPU ms | "
        "peak extra MB | load | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.get('mask', '-')} | {r.get('backend', '-')} | {r.get('nnz', '-')} | "
            f"{_cell(r, 'fwd_ms')} | {_cell(r, 'fwd_bwd_ms')} | {_cell(r, 'fwd_bwd_cpu_ms')} | "
            f"{_cell(r, 'extra_mb')} | {_cell(r, 'load_average')} | {r.get('status', '-')} |"
        )
    return "\n".join(lines)


def format_mask_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: build time, nnz and block density per ordering for each mask."""
    lines = [
        "| mask | build s | attended pairs | density index | density Morton | density RCM | "
        "BlockMask MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r.get('mask', '-')} | {r.get('status')} | | | | | |")
            continue
        lines.append(
            f"| {r['mask']} | {significant(r['build_s'])} | {r['nnz']} | "
            f"{100 * r['density_index']:.3g} % | {100 * r['density_morton']:.3g} % | "
            f"{100 * r['density_rcm']:.3g} % | {significant(r['block_mask_mb'])} |"
        )
    return "\n".join(lines)


def format_big_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: the big build on each mesh -- CPU seconds, wall seconds, peak extra memory,
    pairs, threads and load, BlockMask tables and Morton block density."""
    mask = next((r["mask"] for r in rows if "mask" in r), "the widest mask")
    lines = [
        f"### Building `{mask}`",
        "",
        "| mesh | nodes | edges | attended pairs | CPU s | wall s | peak extra MB | threads | "
        "load (1 min) | BlockMask MB | Morton density |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r.get('mesh', '-')} | {r.get('status')} | | | | | | | | | |")
            continue
        load = r.get("load_average") or ["-"]
        lines.append(
            f"| {r['mesh']} | {r['nodes']} | {r['edges']} | {r['nnz']} | "
            f"{significant(r['build_cpu_s'])} | {significant(r['build_s'])} | "
            f"{significant(r['extra_mb'])} | {r['threads']} | {load[0]} | "
            f"{significant(r['block_mask_mb'])} | {100 * r['density_morton']:.3g} % |"
        )
    lines += [
        "",
        "Targets at 300k nodes, one thread: < 5 CPU s and < 1 GB peak extra memory for the "
        "build (CPU seconds count: the wall time grows with the machine's load); BlockMask "
        "tables < 50 MB and Morton block density <= 1.5 %.",
    ]
    return "\n".join(lines)


def format_step_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per (nodes, model, mask, memory option) with CPU-s and wall ms per
    training step, its peak extra memory and the process's peak."""
    lines = [
        "| nodes | model | mask | memory option | attended pairs | CPU-s / step | "
        "wall ms / step | peak extra MB | process peak MB | status |",
        "|---:|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.get('nodes', '-')} | {r.get('model', '-')} | {r.get('mask', '-')} | "
            f"{r.get('option', '-')} | {r.get('nnz', '-')} | {_cell(r, 'cpu_s')} | "
            f"{_cell(r, 'wall_ms')} | {_cell(r, 'extra_mb')} | {_cell(r, 'process_peak_mb')} | "
            f"{r.get('status', '-')} |"
        )
    return "\n".join(lines)


def _checkpoint_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The largest mesh's step memory with and without checkpointing (float32, adjacency)."""
    ours = [r for r in rows if r["model"] == "GraphTransformer" and r["status"] == "ok"
            and r["mask"] == "adjacency"]  # fmt: skip
    if not ours:
        return []
    nodes = max(r["nodes"] for r in ours)
    by_option = {r["option"]: r for r in ours if r["nodes"] == nodes}
    plain, recomputed = by_option.get("none"), by_option.get("checkpoint")
    if not plain or not recomputed:
        return []
    return [
        f"At {nodes:,} nodes (adjacency mask): peak extra memory of a step "
        f"{significant(plain['extra_mb'])} MB without checkpointing, "
        f"{significant(recomputed['extra_mb'])} MB with it "
        f"({plain['extra_mb'] / max(recomputed['extra_mb'], 1e-3):.1f}x less), for "
        f"{recomputed['cpu_s'] / max(plain['cpu_s'], 1e-9):.2f}x the CPU time; the whole "
        f"process peaked at {significant(recomputed['process_peak_mb'])} MB with it.",
        "",
    ]


def check_result(result: Any, name: str = "attention") -> None:
    """``ValueError`` naming the key when ``result`` is not what :func:`report` reads."""
    check_shape(result, RESULT_SHAPE, name)
    for i, row in enumerate(result.get("layer", [])):
        for key in ("fwd_ms", "fwd_bwd_ms", "fwd_bwd_cpu_ms", "extra_mb", "load_average"):
            if key in row:
                check_shape(row[key], NUMBER, f"{name}.layer[{i}].{key}")
    for i, row in enumerate(result.get("masks", [])):
        if row["status"] == "ok":
            check_shape(row, _MEASURED_MASK_ROW, f"{name}.masks[{i}]")
    for i, row in enumerate(result.get("big", [])):
        if row["status"] == "ok":
            check_shape(row, _MEASURED_BIG, f"{name}.big[{i}]")
    for i, row in enumerate(result.get("step", [])):
        if row["status"] == "ok":
            check_shape(row, _MEASURED_STEP_ROW, f"{name}.step[{i}]")


def report(result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
    """The block of ``report.md``: the layer table with the ratio to TransformerConv, the mask
    table, the big build, the training step."""
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
    if "big" in result:
        lines += [format_big_table(result["big"]), ""]
    if "step" in result:
        lines += [
            f"### One training step ({config.get('mesh')} mesh, {config.get('step_layers')} "
            f"blocks, F = {config.get('step_hidden_channels')}, H = {config.get('step_heads')}; "
            "forward, backward, Adam)", "", format_step_table(result["step"]), "",
            *_checkpoint_lines(result["step"]),
        ]  # fmt: skip
    return block
