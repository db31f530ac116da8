r"""Composable attention masks for graphs, in the spirit of FlexAttention's ``mask_mod``\ s.

A mask is a small immutable expression; ``|`` is the union of the allowed (query, key) pairs and
``&`` their intersection. :meth:`Mask.build` turns it into a :class:`GraphMask` for one graph or
a PyG batch. Whatever the mask, no pair ever joins two graphs of a batch.

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
import warnings
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import check_count
from .graph_mask import GraphMask, _check_permutation
from .ordering import morton_codes, rank_within_graphs, reverse_cuthill_mckee

__all__ = [
    "Adjacency",
    "DilatedWindow",
    "GlobalTokens",
    "Intersection",
    "KHop",
    "Mask",
    "RandomJumps",
    "Union",
    "adjacency",
    "dilated_window",
    "global_tokens",
    "khop",
    "random_jumps",
]

ORDERS = ("morton", "rcm", "index")

_KHOP_CACHE_SIZE = 8


class Mask:
    """Base class of mask expressions. Combine with ``|`` (union) and ``&`` (intersection)."""

    def __or__(self, other: Mask) -> Mask:
        _check_mask(other, "|")
        return Union(_flatten(Union, self) + _flatten(Union, other))

    def __and__(self, other: Mask) -> Mask:
        _check_mask(other, "&")
        return Intersection(_flatten(Intersection, self) + _flatten(Intersection, other))

    # The pairs of a mask, as sorted unique int64 keys ``query_row * num_rows + key_row``.
    def _keys(self, ctx: _Context) -> Tensor:
        raise NotImplementedError

    @property
    def tokens_per_graph(self) -> int:
        """Global-token rows each graph gets when this mask is built (the largest ``g``)."""
        return max((leaf.count for leaf in self._leaves() if isinstance(leaf, GlobalTokens)),
                   default=0)

    @property
    def needs_pos(self) -> bool:
        """Whether :meth:`build` needs node coordinates ``pos``."""
        return any(isinstance(leaf, DilatedWindow) and leaf.order == "morton"
                   for leaf in self._leaves())

    def _leaves(self) -> list[Mask]:
        return [self]

    def build(
        self,
        edge_index: Tensor,
        num_nodes: int | None = None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> GraphMask:
        """Build the allowed pairs for one graph or a batch of graphs.

        Args:
            edge_index: ``[2, E]`` int64 edges ``source -> target`` (PyG convention).
            num_nodes: number of nodes ``N``; default ``edge_index.max() + 1`` (or the length of
                ``pos``/``batch`` when given).
            pos: ``[N, d]`` coordinates, needed by ``dilated_window(order="morton")``; kept in
                the result for a Morton block order of the FlexAttention path.
            batch: ``[N]`` graph id of each node (PyG's ``batch``); default one graph.
            generator: draws the pairs of :func:`random_jumps` (overriding their ``seed``), so
                that a training loop can redraw them at every call.

        Returns:
            a :class:`GraphMask` whose rows are the nodes plus ``tokens_per_graph`` global tokens
            per graph.
        """
        ctx = _Context(edge_index, num_nodes, pos, batch, generator, needs_pos=self.needs_pos,
                       tokens_per_graph=self.tokens_per_graph)
        keys = self._keys(ctx)
        rows = torch.div(keys, max(ctx.num_rows, 1), rounding_mode="floor")
        col = keys - rows * ctx.num_rows
        rowptr = torch.zeros(ctx.num_rows + 1, dtype=torch.int64, device=ctx.device)
        torch.cumsum(torch.bincount(rows, minlength=ctx.num_rows), 0, out=rowptr[1:])
        return GraphMask(
            rowptr,
            col,
            num_nodes=ctx.num_nodes,
            num_graphs=ctx.num_graphs,
            tokens_per_graph=ctx.tokens_per_graph,
            node_rows=ctx.node_rows,
            token_rows=ctx.token_rows,
            row_graph=ctx.row_graph,
            pos=ctx.pos,
            expression=repr(self),
        )


def _check_mask(other: object, op: str) -> None:
    if not isinstance(other, Mask):
        raise TypeError(f"cannot combine a mask with {type(other).__name__} using {op!r}")


def _flatten(kind: type, mask: Mask) -> tuple[Mask, ...]:
    return mask.parts if isinstance(mask, kind) else (mask,)


@dataclass(frozen=True, repr=False)
class Union(Mask):
    """Pairs allowed by any part."""

    parts: tuple[Mask, ...]

    def _leaves(self) -> list[Mask]:
        return [leaf for part in self.parts for leaf in part._leaves()]

    def _keys(self, ctx: _Context) -> Tensor:
        keys = self.parts[0]._keys(ctx)
        for part in self.parts[1:]:
            keys = _merge_sorted(keys, part._keys(ctx))
        return keys

    def __repr__(self) -> str:
        # ``&`` binds tighter than ``|`` in Python, so parts never need brackets here.
        return " | ".join(repr(part) for part in self.parts)


@dataclass(frozen=True, repr=False)
class Intersection(Mask):
    """Pairs allowed by every part."""

    parts: tuple[Mask, ...]

    def _leaves(self) -> list[Mask]:
        return [leaf for part in self.parts for leaf in part._leaves()]

    def _keys(self, ctx: _Context) -> Tensor:
        keys = self.parts[0]._keys(ctx)
        for part in self.parts[1:]:
            other = part._keys(ctx)
            if other.numel() == 0 or keys.numel() == 0:
                return keys[:0]
            where = torch.searchsorted(other, keys).clamp_(max=other.numel() - 1)
            keys = keys[other[where] == keys]
        return keys

    def __repr__(self) -> str:
        return " & ".join(_wrap(part, Union) for part in self.parts)


def _merge_sorted(a: Tensor, b: Tensor) -> Tensor:
    """The sorted union of two sorted duplicate-free key vectors, in O((n + m) log) without a
    full sort: each element's place in the merge is its index plus its rank in the other."""
    if a.numel() == 0 or b.numel() == 0:
        return a if b.numel() == 0 else b
    merged = torch.empty(a.numel() + b.numel(), dtype=a.dtype, device=a.device)
    merged[torch.arange(a.numel(), device=a.device) + torch.searchsorted(b, a)] = a
    merged[torch.arange(b.numel(), device=b.device) + torch.searchsorted(a, b, right=True)] = b
    return torch.unique_consecutive(merged)


def _wrap(part: Mask, needs_brackets: type) -> str:
    text = repr(part)
    return f"({text})" if isinstance(part, needs_brackets) else text


@dataclass(frozen=True, repr=False)
class Adjacency(Mask):
    """See :func:`adjacency`."""

    self_loops: bool = True

    def _keys(self, ctx: _Context) -> Tensor:
        src, dst = ctx.edge_index
        queries, keys = [ctx.node_rows[dst]], [ctx.node_rows[src]]
        if self.self_loops:
            queries.append(ctx.node_rows)
            keys.append(ctx.node_rows)
        return ctx.pair_keys(torch.cat(queries), torch.cat(keys))

    def __repr__(self) -> str:
        return "adjacency()" if self.self_loops else "adjacency(self_loops=False)"


@dataclass(frozen=True, repr=False)
class KHop(Mask):
    """See :func:`khop`."""

    k: int

    def _keys(self, ctx: _Context) -> Tensor:
        query, key = _khop_pairs(ctx.edge_index, ctx.num_nodes, self.k)
        return ctx.pair_keys(ctx.node_rows[query], ctx.node_rows[key])

    def __repr__(self) -> str:
        return f"khop({self.k})"


@dataclass(frozen=True, repr=False, eq=False)
class DilatedWindow(Mask):
    """See :func:`dilated_window`."""

    size: int
    dilation: int
    order: str | Tensor

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

    def _positions(self, ctx: _Context) -> Tensor:
        """Rank of each node inside its graph along the ordering."""
        if isinstance(self.order, Tensor):
            order = _check_permutation(self.order, ctx.num_nodes, "order").to(ctx.device)
        elif self.order == "index":
            order = torch.arange(ctx.num_nodes, device=ctx.device)
        elif self.order == "morton":
            order = torch.sort(morton_codes(ctx.pos, ctx.batch), stable=True).indices
        else:
            order = reverse_cuthill_mckee(ctx.edge_index, ctx.num_nodes)
        return rank_within_graphs(order, ctx.batch, ctx.counts)

    def _keys(self, ctx: _Context) -> Tensor:
        rank = self._positions(ctx)
        starts = torch.cumsum(ctx.counts, 0) - ctx.counts
        slot = starts[ctx.batch] + rank
        # node_at[s] is the node at slot s (slots are graph by graph, in window order).
        node_at = torch.empty_like(slot)
        node_at[slot] = torch.arange(ctx.num_nodes, device=ctx.device)
        size_of_node = ctx.counts[ctx.batch]
        # One row of 2·size+1 candidate keys per node; out-of-graph steps get a sentinel past
        # every row, and a sort along each short row leaves the pairs sorted when rows are.
        shifts = torch.arange(-self.size, self.size + 1, device=ctx.device) * self.dilation
        target = rank.unsqueeze(1) + shifts
        valid = (target >= 0) & (target < size_of_node.unsqueeze(1))
        slots = (slot.unsqueeze(1) + shifts).clamp_(0, max(ctx.num_nodes - 1, 0))
        keys = torch.where(valid, ctx.node_rows[node_at[slots]], ctx.num_rows)
        keys = torch.sort(keys, dim=1).values
        queries = ctx.node_rows.unsqueeze(1).expand_as(keys)
        order = torch.argsort(ctx.node_rows)
        keys, queries = keys[order].reshape(-1), queries[order].reshape(-1)
        keep = keys < ctx.num_rows
        return ctx.pair_keys(queries[keep], keys[keep])

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

    def _keys(self, ctx: _Context) -> Tensor:
        if self.count == 0:
            return torch.zeros(0, dtype=torch.int64, device=ctx.device)
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
        return ctx.pair_keys(queries, keys)

    def __repr__(self) -> str:
        return f"global_tokens({self.count})"


@dataclass(frozen=True, repr=False)
class RandomJumps(Mask):
    """See :func:`random_jumps`."""

    ratio: float
    seed: int | None = None

    def _keys(self, ctx: _Context) -> Tensor:
        generator = ctx.generator
        if generator is None and self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        edges_per_graph = torch.bincount(ctx.batch[ctx.edge_index[1]], minlength=ctx.num_graphs)
        counts = ctx.counts
        jumps = torch.ceil(edges_per_graph.to(torch.float64) * self.ratio).to(torch.int64)
        jumps = torch.where(counts >= 2, jumps, torch.zeros_like(jumps))
        total = int(jumps.sum())
        if total == 0:
            return torch.zeros(0, dtype=torch.int64, device=ctx.device)
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
        return ctx.pair_keys(torch.cat([a, b]), torch.cat([b, a]))

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
    """Query ``i`` attends key ``j`` iff a directed path of at most ``k`` edges leads from ``j``
    to ``i`` (``i`` itself included). Computed as the non-zeros of :math:`(I + A)^k` by sparse
    CSR products, cached per ``edge_index`` tensor; never an ``N x N`` table."""
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
    """
    size = check_count(size, "size")
    dilation = check_count(dilation, "dilation")
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
    of them, and attend each other. The built :class:`GraphMask` places them first in each
    graph's block (``GraphMask.token_rows``); layers own their learnable embeddings."""
    return GlobalTokens(check_count(g, "g"))


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
        seed = check_count(seed, "seed")
    return RandomJumps(ratio, seed)


# ---------------------------------------------------------------------- build context


class _Context:
    """Checked inputs of one build and the row layout (tokens first in each graph's block)."""

    def __init__(
        self,
        edge_index: Any,
        num_nodes: Any,
        pos: Any,
        batch: Any,
        generator: Any,
        *,
        needs_pos: bool,
        tokens_per_graph: int,
    ) -> None:
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError("edge_index must be a [2, E] integer tensor")
        if edge_index.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"edge_index must be int64 or int32, got {edge_index.dtype}")
        edge_index = edge_index.to(torch.int64)
        device = edge_index.device
        if num_nodes is None:
            if pos is not None and isinstance(pos, Tensor):
                num_nodes = pos.size(0)
            elif batch is not None and isinstance(batch, Tensor):
                num_nodes = batch.numel()
            else:
                num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        num_nodes = check_count(num_nodes, "num_nodes")
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
            raise ValueError(f"edge_index has node ids outside [0, num_nodes={num_nodes})")
        if pos is not None:
            if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.size(0) != num_nodes:
                raise ValueError(f"pos must be a [num_nodes={num_nodes}, d] tensor")
            if not pos.is_floating_point():
                raise TypeError(f"pos must be floating point, got {pos.dtype}")
            if pos.device != device:
                raise ValueError(f"pos is on {pos.device} but edge_index on {device}")
        elif needs_pos:
            raise ValueError(
                "pos is required: dilated_window(order='morton') orders nodes by the Z-order of "
                "their coordinates; pass pos=..., or use order='rcm' for inputs without positions"
            )
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
        self.num_rows = num_nodes + num_graphs * tokens_per_graph
        if self.num_rows > 3_000_000_000:
            raise ValueError(f"{self.num_rows} rows is beyond the int64 pair encoding")
        # Rows: graph g's block starts at block_start[g]; tokens first, then its nodes in index
        # order (a stable sort of batch gives each node's rank inside its graph).
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

    def pair_keys(self, queries: Tensor, keys: Tensor) -> Tensor:
        """Sorted duplicate-free ``query * num_rows + key``; O(n) when already sorted."""
        return _sorted_unique(queries * self.num_rows + keys)


