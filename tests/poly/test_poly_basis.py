"""Basis enumeration: the paper's beyond-2-FWL counts, independent recounts, canonical forms."""

import itertools
import random

import networkx as nx
import numpy as np
import pytest
import torch
from networkx.algorithms.isomorphism import GraphMatcher

from gnnagg.poly import SUBSETS, Polynomial, enumerate_basis

from .poly_brute import BruteForce


def _at_degree(max_degree, order, **kwargs):
    return [p for p in enumerate_basis(max_degree, order, **kwargs) if p.degree == max_degree]


def test_no_beyond_2fwl_elements_up_to_degree_4():
    for order in (0, 1, 2):
        assert enumerate_basis(4, order, subset="beyond-2fwl") == []


def test_degree_5_has_only_the_diamond_between_its_degree_2_nodes():
    assert _at_degree(5, 0, subset="beyond-2fwl") == []
    assert _at_degree(5, 1, subset="beyond-2fwl") == []
    (diamond,) = _at_degree(5, 2, subset="beyond-2fwl")
    assert diamond == Polynomial.from_edges([(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)], (0, 1))
    assert diamond.family == "diamond"
    assert [diamond.graph.degree(o) for o in diamond.outputs] == [2, 2]


def test_degree_6_has_the_papers_eleven_elements():
    k4_edges = list(itertools.combinations(range(4), 2))
    by_order = {order: _at_degree(6, order, subset="beyond-2fwl") for order in (0, 1, 2)}
    assert by_order[0] == [Polynomial.from_edges(k4_edges)]
    assert by_order[1] == [Polynomial.from_edges(k4_edges, (0,))]
    assert sum(len(v) for v in by_order.values()) == 11
    edge_level = by_order[2]
    assert len(edge_level) == 9
    assert Polynomial.from_edges(k4_edges, (0, 1)) in edge_level
    unordered = {frozenset({p, Polynomial(p.graph, p.outputs[::-1])}) for p in edge_level}
    assert len(unordered) == 6
    families = sorted(next(iter(group)).family for group in unordered)
    assert families == ["C5+chord", "K2,3", "K4", "diamond+leaf", "diamond+leaf", "diamond+leaf"]
    k23 = next(p for p in edge_level if p.family == "K2,3")
    assert [k23.graph.degree(o) for o in k23.outputs] == [2, 2]


def _orbit_counts(max_edges):
    """Per degree, orbits of ordered output tuples of connected graphs, from the graph atlas."""
    counts = {order: [0] * (max_edges + 1) for order in (0, 1, 2)}
    for graph in nx.graph_atlas_g()[1:]:
        m = graph.number_of_edges()
        if m > max_edges or not nx.is_connected(graph):
            continue
        automorphisms = list(GraphMatcher(graph, graph).isomorphisms_iter())
        for order in (0, 1, 2):
            seen = set()
            for outputs in itertools.permutations(graph.nodes, order):
                if outputs not in seen:
                    counts[order][m] += 1
                    seen.update(tuple(a[o] for o in outputs) for a in automorphisms)
    return counts


def test_simple_connected_counts_match_an_independent_recount():
    expected = _orbit_counts(6)
    assert expected[0] == [1, 1, 1, 3, 5, 12, 30]  # connected graphs by edges (OEIS A002905)
    for order in (0, 1, 2):
        got = [len(_at_degree(d, order)) for d in range(7)]
        assert got == expected[order]


def _multigraph_recount(max_edges, order):
    """Connected multigraphs with loops and ordered outputs, deduplicated by networkx VF2."""
    found = {m: [] for m in range(max_edges + 1)}
    for m in range(1, max_edges + 1):
        for k in range(1, m + 2):
            pairs = [(u, v) for u in range(k) for v in range(u, k)]
            for multiset in itertools.combinations_with_replacement(pairs, m):
                graph = nx.MultiGraph()
                graph.add_nodes_from(range(k))
                graph.add_edges_from(multiset)
                if not nx.is_connected(graph):
                    continue
                for outputs in itertools.permutations(range(k), order):
                    for v in graph.nodes:
                        graph.nodes[v]["role"] = outputs.index(v) if v in outputs else -1
                    if not any(
                        nx.is_isomorphic(graph, other, node_match=lambda a, b: a == b)
                        for other in found[m]
                    ):
                        found[m].append(graph.copy())
    return [len(found[m]) for m in range(max_edges + 1)]


@pytest.mark.parametrize("order", [0, 1, 2])
def test_multigraph_counts_match_an_independent_recount(order):
    got = [len(_at_degree(d, order, simple=False)) for d in range(4)]
    expected = _multigraph_recount(3, order)
    expected[0] = len(_at_degree(0, order))  # degree 0: K1 (orders 0 and 1) by convention
    assert got == expected


def test_multigraph_beyond_2fwl_follows_the_underlying_simple_graph():
    for poly in enumerate_basis(5, 2, simple=False):
        underlying = Polynomial.from_edges(
            sorted({(u, v) for u, v in poly.edges if u != v}), poly.outputs, poly.num_nodes
        )
        assert poly.beyond_2fwl == underlying.beyond_2fwl


def test_canonical_form_ignores_node_labels():
    rng = random.Random(0)
    for poly in enumerate_basis(6, 2)[::7] + enumerate_basis(6, 0)[::3]:
        perm = list(range(poly.num_nodes))
        rng.shuffle(perm)
        graph = nx.relabel_nodes(poly.graph, {v: f"v{perm[v]}" for v in poly.graph})
        again = Polynomial(graph, [f"v{perm[o]}" for o in poly.outputs])
        assert again == poly
        assert again.name == poly.name
        if poly.degree:  # K1 has no einsum string (an isolated node)
            assert again.einsum == poly.einsum
        assert hash(again) == hash(poly)


