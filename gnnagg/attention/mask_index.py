"""The built attention pattern of one graph or batch: a CSR over query rows.

A :class:`~gnnagg.attention.Mask` is a recipe; ``mask.build(...)`` gives a :class:`MaskIndex`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._checks import check_count
from .ordering import morton_codes, reverse_cuthill_mckee

__all__ = ["DEFAULT_DENSE_LIMIT", "MaskIndex"]

#: ``to_dense`` refuses masks with more entries than this (64 Mi booleans = 64 MiB).
DEFAULT_DENSE_LIMIT = 1 << 26


class MaskIndex:
    r"""Which key rows each query row attends: the result of ``mask.build(...)``.

    A :class:`~gnnagg.attention.Mask` is the recipe (``khop(2) | global_tokens(4)``); a
    :class:`MaskIndex` is what it gives for one graph or batch, reusable while the graph stays
    the same (e.g. every step of a rollout on a fixed mesh).

    Rows are the graph's nodes plus ``tokens_per_graph`` global tokens per graph, laid out graph
    by graph: each graph's block holds its tokens first, then its nodes in index order. Without
    tokens and with a sorted ``batch`` (as PyG makes it) row ``i`` is node ``i``.

    Attributes:
        rowptr: ``[num_rows + 1]`` int64 CSR offsets over query rows.
        col: ``[nnz]`` int64 key rows, sorted and without duplicates inside each query row.
        num_nodes: number of graph nodes ``N``.
        num_graphs: number of graphs in the batch.
        tokens_per_graph: global tokens per graph.
        node_rows: ``[N]`` the row of each node.
        token_rows: ``[num_graphs, tokens_per_graph]`` the rows of the tokens.
        row_graph: ``[num_rows]`` the graph of each row.
        pos: ``[N, d]`` node coordinates given at build time (used for a Morton block order),
            or ``None``.
        expression: the ``repr`` of the mask that built it.

    Construct it through :meth:`Mask.build <gnnagg.attention.masks.Mask.build>`; the
    constructor checks only shapes. :meth:`to_rows` and :meth:`to_nodes` move node features
    into this row layout and back.
    """

    def __init__(
        self,
        rowptr: Tensor,
        col: Tensor,
        *,
        num_nodes: int,
        num_graphs: int,
        tokens_per_graph: int,
        node_rows: Tensor,
        token_rows: Tensor,
        row_graph: Tensor,
        pos: Tensor | None = None,
        expression: str = "",
    ) -> None:
        num_rows = num_nodes + num_graphs * tokens_per_graph
        if rowptr.shape != (num_rows + 1,) or col.dim() != 1:
            raise ValueError("rowptr/col: not a CSR over num_nodes + tokens rows")
        if node_rows.shape != (num_nodes,) or row_graph.shape != (num_rows,):
            raise ValueError("node_rows/row_graph: wrong length")
        if token_rows.shape != (num_graphs, tokens_per_graph):
            raise ValueError("token_rows: expected [num_graphs, tokens_per_graph]")
        self.rowptr = rowptr
        self.col = col
        self.num_nodes = num_nodes
        self.num_graphs = num_graphs
        self.tokens_per_graph = tokens_per_graph
        self.node_rows = node_rows
        self.token_rows = token_rows
        self.row_graph = row_graph
        self.pos = pos
        self.expression = expression
        self._cache: dict[Any, Any] = {}

    # ------------------------------------------------------------------ basic views
    @property
    def num_rows(self) -> int:
        """Rows of q/k/v this mask expects: nodes plus tokens."""
        return self.rowptr.numel() - 1

    @property
    def num_tokens(self) -> int:
        """Total number of global-token rows (``num_graphs * tokens_per_graph``)."""
        return self.num_graphs * self.tokens_per_graph

    @property
    def nnz(self) -> int:
        """Number of allowed (query, key) pairs."""
        return self.col.numel()

    @property
    def device(self) -> torch.device:
        return self.col.device

    def degree(self) -> Tensor:
        """Number of keys of each query row, ``[num_rows]`` int64."""
        return self.rowptr[1:] - self.rowptr[:-1]

    def row(self) -> Tensor:
        """Query row of each stored pair, ``[nnz]`` int64 (cached)."""
        if "row" not in self._cache:
            self._cache["row"] = torch.repeat_interleave(
                torch.arange(self.num_rows, device=self.device), self.degree(), output_size=self.nnz
            )
        return self._cache["row"]

    @property
    def edge_index(self) -> Tensor:
        """The pairs as ``[2, nnz]`` in PyG's convention: ``edge_index[0]`` the key (source),
        ``edge_index[1]`` the query (target), both as rows."""
        return torch.stack([self.col, self.row()])

    @property
    def is_token(self) -> Tensor:
        """``[num_rows]`` bool, True on token rows."""
        flags = torch.zeros(self.num_rows, dtype=torch.bool, device=self.device)
        flags[self.token_rows.reshape(-1)] = True
        return flags

    def __repr__(self) -> str:
        return (
            f"MaskIndex({self.expression or '?'}, rows={self.num_rows}, nodes={self.num_nodes}, "
            f"graphs={self.num_graphs}, tokens_per_graph={self.tokens_per_graph}, "
            f"nnz={self.nnz}, device={self.device})"
        )

    # ------------------------------------------------------------------ row layout
    def to_rows(self, x: Tensor, tokens: Tensor | None = None) -> Tensor:
        """Node features ``x`` ``[num_nodes, C]`` laid out as rows ``[num_rows, C]``.

        Node ``i`` goes to row ``node_rows[i]``; the token rows of every graph take the first
        ``tokens_per_graph`` rows of ``tokens`` ``[T, C]`` (the same embeddings in every graph),
        which a mask with global tokens requires. When the rows are the nodes in order, ``x``
        itself is returned.
        """
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"x must be a [num_nodes, C] tensor, got {_shape(x)}")
        if x.size(0) != self.num_nodes:
            raise ValueError(f"x has {x.size(0)} rows but the mask was built for {self.num_nodes}")
        if self.tokens_per_graph == 0 and self._identity_rows():
            return x
        rows = x.new_zeros(self.num_rows, x.size(1)).index_copy(0, self.node_rows, x)
        if self.tokens_per_graph:
            if tokens is None or tokens.size(0) < self.tokens_per_graph:
                raise ValueError(
                    f"tokens: the mask has {self.tokens_per_graph} global tokens per graph but "
                    f"{0 if tokens is None else tokens.size(0)} token embeddings were given"
                )
            if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.size(1) != x.size(1):
                raise ValueError(f"tokens must be [T, {x.size(1)}] like x, got {_shape(tokens)}")
            values = tokens[: self.tokens_per_graph].to(x.dtype)
            values = values.unsqueeze(0).expand(self.num_graphs, -1, -1).reshape(-1, x.size(1))
            rows = rows.index_copy(0, self.token_rows.reshape(-1), values)
        return rows

    def to_nodes(self, rows: Tensor) -> Tensor:
        """The node rows of ``rows`` ``[num_rows, C]`` in node order, ``[num_nodes, C]``."""
        if not isinstance(rows, Tensor) or rows.dim() == 0:
            raise ValueError(f"rows must be a [num_rows, ...] tensor, got {_shape(rows)}")
        if rows.size(0) != self.num_rows:
            raise ValueError(f"rows has {rows.size(0)} rows but the mask has {self.num_rows}")
        if self.tokens_per_graph == 0 and self._identity_rows():
            return rows
        return rows.index_select(0, self.node_rows)

    def _identity_rows(self) -> bool:
        """Whether row ``i`` is node ``i`` for every node (cached)."""
        if "identity_rows" not in self._cache:
            self._cache["identity_rows"] = self.num_rows == self.num_nodes and bool(
                torch.equal(self.node_rows, torch.arange(self.num_nodes, device=self.device))
            )
        return self._cache["identity_rows"]

    # ------------------------------------------------------------------ conversions
    def to_dense(self, max_entries: int = DEFAULT_DENSE_LIMIT) -> Tensor:
        """The mask as a ``[num_rows, num_rows]`` bool matrix (True = attend).

        Refuses (``ValueError`` naming ``max_entries``) when ``num_rows ** 2 > max_entries``,
        before allocating anything.
        """
        max_entries = check_count(max_entries, "max_entries")
        entries = self.num_rows * self.num_rows
        if entries > max_entries:
            raise ValueError(
                f"to_dense: a {self.num_rows} x {self.num_rows} mask has {entries} entries, above "
                f"max_entries={max_entries}; use the CSR (rowptr/col) or raise max_entries"
            )
        dense = torch.zeros(self.num_rows, self.num_rows, dtype=torch.bool, device=self.device)
        dense[self.row(), self.col] = True
        return dense

    def to(self, device: torch.device | str) -> MaskIndex:
        """A copy with every tensor on ``device``."""
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device: {error}") from None
        return MaskIndex(
            self.rowptr.to(device),
            self.col.to(device),
            num_nodes=self.num_nodes,
            num_graphs=self.num_graphs,
            tokens_per_graph=self.tokens_per_graph,
            node_rows=self.node_rows.to(device),
            token_rows=self.token_rows.to(device),
            row_graph=self.row_graph.to(device),
            pos=None if self.pos is None else self.pos.to(device),
            expression=self.expression,
        )

    def reorder(self, perm: Tensor) -> MaskIndex:
        """The same pattern with rows renumbered: new row ``r`` is old row ``perm[r]``.

        q/k/v for the result are ``q[perm]``; ``node_rows``/``token_rows`` follow the rows.
        """
        perm = _check_permutation(perm, self.num_rows, "perm").to(self.device)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel(), device=perm.device)
        rows = inverse[self.row()]
        cols = inverse[self.col]
        keys = torch.sort(rows * max(self.num_rows, 1) + cols).values
        new_rows = torch.div(keys, max(self.num_rows, 1), rounding_mode="floor")
        counts = torch.bincount(new_rows, minlength=self.num_rows)
        rowptr = torch.zeros(self.num_rows + 1, dtype=torch.int64, device=self.device)
        torch.cumsum(counts, 0, out=rowptr[1:])
        return MaskIndex(
            rowptr,
            keys - new_rows * self.num_rows,
            num_nodes=self.num_nodes,
            num_graphs=self.num_graphs,
            tokens_per_graph=self.tokens_per_graph,
            node_rows=inverse[self.node_rows],
            token_rows=inverse[self.token_rows],
            row_graph=self.row_graph[perm],
            pos=self.pos,
            expression=self.expression,
        )

    def locality_order(self) -> Tensor:
        """A row permutation for block-sparse kernels: every token row first, then each graph's
        nodes in Morton order of ``pos`` (reverse Cuthill–McKee of the pattern without ``pos``).

        Cached. Use as ``mask_index.reorder(mask_index.locality_order())``.
        """
        if "locality" in self._cache:
            return self._cache["locality"]
        node_rows = self.node_rows
        if self.pos is not None:
            key = morton_codes(self.pos, self.row_graph[node_rows])
        else:
            node_of_row = torch.full((self.num_rows,), -1, dtype=torch.int64, device=self.device)
            node_of_row[node_rows] = torch.arange(self.num_nodes, device=self.device)
            row, col = self.row(), self.col
            both_nodes = (node_of_row[row] >= 0) & (node_of_row[col] >= 0)
            pairs = torch.stack([node_of_row[col[both_nodes]], node_of_row[row[both_nodes]]])
            order = reverse_cuthill_mckee(pairs, self.num_nodes)
            key = torch.empty_like(order)
            key[order] = torch.arange(self.num_nodes, device=self.device)
        node_graph = self.row_graph[node_rows]
        # Sort nodes by (graph, key): two stable sorts.
        by_key = torch.sort(key, stable=True).indices
        by_graph = by_key[torch.sort(node_graph[by_key], stable=True).indices]
        order = torch.cat([self.token_rows.reshape(-1), node_rows[by_graph]])
        self._cache["locality"] = order
        return order

    # ------------------------------------------------------------------ blocks
    def _tile_counts(self, block_size: int) -> tuple[Tensor, Tensor, int]:
        """Sorted unique non-empty tile keys ``qb * nkb + kb`` and their pair counts."""
        nqb = max(1, math.ceil(self.num_rows / block_size))
        tiles = torch.div(self.row(), block_size, rounding_mode="floor") * nqb + torch.div(
            self.col, block_size, rounding_mode="floor"
        )
        # The CSR is sorted by row, so only the key-block part needs sorting inside each
        # query block; one sort over the tile ids is O(nnz log nnz) and never needs a table.
        keys, counts = torch.unique(tiles, sorted=True, return_counts=True)
        return keys, counts, nqb

    def block_density(self, block_size: int = 128) -> float:
        """Fraction of ``block_size x block_size`` tiles that hold at least one pair."""
        block_size = _check_block_size(block_size)
        keys, _, nblocks = self._tile_counts(block_size)
        return keys.numel() / float(nblocks * nblocks)

    def to_block_mask(self, block_size: int = 128, separate_full_blocks: bool = False) -> Any:
        """A FlexAttention ``BlockMask`` for this pattern, built from the CSR.

        The tile tables come from the CSR in O(nnz log nnz + (N/B)²) (only ``BlockMask``'s own
        ``[nQB, nKB]`` int32 index tables are quadratic, in blocks); the element-wise
        ``mask_mod`` is a binary search of the key in the query's CSR row, so no ``N × N``
        table is ever built. ``separate_full_blocks`` lists completely filled tiles apart (the
        kernel then skips ``mask_mod`` there) at the price of two more index tables.
        Cached per (block size, full-block flag).
        """
        block_size = _check_block_size(block_size)
        cache_key = ("block_mask", block_size, bool(separate_full_blocks))
        if cache_key in self._cache:
            return self._cache[cache_key]
        from torch.nn.attention.flex_attention import BlockMask

        keys, counts, nblocks = self._tile_counts(block_size)
        query_block = torch.div(keys, nblocks, rounding_mode="floor")
        key_block = keys - query_block * nblocks
        if separate_full_blocks:
            full = counts == block_size * block_size
        else:
            full = torch.zeros_like(counts, dtype=torch.bool)
        partial_tables = _block_tables(query_block[~full], key_block[~full], nblocks)
        full_tables = (
            _block_tables(query_block[full], key_block[full], nblocks)
            if separate_full_blocks
            else (None, None)
        )
        block_mask = BlockMask.from_kv_blocks(
            partial_tables[0],
            partial_tables[1],
            full_tables[0],
            full_tables[1],
            BLOCK_SIZE=block_size,
            mask_mod=csr_mask_mod(self.rowptr, self.col),
            seq_lengths=(self.num_rows, self.num_rows),
        )
        self._cache[cache_key] = block_mask
        return block_mask


def _shape(value: object) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


def csr_mask_mod(rowptr: Tensor, col: Tensor):
    """A FlexAttention ``mask_mod`` that looks ``kv_idx`` up in row ``q_idx`` of a CSR with
    sorted keys: an unrolled binary search of ``ceil(log2(max degree + 1))`` steps, built from
    element-wise operations only so that ``vmap`` and ``torch.compile`` can both trace it."""
    num_rows = rowptr.numel() - 1
    nnz = col.numel()
    max_degree = int((rowptr[1:] - rowptr[:-1]).max()) if num_rows else 0
    steps = max(1, math.ceil(math.log2(max_degree + 1)))
    col_padded = torch.cat([col, col.new_full((1,), -1)])
    last_row = max(num_rows - 1, 0)

    def mask_mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        query = q_idx.clamp(0, last_row)
        low = rowptr[query]
        high = rowptr[query + 1]
        end = high
        for _ in range(steps):
            middle = torch.div(low + high, 2, rounding_mode="floor")
            go_right = (col_padded[middle.clamp(max=nnz)] < kv_idx) & (low < high)
            low = torch.where(go_right, middle + 1, low)
            high = torch.where(go_right, high, middle)
        found = col_padded[low.clamp(max=nnz)] == kv_idx
        return found & (low < end) & (q_idx < num_rows) & (kv_idx < num_rows)

    return mask_mod


def _block_tables(query_block: Tensor, key_block: Tensor, nblocks: int) -> tuple[Tensor, Tensor]:
    """``kv_num_blocks [1, 1, nQB]`` and ``kv_indices [1, 1, nQB, nKB]`` from sorted tiles."""
    device = query_block.device
    num = torch.bincount(query_block, minlength=nblocks).to(torch.int32)
    starts = torch.cumsum(num.to(torch.int64), 0) - num
    slot = torch.arange(query_block.numel(), device=device) - starts[query_block]
    indices = torch.zeros(nblocks, nblocks, dtype=torch.int32, device=device)
    indices[query_block, slot] = key_block.to(torch.int32)
    return num.view(1, 1, nblocks), indices.view(1, 1, nblocks, nblocks)


def _check_block_size(block_size: object) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int):
        raise TypeError(f"block_size must be an int, got {block_size!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    return block_size


def _check_permutation(perm: object, size: int, name: str) -> Tensor:
    if not isinstance(perm, Tensor) or perm.dim() != 1 or perm.dtype not in (
        torch.int32,
        torch.int64,
    ):
        raise TypeError(f"{name} must be a 1-D integer tensor (a permutation of 0..{size - 1})")
    if perm.numel() != size:
        raise ValueError(f"{name} has {perm.numel()} entries, expected {size}")
    perm = perm.to(torch.int64)
    if size:
        seen = torch.zeros(size, dtype=torch.bool, device=perm.device)
        if int(perm.min()) < 0 or int(perm.max()) >= size:
            raise ValueError(f"{name} is not a permutation of 0..{size - 1}: value out of range")
        seen[perm] = True
        if not bool(seen.all()):
            raise ValueError(f"{name} is not a permutation of 0..{size - 1}: repeated values")
    return perm
