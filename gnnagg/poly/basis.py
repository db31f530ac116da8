"""Basis elements (pattern multigraphs with output nodes) and their enumeration.

A basis element is a multigraph H with 0, 1 or 2 designated output nodes. Its polynomial is

    P_H(A)[i, j] = sum over maps phi: V(H) -> nodes with phi(out_0) = i, phi(out_1) = j
                   of prod over edges (u, v) of H of A[phi(u), phi(v)],

which for a 0/1 adjacency counts homomorphisms of H with the outputs pinned. The degree of P_H is
the number of edges of H (with multiplicity; a self-loop counts once).

Conventions (the paper leaves them open; these are the ones gnnagg fixes):

* Nodes of ``Polynomial.graph`` are ``0..k-1`` in canonical order; outputs are nodes 0 (and 1).
* Each edge is read as ``A[phi(u), phi(v)]`` with ``u <= v`` in that labelling, which is the
  orientation written in the einsum string. For a symmetric A this does not matter; the basis is
  enumerated up to undirected isomorphism, so it is only complete for symmetric A.
* Edge-level elements have ordered outputs: P(i, j) and P(j, i) are different elements unless an
  automorphism of H swaps the outputs.
* ``connected=True`` (default): H is connected. Degree 0 then gives the single node K1 at orders 0
  (value: the number of nodes) and 1 (value: 1); there is no connected degree-0 edge-level element.
* ``connected=False``: H may be disconnected (its polynomial is the product of its components'),
  but a node without edges must be an output: an isolated non-output node only multiplies by the
  number of nodes without adding degree, so allowing it would give infinitely many elements per
  degree. The degree-0 invariant is then the empty pattern, with value 1.
* ``simple=True`` (default) enumerates simple graphs. ``simple=False`` enumerates multigraphs with
  parallel edges and self-loops (the paper's setting). On a 0/1 adjacency without self-loops these
  extra elements are redundant (a self-loop reads the zero diagonal, parallel edges collapse),
  but on weighted or looped inputs they are not. The 2-FWL reduction ignores multiplicities, so a
  multigraph is beyond 2-FWL exactly when its underlying simple graph is.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence

import networkx as nx

from .._checks import check_bool, check_count, check_int
from .canonical import Certificate, canonical_form
from .fwl2 import elimination_width, reduces_to_outputs

SUBSETS = ("all", "beyond-2fwl", "within-2fwl")

# Largest ``max_degree`` that :func:`enumerate_basis` accepts, per ``(connected, simple, order)``.
# The number of basis elements grows 3-7x per degree (for connected simple patterns at order 0:
# 1, 1, 1, 3, 5, 12, 30, 79, 227, 710 at degrees 0..9) and the enumeration time faster still:
# each limit is the largest degree whose full enumeration takes seconds on one CPU core, one
# degree more takes several times as long (timings: docs/benchmarks/cpu-epyc-2core.rst).
# Patterns beyond these limits can still be built one by one
# (:meth:`Polynomial.from_edges`) and evaluated.
ENUMERATION_LIMITS: dict[tuple[bool, bool, int], int] = {
    (True, True, 0): 8,
    (True, True, 1): 8,
    (True, True, 2): 7,
    (False, True, 0): 7,
    (False, True, 1): 7,
    (False, True, 2): 6,
    (True, False, 0): 7,
    (True, False, 1): 7,
    (True, False, 2): 6,
    (False, False, 0): 6,
    (False, False, 1): 6,
    (False, False, 2): 5,
}
_OUTPUT_LETTERS = "ij"
_INNER_LETTERS = "abcdefghklmnopqrstuvwxyABCDEFGHIJKLMNOPQRSTUVWXY"


class Polynomial:
    """One basis element: a pattern multigraph with output nodes, in canonical form.

    Build one from any undirected networkx graph (``nx.Graph`` or ``nx.MultiGraph``, any node
    labels) and a sequence of at most two distinct output nodes. Two polynomials are equal exactly
    when their patterns are isomorphic with the outputs mapped in order.

    Attributes:
        graph: the pattern as an ``nx.MultiGraph`` on nodes ``0..num_nodes-1``, outputs first.
        outputs: the output nodes, ``()``, ``(0,)`` or ``(0, 1)``.
        order: number of outputs (0 invariant, 1 node-level, 2 edge-level).
        degree: number of edges, counted with multiplicity.
        edges: the edges as ``(u, v)`` pairs with ``u <= v``, repeated by multiplicity, sorted.
        einsum: einsum string over ``degree`` copies of A, e.g. ``"ia,ij,ja->ij"`` (patterns
            without isolated nodes).
        name: readable, unique name, e.g. ``"K4[i,j] 01 02 03 12 13 23"``.
    """

    def __init__(self, graph: nx.Graph, outputs: Sequence = ()) -> None:
        if not isinstance(graph, nx.Graph):
            raise TypeError(f"graph must be a networkx graph, got {type(graph).__name__}")
        if graph.is_directed():
            raise TypeError("graph must be undirected (nx.Graph or nx.MultiGraph)")
        outputs = tuple(outputs)
        if len(outputs) > 2:
            raise ValueError(f"outputs must hold at most 2 nodes, got {len(outputs)}")
        if len(set(outputs)) != len(outputs):
            raise ValueError(f"outputs must be distinct nodes, got {outputs!r}")
        for node in outputs:
            if node not in graph:
                raise ValueError(f"output node {node!r} is not a node of graph")
        nodes = list(graph.nodes)
        index = {node: k for k, node in enumerate(nodes)}
        counts: dict[tuple[int, int], int] = {}
        for u, v in graph.edges():
            a, b = sorted((index[u], index[v]))
            counts[(a, b)] = counts.get((a, b), 0) + 1
        roles: list[int | None] = [None] * len(nodes)
        for position, node in enumerate(outputs):
            roles[index[node]] = position
        labels, certificate = canonical_form(len(nodes), counts, roles)
        self._init_canonical(len(nodes), counts, labels, certificate, len(outputs))

    @classmethod
    def from_edges(
        cls, edges: Iterable[tuple[int, int]], outputs: Sequence[int] = (), num_nodes: int = 0
    ) -> Polynomial:
        """Build from an edge list (pairs may repeat; ``(u, u)`` is a self-loop).

        ``num_nodes`` adds isolated nodes ``0..num_nodes-1`` that no edge mentions.
        """
        num_nodes = check_count(num_nodes, "num_nodes")
        graph = nx.MultiGraph()
        graph.add_nodes_from(range(num_nodes))
        graph.add_nodes_from(outputs)
        graph.add_edges_from(edges)
        return cls(graph, outputs)

    @classmethod
    def _from_canonical(
        cls,
        num_nodes: int,
        counts: dict[tuple[int, int], int],
        labels: list[int],
        certificate: Certificate,
        order: int,
    ) -> Polynomial:
        poly = cls.__new__(cls)
        poly._init_canonical(num_nodes, counts, labels, certificate, order)
        return poly

    def _init_canonical(
        self,
        num_nodes: int,
        counts: dict[tuple[int, int], int],
        labels: list[int],
        certificate: Certificate,
        order: int,
    ) -> None:
        edges: list[tuple[int, int]] = []
        for (u, v), mult in counts.items():
            a, b = sorted((labels[u], labels[v]))
            edges.extend([(a, b)] * mult)
        edges.sort()
        graph = nx.MultiGraph()
        graph.add_nodes_from(range(num_nodes))
        graph.add_edges_from(edges)
        self.graph = graph
        self.outputs = tuple(range(order))
        self.order = order
        self.degree = len(edges)
        self.edges = tuple(edges)
        self._certificate = certificate
        self._family = _family_name(graph)
        out = "" if order == 0 else "[" + ",".join(_OUTPUT_LETTERS[:order]) + "]"
        edge_text = " ".join(f"{u}{v}" if num_nodes <= 10 else f"{u}-{v}" for u, v in edges)
        self.name = f"{self._family}{out} {edge_text}".rstrip()

    @functools.cached_property
    def einsum(self) -> str:
        """The polynomial as an einsum string over ``degree`` copies of A, e.g.
        ``"ia,ij,ja->ij"`` (a description; :func:`~gnnagg.poly.evaluate` plans its own
        contractions).

        Raises ``ValueError`` for a pattern with an isolated node (K1, or a disconnected pattern
        with one): summing over such a node multiplies by the node count, which no copy of A
        expresses, so a string would silently give a wrong value. Also for patterns with more
        inner nodes than einsum has letters.
        """
        isolated = [v for v in self.graph.nodes if self.graph.degree(v) == 0]
        if isolated:
            raise ValueError(
                f"{self.name!r} has isolated node(s) {isolated}: no einsum over copies of A "
                "expresses it (use gnnagg.poly.evaluate)"
            )
        letters = _letters(self.num_nodes, self.order)
        operands = ",".join(letters[u] + letters[v] for u, v in self.edges)
        return f"{operands}->{''.join(letters[o] for o in self.outputs)}"

    @property
    def H(self) -> nx.MultiGraph:
        """Alias of :attr:`graph`, the pattern multigraph H."""
        return self.graph

    @property
    def num_nodes(self) -> int:
        """Number of nodes of the pattern graph H."""
        return self.graph.number_of_nodes()

    @property
    def family(self) -> str:
        """Recognised family of the underlying graph (``"K4"``, ``"C5"``, ``"path4"`` ...)."""
        return self._family

    @functools.cached_property
    def beyond_2fwl(self) -> bool:
        """True when a 2-FWL / PPGN model cannot compute this polynomial by itself."""
        return not reduces_to_outputs(self.num_nodes, self.edges, self.outputs)

    @functools.cached_property
    def width(self) -> int:
        """Largest number of nodes an intermediate factor must span (treewidth with the outputs
        joined). At most 2 means the sparse evaluator needs only pairwise factors."""
        return elimination_width(self.num_nodes, self.edges, self.outputs)

    @property
    def is_simple(self) -> bool:
        """Whether H has neither parallel edges nor self-loops."""
        return all(u != v for u, v in self.edges) and len(set(self.edges)) == len(self.edges)

    @property
    def is_connected(self) -> bool:
        """Whether H is connected (the empty pattern counts as not connected)."""
        return self.num_nodes > 0 and nx.is_connected(self.graph)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Polynomial):
            return NotImplemented
        return self._certificate == other._certificate

    def __hash__(self) -> int:
        return hash(self._certificate)

    def __repr__(self) -> str:
        return f"Polynomial({self.name!r}, order={self.order}, degree={self.degree})"

    @property
    def key(self) -> Certificate:
        """Hashable canonical certificate (equal for isomorphic patterns)."""
        return self._certificate

    def sort_key(self) -> tuple:
        """Deterministic order used by :func:`enumerate_basis`: degree, nodes, then canonical."""
        return (self.degree, self.num_nodes, self._certificate)


def _letters(num_nodes: int, order: int) -> list[str]:
    if num_nodes - order > len(_INNER_LETTERS):
        raise ValueError(f"pattern too large for an einsum string ({num_nodes} nodes)")
    return list(_OUTPUT_LETTERS[:order]) + list(_INNER_LETTERS[: num_nodes - order])


def _family_name(graph: nx.MultiGraph) -> str:
    """Human name of the underlying simple graph, falling back to a size description."""
    n = graph.number_of_nodes()
    simple = nx.Graph(graph)
    simple.remove_edges_from(nx.selfloop_edges(simple))
    multi = graph.number_of_edges() != simple.number_of_edges()
    suffix = "*" if multi else ""
    if n == 0:
        return "empty"
    if not nx.is_connected(simple):
        parts = sorted(
            _family_name(nx.MultiGraph(graph.subgraph(c))) for c in nx.connected_components(simple)
        )
        return "+".join(parts)
    return _connected_family(simple) + suffix


def _connected_family(simple: nx.Graph) -> str:
    n = simple.number_of_nodes()
    m = simple.number_of_edges()
    degrees = sorted(d for _, d in simple.degree())
    if n == 1:
        return "K1"
    if m == n * (n - 1) // 2:
        return f"K{n}"
    if m == n - 1:
        if degrees[-1] <= 2:
            return f"path{n}"
        if degrees[-1] == n - 1:
            return f"star{n - 1}"
        return f"tree{n}"
    if m == n and degrees[0] == degrees[-1] == 2:
        return f"C{n}"
    if n == 4 and m == 5:
        return "diamond"
    bipartite = _bipartite_name(simple)
    if bipartite is not None:
        return bipartite
    if m == n + 1:
        for u, v in simple.edges():
            rest = nx.Graph(simple)
            rest.remove_edge(u, v)
            if all(d == 2 for _, d in rest.degree()):
                return f"C{n}+chord"
    leaves = [v for v in simple if simple.degree(v) == 1]
    if leaves:
        names = []
        for leaf in leaves:
            rest = nx.Graph(simple)
            rest.remove_node(leaf)
            names.append(_connected_family(rest))
        return min(names) + "+leaf"
    return f"G{n}.{m}"


def _bipartite_name(simple: nx.Graph) -> str | None:
    if not nx.is_bipartite(simple):
        return None
    left, right = nx.bipartite.sets(simple)
    if simple.number_of_edges() == len(left) * len(right):
        a, b = sorted((len(left), len(right)))
        return f"K{a},{b}"
    return None


# --------------------------------------------------------------------------------------------
# Enumeration


def _canonical_pattern(
    num_nodes: int, counts: dict[tuple[int, int], int], roles: Sequence[int | None]
) -> tuple[Certificate, list[int]]:
    labels, certificate = canonical_form(num_nodes, counts, roles)
    return certificate, labels


@functools.cache
def _edge_graphs(degree: int, simple: bool, connected: bool) -> tuple:
    """Unlabelled graphs with ``degree`` edges and no isolated nodes, up to isomorphism.

    Each entry is ``(num_nodes, counts)``. Every such graph with m >= 1 edges arises from one with
    m - 1 edges by adding an edge between existing nodes, a pendant edge to a new node, or (when
    disconnected graphs are wanted) an edge between two new nodes: remove a non-bridge edge, a
    pendant edge, or an isolated edge, respectively.
    """
    if degree == 0:
        return ((0, ()),)
    found: dict[Certificate, tuple[int, tuple]] = {}
    for num_nodes, counts_items in _edge_graphs(degree - 1, simple, connected):
        counts = dict(counts_items)
        candidates: list[tuple[int, tuple[int, int]]] = []
        if num_nodes == 0:
            candidates.append((2, (0, 1)))
            if not simple:
                candidates.append((1, (0, 0)))
        else:
            for u in range(num_nodes):
                for v in range(u, num_nodes):
                    if simple and (u == v or (u, v) in counts):
                        continue
                    candidates.append((num_nodes, (u, v)))
                candidates.append((num_nodes + 1, (u, num_nodes)))
            if not connected:
                candidates.append((num_nodes + 2, (num_nodes, num_nodes + 1)))
                if not simple:
                    candidates.append((num_nodes + 1, (num_nodes, num_nodes)))
        for new_size, edge in candidates:
            new_counts = dict(counts)
            new_counts[edge] = new_counts.get(edge, 0) + 1
            certificate, labels = _canonical_pattern(new_size, new_counts, [None] * new_size)
            if certificate not in found:
                relabelled: dict[tuple[int, int], int] = {}
                for (u, v), mult in new_counts.items():
                    a, b = sorted((labels[u], labels[v]))
                    relabelled[(a, b)] = mult
                found[certificate] = (new_size, tuple(sorted(relabelled.items())))
    return tuple(found[c] for c in sorted(found))


def _output_choices(num_nodes: int, order: int, connected: bool) -> Iterable[tuple[int, ...]]:
    """Ordered output tuples: existing nodes, or (disconnected only) new isolated nodes."""
    pool = list(range(num_nodes))
    if not connected:
        pool += [num_nodes + k for k in range(order)]
    for outputs in itertools.permutations(pool, order):
        new_nodes = sorted(o for o in outputs if o >= num_nodes)
        # New isolated outputs are interchangeable: only use them in increasing label order.
        if new_nodes != [num_nodes + k for k in range(len(new_nodes))]:
            continue
        yield outputs


@functools.cache
def _enumerate_degree(
    degree: int, order: int, connected: bool, simple: bool
) -> tuple[Polynomial, ...]:
    found: dict[Certificate, Polynomial] = {}
    if connected and degree == 0:
        if order < 2:
            graphs: tuple = ((1, ()),)
        else:
            graphs = ()
    else:
        graphs = _edge_graphs(degree, simple, connected)
    for num_nodes, counts_items in graphs:
        counts = dict(counts_items)
        if connected and num_nodes > 0 and not _is_connected(num_nodes, counts):
            continue
        for outputs in _output_choices(num_nodes, order, connected):
            size = max([num_nodes, *[o + 1 for o in outputs]])
            roles: list[int | None] = [None] * size
            for position, node in enumerate(outputs):
                roles[node] = position
            certificate, labels = _canonical_pattern(size, counts, roles)
            if certificate not in found:
                found[certificate] = Polynomial._from_canonical(
                    size, counts, labels, certificate, order
                )
    return tuple(sorted(found.values(), key=Polynomial.sort_key))


def _is_connected(num_nodes: int, counts: dict[tuple[int, int], int]) -> bool:
    seen = {0}
    stack = [0]
    neighbours: dict[int, set[int]] = {}
    for u, v in counts:
        neighbours.setdefault(u, set()).add(v)
        neighbours.setdefault(v, set()).add(u)
    while stack:
        x = stack.pop()
        for y in neighbours.get(x, ()):
            if y not in seen:
                seen.add(y)
                stack.append(y)
    return len(seen) == num_nodes


def check_subset(subset: str | None) -> str:
    """Validate a subset name (``None`` means ``"all"``) and return it."""
    if subset is None:
        return "all"
    if subset not in SUBSETS:
        raise ValueError(
            f"subset must be one of {', '.join(map(repr, SUBSETS))} or None, got {subset!r}"
        )
    return subset


def check_order(order: int, name: str = "order") -> int:
    """Validate an output order (0, 1 or 2) and return it."""
    order = check_int(order, name)
    if order not in (0, 1, 2):
        raise ValueError(f"{name} must be 0 (invariant), 1 (node) or 2 (edge), got {order}")
    return order


def in_subset(poly: Polynomial, subset: str) -> bool:
    """Whether ``poly`` belongs to the named subset (see :data:`SUBSETS`)."""
    if subset == "beyond-2fwl":
        return poly.beyond_2fwl
    if subset == "within-2fwl":
        return not poly.beyond_2fwl
    return True


def enumerate_basis(
    max_degree: int,
    order: int,
    connected: bool = True,
    subset: str | None = None,
    simple: bool = True,
) -> list[Polynomial]:
    """All basis elements of degree ``0..max_degree`` at one output order, up to isomorphism.

    Args:
        max_degree: largest number of edges of H (>= 0).
        order: 0 (invariant), 1 (node-level) or 2 (edge-level, ordered outputs).
        connected: only connected patterns (default). See the module docstring for ``False``.
        subset: ``None``/``"all"``; ``"beyond-2fwl"`` keeps the elements a 2-FWL / PPGN model
            cannot compute itself; ``"within-2fwl"`` keeps the others.
        simple: simple graphs only (default); ``False`` allows parallel edges and self-loops.

    Returns:
        A list sorted by degree, then number of nodes, then canonical form. Results are cached.

    Raises:
        ValueError: ``max_degree`` beyond :data:`ENUMERATION_LIMITS` for these options (the
            enumeration would take minutes to hours); refused before any work.
    """
    max_degree = check_count(max_degree, "max_degree")
    order = check_order(order)
    subset = check_subset(subset)
    connected = check_bool(connected, "connected")
    simple = check_bool(simple, "simple")
    limit = ENUMERATION_LIMITS[(connected, simple, order)]
    if max_degree > limit:
        kind = f"{'connected' if connected else 'possibly disconnected'} " + (
            "simple graphs" if simple else "multigraphs"
        )
        raise ValueError(
            f"max_degree={max_degree} is beyond the enumeration limit {limit} for {kind} at "
            f"order {order}: the basis grows 3-7x per degree and degree {limit} already takes "
            "seconds (see gnnagg.poly.basis.ENUMERATION_LIMITS). Build the larger patterns you "
            "need with Polynomial.from_edges and use AddEquivariantPolynomials.from_polynomials."
        )
    basis: list[Polynomial] = []
    for degree in range(max_degree + 1):
        basis.extend(
            p for p in _enumerate_degree(degree, order, connected, simple) if in_subset(p, subset)
        )
    return basis
