"""The 2-FWL reduction test, elimination widths and contraction plans."""

import itertools

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.poly import Polynomial, enumerate_basis, plan_contraction, reduces_to_outputs
from gnnagg.poly.fwl2 import elimination_width


@st.composite
def patterns(draw):
    num_nodes = draw(st.integers(1, 6))
    pairs = list(itertools.combinations(range(num_nodes), 2))
    edges = [pair for pair in pairs if draw(st.booleans())]
    order = draw(st.integers(0, min(2, num_nodes)))
    outputs = draw(st.permutations(range(num_nodes)))[:order]
    return num_nodes, edges, tuple(outputs)


def _neighbour_counts_along(order, num_nodes, edges):
    """Neighbour count of each node when it is eliminated in ``order`` (fill-in joins)."""
    neighbours = {v: set() for v in range(num_nodes)}
    for u, v in edges:
        neighbours[u].add(v)
        neighbours[v].add(u)
    counts = []
    for v in order:
        linked = neighbours.pop(v)
        counts.append(len(linked))
        for u in linked:
            neighbours[u].discard(v)
            neighbours[u] |= linked - {u}
    return counts


@given(patterns())
def test_reduction_and_width_agree_with_exhaustive_search(pattern):
    num_nodes, edges, outputs = pattern
    inner = [v for v in range(num_nodes) if v not in outputs]
    widths = [
        max(_neighbour_counts_along(order, num_nodes, edges), default=0)
        for order in itertools.permutations(inner)
    ]
    assert reduces_to_outputs(num_nodes, edges, outputs) == (min(widths) <= 2)
    assert elimination_width(num_nodes, edges, outputs) == max(min(widths), len(outputs) - 1)


def test_reduction_ignores_parallel_edges_and_loops():
    diamond = [(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert not reduces_to_outputs(4, diamond, (0, 1))
    assert not reduces_to_outputs(4, diamond + diamond + [(2, 2)], (0, 1))
    assert reduces_to_outputs(4, diamond + [(2, 2), (3, 3)], (0,))


def test_plans_cover_each_component_and_match_the_width():
    for order in (0, 1, 2):
        for poly in enumerate_basis(6, order):
            for mode in ("sparse", "dense"):
                plan = plan_contraction(poly, mode, masked_outputs=(mode == "sparse"))
                eliminated = [v for c in plan.components for v in c.order]
                assert sorted(eliminated) == [
                    v for v in range(poly.num_nodes) if v not in poly.outputs
                ]
                assert max(plan.width, order - 1) == poly.width
                assert (plan.width <= 2) == (not poly.beyond_2fwl)


def test_sparse_plan_prefers_products_sampled_on_existing_edges():
    # C6 with adjacent outputs: every step's table spans at most 3 graph hops (cost 4^3 each in
    # the model), never the unrestricted path of 4 or 5 hops a left-to-right order builds.
    poly = Polynomial(nx.cycle_graph(6), (0, 1))
    plan = plan_contraction(poly, "sparse", True)
    assert plan.width == 2
    (component,) = plan.components
    assert component.cost < 4.0**4


def test_disconnected_pattern_is_planned_per_component():
    poly = Polynomial.from_edges([(0, 2), (1, 3), (3, 4)], (0, 1))
    plan = plan_contraction(poly)
    assert sorted(len(c.nodes) for c in plan.components) == [2, 3]


def test_plan_rejects_bad_arguments():
    poly = enumerate_basis(2, 0)[-1]
    with pytest.raises(ValueError, match="backend must be one of"):
        plan_contraction(poly, "fast")
    with pytest.raises(TypeError, match="Polynomial"):
        plan_contraction("K3")
