"""Mesh graph attention benchmark: one attention layer per mask and path, next to PyG's
``TransformerConv``; mask build cost, nnz and block density per node ordering; the 300k build.

Three parts, every measurement in a fresh subprocess (peak RSS only grows within a process):

* ``layer`` -- a 3-D mesh of ``--nodes`` nodes (``--mesh delaunay``: about 15 edges per node,
  or ``lattice``), ``x [N, --in-channels]``; one layer with q/k/v projections to
  ``--heads x --channels``, :func:`gnnagg.attention.graph_attention` and an output projection,
  for each mask (adjacency, khop(2), + dilated window, + global tokens) and path. PyG's
  ``TransformerConv(in, channels, heads)`` (q/k/v/skip projections) runs on the adjacency. Time:
  median forward and forward+backward over ``--repeats`` after one warm-up; memory: peak growth
  of the resident set over the first forward+backward. On the CPU the flex path runs forward
  only (torch has no CPU backward for FlexAttention), compiled.
* ``masks`` -- build time, nnz, and block density at block 128 in index, Morton and reverse
  Cuthill-McKee row order.
* ``big`` -- building ``khop(2) | dilated_window(4, 8) | global_tokens(4)`` on ``--big-nodes``
  nodes: time, peak extra RSS, BlockMask table bytes and block density (Morton order).

    OMP_NUM_THREADS=1 python experiments/bench_attention.py [--parts layer masks big] [--quick]

Prints markdown tables (with thread count and load average) and writes JSON to
``experiments/results/bench_attention.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from timing import machine_description, median_time_ms, peak_rss_extra_mb  # noqa: E402

DEFAULT_OUT = HERE / "results" / "bench_attention.json"
MESH_CACHE = HERE / "results" / "meshes"
MASKS = ("adjacency", "khop2", "khop2+dilated", "khop2+dilated+global")
PATHS = ("sparse", "flex", "dense")


def make_mask(name: str):
    from gnnagg.attention import adjacency, dilated_window, global_tokens, khop

    masks = {
        "adjacency": adjacency(),
        "khop2": khop(2),
        "khop2+dilated": khop(2) | dilated_window(4, 8, "morton"),
        "khop2+dilated+global": khop(2) | dilated_window(4, 8, "morton") | global_tokens(4),
        "big": khop(2) | dilated_window(4, 8, "morton") | global_tokens(4),
    }
    return masks[name]


def load_mesh(kind: str, nodes: int):
    """The mesh as ``(pos, edge_index)``, generated once and kept under experiments/results."""
    from gnnagg.data.meshes import delaunay_mesh, lattice_mesh

    path = MESH_CACHE / f"{kind}-{nodes}.pt"
    if path.exists():
        tensors = torch.load(path, weights_only=True)
        return tensors["pos"], tensors["edge_index"]
    mesh = delaunay_mesh(nodes, seed=0) if kind == "delaunay" else lattice_mesh(nodes)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"pos": mesh.pos, "edge_index": mesh.edge_index}, path)
    return mesh.pos, mesh.edge_index


class AttentionLayer(torch.nn.Module):
    """q/k/v projections ``in -> heads x channels``, masked attention, output projection."""

    def __init__(self, in_channels: int, channels: int, heads: int, path: str) -> None:
        super().__init__()
        width = heads * channels
        self.heads, self.channels, self.path = heads, channels, path
        self.query = torch.nn.Linear(in_channels, width)
        self.key = torch.nn.Linear(in_channels, width)
        self.value = torch.nn.Linear(in_channels, width)
        self.out = torch.nn.Linear(width, in_channels)

    def forward(self, x, gmask):
        from gnnagg.attention import graph_attention

        shape = (x.size(0), self.heads, self.channels)
        q, k, v = self.query(x).view(shape), self.key(x).view(shape), self.value(x).view(shape)
        return self.out(graph_attention(q, k, v, gmask, path=self.path).flatten(1))


def measure_layer(args, mask_name: str, path: str) -> dict:
    from torch_geometric.nn import TransformerConv

    torch.manual_seed(0)
    device = torch.device(args.device)
    pos, edge_index = load_mesh(args.mesh, args.nodes)
    pos, edge_index = pos.to(device), edge_index.to(device)
    row = dict(mask=mask_name, path=path, nodes=args.nodes, edges=int(edge_index.size(1)))
    if path == "TransformerConv":
        conv = TransformerConv(args.in_channels, args.channels, heads=args.heads).to(device)
        x = torch.randn(args.nodes, args.in_channels, device=device, requires_grad=True)

        def forward():
            return conv(x, edge_index)
    else:
        gmask = make_mask(mask_name).build(edge_index, pos=pos)
        row["nnz"] = gmask.nnz
        layer = AttentionLayer(args.in_channels, args.channels, args.heads, path).to(device)
        rows = gmask.num_rows
        x = torch.randn(rows, args.in_channels, device=device, requires_grad=True)
        def forward():
            return layer(x, gmask)

    forward_only = path == "flex" and device.type == "cpu"

    def step():
        if forward_only:
            with torch.no_grad():
                forward()
            return
        x.grad = None
        forward().square().mean().backward()

    try:
        if path == "flex":
            # Compilation, the locality order and the BlockMask happen on first use; keep them
            # out of the memory measurement (the sparse path's cached CSR stays in it).
            step()
        if device.type == "cuda":
            from timing import peak_cuda_extra_mb

            row["extra_mb"] = round(peak_cuda_extra_mb(step, device), 1)
        else:
            row["extra_mb"] = round(peak_rss_extra_mb(step), 1)
        with torch.no_grad():
            row["fwd_ms"] = round(median_time_ms(forward, device, args.repeats, warmup=0), 1)
        if not forward_only:
            row["fwd_bwd_ms"] = round(median_time_ms(step, device, args.repeats, warmup=0), 1)
        row["status"] = "ok" if not forward_only else "ok (forward only)"
    except (RuntimeError, MemoryError, ValueError) as error:
        message = str(error).splitlines()[0][:160]
        row["status"] = f"error: {message}"
    return row


def block_stats(gmask, block_size: int = 128) -> dict:
    """Density in index, Morton and RCM row order, and the BlockMask table bytes (Morton)."""
    from gnnagg.attention import GraphMask

    out = {"density_index": gmask.block_density(block_size)}
    morton = gmask.reorder(gmask.locality_order())
    out["density_morton"] = morton.block_density(block_size)
    no_pos = GraphMask(gmask.rowptr, gmask.col, num_nodes=gmask.num_nodes,
                       num_graphs=gmask.num_graphs, tokens_per_graph=gmask.tokens_per_graph,
                       node_rows=gmask.node_rows, token_rows=gmask.token_rows,
                       row_graph=gmask.row_graph)
    out["density_rcm"] = no_pos.reorder(no_pos.locality_order()).block_density(block_size)
    start = time.perf_counter()
    block_mask = morton.to_block_mask(block_size)
    out["block_mask_s"] = round(time.perf_counter() - start, 2)
    tables = [t for t in block_mask.as_tuple() if isinstance(t, torch.Tensor)]
    out["block_mask_mb"] = round(sum(t.numel() * t.element_size() for t in tables) / 2**20, 1)
    return out


def measure_masks(args, mask_name: str) -> dict:
    pos, edge_index = load_mesh(args.mesh, args.nodes)
    mask = make_mask(mask_name)
    row = dict(mask=mask_name, nodes=args.nodes, edges=int(edge_index.size(1)))
    start = time.perf_counter()
    gmask = mask.build(edge_index, pos=pos)
    row["build_s"] = round(time.perf_counter() - start, 3)
    row["nnz"] = gmask.nnz
    row.update({k: (round(v, 5) if isinstance(v, float) else v)
                for k, v in block_stats(gmask).items()})
    row["status"] = "ok"
    return row


def measure_big(args) -> dict:
    pos, edge_index = load_mesh(args.big_mesh, args.big_nodes)
    from gnnagg.attention import masks as mask_module

    mask_module._khop_cache.clear()
    row = dict(mask=repr(make_mask("big")), nodes=args.big_nodes, edges=int(edge_index.size(1)))
    built = {}

    def build():
        built["gmask"] = make_mask("big").build(edge_index, pos=pos)

    start = time.perf_counter()
    row["extra_mb"] = round(peak_rss_extra_mb(build), 1)
    row["build_s"] = round(time.perf_counter() - start, 2)
    gmask = built["gmask"]
    row["nnz"] = gmask.nnz
    morton = gmask.reorder(gmask.locality_order())
    row["density_morton"] = round(morton.block_density(128), 5)
    start = time.perf_counter()
    block_mask = morton.to_block_mask(128)
    row["block_mask_s"] = round(time.perf_counter() - start, 2)
    tables = [t for t in block_mask.as_tuple() if isinstance(t, torch.Tensor)]
    row["block_mask_mb"] = round(sum(t.numel() * t.element_size() for t in tables) / 2**20, 1)
    row["status"] = "ok"
    return row


def _worker_command(args, spec: list[str]) -> list[str]:
    return [
        sys.executable, __file__, "--worker", *spec,
        "--nodes", str(args.nodes), "--mesh", args.mesh, "--big-nodes", str(args.big_nodes),
        "--big-mesh", args.big_mesh, "--heads", str(args.heads), "--channels",
        str(args.channels), "--in-channels", str(args.in_channels), "--repeats",
        str(args.repeats), "--device", args.device, "--cpu-memory-cap-gb",
        str(args.cpu_memory_cap_gb),
    ]


def run_worker(args, spec: list[str]) -> dict:
    try:
        done = subprocess.run(_worker_command(args, spec), capture_output=True, text=True,
                              timeout=args.timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if lines:
            return json.loads(lines[-1])
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:160]
        if done.returncode in (-9, 137):
            tail = "killed (out of memory)"
        return dict(spec=spec, status=f"crashed: {tail}")
    except subprocess.TimeoutExpired:
        return dict(spec=spec, status=f"timeout after {args.timeout:.0f} s")


def layer_table(rows: list[dict]) -> str:
    lines = ["| mask | path | nnz | fwd ms | fwd+bwd ms | peak extra MB | status |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r.get('mask', '-')} | {r.get('path', '-')} | {r.get('nnz', r.get('edges', '-'))}"
            f" | {r.get('fwd_ms', '-')} | {r.get('fwd_bwd_ms', '-')} | {r.get('extra_mb', '-')}"
            f" | {r['status']} |"
        )
    return "\n".join(lines)


def mask_table(rows: list[dict]) -> str:
    lines = ["| mask | build s | nnz | density index | density Morton | density RCM | "
             "BlockMask MB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r.get('spec')} | {r['status']} | | | | | |")
            continue
        lines.append(
            f"| {r['mask']} | {r['build_s']} | {r['nnz']} | {100 * r['density_index']:.2f} % | "
            f"{100 * r['density_morton']:.2f} % | {100 * r['density_rcm']:.2f} % | "
            f"{r['block_mask_mb']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["layer", "masks", "big"],
                        choices=["layer", "masks", "big"])
    parser.add_argument("--quick", action="store_true", help="a 3,000-node mesh, no big build")
    parser.add_argument("--nodes", type=int, default=30_000)
    parser.add_argument("--mesh", default="delaunay", choices=["delaunay", "lattice"])
    parser.add_argument("--big-nodes", type=int, default=300_000)
    parser.add_argument("--big-mesh", default="lattice", choices=["delaunay", "lattice"])
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--channels", type=int, default=64, help="channels per head")
    parser.add_argument("--in-channels", type=int, default=64)
    parser.add_argument("--masks", nargs="+", default=list(MASKS), choices=MASKS)
    # Compiling FlexAttention's CPU template took over 15 minutes on the shared 2-core machine,
    # so the flex path runs only when asked for (``--paths flex``) on the CPU.
    parser.add_argument("--paths", nargs="+", default=None, choices=[*PATHS, "TransformerConv"],
                        help="default: sparse, TransformerConv (+ flex on CUDA)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpu-memory-cap-gb", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.device == "cpu":
            cap = int(args.cpu_memory_cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        kind, *rest = args.worker
        if kind == "layer":
            result = measure_layer(args, *rest)
        elif kind == "masks":
            result = measure_masks(args, *rest)
        else:
            result = measure_big(args)
        print(json.dumps(result), flush=True)
        return
    if args.paths is None:
        args.paths = ["sparse", "TransformerConv"] + (["flex"] if args.device == "cuda" else [])
    if args.quick:
        args.nodes, args.repeats, args.parts = 3_000, 1, [p for p in args.parts if p != "big"]
    result = {
        "benchmark": "attention",
        "machine": machine_description(args.device),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_start": os.getloadavg(),
        "config": dict(nodes=args.nodes, mesh=args.mesh, heads=args.heads,
                       channels_per_head=args.channels, in_channels=args.in_channels,
                       big_nodes=args.big_nodes, big_mesh=args.big_mesh),
    }
    if "layer" in args.parts:
        rows = []
        for path in args.paths:
            for mask_name in (["adjacency"] if path == "TransformerConv" else args.masks):
                if path == "dense" and args.nodes > 4_000:
                    continue
                row = run_worker(args, ["layer", mask_name, path])
                row.setdefault("mask", mask_name)
                row.setdefault("path", path)
                print(json.dumps(row), flush=True)
                rows.append(row)
        result["layer"] = rows
    if "masks" in args.parts:
        result["masks"] = []
        for mask_name in args.masks:
            row = run_worker(args, ["masks", mask_name])
            print(json.dumps(row), flush=True)
            result["masks"].append(row)
    if "big" in args.parts:
        result["big"] = run_worker(args, ["big"])
        print(json.dumps(result["big"]), flush=True)
    result["load_average_end"] = os.getloadavg()
    config = result["config"]
    print(f"\nthreads={result['machine']['torch_threads']} OMP_NUM_THREADS="
          f"{result['omp_num_threads']} load average start {result['load_average_start']} "
          f"end {result['load_average_end']}")
    if "layer" in result:
        print(f"\nOne attention layer, {config['mesh']} mesh, N={config['nodes']}, "
              f"H={config['heads']}, C={config['channels_per_head']} per head")
        print(layer_table(result["layer"]))
        by_path = {(r["mask"], r["path"]): r for r in result["layer"]}
        ours, theirs = by_path.get(("adjacency", "sparse")), by_path.get(
            ("adjacency", "TransformerConv"))
        if ours and theirs and "fwd_bwd_ms" in ours and "fwd_bwd_ms" in theirs:
            print(f"\nadjacency, sparse vs TransformerConv: "
                  f"{theirs['fwd_bwd_ms'] / ours['fwd_bwd_ms']:.1f}x faster fwd+bwd, "
                  f"{theirs['extra_mb'] / max(ours['extra_mb'], 1e-3):.1f}x less peak extra memory")
    if "masks" in result:
        print(f"\nMask build and block density (block 128), N={config['nodes']}")
        print(mask_table(result["masks"]))
    if "big" in result:
        print(f"\nBig build: {json.dumps(result['big'])}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