def _sorted_unique(keys: Tensor) -> Tensor:
    if keys.numel() > 1 and bool((keys[1:] >= keys[:-1]).all()):
        return torch.unique_consecutive(keys)
    return torch.unique(keys, sorted=True)


# ---------------------------------------------------------------------- k-hop expansion

_khop_cache: OrderedDict[tuple, tuple[Any, tuple[Tensor, Tensor]]] = OrderedDict()


def _khop_pairs(edge_index: Tensor, num_nodes: int, k: int) -> tuple[Tensor, Tensor]:
    """(query, key) node pairs of ``(I + A)^k``, cached per ``edge_index`` tensor and version."""
    cache_key = (id(edge_index), edge_index._version, edge_index.data_ptr(), num_nodes, k)
    hit = _khop_cache.get(cache_key)
    if hit is not None and hit[0]() is edge_index:
        _khop_cache.move_to_end(cache_key)
        return hit[1]
    pairs = _expand_khop(edge_index, num_nodes, k)
    try:
        ref = weakref.ref(edge_index)
    except TypeError:  # pragma: no cover - plain tensors support weak references
        return pairs
    _khop_cache[cache_key] = (ref, pairs)
    while len(_khop_cache) > _KHOP_CACHE_SIZE:
        _khop_cache.popitem(last=False)
    return pairs


