"""Mesh graph attention benchmark: one attention layer per mask and backend, next to PyG's
``TransformerConv``; mask build cost, nnz and block density per node ordering; the large build.

Three parts, every measurement in a fresh subprocess (peak resident memory only grows within a
process, and a crash or an out-of-memory then costs only its own row):

* ``layer`` -- a 3-D mesh (:func:`gnnagg.data.meshes.delaunay_mesh`, about 15 directed edges
  per node, or :func:`~gnnagg.data.meshes.lattice_mesh`), ``x [N, in_channels]``; one layer
  with q/k/v projections to ``heads x channels``, :func:`gnnagg.attention.graph_attention` and
  an output projection, for each mask and backend. PyG's ``TransformerConv(in, channels,
  heads)`` (q/k/v/skip projections) runs on the adjacency. Time: median forward and forward +
  backward after one warm-up, wall and (forward + backward, on the CPU) process CPU time; memory:
  the peak extra memory of the first forward + backward; the 1-minute load average after.
  On the CPU the flex backend runs forward only (torch has no CPU backward for FlexAttention).
* ``masks`` -- build time, nnz, and block density at block 128 in index, Morton and reverse
  Cuthill-McKee row order, with the BlockMask's table size.
* ``big`` -- building ``khop(2) | dilated_window(4, 8) | global_tokens(4)`` on each large mesh
  (by default 2-D and 3-D Delaunay, whose random node numbering has no locality): CPU seconds
  and wall time of the build, its peak extra memory, the threads and the load average; then
  BlockMask table bytes and block density (Morton order).

Time and memory come from :mod:`gnnagg.bench.measure`.

    python -m gnnagg.bench.studies.attention.run [--parts layer masks big] [--nodes N]

(the harness runs it as the ``attention`` study: ``gnnagg-bench attention``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ...._files import atomic_write, write_text
from ...fields import add_options, config_from_args
from ...machine import machine_info
from ...measure import MIB, median_time_ms, paired_median_times_ms, peak_extra_memory
from ...registry import mesh_mask
from .config import BACKENDS, MASKS, PARTS, AttentionConfig
from .report import format_big_table, format_layer_table, format_mask_table

__all__ = [
    "BACKENDS",
    "MASKS",
    "PARTS",
    "make_mask",
    "run_attention",
]

# The dense backend builds an N x N mask: only on small meshes.
DENSE_MAX_NODES = 4_000


def make_mask(name: str) -> Any:
    """The mask called ``name`` (one of :data:`MASKS`, or ``"big"``: the widest)."""
    return mesh_mask("khop2+dilated+global" if name == "big" else name)


def load_mesh(kind: str, nodes: int, folder: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The mesh as ``(pos, edge_index)``; kept in ``folder`` (the run's output folder) so that
    every worker process of a run measures the same mesh without generating it again."""
    from ....data.meshes import delaunay_mesh, lattice_mesh

    path = None if folder is None else folder / f"mesh-{kind}-{nodes}.pt"
    dim = 2 if kind == "delaunay2d" else 3
    if path is not None and path.is_file():
        try:
            tensors = torch.load(path, weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, TypeError, ValueError):
            tensors = None
        if _is_mesh(tensors, nodes, dim):
            return tensors["pos"], tensors["edge_index"]
        # Anything else (a damaged or foreign file) is made again and replaced.
    if kind == "lattice":
        mesh = lattice_mesh(nodes)
    else:
        mesh = delaunay_mesh(nodes, seed=0, dim=dim)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"pos": mesh.pos, "edge_index": mesh.edge_index}
        atomic_write(path, lambda handle: torch.save(tensors, handle))
    return mesh.pos, mesh.edge_index


