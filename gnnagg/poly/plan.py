"""Contraction planning: which order to sum out the non-output nodes of a pattern.

Evaluating P_H is a tensor-network contraction with one copy of A per edge of H. Summing out one
pattern node v at a time (variable elimination) creates a factor over the nodes that v is still
linked to; the largest such set decides the cost (the treewidth). Instead of the left-to-right
order of a plain einsum, :func:`plan_contraction` picks the order by exact dynamic programming
over the set of already eliminated nodes: patterns have at most a handful of non-output nodes, so
the 2^k states are cheap, and the elimination graph after eliminating a set does not depend on the
order in which it was eliminated. The objective is lexicographic: first the largest factor
(the elimination width, i.e. an exact treewidth-optimal order), then a cost model.

Cost models, one per evaluation ``backend`` (the constants only rank orders, they are not
timings):

* ``"dense"``: a step over nodes T costs n^|T| for a typical graph size n.
* ``"sparse"``: intermediate factors are sparse tables whose support is limited by graph distance.
  Two pattern nodes joined by a path of length r through eliminated nodes can only map to graph
  nodes at distance <= r, so a table over T has about N * d^w rows, where w is the weight of a
  minimum spanning tree of T under "path length through eliminated nodes" and d is a typical
  degree. This prefers sampled products (joining a path onto an existing edge) over long
  unrestricted matrix powers.

Each connected component of H is planned separately; a component without outputs is eliminated
completely and gives one number per graph.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from .._checks import check_bool, check_choice
from .basis import Polynomial

#: The evaluation backends, each with its cost model: sparse tables, or dense blocks per graph.
BACKENDS = ("sparse", "dense")
_TYPICAL_DEGREE = 4.0
_TYPICAL_NODES = 24.0
_MAX_EXACT_NODES = 14
_UNREACHABLE = 1 << 30


@dataclass(frozen=True)
class ComponentPlan:
    """Elimination plan for one connected component of a pattern.

    Attributes:
        nodes: the pattern nodes of the component.
        outputs: the output nodes in it (empty for a component that becomes a per-graph scalar).
        edges: ``(u, v, multiplicity)`` with ``u < v``: factor ``A[phi(u), phi(v)] ** mult``.
        loops: ``(u, multiplicity)``: factor ``A[phi(u), phi(u)] ** mult``.
        order: the non-output nodes in elimination order (all nodes when there is no output).
        width: the most other nodes any eliminated node is linked to when it is summed out.
        cost: model cost of the order (only comparable within one backend).
    """

    nodes: tuple[int, ...]
    outputs: tuple[int, ...]
    edges: tuple[tuple[int, int, int], ...]
    loops: tuple[tuple[int, int], ...]
    order: tuple[int, ...]
    width: int
    cost: float


@dataclass(frozen=True)
class ContractionPlan:
    """Elimination plans for all components of one polynomial."""

    polynomial: Polynomial
    backend: str
    masked_outputs: bool
    components: tuple[ComponentPlan, ...]

    @property
    def width(self) -> int:
        """Largest elimination width over the components."""
        return max((c.width for c in self.components), default=0)


def _components(poly: Polynomial) -> list[list[int]]:
    parent = list(range(poly.num_nodes))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, v in poly.edges:
        parent[find(u)] = find(v)
    groups: dict[int, list[int]] = {}
    for v in range(poly.num_nodes):
        groups.setdefault(find(v), []).append(v)
    return sorted(groups.values())


def _mst_weight(nodes: list[int], dist: list[list[int]]) -> int:
    # Prim's algorithm; the node sets are tiny.
    inside = {nodes[0]}
    best = {v: dist[nodes[0]][v] for v in nodes[1:]}
    total = 0
    while best:
        v = min(best, key=lambda x: (best[x], x))
        total += best.pop(v)
        inside.add(v)
        for w in best:
            best[w] = min(best[w], dist[v][w])
    return total


def _relax(dist: list[list[int]], via: int) -> list[list[int]]:
    row = dist[via]
    return [[min(d_ab, d_a[via] + row[b]) for b, d_ab in enumerate(d_a)] for d_a in dist]


def _plan_component(
    nodes: list[int], poly: Polynomial, backend: str, masked: bool
) -> ComponentPlan:
    local = {v: k for k, v in enumerate(nodes)}
    size = len(nodes)
    outputs = tuple(o for o in poly.outputs if o in local)
    counts: dict[tuple[int, int], int] = {}
    loops: dict[int, int] = {}
    for u, v in poly.edges:
        if u not in local:
            continue
        if u == v:
            loops[u] = loops.get(u, 0) + 1
        else:
            counts[(u, v)] = counts.get((u, v), 0) + 1
    dist = [[0 if a == b else _UNREACHABLE for b in range(size)] for a in range(size)]
    for u, v in counts:
        dist[local[u]][local[v]] = dist[local[v]][local[u]] = 1
    if masked and len(outputs) == 2:
        # Edge-level outputs evaluated on existing edges: the outputs are adjacent in the graph.
        a, b = local[outputs[0]], local[outputs[1]]
        dist[a][b] = dist[b][a] = 1
    inner = [local[v] for v in nodes if v not in outputs]

    def step(state_dist: list[list[int]], eliminated: set[int], v: int) -> tuple[int, float]:
        linked = [
            u
            for u in range(size)
            if u != v and u not in eliminated and state_dist[v][u] < _UNREACHABLE
        ]
        if backend == "dense":
            return len(linked), _TYPICAL_NODES ** (len(linked) + 1)
        if not linked:
            return 0, 1.0
        weight = _mst_weight([v, *linked], state_dist)
        return len(linked), _TYPICAL_DEGREE**weight

    if len(inner) <= _MAX_EXACT_NODES:
        order, width, cost = _exact_order(inner, dist, step)
    else:
        order, width, cost = _greedy_order(inner, dist, step)
    return ComponentPlan(
        nodes=tuple(nodes),
        outputs=outputs,
        edges=tuple((u, v, m) for (u, v), m in sorted(counts.items())),
        loops=tuple(sorted(loops.items())),
        order=tuple(nodes[k] for k in order),
        width=width,
        cost=cost,
    )


StepCost = Callable[[list[list[int]], set[int], int], tuple[int, float]]


def _exact_order(
    inner: list[int], dist: list[list[int]], step: StepCost
) -> tuple[list[int], int, float]:
    """Dynamic programming over eliminated subsets; returns (order, width, cost)."""
    count = len(inner)
    full = (1 << count) - 1
    distances: list[list[list[int]] | None] = [None] * (full + 1)
    distances[0] = dist
    best: list[tuple[int, float, tuple[int, ...]] | None] = [None] * (full + 1)
    best[0] = (0, 0.0, ())
    for state in range(full + 1):
        current = best[state]
        if current is None:
            continue
        if distances[state] is None:
            low = (state & -state).bit_length() - 1
            distances[state] = _relax(distances[state & (state - 1)], inner[low])
        state_dist = distances[state]
        eliminated = {inner[k] for k in range(count) if state >> k & 1}
        for k in range(count):
            if state >> k & 1:
                continue
            width, cost = step(state_dist, eliminated, inner[k])
            candidate = (max(current[0], width), current[1] + cost, (*current[2], k))
            target = state | 1 << k
            if best[target] is None or candidate[:2] < best[target][:2]:
                best[target] = candidate
    width, cost, order = best[full]
    return [inner[k] for k in order], width, cost


def _greedy_order(
    inner: list[int], dist: list[list[int]], step: StepCost
) -> tuple[list[int], int, float]:
    """Min-cost greedy elimination for patterns too large for the exact search."""
    remaining = list(inner)
    eliminated: set[int] = set()
    order, width, total = [], 0, 0.0
    while remaining:
        scored = [(step(dist, eliminated, v), v) for v in remaining]
        (w, cost), v = min(scored, key=lambda item: (item[0][0], item[0][1], item[1]))
        order.append(v)
        width, total = max(width, w), total + cost
        remaining.remove(v)
        eliminated.add(v)
        dist = _relax(dist, v)
    return order, width, total


@functools.cache
def plan_contraction(
    poly: Polynomial, backend: str = "sparse", masked_outputs: bool = True
) -> ContractionPlan:
    """Plan the evaluation of ``poly``.

    Args:
        poly: the basis element.
        backend: the evaluator the plan is for, whose cost model ranks the orders:
            ``"sparse"`` (sparse tables) or ``"dense"`` (dense blocks per graph).
        masked_outputs: edge-level values are only wanted on existing edges, so the two outputs
            are adjacent (this lets the sparse plan sample products on the edge set).

    Returns:
        A :class:`ContractionPlan`; plans are cached per polynomial.
    """
    if not isinstance(poly, Polynomial):
        raise TypeError(f"poly must be a Polynomial, got {type(poly).__name__}")
    backend = check_choice(backend, "backend", BACKENDS)
    masked_outputs = check_bool(masked_outputs, "masked_outputs")
    components = tuple(
        _plan_component(nodes, poly, backend, masked_outputs) for nodes in _components(poly)
    )
    return ContractionPlan(poly, backend, masked_outputs, components)
