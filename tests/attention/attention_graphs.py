"""Random small graphs and batches for the attention tests, and brute-force mask definitions."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st


@st.composite
def batches(draw, max_graphs: int = 3, max_nodes: int = 9, shuffle: bool = True):
    """``(edge_index, batch, pos)`` of up to ``max_graphs`` random directed graphs.

    Edges stay inside graphs; duplicates and self-loops occur. With ``shuffle`` the nodes of the
    graphs are interleaved (an unsorted ``batch``) to exercise the row layout.
    """
    seed = draw(st.integers(0, 2**31 - 1))
    num_graphs = draw(st.integers(1, max_graphs))
    sizes = [draw(st.integers(1, max_nodes)) for _ in range(num_graphs)]
    generator = torch.Generator().manual_seed(seed)
    edges, batch, start = [], [], 0
    for graph, size in enumerate(sizes):
        count = int(torch.randint(0, 3 * size + 1, (1,), generator=generator))
        edges.append(torch.randint(0, size, (2, count), generator=generator) + start)
        batch += [graph] * size
        start += size
    edge_index = torch.cat(edges, dim=1)
    batch = torch.tensor(batch)
    num_nodes = start
    if shuffle and draw(st.booleans()):
        perm = torch.randperm(num_nodes, generator=generator)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(num_nodes)
        edge_index = inverse[edge_index]
        batch = batch[perm]
    pos = torch.rand(num_nodes, 3, generator=generator, dtype=torch.float64)
    return edge_index, batch, pos


def node_dense(mask_index, node_matrix: torch.Tensor) -> torch.Tensor:
    """A ``[N, N]`` node-pair matrix placed into the mask's ``[R, R]`` row layout."""
    out = torch.zeros(mask_index.num_rows, mask_index.num_rows, dtype=torch.bool)
    rows = mask_index.node_rows
    out[rows.unsqueeze(1), rows.unsqueeze(0)] = node_matrix
    return out


def adjacency_reference(edge_index, num_nodes, self_loops=True):
    dense = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    for j, i in edge_index.t().tolist():
        dense[i, j] = True
    if self_loops:
        dense |= torch.eye(num_nodes, dtype=torch.bool)
    return dense


def khop_reference(edge_index, num_nodes, k):
    """Breadth-first search forward from every key j, at most k edges."""
    out_edges = [[] for _ in range(num_nodes)]
    for j, i in edge_index.t().tolist():
        out_edges[j].append(i)
    dense = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    for j in range(num_nodes):
        frontier, seen = {j}, {j}
        for _ in range(k):
            frontier = {i for f in frontier for i in out_edges[f]} - seen
            seen |= frontier
        for i in seen:
            dense[i, j] = True
    return dense


def window_reference(positions, batch, size, dilation):
    """``i`` attends ``j`` iff same graph and positions differ by m * dilation, |m| <= size."""
    n = positions.numel()
    dense = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            diff = int(positions[j] - positions[i])
            if batch[i] == batch[j] and diff % dilation == 0 and abs(diff) // dilation <= size:
                dense[i, j] = True
    return dense


def positions_from_order(order, batch):
    """Rank of each node inside its graph when nodes are listed in ``order``."""
    positions = torch.empty(batch.numel(), dtype=torch.int64)
    seen = {}
    for node in order.tolist():
        graph = int(batch[node])
        positions[node] = seen.get(graph, 0)
        seen[graph] = positions[node].item() + 1
    return positions


def morton_reference(pos, batch=None):
    """Bit-interleaved Z-order codes in plain Python, each graph in its own bounding box."""
    if batch is not None:
        codes = [0] * pos.size(0)
        for graph in batch.unique().tolist():
            members = torch.nonzero(batch == graph).view(-1)
            for node, code in zip(members.tolist(), morton_reference(pos[members])):
                codes[node] = code
        return codes
    n, dims = pos.shape
    bits = min(63 // dims, 31)
    low = pos.min(0).values
    span = (pos.max(0).values - low).clamp_min(torch.finfo(torch.float64).tiny)
    levels = (1 << bits) - 1
    grid = ((pos - low) / span * levels).round().long().clamp(0, levels).tolist()
    codes = []
    for point in grid:
        code = 0
        for bit in range(bits - 1, -1, -1):
            for d in range(dims):
                code = (code << 1) | ((point[d] >> bit) & 1)
        codes.append(code)
    return codes


def token_reference(mask_index, count):
    """Pairs of global_tokens(count) in row space."""
    dense = torch.zeros(mask_index.num_rows, mask_index.num_rows, dtype=torch.bool)
    node_graph = mask_index.row_graph[mask_index.node_rows]
    for graph in range(mask_index.num_graphs):
        tokens = mask_index.token_rows[graph, :count].tolist()
        nodes = mask_index.node_rows[node_graph == graph].tolist()
        for t in tokens:
            for other in nodes + tokens:
                dense[t, other] = True
                dense[other, t] = True
    return dense


def jumps_bound(edge_index, batch, ratio):
    edges = torch.bincount(batch[edge_index[1]], minlength=int(batch.max()) + 1)
    return [math.ceil(ratio * int(e)) for e in edges]
