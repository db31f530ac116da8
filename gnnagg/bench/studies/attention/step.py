"""The attention study's ``step`` part: one training step (forward, backward, optimiser step)
of a mesh graph transformer at 100k-300k nodes, with each memory option, next to PyG's
``TransformerConv`` in the same model.

* ``GraphTransformer`` -- :class:`gnnagg.models.GraphTransformer` with ``step_layers`` blocks
  of width ``step_hidden_channels`` and ``step_heads`` heads on the sparse backend, the mask
  built once (a fixed mesh), under each of the memory options: ``none``, ``checkpoint``
  (``checkpoint=True``: each block recomputed in backward), ``bf16`` (``torch.autocast`` in
  bfloat16) and ``both``;
* ``TransformerConv`` -- the same encoder, pre-norm residual blocks, gated MLPs and decoder,
  with PyG's ``TransformerConv`` on the mesh's edges as each block's attention (what users of
  the reference code fall back to), without a memory option.

Input: ``IN_CHANNELS`` random features per node; the loss is the mean squared error to a
random ``OUT_CHANNELS``-wide target; Adam. Every measurement runs in a fresh process capped at
``cap_gb`` of address space: a warm-up step, then ``repeats`` steps timed in CPU seconds
(``time.process_time``, one thread) and in wall milliseconds (synchronised: the GPU's figure),
the first of them also measured for peak extra memory by
:func:`gnnagg.bench.measure.peak_extra_memory` (above what the mesh, mask, model and optimiser
state already hold). A size whose estimated memory (:func:`estimated_bytes`) exceeds the cap is
refused before anything of it is allocated.

    python -m gnnagg.bench.studies.attention.step [--step-nodes 100000 300000] [--out F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...._files import write_text
from ....models import GraphTransformer
from ...fields import add_options, config_from_args
from ...machine import machine_info
from ...measure import MIB, peak_extra_memory, synchronize
from .config import AttentionConfig
from .report import format_step_table
from .run import _run_worker, _worker_request, load_mesh, make_mask

__all__ = [
    "IN_CHANNELS",
    "OUT_CHANNELS",
    "TITLE",
    "estimated_bytes",
    "measure_step",
    "run_step",
]

TITLE = "One training step"
# Node features in and out of a mesh simulator: a few fields; beside the width they barely count.
IN_CHANNELS, OUT_CHANNELS = 8, 3


class TransformerConvModel(nn.Module):
    """GraphTransformer's encoder, pre-norm blocks, gated MLPs and decoder, with PyG's
    ``TransformerConv(hidden, hidden / heads, heads)`` on ``edge_index`` as the attention."""

    def __init__(self, hidden: int, heads: int, num_layers: int, expansion: int = 3) -> None:
        from torch_geometric.nn import TransformerConv

        super().__init__()
        self.encoder = _two_layers(IN_CHANNELS, hidden, hidden)
        self.norms = nn.ModuleList(nn.RMSNorm(hidden) for _ in range(2 * num_layers))
        self.convs = nn.ModuleList(
            TransformerConv(hidden, hidden // heads, heads=heads) for _ in range(num_layers)
        )
        width = expansion * hidden
        self.mlps = nn.ModuleList(
            nn.ModuleList([nn.Linear(hidden, width), nn.Linear(hidden, width),
                           nn.Linear(width, hidden)])
            for _ in range(num_layers)
        )  # fmt: skip
        self.norm = nn.RMSNorm(hidden)
        self.decoder = _two_layers(hidden, hidden, OUT_CHANNELS)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = self.encoder(x)
        for i, (conv, (gate, up, down)) in enumerate(zip(self.convs, self.mlps)):
            h = h + conv(self.norms[2 * i](h), edge_index)
            m = self.norms[2 * i + 1](h)
            h = h + down(nn.functional.gelu(gate(m)) * up(m))
        return self.decoder(self.norm(h))


def _two_layers(a: int, b: int, c: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c))


def estimated_bytes(
    model: str, option: str, rows: int, pairs: int, hidden: int, heads: int, layers: int
) -> int:
    """A generous estimate of a step's memory, for refusing a size before allocating it.

    ``rows``: the mask's rows (nodes and tokens); ``pairs``: attended pairs (the mask's nnz,
    or the edges for ``TransformerConv``). ``TransformerConv`` keeps about four ``[E, hidden]``
    tensors per layer for backward (gathered queries, keys, values and the weighted values)
    and about three more while a layer's backward runs. The GraphTransformer keeps about 24
    ``[R, hidden]`` tensors per block (projections, norms, the 3x-wide MLP), one block's at a
    time with checkpointing (plus each block's input), and per head a few ``[nnz]`` score
    vectors and its CSR indices during attention.
    """
    unit = 4 * hidden
    if model == "TransformerConv":
        return (4 * layers + 3) * pairs * unit + 30 * rows * unit
    kept = 1 if option in ("checkpoint", "both") else layers
    blocks = kept * 24 * rows * unit + layers * rows * unit
    attention = pairs * heads * (4 * 4 + 2 * 8)
    return blocks + attention + 8 * rows * unit


def _fits(spec: dict[str, Any], estimate: int) -> str | None:
    cap = int(spec["cap_gb"] * 2**30)
    if spec["device"] != "cpu" or estimate <= cap:
        return None
    return (f"refused: needs about {estimate / 2**30:.1f} GB, over the {spec['cap_gb']:g} GB "
            "cap")  # fmt: skip


def measure_step(
    spec: dict[str, Any], model_name: str, option: str, mask_name: str, nodes: int
) -> dict[str, Any]:
    """Time and peak extra memory of one training step (one row of the part)."""
    device = torch.device(spec["device"])
    row: dict[str, Any] = dict(model=model_name, option=option, mask=mask_name, nodes=nodes)
    row["load_average"] = [round(v, 2) for v in os.getloadavg()]
    torch.manual_seed(0)
    pos, edge_index = load_mesh(spec["mesh"], nodes, spec["folder"])
    pos, edge_index = pos.to(device), edge_index.to(device)
    row["edges"] = int(edge_index.size(1))
    hidden, heads, layers = spec["step_hidden_channels"], spec["step_heads"], spec["step_layers"]
    if model_name == "TransformerConv":
        row["nnz"], rows = row["edges"], nodes
    else:
        mask_index = make_mask(mask_name).build(edge_index, pos=pos)
        row["nnz"], rows = mask_index.nnz, mask_index.num_rows
    estimate = estimated_bytes(model_name, option, rows, row["nnz"], hidden, heads, layers)
    row["estimate_mb"] = round(estimate / MIB)
    refused = _fits(spec, estimate)
    if refused:
        return {**row, "status": refused}

    if model_name == "TransformerConv":
        net: nn.Module = TransformerConvModel(hidden, heads, layers).to(device)

        def forward(x: Tensor) -> Tensor:
            return net(x, edge_index)
    else:
        net = GraphTransformer(
            IN_CHANNELS, hidden, OUT_CHANNELS, heads=heads, num_layers=layers,
            mask=make_mask(mask_name), backend="sparse",
            checkpoint=option in ("checkpoint", "both"),
        ).to(device)  # fmt: skip

        def forward(x: Tensor) -> Tensor:
            return net(x, mask_index=mask_index)

    x = torch.randn(nodes, IN_CHANNELS, device=device)
    target = torch.randn(nodes, OUT_CHANNELS, device=device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=option in ("bf16", "both"))  # fmt: skip
    row["parameters"] = sum(p.numel() for p in net.parameters())
    cpu: list[float] = []
    wall: list[float] = []

    def step() -> float:
        synchronize(device)
        start, start_wall = time.process_time(), time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            out = forward(x)
        loss = nn.functional.mse_loss(out.float(), target)
        loss.backward()
        optimizer.step()
        synchronize(device)
        cpu.append(time.process_time() - start)
        wall.append(time.perf_counter() - start_wall)
        return float(loss.detach())

    try:
        step()  # warm-up: the CSR plan, the optimiser state, first-touch of every buffer
        row["warmup_cpu_s"] = round(cpu.pop(), 2)
        wall.pop()
        row["loss"], extra = peak_extra_memory(step, device)
        row["extra_mb"] = round(extra / MIB, 1)
        for _ in range(spec["repeats"] - 1):
            step()
        # CPU seconds on the CPU (one thread: what a shared machine does not inflate); on a
        # GPU the synchronised wall time is the figure.
        row["cpu_s"] = round(statistics.median(cpu), 3)
        row["wall_ms"] = round(1e3 * statistics.median(wall), 2)
        row["status"] = "ok"
    except (RuntimeError, MemoryError) as error:
        row["status"] = "error: " + str(error).splitlines()[0][:160]
    # The process's own peak (mesh, mask, model and step): what the machine must hold.
    row["process_peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def step_jobs(config: AttentionConfig) -> list[list[Any]]:
    """The part's measurements, smallest mesh first: every option and mask of the
    GraphTransformer, then ``TransformerConv``."""
    jobs: list[list[Any]] = []
    for nodes in sorted(config.step_nodes):
        if "GraphTransformer" in config.step_models:
            for mask_name in config.step_masks:
                jobs += [["GraphTransformer", o, mask_name, nodes] for o in config.step_options]
        if "TransformerConv" in config.step_models:
            jobs.append(["TransformerConv", "none", "adjacency", nodes])
    return jobs


def run_step(
    config: AttentionConfig,
    device: str = "cpu",
    folder: Path | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every measurement of :func:`step_jobs` in a fresh process; JSON-ready rows."""
    spec = {**dataclasses.asdict(config), "device": device, "folder": folder}
    rows = []
    for job in step_jobs(config):
        model_name, option, mask_name, nodes = job
        measured = _run_worker(spec, ["step", *job], module=__spec__.name)
        row = {"model": model_name, "option": option, "mask": mask_name, "nodes": nodes,
               **measured}  # fmt: skip
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _worker_main(payload: str) -> None:
    spec, (kind, *job) = _worker_request(payload)
    if kind != "step":
        raise ValueError(f"unknown job {kind!r}")
    print(json.dumps(measure_step(spec, *job)), flush=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m gnnagg.bench.studies.attention.step``: the study's options plus
    ``--device`` and ``--out``; also the entry point of the part's worker processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    add_options(parser, AttentionConfig)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench_attention_step.json"))
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(args.worker)
        return
    try:
        config = config_from_args(args, AttentionConfig(parts=("step",)))
    except ValueError as error:
        parser.error(str(error))
    result: dict[str, Any] = {"machine": machine_info(args.device)}
    result["load_average_start"] = list(os.getloadavg())
    result["step"] = run_step(config, args.device, args.out.resolve().parent,
                              lambda row: print(json.dumps(row), flush=True))  # fmt: skip
    result["load_average_end"] = list(os.getloadavg())
    result["config"] = dataclasses.asdict(config)
    print(format_step_table(result["step"]))
    write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
