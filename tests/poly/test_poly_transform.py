"""AddEquivariantPolynomials on Data and Batch, separation power, options and errors."""

import itertools

import networkx as nx
import numpy as np
import pytest
import torch
import torch_geometric.transforms as T
from torch_geometric.data import Batch, Data, HeteroData

from gnnagg.poly import AddEquivariantPolynomials, Polynomial, enumerate_basis

from .poly_brute import BruteForce, dense_adjacency, undirected_edge_index


def _data(graph: nx.Graph, **attrs) -> Data:
    graph = nx.convert_node_labels_to_integers(graph)
    return Data(edge_index=undirected_edge_index(graph), num_nodes=graph.number_of_nodes(), **attrs)


def _invariants(transform, graph):
    return transform(_data(graph)).poly_graph[0]


def _rook_4x4():
    return nx.cartesian_product(nx.complete_graph(4), nx.complete_graph(4))


def _shrikhande():
    graph = nx.Graph()
    for a, b in itertools.product(range(4), repeat=2):
        for da, db in [(0, 1), (1, 0), (1, 1)]:
            graph.add_edge((a, b), ((a + da) % 4, (b + db) % 4))
    return graph


def _decalin():
    graph = nx.cycle_graph(10)  # naphthalene skeleton: a 10-cycle with one chord
    graph.add_edge(0, 5)
    return graph


def _bicyclopentyl():
    graph = nx.disjoint_union(nx.cycle_graph(5), nx.cycle_graph(5))
    graph.add_edge(0, 5)
    return graph


def _same_colour_refinement(g1, g2):
    """1-WL on the disjoint union: equal colour histograms on both sides."""
    union = nx.disjoint_union(g1, g2)
    colours = dict.fromkeys(union, 0)
    for _ in range(union.number_of_nodes()):
        signatures = {v: (colours[v], tuple(sorted(colours[u] for u in union[v]))) for v in union}
        ranks = {s: k for k, s in enumerate(sorted(set(signatures.values())))}
        colours = {v: ranks[signatures[v]] for v in union}
    first = sorted(colours[v] for v in range(g1.number_of_nodes()))
    second = sorted(colours[v] for v in range(g1.number_of_nodes(), union.number_of_nodes()))
    return first == second


def test_c6_and_two_triangles_are_separated_at_degree_3():
    c6, triangles = nx.cycle_graph(6), nx.disjoint_union(nx.cycle_graph(3), nx.cycle_graph(3))
    assert _same_colour_refinement(c6, triangles)
    low = AddEquivariantPolynomials(max_degree=3, orders=(0,))
    k3 = low.names(0).index(Polynomial(nx.cycle_graph(3)).name)
    first, second = _invariants(low, c6), _invariants(low, triangles)
    assert (first[k3].item(), second[k3].item()) == (0, 12)
    assert not torch.equal(first, second)
    # Node- and edge-level features separate them too.
    node_level = AddEquivariantPolynomials(max_degree=3, orders=(1,))
    assert not torch.equal(
        node_level(_data(c6)).poly_x.sort(0).values,
        node_level(_data(triangles)).poly_x.sort(0).values,
    )


def test_decalin_and_bicyclopentyl_are_separated_at_degree_5():
    decalin, bicyclopentyl = _decalin(), _bicyclopentyl()
    assert _same_colour_refinement(decalin, bicyclopentyl)
    transform = AddEquivariantPolynomials(max_degree=5, orders=(0,))
    c5 = transform.names(0).index(Polynomial(nx.cycle_graph(5)).name)
    first, second = _invariants(transform, decalin), _invariants(transform, bicyclopentyl)
    assert (first[c5].item(), second[c5].item()) == (0, 20)
    separating = [p for p, a, b in zip(transform.basis[0], first, second) if a != b]
    assert min(p.degree for p in separating) <= 5


