"""Benchmark for gnnagg.poly: planned sparse evaluation against a naive dense einsum.

Two parts:

1. All polynomial features of degree <= 6 (orders 0, 1 and 2; subsets "beyond-2fwl" and "all")
   on a batch of molecule-sized graphs (~23 nodes, ~25 bonds), computed by
   ``AddEquivariantPolynomials`` (sparse, the default, and padded dense blocks), next to a naive
   evaluation: each element's einsum string run left to right (torch.einsum without a path
   optimiser) on the zero-padded ``to_dense_adj`` batch. The naive way is far too slow for the
   whole batch, so it runs on the first ``naive_graphs`` graphs (padded to the full batch's size,
   so the per-graph work is the same) and, in quick mode, on every ``naive_stride``-th element of
   each order of the "all" basis; the time is scaled linearly to all graphs and elements, and
   its values are checked against ours on what it computed.
2. The treewidth <= 2 elements (subset "within-2fwl", degree <= 6, orders 0-2) on one sparse
   random graph with 10,000 nodes and average degree 4, where dense evaluation is impossible.

Run ``python -m gnnagg.bench.studies.speed.poly`` (``--quick`` for a reduced size); it prints a
table and writes JSON to ``bench_poly.json`` (``--out`` to change). ``run(quick)`` returns the same
dictionary for a harness. Torch runs on one thread unless ``--threads`` says otherwise:
the benchmark machine is a shared 2-core CPU, where intra-op threading of these small kernels
mostly adds synchronisation (``run`` itself leaves the thread setting alone).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_dense_adj

from ...._files import write_text
from ....poly import AddEquivariantPolynomials, Polynomial
from ...machine import machine_info
from .config import SpeedConfig

__all__ = [
    "TITLE",
    "format_table",
    "molecule_batch",
    "naive_dense",
    "run",
    "run_part",
    "sparse_random_graph",
]

# The heading of this part in report.md.
TITLE = "Equivariant polynomial features"

DEFAULT_OUT = Path("bench_poly.json")
MAX_DEGREE = 6
ORDERS = (0, 1, 2)
# The features are timed in float64, the dtype of the naive einsum they are checked against.
FLOAT64 = torch.float64
ATTRIBUTES = {0: "poly_graph", 1: "poly_x", 2: "poly_edge_attr"}
NAIVE_BUDGET = 1 << 24  # elements of the largest naive intermediate per chunk of graphs

SIZES = {
    "full": {
        "graphs": 1000,
        "naive_graphs": 8,
        "naive_stride": 1,
        "large_nodes": 10_000,
        "repeats": 3,
    },
    "quick": {
        "graphs": 100,
        "naive_graphs": 1,
        "naive_stride": 16,
        "large_nodes": 2_000,
        "repeats": 1,
    },
    # Seconds: the pipeline end to end (molecules only: planning the large graph's basis alone
    # takes seconds), numbers without meaning.
    "smoke": {
        "graphs": 8,
        "naive_graphs": 1,
        "naive_stride": 64,
        "large_nodes": None,
        "repeats": 1,
        "subsets": ("beyond-2fwl",),
    },
}


def molecule_edges(rng: np.random.Generator, num_nodes: int, num_rings: int) -> list[tuple]:
    """A molecule-like skeleton: a random tree of valence <= 4 plus ring-closing bonds.

    Ring bonds join nodes 4 or 5 bonds apart, making the 5- and 6-rings typical of molecules.
    """
    graph = nx.Graph()
    graph.add_node(0)
    for v in range(1, num_nodes):
        candidates = [u for u in range(v) if graph.degree(u) < 3]
        graph.add_edge(int(rng.choice(candidates)), v)
    for _ in range(50 * num_rings):
        if graph.number_of_edges() >= num_nodes - 1 + num_rings:
            break
        u, v = (int(x) for x in rng.choice(num_nodes, 2, replace=False))
        if graph.has_edge(u, v) or graph.degree(u) >= 4 or graph.degree(v) >= 4:
            continue
        if nx.shortest_path_length(graph, u, v) in (4, 5):
            graph.add_edge(u, v)
    return list(graph.edges())


def molecule_batch(num_graphs: int, seed: int = 0) -> Batch:
    """``num_graphs`` molecule-sized graphs (18-28 nodes, 1-4 rings) as one PyG batch."""
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(num_graphs):
        num_nodes = int(rng.integers(18, 29))
        edges = torch.tensor(molecule_edges(rng, num_nodes, int(rng.integers(1, 5)))).T
        graphs.append(
            Data(edge_index=torch.cat([edges, edges.flip(0)], dim=1), num_nodes=num_nodes)
        )
    return Batch.from_data_list(graphs)


def sparse_random_graph(num_nodes: int, average_degree: float, seed: int = 0) -> Data:
    """Erdős–Rényi G(n, m) with m = n * average_degree / 2 undirected edges."""
    graph = nx.gnm_random_graph(num_nodes, int(num_nodes * average_degree / 2), seed=seed)
    edges = torch.tensor(list(graph.edges())).T
    return Data(edge_index=torch.cat([edges, edges.flip(0)], dim=1), num_nodes=num_nodes)


def _left_to_right_width(spec: str) -> int:
    """Most index letters of any intermediate when torch.einsum contracts left to right."""
    inputs, output = spec.split("->")
    operands = inputs.split(",")
    current = set(operands[0])
    widest = len(current)
    for k in range(1, len(operands)):
        later = set("".join(operands[k + 1 :])) | set(output)
        current = {d for d in current | set(operands[k]) if d in later}
        widest = max(widest, len(current))
    return widest


def naive_dense(
    polynomials: dict[int, list[Polynomial]], batch: Batch, num_graphs: int, padded_nodes: int
) -> tuple[dict[int, torch.Tensor], float]:
    """The naive baseline on the first ``num_graphs`` graphs: one left-to-right einsum per element.

    Returns values laid out like the transform's attributes (graph, node, edge rows of those
    graphs) and the seconds it took.
    """
    graphs = Batch.from_data_list(batch.index_select(range(num_graphs)))
    start = time.perf_counter()
    adjacency = to_dense_adj(graphs.edge_index, graphs.batch, max_num_nodes=padded_nodes)
    adjacency = adjacency.to(torch.float64)
    node_mask = torch.arange(padded_nodes)[None, :] < torch.diff(graphs.ptr)[:, None]
    local = torch.arange(graphs.num_nodes) - graphs.ptr[graphs.batch]
    edge_graph = graphs.batch[graphs.edge_index[0]]
    edge_local = graphs.edge_index - graphs.ptr[edge_graph]
    previous = torch.backends.opt_einsum.enabled
    torch.backends.opt_einsum.enabled = False  # the plain left-to-right contraction order
    try:
        values = {}
        for order, polys in polynomials.items():
            columns = []
            for poly in polys:
                if poly.degree == 0:  # K1: no A to contract
                    full = node_mask.sum(1).double() if order == 0 else node_mask.double()
                else:
                    inputs, output = poly.einsum.split("->")
                    spec = ",".join("z" + op for op in inputs.split(",")) + "->z" + output
                    chunk = max(
                        1, NAIVE_BUDGET // padded_nodes ** _left_to_right_width(poly.einsum)
                    )
                    full = torch.cat(
                        [
                            torch.einsum(spec, *[adjacency[c : c + chunk]] * poly.degree)
                            for c in range(0, num_graphs, chunk)
                        ]
                    )
                if order == 0:
                    columns.append(full)
                elif order == 1:
                    columns.append(full[graphs.batch, local])
                else:
                    columns.append(full[edge_graph, edge_local[0], edge_local[1]])
            values[order] = torch.stack(columns, dim=1) if columns else None
    finally:
        torch.backends.opt_einsum.enabled = previous
    return values, time.perf_counter() - start


def _max_abs_diff(first: torch.Tensor, second: torch.Tensor) -> float:
    return float((first - second).abs().max()) if first.numel() else 0.0


def _timed(function, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, result


def _clear_caches() -> None:
    from gnnagg.poly import basis, plan, sparse

    basis._enumerate_degree.cache_clear()
    basis._edge_graphs.cache_clear()
    plan.plan_contraction.cache_clear()
    sparse.compile_program.cache_clear()


def bench_molecules(sizes: dict) -> list[dict]:
    batch = molecule_batch(sizes["graphs"])
    padded = int(torch.diff(batch.ptr).max())
    naive_graphs = sizes["naive_graphs"]
    rows = []
    for subset in sizes.get("subsets", ("beyond-2fwl", "all")):
        _clear_caches()
        start = time.perf_counter()
        transform = AddEquivariantPolynomials(MAX_DEGREE, ORDERS, subset=subset, dtype=FLOAT64)
        ours = transform(batch)
        cold = time.perf_counter() - start
        warm, warm_all, ours = _timed(lambda t=transform: t(batch), sizes["repeats"])
        dense_transform = AddEquivariantPolynomials(
            MAX_DEGREE, ORDERS, subset=subset, backend="dense", dtype=FLOAT64
        )
        dense_time, _, dense = _timed(lambda t=dense_transform: t(batch), sizes["repeats"])
        # Only the large "all" basis is sampled; the 12 "beyond-2fwl" elements differ too much
        # in cost for a sample to stand for them.
        stride = sizes["naive_stride"] if subset == "all" else 1
        sampled = {o: transform.basis[o][::stride] for o in ORDERS}
        naive, naive_seconds = naive_dense(sampled, batch, naive_graphs, padded)
        fraction = sum(map(len, sampled.values())) / sum(map(len, transform.basis.values()))
        naive_full = naive_seconds * sizes["graphs"] / naive_graphs / fraction
        node_rows = int(batch.ptr[naive_graphs])
        edge_rows = int((batch.batch[batch.edge_index[0]] < naive_graphs).sum())
        limits = {0: naive_graphs, 1: node_rows, 2: edge_rows}
        naive_diff = max(
            _max_abs_diff(naive[o], ours[ATTRIBUTES[o]][: limits[o], ::stride])
            for o in ORDERS
            if naive[o] is not None
        )
        dense_diff = max(_max_abs_diff(dense[ATTRIBUTES[o]], ours[ATTRIBUTES[o]]) for o in ORDERS)
        rows.append(
            {
                "subset": subset,
                "graphs": sizes["graphs"],
                "nodes": batch.num_nodes,
                "undirected_edges": batch.num_edges // 2,
                "channels": {str(o): len(transform.basis[o]) for o in ORDERS},
                "ours_sparse_seconds": warm,
                "ours_sparse_runs": warm_all,
                "ours_first_call_seconds_with_planning": cold,
                "ours_dense_blocks_seconds": dense_time,
                "naive_graphs_measured": naive_graphs,
                "naive_element_fraction": fraction,
                "naive_seconds_measured": naive_seconds,
                "naive_seconds_extrapolated": naive_full,
                "speedup_vs_naive": naive_full / warm,
                "max_abs_diff_naive_vs_ours": naive_diff,
                "max_abs_diff_dense_vs_sparse": dense_diff,
            }
        )
    return rows


def bench_large_graph(sizes: dict) -> dict:
    data = sparse_random_graph(sizes["large_nodes"], 4.0)
    transform = AddEquivariantPolynomials(MAX_DEGREE, ORDERS, subset="within-2fwl", dtype=FLOAT64)
    per_order = {}
    total = 0.0
    for order in ORDERS:
        single = AddEquivariantPolynomials.from_polynomials(transform.basis[order])
        start = time.perf_counter()
        single(data)
        per_order[str(order)] = time.perf_counter() - start
        total += per_order[str(order)]
    max_degree_check = all(
        p.degree <= MAX_DEGREE and not p.beyond_2fwl for ps in transform.basis.values() for p in ps
    )
    return {
        "nodes": data.num_nodes,
        "undirected_edges": data.num_edges // 2,
        "channels": {str(o): len(transform.basis[o]) for o in ORDERS},
        "seconds_per_order": per_order,
        "seconds": total,
        "target_seconds": 60.0,
        "all_within_2fwl": max_degree_check,
    }


def run(quick: bool = False, size: str | None = None) -> dict:
    """Run the benchmark (reduced sizes with ``quick``; ``size`` -- ``"full"``, ``"quick"``
    or ``"smoke"`` -- overrides it) and return the results."""
    size = size or ("quick" if quick else "full")
    if size not in SIZES:
        raise ValueError(f"size: expected one of {list(SIZES)}, got {size!r}")
    sizes = SIZES[size]
    return {
        "benchmark": "bench_poly",
        "quick": size != "full",
        "size": size,
        "machine": machine_info("cpu"),
        "molecules": bench_molecules(sizes),
        "large_sparse_graph": bench_large_graph(sizes) if sizes["large_nodes"] else None,
    }


def format_table(results: dict) -> str:
    """A plain-text summary of :func:`run`'s results."""
    lines = [
        f"bench_poly ({results.get('size', 'quick' if results['quick'] else 'full')}; "
        f"{results['machine'].get('usable_cores')} usable cores, "
        f"{results['machine']['torch_threads']} torch threads)",
        "",
        f"{'subset':<12} {'graphs':>6} {'chan 0/1/2':>12} {'sparse s':>9} {'dense s':>8} "
        f"{'naive s*':>10} {'speedup':>8} {'max|diff|':>10}",
    ]
    for row in results["molecules"]:
        channels = "/".join(str(row["channels"][str(o)]) for o in ORDERS)
        lines.append(
            f"{row['subset']:<12} {row['graphs']:>6} {channels:>12} "
            f"{row['ours_sparse_seconds']:>9.3f} {row['ours_dense_blocks_seconds']:>8.3f} "
            f"{row['naive_seconds_extrapolated']:>10.1f} {row['speedup_vs_naive']:>7.1f}x "
            f"{row['max_abs_diff_naive_vs_ours']:>10.2g}"
        )
    first = results["molecules"][0]
    lines.append(
        f"* naive measured on {first['naive_graphs_measured']} graphs (element fraction "
        + ", ".join(f"{r['naive_element_fraction']:.2f}" for r in results["molecules"])
        + ") and scaled linearly; first call with planning: "
        + ", ".join(
            f"{r['subset']} {r['ours_first_call_seconds_with_planning']:.2f}s"
            for r in results["molecules"]
        )
    )
    large = results["large_sparse_graph"]
    if large is None:
        return "\n".join(lines)
    lines += [
        "",
        f"treewidth <= 2 elements ({'/'.join(str(large['channels'][str(o)]) for o in ORDERS)} "
        f"channels) on a {large['nodes']}-node sparse graph ({large['undirected_edges']} edges): "
        f"{large['seconds']:.1f} s (target < {large['target_seconds']:.0f} s; per order "
        + ", ".join(f"{o}: {s:.1f}s" for o, s in large["seconds_per_order"].items())
        + ")",
    ]
    return "\n".join(lines)


def run_part(
    config: SpeedConfig, device: str, progress: Callable[[dict], None] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The ``poly`` part of the speed section (CPU only: the features are computed there)."""
    size = "smoke" if config.smoke else "quick" if config.quick else "full"
    notes = [] if device == "cpu" else ["the poly part runs on the CPU whatever the device"]
    return run(size=size), notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (well under 1 min)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    results = run(args.quick)
    print(format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
