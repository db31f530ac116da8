"""Evaluate basis polynomials on a graph or a batch of graphs given as edge lists.

Semantics of the input (PyG's conventions where PyG has one; the paper fixes none):

* A is built PyG-style: edge ``e`` contributes ``edge_weight[e]`` (1 when no weights are given) to
  ``A[edge_index[0, e], edge_index[1, e]]``. Duplicate edges add up, as in ``to_dense_adj``.
* Directed input is allowed: each pattern edge reads A in the orientation of its einsum string.
  Most PyG graphs store both directions, giving a symmetric A.
* Self-loops in the input are diagonal entries of A and are used as such (a pattern edge may map
  onto a loop; pattern self-loops read the diagonal). Drop them beforehand if unwanted.
* Computation runs in ``dtype``: ``torch.float64`` (default; counts are exact below 2^53),
  ``torch.int64`` (exact for integer weights; a value that would pass 2^63 - 1 raises
  :class:`Int64OverflowError` instead of wrapping; CPU only for ``backend="dense"``) or
  ``torch.float32``. Weights must be real (complex weights are refused), and representable in
  ``dtype`` (non-finite or out-of-range weights for int64, and finite weights that overflow
  float32, are refused).
* A batch is split by ``batch`` (graph ids, non-decreasing, as PyG makes them); edges must stay
  inside their graph. Nothing dense ever spans the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from .._checks import check_bool, check_choice, check_count, check_positive, format_bytes
from .basis import Polynomial
from .dense import DenseEvaluator
from .plan import BACKENDS, plan_contraction
from .sparse import SparseEvaluator

DTYPES = (torch.float64, torch.float32, torch.int64)
DEFAULT_DENSE_BUDGET = 1 << 25
# A single graph whose dense intermediates exceed this (about 2 GB in float64) is refused with a
# clear error instead of exhausting memory; such graphs belong to the sparse backend.
DENSE_SINGLE_GRAPH_LIMIT = 1 << 28
# Most elements of the zero-padded all-pairs output [B, n_max, n_max, C] (8 GiB in float64);
# one large graph in a batch of small ones pads every graph to its size.
DENSE_PAIRS_LIMIT = 1 << 30
# Most bytes one step of the sparse evaluator may allocate for its join (its rows times the
# columns, values and index temporaries), about the dense backend's single-graph limit.
DEFAULT_SPARSE_BUDGET = 1 << 31
_INT64_MAX = 2**63 - 1


class Int64OverflowError(OverflowError, ValueError):
    """A ``dtype=torch.int64`` evaluation would produce a value beyond ``2**63 - 1``, which
    int64 arithmetic would silently wrap."""


def _convert_weights(edge_weight: Tensor, dtype: torch.dtype) -> Tensor:
    """``edge_weight`` in ``dtype``, refusing what the conversion would silently change."""
    if edge_weight.is_complex():
        raise TypeError(
            f"edge_weight must be real, got {edge_weight.dtype}: polynomial values mix real and "
            "imaginary parts, and converting to a real dtype would drop the imaginary part"
        )
    if not edge_weight.dtype.is_floating_point and edge_weight.dtype != torch.bool:
        # Integer weights: only uint64 can exceed int64, and no float dtype overflows on them.
        if edge_weight.dtype == torch.uint64 and edge_weight.numel():
            if float(edge_weight.double().max()) > _INT64_MAX:
                raise ValueError("edge_weight has uint64 values beyond 2**63 - 1")
        return edge_weight.to(dtype)
    if edge_weight.dtype == torch.bool:
        return edge_weight.to(dtype)
    finite = torch.isfinite(edge_weight)
    if not dtype.is_floating_point:
        if not bool(finite.all()):
            raise ValueError(
                f"edge_weight holds inf or nan, which {dtype} cannot represent; use a float dtype"
            )
        if edge_weight.numel() and float(edge_weight.abs().max()) >= 2.0**63:
            raise ValueError(
                f"edge_weight holds values of magnitude {float(edge_weight.abs().max()):.3g}, "
                f"beyond {dtype}'s range (2**63); use a float dtype"
            )
        if not bool(torch.all(edge_weight == edge_weight.round())):
            raise ValueError("edge_weight must be integral when dtype is torch.int64")
        return edge_weight.to(dtype)
    converted = edge_weight.to(dtype)
    if bool((finite & ~torch.isfinite(converted)).any()):
        raise ValueError(
            f"edge_weight has finite values that overflow {dtype} (largest magnitude "
            f"{float(edge_weight.abs().max()):.3g}); use torch.float64"
        )
    return converted


class GraphBatch:
    """Validated edge list plus the per-graph layout of a (possibly single-graph) batch."""

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        edge_weight: Tensor | None = None,
        batch: Tensor | None = None,
        num_graphs: int | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if not isinstance(edge_index, Tensor):
            raise TypeError(f"edge_index must be a torch.Tensor, got {type(edge_index).__name__}")
        if edge_index.dim() != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {list(edge_index.shape)}")
        if edge_index.dtype != torch.long:
            raise TypeError(f"edge_index must be torch.long, got {edge_index.dtype}")
        num_nodes = check_count(num_nodes, "num_nodes")
        if num_graphs is not None:
            num_graphs = check_count(num_graphs, "num_graphs")
            if batch is None and num_graphs != 1:
                raise ValueError(
                    f"num_graphs={num_graphs} needs a batch vector; without one the input is "
                    "a single graph"
                )
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype}")
        num_edges = edge_index.shape[1]
        if num_edges and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
            raise ValueError(
                f"edge_index out of range: entries must lie in [0, {num_nodes}), found "
                f"[{int(edge_index.min())}, {int(edge_index.max())}]"
            )
        device = edge_index.device
        if edge_weight is None:
            weight = torch.ones(num_edges, dtype=dtype, device=device)
        else:
            if not isinstance(edge_weight, Tensor):
                raise TypeError(
                    f"edge_weight must be a torch.Tensor, got {type(edge_weight).__name__}"
                )
            if edge_weight.dim() == 2 and edge_weight.shape[1] == 1:
                edge_weight = edge_weight.view(-1)
            if edge_weight.dim() != 1 or edge_weight.shape[0] != num_edges:
                raise ValueError(
                    f"edge_weight must hold one scalar per edge ([E] or [E, 1] with E={num_edges}),"
                    f" got {list(edge_weight.shape)}"
                )
            weight = _convert_weights(edge_weight, dtype)
        if batch is None:
            batch = torch.zeros(num_nodes, dtype=torch.long, device=device)
            num_graphs = 1 if num_graphs is None else num_graphs
        else:
            if not isinstance(batch, Tensor) or batch.dim() != 1 or batch.shape[0] != num_nodes:
                raise ValueError(f"batch must be a 1-D tensor with num_nodes={num_nodes} entries")
            if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
                raise TypeError(f"batch must hold integer graph ids, got dtype {batch.dtype}")
            batch = batch.long()
            if num_graphs is None:
                num_graphs = int(batch.max()) + 1 if num_nodes else 0
            if num_nodes and (int(batch.min()) < 0 or int(batch.max()) >= num_graphs):
                raise ValueError(f"batch entries must lie in [0, num_graphs={num_graphs})")
            if num_nodes > 1 and bool(torch.any(batch[1:] < batch[:-1])):
                raise ValueError("batch must be non-decreasing (nodes grouped by graph)")
        if num_edges and bool(torch.any(batch[edge_index[0]] != batch[edge_index[1]])):
            raise ValueError("edge_index has edges between different graphs of the batch")
        self.edge_index = edge_index
        self.edge_weight = weight
        self.num_nodes = num_nodes
        self.batch = batch
        self.num_graphs = int(num_graphs)
        self.dtype = dtype
        self.device = device
        self.sizes = torch.bincount(batch, minlength=self.num_graphs)
        self.ptr = torch.zeros(self.num_graphs + 1, dtype=torch.long, device=device)
        self.ptr[1:] = torch.cumsum(self.sizes, 0)
        self._sparse: SparseEvaluator | None = None
        self._growth: tuple[float, float, float] | None = None

    @property
    def sparse(self) -> SparseEvaluator:
        """Shared sparse evaluator (adjacency tables are built once per batch)."""
        if self._sparse is None:
            self._sparse = SparseEvaluator(
                self.edge_index, self.edge_weight, self.batch, self.ptr, self.sizes
            )
        return self._sparse

    def growth(self) -> tuple[float, float, float]:
        """``(W, D, n)``: the largest ``|A|`` entry (duplicate edges' ``|weight|`` summed), the most
        distinct neighbours of a node (either direction, itself when it has a loop), and the
        largest graph's node count. Every polynomial value is bounded by them (see
        :func:`int64_bound_log2`)."""
        if self._growth is None:
            n_max = float(self.sizes.max()) if self.num_graphs else 0.0
            if self.edge_index.shape[1] == 0:
                self._growth = (0.0, 0.0, n_max)
                return self._growth
            src, dst = self.edge_index
            n = max(self.num_nodes, 1)
            _, inverse = torch.unique(src * n + dst, return_inverse=True)
            magnitude = torch.zeros(int(inverse.max()) + 1, dtype=torch.float64, device=src.device)
            magnitude.index_add_(0, inverse, self.edge_weight.double().abs())
            low, high = torch.minimum(src, dst), torch.maximum(src, dst)
            pairs = torch.unique(low * n + high)
            ends = torch.cat([pairs // n, (pairs % n)[pairs // n != pairs % n]])
            degree = torch.bincount(ends, minlength=self.num_nodes)
            self._growth = (float(magnitude.max()), float(degree.max()), n_max)
        return self._growth

    def dense_chunks(self, width: int, budget: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Yield ``(graph_ids, adjacency [b, n, n], node_mask [b, n])`` covering all graphs.

        Graphs are sorted by size, then grouped so that a chunk's largest einsum intermediate
        (``b * n^(width + 1)``) stays within ``budget`` elements.
        """
        order = torch.argsort(self.sizes, stable=True)
        sizes = self.sizes[order].tolist()
        largest = max(sizes, default=0)
        if largest ** (width + 1) > max(budget, DENSE_SINGLE_GRAPH_LIMIT):
            raise ValueError(
                f"dense evaluation of a graph with {largest} nodes needs intermediates of "
                f"{largest}^{width + 1} elements; use backend='sparse' (edge-level values on the "
                f"edges) or raise dense_budget"
            )
        edge_graph = self.batch[self.edge_index[0]]
        start = 0
        while start < len(sizes):
            stop = start + 1
            # Sizes ascend, so the graph added last is the chunk's largest.
            while (
                stop < len(sizes)
                and (stop - start + 1) * max(sizes[stop], 1) ** (width + 1) <= budget
            ):
                stop += 1
            n = max(sizes[stop - 1], 1)
            graph_ids = order[start:stop]
            slot = torch.full((self.num_graphs,), -1, dtype=torch.long, device=self.device)
            slot[graph_ids] = torch.arange(graph_ids.numel(), device=self.device)
            chosen = slot[edge_graph] >= 0
            src, dst = self.edge_index[0][chosen], self.edge_index[1][chosen]
            graph_slot = slot[edge_graph[chosen]]
            offset = self.ptr[edge_graph[chosen]]
            adjacency = torch.zeros(graph_ids.numel(), n, n, dtype=self.dtype, device=self.device)
            adjacency.index_put_(
                (graph_slot, src - offset, dst - offset), self.edge_weight[chosen], accumulate=True
            )
            positions = torch.arange(n, device=self.device)
            node_mask = positions[None, :] < self.sizes[graph_ids][:, None]
            yield graph_ids, adjacency, node_mask
            start = stop


