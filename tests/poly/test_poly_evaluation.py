"""Evaluation against brute-force sums over all maps, equivariance, batching and validation."""

import functools

import numpy as np
import pytest
import scipy.sparse
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnagg.poly import Polynomial, enumerate_basis, evaluate

from .poly_brute import BruteForce, dense_adjacency


@functools.cache
def _basis(max_degree, order, simple=True):
    return tuple(enumerate_basis(max_degree, order, simple=simple))


@st.composite
def graph_batches(draw, max_nodes=5, max_graphs=2, weighted=False, directed=False, loops=False):
    """A few small graphs as one PyG-style batch: (edge_index, weight, batch, sizes)."""
    sizes = draw(st.lists(st.integers(1, max_nodes), min_size=1, max_size=max_graphs))
    edges, weights, offset = [], [], 0
    for n in sizes:
        density = draw(st.integers(3, 10))  # edge probability in tenths
        for u in range(n):
            for v in range(n):
                if (u == v and not loops) or (u > v and not directed):
                    continue
                if draw(st.integers(0, 9)) < density:
                    weight = draw(st.sampled_from([0.5, 1.0, 2.0, -1.0])) if weighted else 1.0
                    edges.append((u + offset, v + offset))
                    weights.append(weight)
                    if not directed and u != v:
                        edges.append((v + offset, u + offset))
                        weights.append(weight)
        offset += n
    if directed and edges and draw(st.booleans()):
        edges.append(edges[0])  # a duplicate edge: its weight adds up
        weights.append(weights[0])
    edge_index = torch.tensor(edges, dtype=torch.long).view(-1, 2).T.contiguous()
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return edge_index, torch.tensor(weights, dtype=torch.float64), batch, sizes


def _check_against_brute_force(
    polys, edge_index, weight, batch, sizes, backend="sparse", use_weight=True
):
    order = polys[0].order
    out = evaluate(
        list(polys),
        edge_index,
        sum(sizes),
        batch=batch,
        backend=backend,
        edge_weight=weight if use_weight else None,
    )
    offset = 0
    for g, n in enumerate(sizes):
        inside = (edge_index[0] >= offset) & (edge_index[0] < offset + n)
        local = edge_index[:, inside] - offset
        brute = BruteForce(dense_adjacency(local, n, weight[inside] if use_weight else None))
        for c, poly in enumerate(polys):
            expected = brute(poly)
            if order == 0:
                got = out[g, c].item()
            elif order == 1:
                got = out[offset : offset + n, c].numpy()
            else:
                got = out[inside, c].numpy()
                expected = expected[local[0].numpy(), local[1].numpy()]
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, err_msg=poly.name)
        offset += n


@pytest.mark.parametrize("order", [0, 1, 2])
@settings(max_examples=10)
@given(data=graph_batches())
def test_every_element_up_to_degree_6_matches_brute_force(order, data):
    edge_index, weight, batch, sizes = data
    _check_against_brute_force(_basis(6, order), edge_index, weight, batch, sizes, use_weight=False)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_every_element_up_to_degree_6_on_a_six_node_graph(order):
    # Patterns have up to 7 nodes: six graph nodes leave room for every map shape.
    generator = torch.Generator().manual_seed(order)
    upper = torch.triu((torch.rand(6, 6, generator=generator) < 0.6).long(), 1)
    edge_index = (upper + upper.T).nonzero().T.contiguous()
    _check_against_brute_force(
        _basis(6, order), edge_index, None, torch.zeros(6).long(), [6], use_weight=False
    )


@pytest.mark.parametrize("order", [0, 1, 2])
@settings(max_examples=8)
@given(data=graph_batches(max_nodes=4, weighted=True, directed=True, loops=True))
def test_weighted_directed_looped_input_matches_brute_force(order, data):
    edge_index, weight, batch, sizes = data
    polys = _basis(4, order) + _basis(3, order, simple=False)
    for backend in ("sparse", "dense"):
        _check_against_brute_force(polys, edge_index, weight, batch, sizes, backend=backend)


@pytest.mark.parametrize("order", [0, 1, 2])
@settings(max_examples=5)
@given(data=graph_batches(max_nodes=5, max_graphs=3))
def test_dense_backend_matches_sparse_backend(order, data):
    edge_index, weight, batch, sizes = data
    polys = list(_basis(6, order))
    sparse = evaluate(polys, edge_index, sum(sizes), batch=batch)
    dense = evaluate(
        polys, edge_index, sum(sizes), batch=batch, backend="dense", dense_budget=200
    )  # a tiny budget forces several chunks
    torch.testing.assert_close(sparse, dense, rtol=0, atol=0)