def _is_mesh(tensors: Any, nodes: int, dim: int = 3) -> bool:
    """Whether ``tensors`` is a kept mesh of ``nodes`` nodes: ``pos`` ``[nodes, dim]`` floats
    and an ``edge_index`` ``[2, E]`` of int64 ids in range."""
    if not isinstance(tensors, dict):
        return False
    pos, edge_index = tensors.get("pos"), tensors.get("edge_index")
    return (
        isinstance(pos, torch.Tensor) and pos.shape == (nodes, dim) and pos.is_floating_point()
        and isinstance(edge_index, torch.Tensor) and edge_index.dim() == 2
        and edge_index.size(0) == 2 and edge_index.dtype == torch.int64
        and (edge_index.numel() == 0 or (int(edge_index.min()) >= 0
                                         and int(edge_index.max()) < nodes))
    )


class AttentionLayer(torch.nn.Module):
    """q/k/v projections ``in -> heads x channels``, masked attention, output projection."""

    def __init__(self, in_channels: int, channels: int, heads: int, backend: str) -> None:
        super().__init__()
        width = heads * channels
        self.heads, self.channels, self.backend = heads, channels, backend
        self.query = torch.nn.Linear(in_channels, width)
        self.key = torch.nn.Linear(in_channels, width)
        self.value = torch.nn.Linear(in_channels, width)
        self.out = torch.nn.Linear(width, in_channels)

    def forward(self, x: torch.Tensor, gmask: Any) -> torch.Tensor:
        from ....attention import graph_attention
        from ....attention.sparse import kernel_order

        # As GraphAttention does: rows in the sparse kernels' order, permuted once each way.
        ordered = kernel_order(gmask) if self.backend == "sparse" else None
        if ordered is not None:
            gmask, order, inverse = ordered
            x = x.index_select(0, order)
        shape = (x.size(0), self.heads, self.channels)
        q, k, v = self.query(x).view(shape), self.key(x).view(shape), self.value(x).view(shape)
        out = self.out(graph_attention(q, k, v, gmask, backend=self.backend).flatten(1))
        return out if ordered is None else out.index_select(0, inverse)


def _table_mb(block_mask: Any) -> float:
    tables = [t for t in block_mask.as_tuple() if isinstance(t, torch.Tensor)]
    return round(sum(t.numel() * t.element_size() for t in tables) / 2**20, 2)


def _peak_extra_mb(fn: Callable[[], object], device: torch.device) -> float:
    return round(peak_extra_memory(fn, device)[1] / MIB, 1)


def measure_layer(spec: dict[str, Any], mask_name: str, backend: str) -> dict[str, Any]:
    """One attention layer (or ``TransformerConv``) forward and forward + backward."""
    from torch_geometric.nn import TransformerConv

    torch.manual_seed(0)
    device = torch.device(spec["device"])
    pos, edge_index = load_mesh(spec["mesh"], spec["nodes"], spec["folder"])
    pos, edge_index = pos.to(device), edge_index.to(device)
    row: dict[str, Any] = dict(mask=mask_name, backend=backend, nodes=spec["nodes"])
    row["edges"] = int(edge_index.size(1))
    heads, channels, in_channels = spec["heads"], spec["channels"], spec["in_channels"]
    if backend == "TransformerConv":
        conv = TransformerConv(in_channels, channels, heads=heads).to(device)
        x = torch.randn(spec["nodes"], in_channels, device=device, requires_grad=True)
        row["nnz"] = row["edges"]

        def forward() -> torch.Tensor:
            return conv(x, edge_index)
    else:
        gmask = make_mask(mask_name).build(edge_index, pos=pos)
        row["nnz"] = gmask.nnz
        layer = AttentionLayer(in_channels, channels, heads, backend).to(device)
        x = torch.randn(gmask.num_rows, in_channels, device=device, requires_grad=True)

        def forward() -> torch.Tensor:
            return layer(x, gmask)

    forward_only = backend == "flex" and device.type == "cpu"

    def step() -> None:
        if forward_only:
            with torch.no_grad():
                forward()
            return
        x.grad = None
        forward().square().mean().backward()

    try:
        if backend == "flex":
            # Compilation, the locality order and the BlockMask happen on first use: mask-build
            # cost (the masks part measures it), kept out of the memory measurement.
            step()
        row["extra_mb"] = _peak_extra_mb(step, device)
        with torch.no_grad():
            row["fwd_ms"] = round(median_time_ms(forward, device, spec["repeats"], warmup=0), 2)
        if not forward_only:
            row["fwd_bwd_ms"] = round(median_time_ms(step, device, spec["repeats"], warmup=0), 2)
            if device.type == "cpu":
                # CPU time leaves out the waits for a core on a shared machine.
                cpu_ms = paired_median_times_ms([step], device, spec["repeats"], 0, "cpu")[0]
                row["fwd_bwd_cpu_ms"] = round(cpu_ms, 2)
        row["load_average"] = round(os.getloadavg()[0], 2)
        row["status"] = "ok (forward only)" if forward_only else "ok"
    except (RuntimeError, MemoryError, ValueError) as error:
        row["status"] = "error: " + str(error).splitlines()[0][:160]
    return row