def _check_polynomials(polynomials: list[Polynomial]) -> int:
    for poly in polynomials:
        if not isinstance(poly, Polynomial):
            raise TypeError(f"polynomials must hold Polynomial objects, got {type(poly).__name__}")
    if not polynomials:
        raise ValueError("polynomials must not be empty")
    orders = {p.order for p in polynomials}
    if len(orders) > 1:
        raise ValueError(f"polynomials must all have the same order, got orders {sorted(orders)}")
    return orders.pop()


def evaluate(
    polynomials: Sequence[Polynomial],
    edge_index: Tensor,
    num_nodes: int,
    *,
    edge_weight: Tensor | None = None,
    batch: Tensor | None = None,
    num_graphs: int | None = None,
    backend: str = "sparse",
    dense_pairs: bool = False,
    dtype: torch.dtype = torch.float64,
    dense_budget: int = DEFAULT_DENSE_BUDGET,
    sparse_budget: int = DEFAULT_SPARSE_BUDGET,
) -> Tensor:
    """Evaluate polynomials of one order on a graph or a batch of graphs.

    Args:
        polynomials: basis elements, all of the same order.
        edge_index: ``[2, E]`` edges (PyG convention; see the module docstring).
        num_nodes: total number of nodes N.
        edge_weight: optional ``[E]`` (or ``[E, 1]``) scalar weights; default all ones.
        batch: optional ``[N]`` graph id of each node, non-decreasing.
        num_graphs: number of graphs B (default: ``batch.max() + 1``, or 1 without ``batch``).
        backend: ``"sparse"`` (default; sparse tables on the block-diagonal batch, scales to
            large sparse graphs) or ``"dense"`` (padded per-graph dense blocks).
        dense_pairs: edge-level output for all node pairs instead of the edges only (dense).
        dtype: computation and output dtype, ``torch.float64`` (default), ``torch.int64`` or
            ``torch.float32``.
        dense_budget: most elements of one dense intermediate; chunks of graphs are sized by it.
            A single graph that needs more than ``max(dense_budget, 2**28)`` is refused.
        sparse_budget: most bytes one step of the sparse backend may allocate for its join
            (default 2 GiB); a step that would need more is refused before allocating, with
            the size it needs. Joins grow like (node degree) ** (pattern nodes), so hubs
            (a star with 20,000 leaves) hit it first.

    Raises:
        Int64OverflowError: ``dtype=torch.int64`` and a value would pass ``2**63 - 1``.
        ValueError: bad arguments, or a dense or sparse budget that would be exceeded.

    Returns:
        Order 0: ``[B, C]``. Order 1: ``[N, C]``. Order 2: ``[E, C]`` on the edges of
        ``edge_index`` (in its order), or with ``dense_pairs`` ``[N, N, C]`` for a single graph
        (``batch is None``) and ``[B, n_max, n_max, C]`` zero-padded for a batch.
    """
    polynomials = list(polynomials)  # any iterable, read once
    order = _check_polynomials(polynomials)
    backend = check_choice(backend, "backend", BACKENDS)
    dense_pairs = check_bool(dense_pairs, "dense_pairs")
    dense_budget = check_positive(dense_budget, "dense_budget")
    sparse_budget = check_positive(sparse_budget, "sparse_budget")
    graphs = GraphBatch(edge_index, num_nodes, edge_weight, batch, num_graphs, dtype)
    single = batch is None
    return evaluate_on(
        polynomials,
        graphs,
        order,
        backend=backend,
        dense_pairs=dense_pairs,
        single=single,
        dense_budget=dense_budget,
        sparse_budget=sparse_budget,
    )