def test_rook_and_shrikhande_need_the_degree_6_k4():
    rook, shrikhande = _rook_4x4(), _shrikhande()
    assert nx.is_regular(rook) and nx.is_regular(shrikhande)
    low = AddEquivariantPolynomials(max_degree=5, orders=(0,))
    torch.testing.assert_close(_invariants(low, rook), _invariants(low, shrikhande))
    extra = AddEquivariantPolynomials(max_degree=6, orders=(0, 1, 2), subset="beyond-2fwl")
    assert extra.names(0) == [Polynomial(nx.complete_graph(4)).name]
    rook_data, shrikhande_data = extra(_data(rook)), extra(_data(shrikhande))
    assert rook_data.poly_graph.tolist() == [[192.0]]
    assert shrikhande_data.poly_graph.tolist() == [[0.0]]
    assert torch.all(rook_data.poly_x == 12) and torch.all(shrikhande_data.poly_x == 0)
    k4_edge = extra.names(2).index(Polynomial(nx.complete_graph(4), (0, 1)).name)
    assert torch.all(rook_data.poly_edge_attr[:, k4_edge] == 2)
    assert torch.all(shrikhande_data.poly_edge_attr[:, k4_edge] == 0)


def test_no_invariant_of_degree_at_most_4_separates_rook_and_shrikhande():
    transform = AddEquivariantPolynomials(max_degree=4, orders=(0,), connected=False)
    torch.testing.assert_close(
        _invariants(transform, _rook_4x4()), _invariants(transform, _shrikhande())
    )


def _random_graphs(seed, sizes):
    rng = np.random.default_rng(seed)
    graphs = []
    for n in sizes:
        graph = nx.gnp_random_graph(n, 0.45, seed=int(rng.integers(1 << 30)))
        graphs.append(
            _data(
                graph,
                x=torch.randn(n, 3),
                edge_weight=torch.tensor(
                    rng.integers(1, 4, 2 * graph.number_of_edges()), dtype=torch.float64
                ),
            )
        )
    return graphs


def test_batch_is_processed_graph_by_graph():
    transform = AddEquivariantPolynomials(max_degree=4)
    graphs = _random_graphs(0, [5, 1, 7, 4])
    batch = Batch.from_data_list(graphs)
    out = transform(batch)
    assert not hasattr(batch, "poly_x")  # the input batch is left alone
    singles = [transform(g) for g in graphs]
    torch.testing.assert_close(out.poly_graph, torch.cat([s.poly_graph for s in singles]))
    torch.testing.assert_close(out.poly_x, torch.cat([s.poly_x for s in singles]))
    torch.testing.assert_close(out.poly_edge_attr, torch.cat([s.poly_edge_attr for s in singles]))
    for single, example in zip(singles, out.to_data_list()):
        for name in ("poly_graph", "poly_x", "poly_edge_attr"):
            torch.testing.assert_close(example[name], single[name])
    assert out.poly_graph.shape == (4, len(transform.basis[0]))


def test_dense_pairs_match_edges_and_brute_force():
    transform = AddEquivariantPolynomials(max_degree=4, orders=(2,))
    graphs = _random_graphs(1, [6, 3, 5])
    batch = Batch.from_data_list(graphs)
    dense = transform.dense(batch)
    assert dense.shape == (3, 6, 6, len(transform.basis[2]))
    for g, graph in enumerate(graphs):
        single = transform.dense(graph)
        n = graph.num_nodes
        torch.testing.assert_close(dense[g, :n, :n], single)
        assert dense[g, n:].abs().sum() == 0 and dense[g, :, n:].abs().sum() == 0
        ei = graph.edge_index
        torch.testing.assert_close(single[ei[0], ei[1]], transform(graph).poly_edge_attr)
        brute = BruteForce(dense_adjacency(ei, n))
        for c, poly in enumerate(transform.basis[2]):
            np.testing.assert_allclose(single[..., c].numpy(), brute(poly))


