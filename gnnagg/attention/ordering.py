"""Node orderings that keep neighbours close: Morton (Z-order) codes and reverse Cuthill–McKee.

Both are used twice: by :func:`~gnnagg.attention.dilated_window` (the window slides along the
ordering) and by the FlexAttention path (an ordering with local blocks makes the block mask
sparse).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_allocation, check_count

__all__ = ["morton_codes", "rank_within_graphs", "reverse_cuthill_mckee"]


def morton_codes(pos: Tensor, batch: Tensor | None = None) -> Tensor:
    """Z-order (Morton) code of each row of ``pos`` ``[N, d]`` as int64.

    Coordinates are scaled into the bounding box of their graph (``batch``; all points form one
    graph without it), so a graph's order does not depend on what it is batched with, and
    quantised to
    ``min(63 // d, 31)`` bits per dimension; the code interleaves those bits (dimension 0 most
    significant within each bit level), so points close in space are mostly close in code.
    """
    if not isinstance(pos, Tensor) or pos.dim() != 2 or not pos.is_floating_point():
        raise ValueError("pos: expected a floating-point tensor [num_nodes, dims]")
    n, dims = pos.shape
    if dims < 1:
        raise ValueError("pos: needs at least one coordinate column")
    if n and not bool(torch.isfinite(pos).all()):
        raise ValueError("pos: coordinates must be finite")
    batch = _check_batch(batch, n, pos.device)
    bits = min(63 // dims, 31)
    # Halved, so that the span of coordinates near +-1.8e308 does not overflow to inf.
    work = pos.detach().to(torch.float64) / 2
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=pos.device)
    graphs = int(batch.max()) + 1
    index = batch.view(-1, 1).expand(-1, dims)
    low = work.new_full((graphs, dims), float("inf")).scatter_reduce(0, index, work, "amin")
    high = work.new_full((graphs, dims), float("-inf")).scatter_reduce(0, index, work, "amax")
    span = (high - low).clamp_min(torch.finfo(torch.float64).tiny)[batch]
    low = low[batch]
    levels = (1 << bits) - 1
    grid = ((work - low) / span * levels).round().to(torch.int64).clamp_(0, levels)
    code = torch.zeros(n, dtype=torch.int64, device=pos.device)
    for bit in range(bits - 1, -1, -1):
        for dim in range(dims):
            code = (code << 1) | ((grid[:, dim] >> bit) & 1)
    return code


def _check_batch(batch: object, n: int, device: torch.device) -> Tensor:
    """``batch`` as ``[n]`` int64 graph ids (zeros when ``None``)."""
    if batch is None:
        return torch.zeros(n, dtype=torch.int64, device=device)
    if not isinstance(batch, Tensor) or batch.shape != (n,):
        got = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise ValueError(f"batch must be a [num_nodes={n}] integer tensor, got {got}")
    if batch.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"batch must be int64 or int32, got {batch.dtype}")
    if batch.device != device:
        raise ValueError(f"batch is on {batch.device} but pos on {device}")
    if n and int(batch.min()) < 0:
        raise ValueError("batch has negative graph ids")
    if n:
        check_allocation(int(batch.max()) * 64, f"batch: graph id {int(batch.max())}", device)
    return batch.to(torch.int64)


def reverse_cuthill_mckee(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Reverse Cuthill–McKee ordering of the undirected version of a graph.

    Returns ``order`` ``[num_nodes]`` (``order[r]`` is the node placed at position ``r``). Each
    connected component is ordered on its own (scipy's implementation, O(E log E)).
    """
    try:
        import numpy as np
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import reverse_cuthill_mckee as scipy_rcm
    except ImportError as err:
        raise ImportError(
            "order='rcm' needs scipy: pip install 'gnnagg[attention]' (or scipy)"
        ) from err
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError("edge_index must be a [2, E] integer tensor")
    if edge_index.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"edge_index must be int64 or int32, got {edge_index.dtype}")
    num_nodes = check_count(num_nodes, "num_nodes")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index has node ids outside [0, num_nodes={num_nodes})")
    check_allocation(num_nodes * 64 + edge_index.size(1) * 64,
                     f"num_nodes={num_nodes}: reverse Cuthill-McKee", "cpu")
    if num_nodes == 0:
        return torch.zeros(0, dtype=torch.int64, device=edge_index.device)
    src, dst = edge_index.detach().cpu().numpy()
    rows = np.concatenate([src, dst])
    cols = np.concatenate([dst, src])
    matrix = coo_matrix(
        (np.ones(rows.shape[0], dtype=np.int8), (rows, cols)), shape=(num_nodes, num_nodes)
    ).tocsr()
    order = scipy_rcm(matrix, symmetric_mode=True)
    return torch.from_numpy(order.astype(np.int64)).to(edge_index.device)


def rank_within_graphs(order: Tensor, batch: Tensor, counts: Tensor) -> Tensor:
    """Position of each node inside its own graph when nodes are taken in ``order``.

    ``order`` is a global ordering of all nodes (``order[r]`` = node at position ``r``); the
    result ``rank[i]`` counts the nodes of ``i``'s graph that come before ``i`` in ``order``.
    """
    graph_in_order = batch[order]
    # A stable sort by graph keeps the relative order inside each graph.
    by_graph = torch.sort(graph_in_order, stable=True).indices
    nodes = order[by_graph]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[nodes] = torch.arange(order.numel(), device=order.device) - starts[batch[nodes]]
    return rank