@settings(max_examples=10)
@given(data=graph_batches(max_nodes=5, max_graphs=1, weighted=True, directed=True, loops=True))
def test_all_pairs_output_matches_brute_force(data):
    edge_index, weight, _, sizes = data
    polys = list(_basis(4, 2))
    out = evaluate(
        polys, edge_index, sizes[0], edge_weight=weight, dense_pairs=True, backend="dense"
    )
    brute = BruteForce(dense_adjacency(edge_index, sizes[0], weight))
    for c, poly in enumerate(polys):
        np.testing.assert_allclose(out[..., c].numpy(), brute(poly), atol=1e-9)


def test_permuting_nodes_permutes_the_features():
    generator = torch.Generator().manual_seed(3)
    n = 9
    upper = torch.triu((torch.rand(n, n, generator=generator) < 0.4).long(), 1)
    edge_index = (upper + upper.T).nonzero().T.contiguous()
    perm = torch.randperm(n, generator=generator)  # node v becomes perm[v]
    moved = perm[edge_index]
    for order in (0, 1, 2):
        polys = list(_basis(5, order))
        for backend in ("sparse", "dense"):
            before = evaluate(polys, edge_index, n, backend=backend)
            after = evaluate(polys, moved, n, backend=backend)
            if order == 1:
                before = before[torch.argsort(perm)]
            # Graph-level values stay, node rows move with their node, and edge e keeps its
            # position in the edge list, so its value stays put.
            torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_batch_equals_graphs_evaluated_one_by_one():
    generator = torch.Generator().manual_seed(5)
    graphs = []
    for n in (6, 1, 4, 0, 7):
        upper = torch.triu((torch.rand(n, n, generator=generator) < 0.5).long(), 1)
        graphs.append(((upper + upper.T).nonzero().T.contiguous(), n))
    offsets = np.cumsum([0] + [n for _, n in graphs])
    edge_index = torch.cat([e + int(o) for (e, _), o in zip(graphs, offsets)], dim=1)
    batch = torch.repeat_interleave(torch.arange(len(graphs)), torch.tensor([n for _, n in graphs]))
    for order in (0, 1, 2):
        polys = list(_basis(5, order))
        for backend in ("sparse", "dense"):
            together = evaluate(polys, edge_index, int(offsets[-1]), batch=batch, backend=backend)
            pieces = [evaluate(polys, e, n, backend=backend) for e, n in graphs]
            torch.testing.assert_close(together, torch.cat(pieces), rtol=0, atol=0)


def test_integer_and_single_precision_outputs():
    generator = torch.Generator().manual_seed(7)
    upper = torch.triu((torch.rand(12, 12, generator=generator) < 0.5).long(), 1)
    edge_index = (upper + upper.T).nonzero().T.contiguous()
    polys = list(_basis(6, 0))
    reference = evaluate(polys, edge_index, 12)
    for backend in ("sparse", "dense"):
        exact = evaluate(polys, edge_index, 12, dtype=torch.int64, backend=backend)
        assert exact.dtype == torch.int64
        assert torch.equal(exact, reference.long())
        single = evaluate(polys, edge_index, 12, dtype=torch.float32, backend=backend)
        torch.testing.assert_close(single.double(), reference, rtol=1e-5, atol=0)


def test_treewidth_2_elements_on_a_large_sparse_graph_match_sparse_matrix_algebra():
    rng = np.random.default_rng(11)
    n = 3000
    rows = rng.integers(0, n, 2 * n)
    cols = rng.integers(0, n, 2 * n)
    keep = rows != cols
    matrix = scipy.sparse.coo_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])), (n, n))
    matrix = ((matrix + matrix.T) > 0).astype(np.float64).tocsr()
    coo = matrix.tocoo()
    edge_index = torch.tensor(np.vstack([coo.row, coo.col]), dtype=torch.long)
    square = matrix @ matrix
    cycle = {k: Polynomial.from_edges([(i, (i + 1) % k) for i in range(k)]) for k in (4, 5, 6)}
    invariants = evaluate(list(cycle.values()), edge_index, n)
    for column, k in enumerate(cycle):
        power = square @ square if k == 4 else square @ square @ matrix
        if k == 6:
            power = power @ matrix
        assert invariants[0, column].item() == power.diagonal().sum()
    walks = evaluate([Polynomial.from_edges([(0, 1), (1, 2), (2, 3)], (0,))], edge_index, n)
    np.testing.assert_array_equal(walks[:, 0].numpy(), (square @ matrix) @ np.ones(n))
    triangles = evaluate([Polynomial.from_edges([(0, 1), (1, 2), (0, 2)], (0, 1))], edge_index, n)
    expected = np.asarray(square[coo.row, coo.col]).ravel()
    np.testing.assert_array_equal(triangles[:, 0].numpy(), expected)