def test_edge_weights_are_read_from_the_named_attribute():
    graph = _random_graphs(2, [6])[0]
    weighted = AddEquivariantPolynomials(max_degree=3, orders=(0, 1, 2), edge_weight="edge_weight")
    out = weighted(graph)
    brute = BruteForce(dense_adjacency(graph.edge_index, 6, graph.edge_weight))
    for c, poly in enumerate(weighted.basis[1]):
        np.testing.assert_allclose(out.poly_x[:, c].numpy(), brute(poly))
    plain = AddEquivariantPolynomials(max_degree=3, orders=(0,))(graph)
    assert not torch.equal(plain.poly_graph, out.poly_graph)


def test_dense_backend_and_dtypes_agree_with_float64():
    graphs = Batch.from_data_list(_random_graphs(3, [5, 6]))
    reference = AddEquivariantPolynomials(max_degree=5, dtype=torch.float64)(graphs)
    for options in (
        {"backend": "dense", "dtype": torch.float64},
        {"dtype": torch.int64},
        {"dtype": torch.float32},
        {},
    ):
        out = AddEquivariantPolynomials(max_degree=5, **options)(graphs)
        for name in ("poly_graph", "poly_x", "poly_edge_attr"):
            assert out[name].dtype == options.get("dtype", torch.get_default_dtype())
            torch.testing.assert_close(out[name].double(), reference[name])


def test_features_come_in_the_default_dtype_computed_exactly():
    """The first natural use, next to PyG's float32 positional encodings, concatenates."""
    graph = _data(nx.complete_graph(30))
    pe = T.AddRandomWalkPE(walk_length=4, attr_name="pe")(graph).pe
    out = AddEquivariantPolynomials(max_degree=4, orders=(0, 1))(graph)
    assert out.poly_x.dtype == out.poly_graph.dtype == pe.dtype == torch.float32
    assert torch.cat([pe, out.poly_x], dim=-1).dtype == torch.float32
    # Computed in float64 and rounded once: the float32 features are the exact counts rounded.
    exact = AddEquivariantPolynomials(max_degree=4, orders=(0, 1), dtype=torch.float64)(graph)
    assert exact.poly_graph.max() > 2**24  # beyond float32's integers
    assert torch.equal(out.poly_graph, exact.poly_graph.float())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert AddEquivariantPolynomials(max_degree=2)(graph).poly_x.dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)
    half = AddEquivariantPolynomials(max_degree=2, dtype=torch.bfloat16)(graph)
    assert half.poly_edge_attr.dtype == torch.bfloat16


def test_normalisations():
    graphs = Batch.from_data_list(_random_graphs(4, [5, 7]))
    raw = AddEquivariantPolynomials(max_degree=3, dtype=torch.float64)
    density = AddEquivariantPolynomials(max_degree=3, normalize="density", dtype=torch.float64)
    log = AddEquivariantPolynomials(max_degree=3, normalize="log1p", dtype=torch.float64)
    plain, scaled, logged = raw(graphs), density(graphs), log(graphs)
    sizes = torch.tensor([5.0, 7.0], dtype=torch.float64)
    for order, name, rows in (
        (0, "poly_graph", sizes),
        (1, "poly_x", sizes[graphs.batch]),
        (2, "poly_edge_attr", sizes[graphs.batch[graphs.edge_index[0]]]),
    ):
        free = torch.tensor([p.num_nodes - p.order for p in raw.basis[order]], dtype=torch.float64)
        torch.testing.assert_close(scaled[name], plain[name] / rows[:, None] ** free)
        torch.testing.assert_close(logged[name], torch.log1p(plain[name]))
    assert scaled.poly_graph.max() <= 1
    dense = density.dense(graphs)
    free = torch.tensor([p.num_nodes - 2 for p in raw.basis[2]], dtype=torch.float64)
    torch.testing.assert_close(dense, raw.dense(graphs) / sizes[:, None, None, None] ** free)