def evaluate_on(
    polynomials: list[Polynomial],
    graphs: GraphBatch,
    order: int,
    *,
    backend: str,
    dense_pairs: bool,
    single: bool,
    dense_budget: int = DEFAULT_DENSE_BUDGET,
    sparse_budget: int = DEFAULT_SPARSE_BUDGET,
) -> Tensor:
    """Evaluate on an already validated :class:`GraphBatch` (see :func:`evaluate`)."""
    if dense_pairs and order != 2:
        raise ValueError("dense_pairs applies to edge-level (order 2) polynomials only")
    if graphs.dtype == torch.int64:
        _check_int64_range(
            polynomials, graphs, order, backend, dense_pairs, dense_budget, sparse_budget
        )
    if backend == "sparse" and not dense_pairs:
        sparse = graphs.sparse
        sparse.join_budget = sparse_budget
        plans = [plan_contraction(p, "sparse", True) for p in polynomials]
        columns = [sparse.evaluate(plan) for plan in plans]
        if order == 2:
            columns = [c[sparse.edge_to_unique] for c in columns]
        return torch.stack(columns, dim=1)
    return _evaluate_dense(polynomials, graphs, order, dense_pairs, single, dense_budget)


def int64_bound_log2(poly: Polynomial, growth: tuple[float, float, float]) -> float:
    """log2 of an upper bound on ``|P_H(A)|`` (every entry), from ``growth = (W, D, n)`` of
    :meth:`GraphBatch.growth`.

    Each term is a product of ``degree`` entries of A, so at most ``W ** degree``. The terms are
    maps of H's nodes whose edges land on nonzero entries: in each component, after its first
    node (an output, or any of the ``n`` nodes of the graph), every node of a spanning tree has
    at most ``D`` choices next to its parent. So ``|P_H| <= W**degree * prod over components
    (1 or n) * D ** (nodes - 1)``.
    """
    weight, degree, n_max = growth
    if n_max == 0 or (weight == 0 and poly.degree > 0):
        return -math.inf
    bound = poly.degree * math.log2(weight) if poly.degree else 0.0
    for component in plan_contraction(poly, "sparse", True).components:
        if not component.outputs:
            bound += math.log2(n_max)
        if len(component.nodes) > 1:
            if degree == 0:
                return -math.inf
            bound += (len(component.nodes) - 1) * math.log2(degree)
    return bound