def _expand_khop(edge_index: Tensor, num_nodes: int, k: int) -> tuple[Tensor, Tensor]:
    """Non-zeros of ``(I + A)^k`` (``A[i, j] = 1`` for the edge ``j -> i``) by sparse CSR
    products; path counts are float32, which stays positive however large it grows."""
    device = edge_index.device
    if num_nodes == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty
    loops = torch.arange(num_nodes, device=device)
    keys = _sorted_unique(torch.cat([edge_index[1] * num_nodes + edge_index[0],
                                     loops * num_nodes + loops]))
    rows = torch.div(keys, num_nodes, rounding_mode="floor")
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.int64, device=device)
    torch.cumsum(torch.bincount(rows, minlength=num_nodes), 0, out=rowptr[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        step = torch.sparse_csr_tensor(rowptr, keys - rows * num_nodes,
                                       torch.ones(keys.numel(), device=device),
                                       (num_nodes, num_nodes), check_invariants=False)
        reach = step
        for _ in range(k - 1):
            reach = reach @ step
    if k == 1:
        return rows, keys - rows * num_nodes
    crow, col = reach.crow_indices(), reach.col_indices()
    degree = crow[1:] - crow[:-1]
    query = torch.repeat_interleave(loops, degree, output_size=col.numel())
    # Columns come out unsorted within rows (the values are path counts, never 0): sort each
    # row, in a padded [N, max degree] table when that is small, else with one global sort.
    widest = int(degree.max())
    if widest * num_nodes <= 4 * col.numel():
        table = torch.full((num_nodes, widest), num_nodes, dtype=torch.int64, device=device)
        slot = torch.arange(col.numel(), device=device) - crow[:-1].repeat_interleave(
            degree, output_size=col.numel())
        table[query, slot] = col
        table = torch.sort(table, dim=1).values.view(-1)
        return query, table[table < num_nodes]
    keys = torch.sort(query * num_nodes + col).values
    query = torch.div(keys, num_nodes, rounding_mode="floor")
    return query, keys - query * num_nodes