def test_empty_inputs():
    polys = list(_basis(3, 2))
    out = evaluate(polys, torch.zeros(2, 0, dtype=torch.long), 4)
    assert out.shape == (0, len(polys))
    invariants = evaluate(list(_basis(3, 0)), torch.zeros(2, 0, dtype=torch.long), 4)
    assert invariants[0, 0].item() == 4  # K1 counts the nodes; every other element is 0
    assert invariants[0, 1:].abs().sum().item() == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"edge_index": torch.tensor([[0, 5], [1, 0]])}, ValueError, "edge_index out of range"),
        ({"edge_index": torch.tensor([[0, -1], [1, 0]])}, ValueError, "edge_index out of range"),
        ({"edge_index": torch.tensor([0, 1])}, ValueError, "edge_index"),
        ({"edge_index": torch.tensor([[0.0], [1.0]])}, TypeError, "edge_index"),
        ({"num_nodes": -1}, ValueError, "num_nodes"),
        ({"edge_weight": torch.ones(3)}, ValueError, "edge_weight"),
        ({"edge_weight": torch.ones(2, 2)}, ValueError, "edge_weight"),
        ({"batch": torch.tensor([1, 0, 0])}, ValueError, "non-decreasing"),
        ({"batch": torch.tensor([0, 0, 1])}, ValueError, "different graphs"),
        ({"batch": torch.tensor([0, 0])}, ValueError, "batch"),
        ({"backend": "fast"}, ValueError, "backend"),
        ({"dtype": torch.float16}, ValueError, "dtype"),
        ({"dtype": torch.int64, "edge_weight": torch.tensor([0.5, 1.0])}, ValueError, "integral"),
        ({"dense_budget": 0}, ValueError, "dense_budget"),
        ({"num_nodes": 3.0}, TypeError, "num_nodes"),
        ({"num_graphs": 0}, ValueError, "num_graphs"),
        ({"num_graphs": -1, "batch": torch.tensor([0, 0, 0])}, ValueError, "num_graphs"),
        ({"num_graphs": 1.5, "batch": torch.tensor([0, 0, 0])}, TypeError, "num_graphs"),
        ({"batch": torch.tensor([0.0, 0.0, 0.0])}, TypeError, "batch"),
    ],
)
def test_evaluate_rejects_bad_input(kwargs, error, match):
    arguments = {"edge_index": torch.tensor([[0, 1], [1, 2]]), "num_nodes": 3}
    arguments.update(kwargs)
    polys = list(_basis(2, 0))
    with pytest.raises(error, match=match):
        evaluate(polys, arguments.pop("edge_index"), arguments.pop("num_nodes"), **arguments)


def test_dense_evaluation_refuses_graphs_too_large_for_it():
    n = 20_000
    edge_index = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    k4 = [Polynomial.from_edges([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)], (0, 1))]
    with pytest.raises(ValueError, match="backend='sparse'"):
        evaluate(k4, edge_index, n, backend="dense")
    assert evaluate(k4, edge_index, n).abs().sum() == 0  # the sparse backend copes


def test_evaluate_rejects_bad_polynomial_lists():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="same order"):
        evaluate(list(_basis(1, 0)) + list(_basis(1, 1)), edge_index, 2)
    with pytest.raises(ValueError, match="empty"):
        evaluate([], edge_index, 2)
    with pytest.raises(TypeError, match="Polynomial"):
        evaluate(["K3"], edge_index, 2)
    with pytest.raises(ValueError, match="dense_pairs"):
        evaluate(list(_basis(1, 1)), edge_index, 2, dense_pairs=True)


def test_integer_like_counts_and_any_iterable_of_polynomials():
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    basis = _basis(3, 0)
    expected = evaluate(list(basis), edge_index, 3)
    for num_nodes in (np.int64(3), torch.tensor(3)):
        torch.testing.assert_close(evaluate(list(basis), edge_index, num_nodes), expected)
    torch.testing.assert_close(evaluate((p for p in basis), edge_index, 3), expected)


def test_dense_backend_stays_within_its_budget():
    """A chunk holds one polynomial's [b, n, n] result at a time, not all C of them."""
    from ..allocations import AllocationLog

    # One chunk of all ten graphs: its [b, n, n] results are 5x the output's edge rows.
    n, graphs, budget = 10, 10, 1 << 14
    ring = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n])
    ring = torch.cat([ring, ring.flip(0)], 1)
    edge_index = torch.cat([ring + k * n for k in range(graphs)], 1)
    batch = torch.arange(graphs).repeat_interleave(n)
    polys = list(enumerate_basis(4, 2, subset="within-2fwl"))
    with AllocationLog() as log:
        out = evaluate(
            polys, edge_index, n * graphs, batch=batch, backend="dense", dense_budget=budget
        )
    output_bytes = out.numel() * out.element_size()
    # Nothing beyond the output and budget-sized float64 intermediates (the per-chunk stack of
    # all channels, [b, n, n, C], was 392 kB here: 5x the output, 3x the budget).
    assert log.largest <= max(output_bytes, 8 * budget)