def test_output_order_matters_unless_an_automorphism_swaps_them():
    path = Polynomial.from_edges([(0, 1), (1, 2)], (0, 1))
    assert path != Polynomial.from_edges([(0, 1), (1, 2)], (1, 0))
    triangle = Polynomial.from_edges([(0, 1), (1, 2), (0, 2)], (0, 1))
    assert triangle == Polynomial.from_edges([(0, 1), (1, 2), (0, 2)], (1, 0))


def test_elements_are_described_consistently():
    basis = enumerate_basis(6, 2)
    assert len({p.name for p in basis}) == len(basis)
    assert len(set(basis)) == len(basis)
    for poly in basis:
        assert poly.outputs == (0, 1)
        assert poly.degree == len(poly.edges) == poly.graph.number_of_edges()
        assert list(poly.edges) == sorted(poly.edges)
        assert all(u <= v for u, v in poly.edges)
        assert poly.einsum.endswith("->ij")
        assert poly.is_connected and poly.is_simple
    assert [p.degree for p in basis] == sorted(p.degree for p in basis)
    assert enumerate_basis(2, 0, subset="all") == enumerate_basis(2, 0)
    within = enumerate_basis(6, 2, subset="within-2fwl")
    beyond = enumerate_basis(6, 2, subset="beyond-2fwl")
    assert sorted(within + beyond, key=Polynomial.sort_key) == basis


@pytest.mark.parametrize("order", [0, 1, 2])
def test_einsum_strings_compute_the_polynomial(order):
    rng = np.random.default_rng(order)
    adjacency = rng.integers(0, 3, size=(4, 4)).astype(float)
    brute = BruteForce(adjacency)
    tensor = torch.from_numpy(adjacency)
    for poly in enumerate_basis(5, order, simple=False):
        if poly.degree == 0:
            continue
        value = torch.einsum(poly.einsum, *[tensor] * poly.degree).numpy()
        np.testing.assert_allclose(value, brute(poly), rtol=1e-12)


def test_disconnected_patterns_are_products_without_isolated_inner_nodes():
    rng = np.random.default_rng(1)
    adjacency = rng.integers(0, 2, size=(4, 4)).astype(float)
    brute = BruteForce(adjacency)
    for order in (0, 1, 2):
        basis = enumerate_basis(3, order, connected=False)
        connected = enumerate_basis(3, order)
        assert set(connected) - {p for p in connected if p.degree == 0} <= set(basis)
        for poly in basis:
            isolated = [v for v in poly.graph if poly.graph.degree(v) == 0]
            assert set(isolated) <= set(poly.outputs)
            value = brute(poly)
            product = np.ones_like(value)
            for nodes in nx.connected_components(poly.graph):
                part = poly.graph.subgraph(nodes)
                outputs = [o for o in poly.outputs if o in nodes]
                piece = brute(Polynomial(part, outputs))
                if len(outputs) == 1 and order == 2:
                    piece = piece[:, None] if outputs[0] == 0 else piece[None, :]
                product = product * piece
            np.testing.assert_allclose(value, product)
    (empty,) = _at_degree(0, 0, connected=False)
    assert empty.num_nodes == 0 and empty.name == "empty"
    (pair,) = _at_degree(0, 2, connected=False)
    assert pair.num_nodes == 2 and pair.degree == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_degree": -1, "order": 0}, ValueError, "max_degree"),
        ({"max_degree": "6", "order": 0}, TypeError, "max_degree"),
        ({"max_degree": True, "order": 0}, TypeError, "max_degree"),
        ({"max_degree": 3, "order": 3}, ValueError, "order"),
        ({"max_degree": 3, "order": 1.0}, TypeError, "order"),
        ({"max_degree": 3, "order": 0, "subset": "beyond"}, ValueError, "beyond-2fwl"),
        ({"max_degree": 3, "order": 0, "connected": 1}, TypeError, "connected"),
        ({"max_degree": 3, "order": 0, "simple": None}, TypeError, "simple"),
    ],
)
def test_enumerate_basis_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        enumerate_basis(**kwargs)


def test_unknown_subset_error_lists_the_choices():
    with pytest.raises(ValueError) as info:
        enumerate_basis(3, 0, subset="nope")
    for choice in SUBSETS:
        assert repr(choice) in str(info.value)


def test_polynomial_rejects_bad_patterns():
    with pytest.raises(TypeError, match="undirected"):
        Polynomial(nx.DiGraph([(0, 1)]))
    with pytest.raises(TypeError, match="networkx"):
        Polynomial([(0, 1)])
    with pytest.raises(ValueError, match="at most 2"):
        Polynomial(nx.path_graph(3), (0, 1, 2))
    with pytest.raises(ValueError, match="distinct"):
        Polynomial(nx.path_graph(3), (1, 1))
    with pytest.raises(ValueError, match="not a node"):
        Polynomial(nx.path_graph(3), (7,))


def test_einsum_string_refuses_patterns_it_cannot_express():
    """An isolated node multiplies by the node count, which no copy of A expresses."""
    k1_plus_k2 = Polynomial.from_edges([(1, 2)], (), num_nodes=3)
    with pytest.raises(ValueError, match="isolated node"):
        _ = k1_plus_k2.einsum
    with pytest.raises(ValueError, match="isolated node"):
        _ = enumerate_basis(0, 0)[0].einsum
    # Large patterns are built (evaluate handles them); only the string has a letter limit.
    path = Polynomial.from_edges([(i, i + 1) for i in range(59)], (0,))
    with pytest.raises(ValueError, match="too large for an einsum string"):
        _ = path.einsum
