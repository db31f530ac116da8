r"""The built-in masks of mesh graph transformers, each a :class:`~gnnagg.attention.Mask`.

Semantics (query ``i`` attends key ``j``; edges follow PyG's ``source -> target``):

* :func:`adjacency` -- the edge ``j -> i`` exists, or ``i == j`` when ``self_loops``.
* :func:`khop` -- a directed path of at most ``k`` edges leads from ``j`` to ``i`` (``i`` itself
  included).
* :func:`dilated_window` -- with :math:`\pi` an ordering of the nodes inside each graph,
  :math:`\pi(j) - \pi(i) = m \cdot \mathrm{dilation}` for an integer :math:`|m| \le`
  ``size``.
* :func:`global_tokens` -- ``g`` extra rows per graph that attend, and are attended by, every
  node of their graph and each other.
* :func:`random_jumps` -- :math:`\lceil \mathrm{ratio} \cdot E_g \rceil` random node pairs
  per graph (:math:`E_g` its edge count), each added in both directions.

Reference: Garnier et al., "Training Transformers for Mesh-Based Simulations", 2025,
`arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_count, check_int
from .csr import csr_from_sorted_pairs, csr_rows, permute_rows, ranges
from .hops import khop_csr
from .mask_context import MaskContext
from .mask_index import _check_permutation
from .masks import Mask, _no_pairs
from .ordering import rank_within_graphs, reverse_cuthill_mckee

__all__ = [
    "Adjacency",
    "DilatedWindow",
    "GlobalTokens",
    "KHop",
    "RandomJumps",
    "adjacency",
    "dilated_window",
    "global_tokens",
    "khop",
    "random_jumps",
]

ORDERS = ("morton", "rcm", "index")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, repr=False)
class Adjacency(Mask):
    """See :func:`adjacency`."""

    self_loops: bool = True
    _checked_pairs = False

    def pairs(self, ctx: MaskContext) -> tuple[Tensor, Tensor]:
        src, dst = ctx.edge_index
        queries, keys = [ctx.node_rows[dst]], [ctx.node_rows[src]]
        if self.self_loops:
            queries.append(ctx.node_rows)
            keys.append(ctx.node_rows)
        return torch.cat(queries), torch.cat(keys)

    def __repr__(self) -> str:
        return "adjacency()" if self.self_loops else "adjacency(self_loops=False)"


@dataclass(frozen=True, repr=False)
class KHop(Mask):
    """See :func:`khop`."""

    k: int
    _checked_pairs = False

    def pairs(self, ctx: MaskContext) -> tuple[Tensor, Tensor]:
        rowptr, col = self._csr(ctx, torch.int64)
        return csr_rows(rowptr), col

    def _csr(self, ctx: MaskContext, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        order = ctx.morton_order() if ctx.pos is not None else None
        rowptr, col = khop_csr(ctx.edge_index, ctx.num_nodes, self.k, order)
        if ctx.rows_are_nodes:
            return rowptr, col.to(dtype)
        node_rows = ctx.node_rows
        # Inside a graph, rows follow node ids, so mapped columns stay sorted. One graph's
        # rows are its nodes after the tokens: a shift.
        if ctx.num_graphs == 1:
            col = col.to(dtype) + ctx.tokens_per_graph
        else:
            col = node_rows.to(dtype)[col]
        if ctx.num_nodes < 2 or bool((node_rows[1:] > node_rows[:-1]).all()):
            # Rows keep their order (a sorted batch): only token rows, empty, come between.
            degree = torch.zeros(ctx.num_rows, dtype=torch.int64, device=ctx.device)
            degree[node_rows] = rowptr[1:] - rowptr[:-1]
            rowptr = torch.zeros(ctx.num_rows + 1, dtype=torch.int64, device=ctx.device)
            torch.cumsum(degree, 0, out=rowptr[1:])
            return rowptr, col
        node_of_row = torch.full((ctx.num_rows,), ctx.num_nodes, device=ctx.device)
        node_of_row[node_rows] = torch.arange(ctx.num_nodes, device=ctx.device)
        # Token rows take the empty row appended at the end.
        return permute_rows(torch.cat([rowptr, rowptr[-1:]]), col, node_of_row)

    def __repr__(self) -> str:
        return f"khop({self.k})"


@dataclass(frozen=True, repr=False, eq=False)
class DilatedWindow(Mask):
    """See :func:`dilated_window`."""

    size: int
    dilation: int
    order: str | Tensor
    _checked_pairs = False

    @property
    def needs_pos(self) -> bool:
        return isinstance(self.order, str) and self.order == "morton"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DilatedWindow):
            return NotImplemented
        if (self.size, self.dilation) != (other.size, other.dilation):
            return False
        if isinstance(self.order, Tensor) or isinstance(other.order, Tensor):
            return (
                isinstance(self.order, Tensor)
                and isinstance(other.order, Tensor)
                and torch.equal(self.order.cpu(), other.order.cpu())
            )
        return self.order == other.order

    def __hash__(self) -> int:
        order = self.order if isinstance(self.order, str) else ("perm", self.order.numel())
        return hash((DilatedWindow, self.size, self.dilation, order))

    def _positions(self, ctx: MaskContext) -> Tensor:
        """Rank of each node inside its graph along the ordering."""
        if isinstance(self.order, Tensor):
            order = _check_permutation(self.order, ctx.num_nodes, "order").to(ctx.device)
        elif self.order == "index":
            order = torch.arange(ctx.num_nodes, device=ctx.device)
        elif self.order == "morton":
            order = ctx.morton_order()
        else:
            order = reverse_cuthill_mckee(ctx.edge_index, ctx.num_nodes)
        return rank_within_graphs(order, ctx.batch, ctx.counts)

    def pairs(self, ctx: MaskContext) -> tuple[Tensor, Tensor]:
        # Steps past the largest graph reach no node: |m| <= (largest - 1) // dilation gives the
        # same pairs, and keeps every shift below the graph sizes (no int64 overflow).
        largest = int(ctx.counts.max()) if ctx.num_nodes else 0
        size = min(self.size, max(largest - 1, 0) // self.dilation)
        ctx.check_pairs(ctx.num_nodes * (2 * size + 1), repr(self))
        rank = self._positions(ctx)
        starts = torch.cumsum(ctx.counts, 0) - ctx.counts
        slot = starts[ctx.batch] + rank
        # node_at[s] is the node at slot s (slots are graph by graph, in window order).
        node_at = torch.empty_like(slot)
        node_at[slot] = torch.arange(ctx.num_nodes, device=ctx.device)
        size_of_node = ctx.counts[ctx.batch]
        # One row of 2·size+1 candidate keys per node; out-of-graph steps get a sentinel past
        # every row, and a sort along each short row leaves the pairs sorted when rows are.
        shifts = torch.arange(-size, size + 1, device=ctx.device) * self.dilation
        target = rank.unsqueeze(1) + shifts
        valid = (target >= 0) & (target < size_of_node.unsqueeze(1))
        slots = (slot.unsqueeze(1) + shifts).clamp_(0, max(ctx.num_nodes - 1, 0))
        keys = torch.where(valid, ctx.node_rows[node_at[slots]], ctx.num_rows)
        keys = torch.sort(keys, dim=1).values
        queries = ctx.node_rows.unsqueeze(1).expand_as(keys)
        order = torch.argsort(ctx.node_rows)
        keys, queries = keys[order].reshape(-1), queries[order].reshape(-1)
        keep = keys < ctx.num_rows
        return queries[keep], keys[keep]

    def _csr(self, ctx: MaskContext, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        # pairs() are in row-major order already, each row sorted and without repeats.
        queries, keys = self.pairs(ctx)
        rowptr, col = csr_from_sorted_pairs(queries, keys, ctx.num_rows)
        return rowptr, col.to(dtype)

    def __repr__(self) -> str:
        order = (
            f"<permutation of {self.order.numel()}>"
            if isinstance(self.order, Tensor)
            else repr(self.order)
        )
        return f"dilated_window(size={self.size}, dilation={self.dilation}, order={order})"


@dataclass(frozen=True, repr=False)
class GlobalTokens(Mask):
    """See :func:`global_tokens`."""

    count: int
    _checked_pairs = False

    @property
    def tokens_per_graph(self) -> int:
        return self.count

    def pairs(self, ctx: MaskContext) -> tuple[Tensor, Tensor]:
        if self.count == 0:
            return _no_pairs(ctx)
        g = self.count
        ctx.check_pairs(2 * ctx.num_nodes * g + ctx.num_graphs * g * g, repr(self))
        tokens = ctx.token_rows[:, : self.count]  # [G, g]
        # Every node with every token of its graph, both ways.
        node_tokens = tokens[ctx.batch]  # [N, g]
        nodes = ctx.node_rows.unsqueeze(1).expand_as(node_tokens)
        # The tokens of a graph with each other (and themselves).
        shape = (ctx.num_graphs, self.count, self.count)
        first = tokens.unsqueeze(2).expand(shape)
        second = tokens.unsqueeze(1).expand(shape)
        queries = torch.cat([node_tokens.reshape(-1), nodes.reshape(-1), first.reshape(-1)])
        keys = torch.cat([nodes.reshape(-1), node_tokens.reshape(-1), second.reshape(-1)])
        return queries, keys

    def _csr(self, ctx: MaskContext, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        # Every row's keys are at most two ranges of its graph's block [tokens | nodes]: a
        # node row the first ``count`` tokens; one of those tokens the same, then all nodes.
        g, device = self.count, ctx.device
        ctx.check_pairs(2 * ctx.num_nodes * g + ctx.num_graphs * g * g, repr(self))
        block_start = ctx.token_rows[:, 0] if ctx.tokens_per_graph else ctx.node_rows[:0]
        starts = torch.zeros(ctx.num_rows, 2, dtype=torch.int64, device=device)
        lengths = torch.zeros(ctx.num_rows, 2, dtype=torch.int64, device=device)
        if g:
            graph = ctx.row_graph
            is_node = torch.ones(ctx.num_rows, dtype=torch.bool, device=device)
            is_node[ctx.token_rows.reshape(-1)] = False
            speaks = ctx.token_rows[:, :g].reshape(-1)
            starts[:, 0] = block_start[graph]
            lengths[:, 0] = torch.where(is_node, g, 0)
            lengths[speaks, 0] = g
            starts[speaks, 1] = block_start[graph[speaks]] + ctx.tokens_per_graph
            lengths[speaks, 1] = ctx.counts[graph[speaks]]
        col = ranges(starts.view(-1), lengths.view(-1))
        rowptr = torch.zeros(ctx.num_rows + 1, dtype=torch.int64, device=device)
        torch.cumsum(lengths.sum(1), 0, out=rowptr[1:])
        return rowptr, col.to(dtype)

    def __repr__(self) -> str:
        return f"global_tokens({self.count})"


@dataclass(frozen=True, repr=False)
class RandomJumps(Mask):
    """See :func:`random_jumps`."""

    ratio: float
    seed: int | None = None
    _checked_pairs = False

    def pairs(self, ctx: MaskContext) -> tuple[Tensor, Tensor]:
        generator = ctx.generator
        if generator is None and self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        edges_per_graph = torch.bincount(ctx.batch[ctx.edge_index[1]], minlength=ctx.num_graphs)
        counts = ctx.counts
        wanted = torch.ceil(edges_per_graph.to(torch.float64) * self.ratio)
        wanted = torch.where(counts >= 2, wanted, torch.zeros_like(wanted))
        # Both directions of every jump; checked in float64 before any int64 conversion.
        ctx.check_pairs(2 * float(wanted.sum()), repr(self))
        jumps = wanted.to(torch.int64)
        total = int(jumps.sum())
        if total == 0:
            return _no_pairs(ctx)
        graph = torch.repeat_interleave(torch.arange(ctx.num_graphs, device=ctx.device), jumps,
                                        output_size=total)
        draws = torch.rand(2, total, generator=generator, device=gen_device,
                           dtype=torch.float64).to(ctx.device)
        size = counts[graph]
        first = (draws[0] * size).to(torch.int64).clamp_(max=size - 1)
        # A second node different from the first: a non-zero cyclic offset.
        offset = 1 + (draws[1] * (size - 1)).to(torch.int64).clamp_(max=size - 2)
        second = (first + offset) % size
        starts = torch.cumsum(counts, 0) - counts
        by_graph = torch.sort(ctx.batch, stable=True).indices  # nodes graph by graph
        a = ctx.node_rows[by_graph[starts[graph] + first]]
        b = ctx.node_rows[by_graph[starts[graph] + second]]
        return torch.cat([a, b]), torch.cat([b, a])

    def __repr__(self) -> str:
        seed = "" if self.seed is None else f", seed={self.seed}"
        return f"random_jumps({self.ratio!r}{seed})"


# ---------------------------------------------------------------------- constructors


def adjacency(self_loops: bool = True) -> Adjacency:
    """Query ``i`` attends key ``j`` iff the edge ``j -> i`` is in ``edge_index``, plus ``i``
    itself when ``self_loops``."""
    if not isinstance(self_loops, bool):
        raise TypeError(f"self_loops must be a bool, got {self_loops!r}")
    return Adjacency(self_loops)


def khop(k: int) -> KHop:
    r"""Query ``i`` attends key ``j`` iff a directed path of at most ``k`` edges leads from ``j``
    to ``i`` (``i`` itself included). Computed as the non-zeros of :math:`(I + A)^k` by sparse
    CSR products, cached per ``edge_index`` tensor; never an ``N x N`` table.

    Cost: :math:`O(W + M \log d)` time and :math:`O(N + E + M)` memory for :math:`M` pairs in
    rows of at most :math:`d`, with :math:`W = \sum_j \deg_{in}(j) \deg_{out}(j)` accumulations
    per product and :math:`O(\log k)` products (:mod:`gnnagg.attention.hops`); the cached
    pattern keeps int32 columns (4 bytes a pair)."""
    k = check_count(k, "k")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return KHop(k)


def dilated_window(size: int, dilation: int = 1, order: str | Tensor = "morton") -> DilatedWindow:
    r"""Sliding window along a node ordering: ``i`` attends ``j`` iff
    :math:`\pi(j) - \pi(i) = m \cdot \mathrm{dilation}` with :math:`|m| \le` ``size``.

    Args:
        size: window half-width in steps (``size=0`` is self-attention only).
        dilation: distance between window steps along the ordering.
        order: :math:`\pi` inside each graph -- ``"morton"`` (Z-order of ``pos``),
            ``"rcm"`` (reverse Cuthill--McKee of the graph, for inputs without positions),
            ``"index"`` (node index; not permutation-equivariant), or a permutation tensor
            ``perm`` of all nodes, ``perm[r]`` being the node at position ``r``.

    Cost: the ordering (Morton: :math:`O(N)` codes and one sort, shared with ``khop`` in one
    build), then :math:`O(N w \log w)` time and :math:`O(N w)` memory for windows of
    :math:`w = 2 \cdot` ``size`` :math:`+ 1` keys, each row sorted on its own.
    """
    size = check_int(size, "size", minimum=0, maximum=_INT64_MAX)
    dilation = check_int(dilation, "dilation", maximum=_INT64_MAX)
    if dilation < 1:
        raise ValueError(f"dilation must be at least 1, got {dilation}")
    if isinstance(order, Tensor):
        if order.dim() != 1 or order.dtype not in (torch.int32, torch.int64):
            raise TypeError("order: a permutation tensor must be 1-D int32/int64")
        order = order.detach().to(torch.int64)
    elif order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS} or a permutation tensor, got {order!r}")
    return DilatedWindow(size, dilation, order)


def global_tokens(g: int) -> GlobalTokens:
    """``g`` global tokens per graph that attend every node of their graph, are attended by all
    of them, and attend each other. The built :class:`~gnnagg.attention.MaskIndex` places them
    first in each graph's block (``MaskIndex.token_rows``); layers own their learnable
    embeddings.

    Cost: :math:`O(N g + G g^2)` time and memory for ``N`` nodes in ``G`` graphs; every row's
    keys are at most two ranges, written in order (no sort)."""
    # Rows are at most 3e9 (the int64 pair encoding): more tokens than that never build.
    return GlobalTokens(check_int(g, "g", minimum=0, maximum=3_000_000_000))


def random_jumps(ratio: float, seed: int | None = None) -> RandomJumps:
    r""":math:`\lceil \mathrm{ratio} \cdot E_g \rceil` random pairs of distinct nodes inside each
    graph (:math:`E_g`: edges whose target is in the graph), each added in both directions.

    With ``seed`` the pairs are the same at every build; ``build(..., generator=)`` overrides
    the seed so a training loop can redraw them per call; with neither, torch's global RNG.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise TypeError(f"ratio must be a real number, got {ratio!r}")
    ratio = float(ratio)
    if not math.isfinite(ratio) or ratio < 0:
        raise ValueError(f"ratio must be finite and non-negative, got {ratio}")
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0, maximum=_INT64_MAX)
    return RandomJumps(ratio, seed)