def _block_stats(gmask: Any, block_size: int = 128) -> dict[str, Any]:
    """Block density in index, Morton and RCM row order; BlockMask build time and tables."""
    from ....attention import MaskIndex

    out: dict[str, Any] = {"density_index": gmask.block_density(block_size)}
    morton = gmask.reorder(gmask.locality_order())
    out["density_morton"] = morton.block_density(block_size)
    # Without positions the locality order is reverse Cuthill-McKee.
    no_pos = MaskIndex(
        gmask.rowptr, gmask.col, num_nodes=gmask.num_nodes, num_graphs=gmask.num_graphs,
        tokens_per_graph=gmask.tokens_per_graph, node_rows=gmask.node_rows,
        token_rows=gmask.token_rows, row_graph=gmask.row_graph,
    )  # fmt: skip
    out["density_rcm"] = no_pos.reorder(no_pos.locality_order()).block_density(block_size)
    start = time.perf_counter()
    block_mask = morton.to_block_mask(block_size)
    out["block_mask_s"] = round(time.perf_counter() - start, 3)
    out["block_mask_mb"] = _table_mb(block_mask)
    return out


def measure_masks(spec: dict[str, Any], mask_name: str) -> dict[str, Any]:
    """Build time, nnz and block densities of one mask on the layer part's mesh."""
    pos, edge_index = load_mesh(spec["mesh"], spec["nodes"], spec["folder"])
    row: dict[str, Any] = dict(mask=mask_name, nodes=spec["nodes"], edges=int(edge_index.size(1)))
    start = time.perf_counter()
    gmask = make_mask(mask_name).build(edge_index, pos=pos)
    row["build_s"] = round(time.perf_counter() - start, 3)
    row["nnz"] = gmask.nnz
    row.update(_block_stats(gmask))
    row["status"] = "ok"
    return row


def measure_big(spec: dict[str, Any], mesh: str) -> dict[str, Any]:
    """Building the widest mask on a large ``mesh``: CPU seconds, wall time and peak extra
    memory of the build (in a fresh worker: no k-hop cached), then the BlockMask tables and
    the Morton block density."""
    pos, edge_index = load_mesh(mesh, spec["big_nodes"], spec["folder"])
    mask = make_mask("big")
    row: dict[str, Any] = dict(mesh=mesh, mask=repr(mask), nodes=spec["big_nodes"])
    row["edges"] = int(edge_index.size(1))
    row["threads"] = torch.get_num_threads()
    row["load_average"] = [round(x, 2) for x in os.getloadavg()]
    built: dict[str, Any] = {}

    def build() -> None:
        built["gmask"] = mask.build(edge_index, pos=pos)

    start, cpu_start = time.perf_counter(), time.process_time()
    row["extra_mb"] = round(peak_extra_memory(build)[1] / MIB, 1)
    row["build_cpu_s"] = round(time.process_time() - cpu_start, 2)
    row["build_s"] = round(time.perf_counter() - start, 2)
    gmask = built["gmask"]
    row["nnz"] = gmask.nnz
    morton = gmask.reorder(gmask.locality_order())
    row["density_morton"] = morton.block_density(128)
    start = time.perf_counter()
    row["block_mask_mb"] = _table_mb(morton.to_block_mask(128))
    row["block_mask_s"] = round(time.perf_counter() - start, 2)
    row["status"] = "ok"
    return row