def test_from_polynomials_and_channel_names():
    polys = [Polynomial(nx.complete_graph(4)), Polynomial(nx.cycle_graph(5), (0, 1))]
    transform = AddEquivariantPolynomials.from_polynomials(polys, orders=(0, 1, 2))
    out = transform(_data(_rook_4x4()))
    assert out.poly_graph.tolist() == [[192.0]]
    assert out.poly_x.shape == (16, 0)
    assert out.poly_edge_attr.shape == (96, 1)
    assert transform.names(2) == [polys[1].name]
    assert "channels" in repr(transform)


def test_multigraph_basis_runs_through_the_transform():
    transform = AddEquivariantPolynomials(max_degree=3, simple=False, edge_weight="edge_weight")
    graph = _random_graphs(5, [5])[0]
    out = transform(graph)
    assert out.poly_x.shape == (5, len(enumerate_basis(3, 1, simple=False)))
    brute = BruteForce(dense_adjacency(graph.edge_index, 5, graph.edge_weight))
    for c, poly in enumerate(transform.basis[0]):
        np.testing.assert_allclose(out.poly_graph[0, c].item(), brute(poly))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_degree": -2}, ValueError, "max_degree"),
        ({"orders": (0, 3)}, ValueError, "orders"),
        ({"orders": 1}, TypeError, "orders"),
        ({"orders": ()}, ValueError, "orders"),
        ({"orders": (1, 1)}, ValueError, "repeat"),
        ({"subset": "2fwl"}, ValueError, "beyond-2fwl"),
        ({"backend": "magic"}, ValueError, "backend"),
        ({"normalize": "zscore"}, ValueError, "normalize"),
        ({"dtype": torch.int64, "normalize": "density"}, ValueError, "floating"),
        ({"dtype": torch.bool}, ValueError, "dtype"),
        ({"edge_weight": 3}, TypeError, "edge_weight"),
    ],
)
def test_transform_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        AddEquivariantPolynomials(**{"max_degree": 2, **kwargs})


def test_transform_rejects_bad_data():
    transform = AddEquivariantPolynomials(max_degree=2, edge_weight="w")
    with pytest.raises(ValueError, match="'w'"):
        transform(_data(nx.path_graph(3)))
    with pytest.raises(TypeError, match="Data"):
        AddEquivariantPolynomials(max_degree=2)(HeteroData())
    with pytest.raises(ValueError, match="edge_index out of range"):
        AddEquivariantPolynomials(max_degree=2)(
            Data(edge_index=torch.tensor([[0, 3], [3, 0]]), num_nodes=3)
        )
    with pytest.raises(ValueError, match="order 2"):
        AddEquivariantPolynomials(max_degree=2, orders=(0,)).dense(_data(nx.path_graph(3)))
    with pytest.raises(ValueError, match="orders"):
        AddEquivariantPolynomials(max_degree=2, orders=(0,)).names(1)


def test_repr_changes_with_every_setting_that_changes_the_output():
    """PyG compares repr(pre_transform) to tell whether processed data is stale."""
    base = dict(max_degree=3, orders=(0, 1))
    variants = [
        {},
        {"max_degree": 2},
        {"orders": (0,)},
        {"subset": "beyond-2fwl"},
        {"connected": False},
        {"simple": False},
        {"edge_weight": "w"},
        {"normalize": "density"},
        {"dtype": torch.float64},
    ]
    reprs = [repr(AddEquivariantPolynomials(**{**base, **v})) for v in variants]
    assert len(set(reprs)) == len(reprs)
    basis = enumerate_basis(3, 0)
    first = AddEquivariantPolynomials.from_polynomials(basis[:3] + basis[-1:])
    second = AddEquivariantPolynomials.from_polynomials(basis[:2] + basis[-2:])
    assert repr(first) != repr(second)


def test_data_without_edge_index_is_an_edgeless_graph():
    transform = AddEquivariantPolynomials(max_degree=2)
    with_edges = transform(Data(x=torch.ones(4, 1), edge_index=torch.zeros(2, 0, dtype=torch.long)))
    without = transform(Data(x=torch.ones(4, 1)))
    for name in ("poly_graph", "poly_x", "poly_edge_attr"):
        torch.testing.assert_close(without[name], with_edges[name])