def _check_int64_range(
    polynomials: list[Polynomial],
    graphs: GraphBatch,
    order: int,
    backend: str,
    dense_pairs: bool,
    dense_budget: int,
    sparse_budget: int,
) -> None:
    """Raise :class:`Int64OverflowError` when an int64 value would pass ``2**63 - 1``.

    int64 sums and products wrap modulo 2**64, so the result is exact whenever the true value
    fits, whatever the intermediates do. The a-priori bound settles most cases; for the rest
    the sum of ``|terms|`` is computed in float64 (from ``|A|``), which bounds every value.
    """
    growth = graphs.growth()
    risky = [p for p in polynomials if int64_bound_log2(p, growth) >= 62.0]
    if not risky:
        return
    magnitudes = GraphBatch(
        graphs.edge_index,
        graphs.num_nodes,
        graphs.edge_weight.double().abs(),
        graphs.batch,
        graphs.num_graphs,
        torch.float64,
    )
    bound = evaluate_on(
        risky,
        magnitudes,
        order,
        backend=backend,
        dense_pairs=dense_pairs,
        single=False,
        dense_budget=dense_budget,
        sparse_budget=sparse_budget,
    )
    dims = tuple(range(bound.dim() - 1))
    largest = bound.amax(dim=dims) if bound.numel() else bound.new_zeros(len(risky))
    # float64 sums of non-negative terms are within a relative 1e-12 here: keep a margin.
    over = [(p, float(v)) for p, v in zip(risky, largest.tolist()) if v >= 2.0**63 * (1 - 1e-9)]
    if over:
        poly, value = over[0]
        raise Int64OverflowError(
            f"dtype=torch.int64: {poly.name!r} (and {len(over) - 1} more) reaches values up to "
            f"about {value:.3g}, beyond 2**63 - 1, where int64 arithmetic would wrap silently; "
            "use dtype=torch.float64 (exact below 2**53, approximate beyond)"
        )


