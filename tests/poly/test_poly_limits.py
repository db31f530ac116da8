"""Limits of the polynomial features: enumeration size, int64 range, weights, sparse memory."""

import itertools

import pytest
import torch
from torch_geometric.data import Data

from gnnagg.poly import (
    ENUMERATION_LIMITS,
    AddEquivariantPolynomials,
    Polynomial,
    enumerate_basis,
    evaluate,
)
from gnnagg.poly.evaluation import GraphBatch, Int64OverflowError, int64_bound_log2


def _pair(weight, dtype=torch.float64):
    """Two nodes joined both ways with one weight: A = [[0, w], [w, 0]]."""
    edge_index = torch.tensor([[0, 1], [1, 0]])
    return edge_index, torch.tensor([weight, weight], dtype=dtype)


def _star(leaves):
    hub = torch.zeros(leaves, dtype=torch.long)
    tips = torch.arange(1, leaves + 1)
    return torch.cat([torch.stack([hub, tips]), torch.stack([tips, hub])], dim=1)


# Enumeration limits.


def test_every_option_combination_has_a_limit():
    assert set(ENUMERATION_LIMITS) == set(
        itertools.product((True, False), (True, False), (0, 1, 2))
    )


@pytest.mark.parametrize("key", sorted(ENUMERATION_LIMITS))
def test_degrees_beyond_the_limit_are_refused_before_any_work(key):
    connected, simple, order = key
    limit = ENUMERATION_LIMITS[key]
    for degree in (limit + 1, 12, 20, 10**9):
        with pytest.raises(ValueError, match=f"max_degree={degree} is beyond .* limit {limit}"):
            enumerate_basis(degree, order, connected=connected, simple=simple)


def test_the_issues_cases_refuse_and_name_the_way_out():
    with pytest.raises(ValueError, match="Polynomial.from_edges"):
        enumerate_basis(12, 2)
    with pytest.raises(ValueError, match="max_degree=20"):
        AddEquivariantPolynomials(max_degree=20)
    # A pattern beyond the limit still works when built by hand.
    cycle = Polynomial.from_edges([(k, (k + 1) % 12) for k in range(12)])
    assert cycle.degree == 12
    ahead = torch.arange(12)
    ring = torch.stack([torch.cat([ahead, (ahead + 1) % 12]), torch.cat([(ahead + 1) % 12, ahead])])
    # Homomorphisms of a 12-cycle into a graph are its closed walks of length 12: trace(A^12).
    value = evaluate([cycle], ring, 12)
    adjacency = torch.zeros(12, 12, dtype=torch.float64)
    adjacency[ring[0], ring[1]] = 1
    assert value.item() == torch.trace(torch.linalg.matrix_power(adjacency, 12)).item()


# Weights that the requested dtype cannot hold.


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), 1e30, 2.0**63])
def test_int64_refuses_weights_it_cannot_represent(bad):
    edge_index, weight = _pair(bad)
    (k2,) = enumerate_basis(1, 0)[1:]
    with pytest.raises(ValueError, match="edge_weight"):
        evaluate([k2], edge_index, 2, edge_weight=weight, dtype=torch.int64)


def test_complex_weights_are_refused_not_truncated():
    edge_index, _ = _pair(1.0)
    weight = torch.tensor([1 + 2j, 1 - 2j], dtype=torch.complex128)
    for dtype in (torch.float64, torch.float32, torch.int64):
        with pytest.raises(TypeError, match="edge_weight must be real.*imaginary"):
            evaluate(enumerate_basis(2, 0), edge_index, 2, edge_weight=weight, dtype=dtype)


def test_float32_refuses_finite_weights_that_overflow_it():
    edge_index, weight = _pair(1e300)
    with pytest.raises(ValueError, match="overflow torch.float32"):
        evaluate(enumerate_basis(1, 0), edge_index, 2, edge_weight=weight, dtype=torch.float32)
    # An infinite weight is the caller's value, not an overflow: it propagates.
    edge_index, weight = _pair(float("inf"))
    out = evaluate(enumerate_basis(1, 0)[1:], edge_index, 2, edge_weight=weight)
    assert torch.isinf(out).all()


def test_uint64_weights_beyond_int64_are_refused():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    weight = torch.tensor([2**63 + 5, 1], dtype=torch.uint64)
    with pytest.raises(ValueError, match="uint64"):
        evaluate(enumerate_basis(1, 0), edge_index, 2, edge_weight=weight, dtype=torch.int64)


# int64 values past 2**63 - 1 raise instead of wrapping.


def test_int64_value_past_the_range_raises_instead_of_wrapping():
    path3 = Polynomial.from_edges([(0, 2), (1, 2)], (0, 1))  # P[i, j] = sum_a A[i,a] A[a,j]
    edge_index, weight = _pair(2**32, torch.int64)
    with pytest.raises(Int64OverflowError, match="beyond 2\\*\\*63 - 1"):
        evaluate(
            [path3],
            edge_index,
            2,
            edge_weight=weight,
            dtype=torch.int64,
            backend="dense",
            dense_pairs=True,
        )
    k2 = Polynomial.from_edges([(0, 1)])
    # Invariant K2 on A with 2**62 both ways: 2 * 2**62 = 2**63 wraps to -2**63 in int64.
    edge_index, weight = _pair(2**62, torch.int64)
    with pytest.raises(Int64OverflowError):
        evaluate([k2], edge_index, 2, edge_weight=weight, dtype=torch.int64)
    with pytest.raises(OverflowError):  # also an OverflowError, and a ValueError
        evaluate([k2], edge_index, 2, edge_weight=weight, dtype=torch.int64)