def _run_worker(spec: dict[str, Any], job: list[Any], module: str | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh process (``python -m module --worker``, this module by
    default); a crash, a timeout or an out-of-memory becomes that row's status."""
    worker_spec = {**spec, "folder": None if spec["folder"] is None else str(spec["folder"])}
    # The dotted name even under ``python -m`` (where __name__ is "__main__").
    module = module or (__spec__.name if __spec__ is not None else __name__)
    command = [sys.executable, "-m", module, "--worker", json.dumps(
        {"spec": worker_spec, "job": job})]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=spec["timeout_s"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {spec['timeout_s']:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:160]
    if done.returncode in (-9, 137):
        tail = "killed (out of memory)"
    return {"status": f"crashed: {tail}"}


def _worker_request(payload: str) -> tuple[dict[str, Any], list[Any]]:
    """A worker's ``(spec, job)`` from its JSON payload, with its torch threads set and, on the
    CPU, its address space capped at ``cap_gb``."""
    request = json.loads(payload)
    spec, job = request["spec"], request["job"]
    spec["folder"] = None if spec["folder"] is None else Path(spec["folder"])
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1") or 1)))
    if spec["device"] == "cpu":
        cap = int(spec["cap_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return spec, job


def _worker_main(payload: str) -> None:
    spec, (kind, *rest) = _worker_request(payload)
    measure = {"layer": measure_layer, "masks": measure_masks, "big": measure_big}[kind]
    print(json.dumps(measure(spec, *rest)), flush=True)


def run_attention(
    config: AttentionConfig,
    device: str = "cpu",
    folder: Path | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the parts of ``config`` on ``device``, every measurement in a fresh process (the
    mesh is kept in ``folder`` for them); returns JSON-ready rows per part. ``backends``
    ``None`` means sparse and ``TransformerConv``, plus flex on CUDA."""
    tick = progress or (lambda row: None)
    spec = {**dataclasses.asdict(config), "device": device, "folder": folder}
    parts, masks = config.parts, config.masks
    backends = config.backends or (
        ("sparse", "TransformerConv") + (("flex",) if device == "cuda" else ())
    )
    result: dict[str, Any] = {"machine": machine_info(spec["device"])}
    result["load_average_start"] = list(os.getloadavg())
    if "layer" in parts:
        rows = []
        for backend in backends:
            if backend == "dense" and spec["nodes"] > DENSE_MAX_NODES:
                continue
            for mask_name in ("adjacency",) if backend == "TransformerConv" else masks:
                measured = _run_worker(spec, ["layer", mask_name, backend])
                row = {"mask": mask_name, "backend": backend, **measured}
                rows.append(row)
                tick(row)
        result["layer"] = rows
    if "masks" in parts:
        rows = []
        for mask_name in masks:
            row = {"mask": mask_name, **_run_worker(spec, ["masks", mask_name])}
            rows.append(row)
            tick(row)
        result["masks"] = rows
    if "big" in parts:
        rows = []
        for mesh in config.big_meshes:
            row = {"mesh": mesh, **_run_worker(spec, ["big", mesh])}
            rows.append(row)
            tick(row)
        result["big"] = rows
    result["load_average_end"] = list(os.getloadavg())
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m gnnagg.bench.studies.attention.run``: the study's options (its config's
    fields) plus ``--device`` and ``--out``; also the entry point of its worker processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    add_options(parser, AttentionConfig)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench_attention.json"))
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(args.worker)
        return
    try:
        config = config_from_args(args, AttentionConfig(parts=PARTS, nodes=30_000))
    except ValueError as error:
        parser.error(str(error))
    result = run_attention(
        config, args.device, args.out.resolve().parent,
        progress=lambda row: print(json.dumps(row), flush=True),
    )  # fmt: skip
    result["config"] = dataclasses.asdict(config)
    if "layer" in result:
        print(format_layer_table(result["layer"]))
    if "masks" in result:
        print(format_mask_table(result["masks"]))
    if "big" in result:
        print(format_big_table(result["big"]))
    write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