def _evaluate_dense(
    polynomials: list[Polynomial],
    graphs: GraphBatch,
    order: int,
    dense_pairs: bool,
    single: bool,
    budget: int,
) -> Tensor:
    plans = [plan_contraction(p, "dense", False) for p in polynomials]
    width = max([plan.width for plan in plans] + [order])
    channels = len(plans)
    device, dtype = graphs.device, graphs.dtype
    n_max = int(graphs.sizes.max()) if graphs.num_graphs else 0
    if order == 0:
        out = torch.zeros(graphs.num_graphs, channels, dtype=dtype, device=device)
    elif order == 1:
        out = torch.zeros(graphs.num_nodes, channels, dtype=dtype, device=device)
    elif dense_pairs:
        size = graphs.num_graphs * n_max * n_max * channels
        if size > DENSE_PAIRS_LIMIT:
            raise ValueError(
                f"dense_pairs: the all-pairs output [{graphs.num_graphs}, {n_max}, {n_max}, "
                f"{channels}] has {size:,} elements ({format_bytes(size * dtype.itemsize)}), "
                f"over {DENSE_PAIRS_LIMIT:,}; the "
                "largest graph sets n_max for every graph of the batch: evaluate the large "
                "graphs on their own, or use edge-level values on the edges (dense_pairs=False)"
            )
        out = torch.zeros(graphs.num_graphs, n_max, n_max, channels, dtype=dtype, device=device)
    else:
        out = torch.zeros(graphs.edge_index.shape[1], channels, dtype=dtype, device=device)
    edge_graph = graphs.batch[graphs.edge_index[0]]
    for graph_ids, adjacency, node_mask in graphs.dense_chunks(width, budget):
        evaluator = DenseEvaluator(adjacency, node_mask)
        place = _column_placer(out, graphs, graph_ids, node_mask, order, dense_pairs, edge_graph)
        # One column at a time: a chunk never holds more than one polynomial's [b, n, n]
        # result (stacking all C of them would exceed dense_budget C-fold).
        for column, plan in enumerate(plans):
            place(column, evaluator.evaluate(plan))
    if dense_pairs and single:
        return out[0] if graphs.num_graphs else out.new_zeros(0, 0, channels)
    return out


