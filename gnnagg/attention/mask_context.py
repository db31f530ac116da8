"""What a mask sees while it is built: the checked inputs of one ``mask.build(...)`` call and the
row layout of the :class:`~gnnagg.attention.MaskIndex` it will give."""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_allocation, check_count
from .csr import index_dtype
from .ordering import morton_codes

__all__ = ["MaskContext"]

# Pairs are encoded as int64 keys ``query_row * num_rows + key_row``.
_MAX_ROWS = 3_000_000_000
#: Bytes a build holds per candidate pair at its peak: the query and key rows, the int64 key,
#: and the values and indices of the sort that orders the keys.
PAIR_BYTES = 40
# Bytes of the row layout per node, per graph and per row (the index tensors built below and
# the temporaries of their sorts and cumulative sums).
_NODE_BYTES, _GRAPH_BYTES, _ROW_BYTES = 96, 64, 24


class MaskContext:
    r"""The inputs of one build and the row layout, as every mask's
    :meth:`~gnnagg.attention.Mask.pairs` receives them.

    Rows are the nodes plus ``tokens_per_graph`` global tokens per graph, graph by graph: each
    graph's block holds its tokens first, then its nodes in index order. A mask computes pairs
    of *rows*; for pairs of nodes ``(i, j)`` that is ``(node_rows[i], node_rows[j])``.

    Attributes:
        edge_index: ``[2, E]`` int64 edges ``source -> target`` (PyG's convention).
        num_nodes: number of nodes ``N``.
        pos: ``[N, d]`` floating-point node coordinates, or ``None`` when none were given
            (never ``None`` for a mask whose ``needs_pos`` is true).
        batch: ``[N]`` int64 graph id of each node (all zeros for one graph).
        num_graphs: number of graphs ``G``.
        counts: ``[G]`` nodes per graph.
        tokens_per_graph: global-token rows per graph (the built expression's largest).
        num_rows: ``N + G * tokens_per_graph``.
        node_rows: ``[N]`` the row of each node.
        token_rows: ``[G, tokens_per_graph]`` the rows of each graph's tokens.
        row_graph: ``[num_rows]`` the graph of each row.
        generator: the ``torch.Generator`` given to ``build`` (random masks draw from it), or
            ``None``.
        device: where ``edge_index`` lives; pairs must be on it.

    Also ``index_dtype`` (int32 while the rows fit: the column dtype of a build's parts),
    ``rows_are_nodes`` and :meth:`morton_order` (computed once per build and shared by the
    parts that use it, such as a Morton window and ``khop``'s products).

    :meth:`Mask.build <gnnagg.attention.Mask.build>` makes one per call and shares it between
    the parts of an expression. Building one directly checks the inputs the same way, which
    helps to test a new mask's :meth:`~gnnagg.attention.Mask.pairs` on its own.
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int | None = None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        generator: torch.Generator | None = None,
        *,
        tokens_per_graph: int = 0,
    ) -> None:
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError("edge_index must be a [2, E] integer tensor")
        if edge_index.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"edge_index must be int64 or int32, got {edge_index.dtype}")
        edge_index = edge_index.to(torch.int64)
        device = edge_index.device
        if num_nodes is None:
            if isinstance(pos, Tensor):
                num_nodes = pos.size(0)
            elif isinstance(batch, Tensor):
                num_nodes = batch.numel()
            else:
                num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        num_nodes = check_count(num_nodes, "num_nodes")
        tokens_per_graph = check_count(tokens_per_graph, "tokens_per_graph")
        if num_nodes > _MAX_ROWS:
            raise ValueError(
                f"num_nodes={num_nodes} is beyond the {_MAX_ROWS} rows of the int64 pair encoding"
            )
        check_allocation(num_nodes * _NODE_BYTES, f"num_nodes={num_nodes}: the row layout",
                         device)
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
            raise ValueError(f"edge_index has node ids outside [0, num_nodes={num_nodes})")
        if pos is not None:
            if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.size(0) != num_nodes:
                raise ValueError(f"pos must be a [num_nodes={num_nodes}, d] tensor")
            if not pos.is_floating_point():
                raise TypeError(f"pos must be floating point, got {pos.dtype}")
            if pos.device != device:
                raise ValueError(f"pos is on {pos.device} but edge_index on {device}")
        if batch is None:
            batch = torch.zeros(num_nodes, dtype=torch.int64, device=device)
            num_graphs = 1
        else:
            if not isinstance(batch, Tensor) or batch.shape != (num_nodes,):
                raise ValueError(f"batch must be a [num_nodes={num_nodes}] integer tensor")
            if batch.dtype not in (torch.int32, torch.int64):
                raise TypeError(f"batch must be int64 or int32, got {batch.dtype}")
            if batch.device != device:
                raise ValueError(f"batch is on {batch.device} but edge_index on {device}")
            batch = batch.to(torch.int64)
            if num_nodes and int(batch.min()) < 0:
                raise ValueError("batch has negative graph ids")
            num_graphs = int(batch.max()) + 1 if num_nodes else 1
            _check_rows(num_nodes, num_graphs, 0, device,
                        f"batch: graph id {num_graphs - 1} (so {num_graphs} graphs)")
            if edge_index.numel() and bool((batch[edge_index[0]] != batch[edge_index[1]]).any()):
                raise ValueError("edge_index joins nodes of different graphs of batch")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.edge_index = edge_index
        self.num_nodes = num_nodes
        self.pos = pos
        self.batch = batch
        self.generator = generator
        self.device = device
        self.num_graphs = num_graphs
        self.tokens_per_graph = tokens_per_graph
        self.counts = torch.bincount(batch, minlength=num_graphs)
        _check_rows(num_nodes, num_graphs, tokens_per_graph, device,
                    f"tokens_per_graph={tokens_per_graph} on {num_graphs} graph(s)")
        self.num_rows = num_nodes + num_graphs * tokens_per_graph
        # Graph g's block starts at block_start[g]: its tokens, then its nodes in index order
        # (a stable sort of batch gives each node's rank inside its graph).
        block_sizes = self.counts + tokens_per_graph
        block_start = torch.cumsum(block_sizes, 0) - block_sizes
        by_graph = torch.sort(batch, stable=True).indices
        node_starts = torch.cumsum(self.counts, 0) - self.counts
        rank = torch.empty_like(by_graph)
        rank[by_graph] = torch.arange(num_nodes, device=device) - node_starts[batch[by_graph]]
        self.node_rows = block_start[batch] + tokens_per_graph + rank
        self.token_rows = block_start.unsqueeze(1) + torch.arange(tokens_per_graph, device=device)
        self.row_graph = torch.repeat_interleave(
            torch.arange(num_graphs, device=device), block_sizes, output_size=self.num_rows
        )
        self._morton_order: Tensor | None = None

    @property
    def index_dtype(self) -> torch.dtype:
        """The dtype of the column indices a build works with: int32 while ``num_rows`` fits."""
        return index_dtype(self.num_rows)

    @property
    def rows_are_nodes(self) -> bool:
        """Whether row ``i`` is node ``i`` (no tokens and a sorted ``batch``)."""
        return self.num_rows == self.num_nodes and bool(
            (self.num_nodes < 2) or (self.batch[1:] >= self.batch[:-1]).all()
        )

    def morton_order(self) -> Tensor:
        """The nodes sorted by the Morton code of ``pos`` inside each graph (ties by index),
        computed once per build; ``ValueError`` without ``pos``."""
        if self.pos is None:
            raise ValueError("morton_order needs pos")
        if self._morton_order is None:
            codes = morton_codes(self.pos, self.batch)
            self._morton_order = torch.sort(codes, stable=True).indices
        return self._morton_order

    def check_pairs(self, count: int | float, what: str) -> None:
        """Refuse, before anything is allocated, a step of a build that makes ``count``
        candidate pairs more than the device can hold (``ValueError`` naming ``what``, the
        argument responsible, and the bytes); masks whose output size depends on their
        arguments call it before making their pairs."""
        if count >= 2**62:
            raise ValueError(f"{what} asks for {count:.3g} pairs, beyond int64")
        check_allocation(int(count) * PAIR_BYTES, f"{what} ({int(count)} pairs)", self.device)

    def __repr__(self) -> str:
        return (
            f"MaskContext(nodes={self.num_nodes}, graphs={self.num_graphs}, "
            f"tokens_per_graph={self.tokens_per_graph}, rows={self.num_rows}, "
            f"pos={'none' if self.pos is None else tuple(self.pos.shape)}, device={self.device})"
        )


def _check_rows(num_nodes: int, num_graphs: int, tokens: int, device: torch.device,
                what: str) -> None:
    rows = num_nodes + num_graphs * tokens
    if rows > _MAX_ROWS:
        raise ValueError(
            f"{what}: {rows} rows is beyond the {_MAX_ROWS} of the int64 pair encoding"
        )
    check_allocation(num_nodes * _NODE_BYTES + num_graphs * _GRAPH_BYTES + rows * _ROW_BYTES,
                     f"{what}: the row layout of {rows} rows", device)


def pair_keys(ctx: MaskContext, queries: Tensor, keys: Tensor) -> Tensor:
    """Sorted duplicate-free ``query * num_rows + key``; O(n) when already sorted."""
    return sorted_unique(queries.to(torch.int64) * ctx.num_rows + keys.to(torch.int64))


def sorted_unique(keys: Tensor) -> Tensor:
    if keys.numel() > 1 and bool((keys[1:] >= keys[:-1]).all()):
        return torch.unique_consecutive(keys)
    return torch.unique(keys, sorted=True)