def test_int64_values_near_the_top_of_the_range_stay_exact():
    # Bound 2**62 is not below the a-priori limit: the float64 check decides, and lets it pass.
    path3 = Polynomial.from_edges([(0, 2), (1, 2)], (0, 1))
    edge_index, weight = _pair(2**31, torch.int64)
    out = evaluate(
        [path3],
        edge_index,
        2,
        edge_weight=weight,
        dtype=torch.int64,
        backend="dense",
        dense_pairs=True,
    )
    assert out[..., 0].tolist() == [[2**62, 0], [0, 2**62]]
    sparse = evaluate([path3], edge_index, 2, edge_weight=weight, dtype=torch.int64)
    assert sparse[:, 0].tolist() == [0, 0]  # on the edges (i != j): no 2-walk between them
    # Cancelling signs: the values fit although |terms| would not.
    k2 = Polynomial.from_edges([(0, 1)])
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    weight = torch.tensor([2**62, 2**62, -(2**62), -(2**62)], dtype=torch.int64)
    with pytest.raises(Int64OverflowError):  # the |terms| bound exceeds 2**63: refused
        evaluate([k2], edge_index, 4, edge_weight=weight, dtype=torch.int64)


def test_a_priori_bound_covers_the_brute_force_values():
    torch.manual_seed(0)
    n = 7
    adjacency = (torch.rand(n, n) < 0.5).long()
    adjacency = torch.triu(adjacency, 1)
    adjacency = adjacency + adjacency.T
    edge_index = adjacency.nonzero().T
    weight = torch.randint(-5, 6, (edge_index.shape[1],))
    graphs = GraphBatch(edge_index, n, weight, dtype=torch.int64)
    growth = graphs.growth()
    for order in (0, 1, 2):
        polys = enumerate_basis(4, order)
        values = evaluate(
            polys,
            edge_index,
            n,
            edge_weight=weight,
            dtype=torch.float64,
            backend="dense",
            dense_pairs=order == 2,
        )
        for column, poly in enumerate(polys):
            largest = float(values[..., column].abs().max())
            assert largest <= 2.0 ** int64_bound_log2(poly, growth) * (1 + 1e-12), poly.name


# The sparse path refuses what it cannot hold, before allocating it.


def test_hub_of_20k_leaves_is_refused_by_the_estimate_before_allocating():
    from ..allocations import AllocationLog

    leaves = 20_000
    edge_index = _star(leaves)
    triangle = Polynomial.from_edges([(0, 1), (0, 2), (1, 2)], (0,))
    log = AllocationLog()
    with log, pytest.raises(ValueError, match="400,020,000 rows .* sparse_budget=2,147,483,648"):
        evaluate([triangle], edge_index, leaves + 1)
    assert log.largest < 16 * 2**20  # nothing near the join's 24 GB was allocated
    with pytest.raises(ValueError, match="sparse_budget=1,000"):
        evaluate([triangle], _star(50), 51, sparse_budget=1000)
    # Within a raised budget the same pattern evaluates (a triangle-free star: zero).
    out = evaluate([triangle], _star(50), 51, sparse_budget=1 << 24)
    assert out.abs().sum() == 0


def test_transform_refuses_the_star_too():
    leaves = 20_000
    data = Data(edge_index=_star(leaves), num_nodes=leaves + 1)
    with pytest.raises(ValueError, match="sparse_budget"):
        AddEquivariantPolynomials(max_degree=3, orders=(1,))(data)


@pytest.mark.parametrize(
    "bad, error",
    [(0, ValueError), (-1, ValueError), (2.5, TypeError), (True, TypeError), ("1", TypeError)],
)
def test_sparse_budget_is_validated(bad, error):
    with pytest.raises(error, match="sparse_budget"):
        evaluate(enumerate_basis(1, 0), _star(3), 4, sparse_budget=bad)


def test_truthy_strings_and_bools_are_not_options():
    from gnnagg.poly import plan_contraction

    k2 = Polynomial.from_edges([(0, 1)], (0, 1))
    with pytest.raises(TypeError, match="masked_outputs must be a bool"):
        plan_contraction(k2, "sparse", "no")
    with pytest.raises(TypeError, match="num_nodes"):
        Polynomial.from_edges([(0, 1)], num_nodes=True)
    with pytest.raises(ValueError, match="num_nodes must be non-negative"):
        Polynomial.from_edges([(0, 1)], num_nodes=-1)
    with pytest.raises(TypeError, match="dense_pairs must be a bool"):
        evaluate([k2], _star(2), 3, dense_pairs="no")


def test_all_pairs_output_is_refused_before_allocating_when_padding_explodes():
    from ..allocations import AllocationLog

    # 40,000 one-node graphs and one graph of 200 nodes: every graph pads to 200 x 200.
    small = 40_000
    big = 200
    batch = torch.cat([torch.arange(small), torch.full((big,), small)])
    ring = torch.arange(big)
    edge_index = torch.stack([ring, (ring + 1) % big]) + small
    polys = enumerate_basis(2, 2)
    log = AllocationLog()
    with log, pytest.raises(ValueError, match="dense_pairs: the all-pairs output .* GiB"):
        evaluate(polys, edge_index, small + big, batch=batch, backend="dense", dense_pairs=True)
    assert log.largest < 64 * 2**20