def _column_placer(out, graphs, graph_ids, node_mask, order, dense_pairs, edge_graph):
    """``place(column, values)``: write one polynomial's chunk result (``[b]``, ``[b, n]`` or
    ``[b, n, n]``) into its column of ``out``; the row indices are computed once per chunk."""
    if order == 0:

        def place(column: int, values: Tensor) -> None:
            out[graph_ids, column] = values

    elif order == 1:
        slots, local = node_mask.nonzero(as_tuple=True)
        rows = graphs.ptr[graph_ids[slots]] + local

        def place(column: int, values: Tensor) -> None:
            out[rows, column] = values[slots, local]

    elif dense_pairs:
        n = node_mask.shape[1]

        def place(column: int, values: Tensor) -> None:
            out[graph_ids, :n, :n, column] = values

    else:
        slot = torch.full((graphs.num_graphs,), -1, dtype=torch.long, device=out.device)
        slot[graph_ids] = torch.arange(graph_ids.numel(), device=out.device)
        chosen = (slot[edge_graph] >= 0).nonzero(as_tuple=True)[0]
        offset = graphs.ptr[edge_graph[chosen]]
        where = (
            slot[edge_graph[chosen]],
            graphs.edge_index[0][chosen] - offset,
            graphs.edge_index[1][chosen] - offset,
        )

        def place(column: int, values: Tensor) -> None:
            out[chosen, column] = values[where]

    return place
