"""Masks against brute-force definitions, composition laws, batch isolation and errors."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.attention import (
    adjacency,
    dilated_window,
    global_tokens,
    khop,
    morton_codes,
    random_jumps,
    reverse_cuthill_mckee,
)

from .attention_graphs import (
    adjacency_reference,
    batches,
    jumps_bound,
    khop_reference,
    morton_reference,
    node_dense,
    positions_from_order,
    token_reference,
    window_reference,
)


def same_graph(gmask):
    return gmask.row_graph.unsqueeze(1) == gmask.row_graph.unsqueeze(0)


def check_csr(gmask):
    """Sorted keys, no duplicates, consistent sizes."""
    assert gmask.rowptr[0] == 0 and gmask.rowptr[-1] == gmask.nnz
    assert bool((gmask.degree() >= 0).all())
    keys = gmask.row() * gmask.num_rows + gmask.col
    assert bool((keys[1:] > keys[:-1]).all())


@given(batches(), st.booleans())
def test_adjacency_matches_definition(graph, self_loops):
    edge_index, batch, pos = graph
    gmask = adjacency(self_loops=self_loops).build(edge_index, batch=batch)
    check_csr(gmask)
    expected = adjacency_reference(edge_index, batch.numel(), self_loops)
    assert torch.equal(gmask.to_dense(), node_dense(gmask, expected))


@given(batches(), st.integers(1, 4))
def test_khop_matches_breadth_first_search(graph, k):
    edge_index, batch, _ = graph
    gmask = khop(k).build(edge_index, batch=batch)
    check_csr(gmask)
    expected = khop_reference(edge_index, batch.numel(), k)
    assert torch.equal(gmask.to_dense(), node_dense(gmask, expected))


def test_sorted_merge_is_the_sorted_union():
    from gnnagg.attention.masks import _merge_sorted

    generator = torch.Generator().manual_seed(0)
    for size_a, size_b in ((0, 5), (5, 0), (50, 70), (300, 3)):
        a = torch.unique(torch.randint(0, 200, (size_a,), generator=generator))
        b = torch.unique(torch.randint(0, 200, (size_b,), generator=generator))
        assert torch.equal(_merge_sorted(a, b), torch.unique(torch.cat([a, b])))


def test_khop_is_cached_per_graph():
    from gnnagg.attention import masks

    masks._khop_cache.clear()
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    khop(2).build(edge_index)
    khop(2).build(edge_index)
    assert len(masks._khop_cache) == 1
    edge_index[0, 0] = 3  # an in-place change bumps the version: no stale reuse
    gmask = khop(2).build(edge_index)
    assert torch.equal(gmask.to_dense(), node_dense(gmask, khop_reference(edge_index, 4, 2)))


@given(
    batches(),
    st.integers(0, 3),
    st.integers(1, 4),
    st.sampled_from(["index", "morton", "perm", "rcm"]),
)
def test_dilated_window_matches_formula(graph, size, dilation, order):
    edge_index, batch, pos = graph
    n = batch.numel()
    if order == "index":
        global_order = torch.arange(n)
    elif order == "morton":
        codes = morton_reference(pos, batch)
        global_order = torch.tensor(sorted(range(n), key=lambda i: (codes[i], i)))
    elif order == "perm":
        global_order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    else:
        global_order = reverse_cuthill_mckee(edge_index, n)
    mask = dilated_window(size, dilation, global_order if order == "perm" else order)
    gmask = mask.build(edge_index, pos=pos, batch=batch)
    check_csr(gmask)
    positions = positions_from_order(global_order, batch)
    expected = window_reference(positions, batch, size, dilation)
    assert torch.equal(gmask.to_dense(), node_dense(gmask, expected))


def test_morton_codes_interleave_bits():
    pos = torch.rand(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert morton_codes(pos).tolist() == morton_reference(pos)
    pos2 = pos[:, :2]
    assert morton_codes(pos2).tolist() == morton_reference(pos2)
    batch = torch.arange(50) % 3
    assert morton_codes(pos, batch).tolist() == morton_reference(pos, batch)


def test_rcm_is_a_permutation_with_small_bandwidth():
    from gnnagg.data.meshes import lattice_mesh

    mesh = lattice_mesh(343)
    order = reverse_cuthill_mckee(mesh.edge_index, 343)
    assert torch.equal(torch.sort(order).values, torch.arange(343))
    position = torch.empty_like(order)
    position[order] = torch.arange(343)
    bandwidth = (position[mesh.edge_index[0]] - position[mesh.edge_index[1]]).abs().max()
    assert bandwidth < 343 // 3


@given(batches(), st.integers(0, 3), st.integers(0, 3))
def test_global_tokens_layout_and_pairs(graph, g, other):
    edge_index, batch, _ = graph
    mask = global_tokens(g) | global_tokens(other) if other else global_tokens(g)
    gmask = mask.build(edge_index, batch=batch)
    tokens = max(g, other)
    assert gmask.tokens_per_graph == tokens
    assert gmask.num_rows == batch.numel() + tokens * gmask.num_graphs
    # Tokens come first in each graph's block, then the graph's nodes.
    for graph_id in range(gmask.num_graphs):
        rows = torch.nonzero(gmask.row_graph == graph_id).view(-1)
        assert torch.equal(rows[:tokens], gmask.token_rows[graph_id])
    expected = token_reference(gmask, g) | token_reference(gmask, other)
    assert torch.equal(gmask.to_dense(), expected)
    rows = torch.cat([gmask.node_rows, gmask.token_rows.view(-1)])
    assert torch.equal(torch.sort(rows).values, torch.arange(gmask.num_rows))


@given(batches(), st.floats(0.0, 2.0), st.integers(0, 100))
def test_random_jumps_symmetric_inside_graphs_and_reproducible(graph, ratio, seed):
    edge_index, batch, _ = graph
    gmask = random_jumps(ratio, seed=seed).build(edge_index, batch=batch)
    dense = gmask.to_dense()
    assert torch.equal(dense, dense.t())
    assert not bool(dense.diagonal().any())
    assert not bool((dense & ~same_graph(gmask)).any())
    per_graph = torch.bincount(gmask.row_graph[gmask.row()], minlength=gmask.num_graphs)
    for pairs, bound in zip(per_graph.tolist(), jumps_bound(edge_index, batch, ratio)):
        assert pairs <= 2 * bound
    again = random_jumps(ratio, seed=seed).build(edge_index, batch=batch)
    assert torch.equal(again.to_dense(), dense)


def test_random_jumps_generator_redraws():
    edge_index = torch.randint(0, 200, (2, 400), generator=torch.Generator().manual_seed(1))
    mask = random_jumps(0.5, seed=0)
    generator = torch.Generator().manual_seed(5)
    first = mask.build(edge_index, num_nodes=200, generator=generator).to_dense()
    second = mask.build(edge_index, num_nodes=200, generator=generator).to_dense()
    assert not torch.equal(first, second)
    replay = mask.build(edge_index, num_nodes=200,
                        generator=torch.Generator().manual_seed(5)).to_dense()
    assert torch.equal(replay, first)
    # 200 jumps each way at most; most distinct.
    assert 300 <= int(first.sum()) <= 400


MASKS = st.sampled_from(
    [
        adjacency(),
        adjacency(self_loops=False),
        khop(2),
        dilated_window(1, 2, "index"),
        dilated_window(2, 1, "morton"),
        global_tokens(2),
        random_jumps(0.5, seed=1),
    ]
)


@given(batches(), MASKS, MASKS)
def test_union_and_intersection_laws(graph, a, b):
    edge_index, batch, pos = graph

    def dense(mask):
        gmask = mask.build(edge_index, pos=pos, batch=batch)
        # Compare in a common layout: both sides get the larger token count.
        return gmask, gmask.to_dense()

    union_mask, union = dense(a | b)
    _, union_swapped = dense(b | a)
    _, inter = dense(a & b)
    _, inter_swapped = dense(b & a)
    assert torch.equal(union, union_swapped) and torch.equal(inter, inter_swapped)
    tokens = (a | b).tokens_per_graph
    padded = (a | global_tokens(tokens)) & a if tokens else a
    _, only_a = dense(padded)
    assert bool((union | ~only_a).all()), "a | b must contain a"
    assert bool((only_a | ~inter).all()), "a & b must lie inside a"
    assert not bool((union & ~same_graph(union_mask)).any()), "no pair across graphs"


def test_repr_shows_the_expression():
    mask = (khop(2) | dilated_window(4, 8)) & adjacency() | global_tokens(4)
    assert repr(mask) == (
        "(khop(2) | dilated_window(size=4, dilation=8, order='morton')) & adjacency() "
        "| global_tokens(4)"
    )
    assert khop(2) | adjacency() == khop(2) | adjacency()
    assert hash(khop(2)) == hash(khop(2))
    assert repr(random_jumps(0.1, seed=3)) == "random_jumps(0.1, seed=3)"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: khop(0), "k must be at least 1"),
        (lambda: khop(1.5), "k must be an integer"),
        (lambda: dilated_window(2, 0), "dilation must be at least 1"),
        (lambda: dilated_window(-1, 1), "size must be non-negative"),
        (lambda: dilated_window(1, 1, "hilbert"), "order must be one of"),
        (lambda: global_tokens(-1), "g must be non-negative"),
        (lambda: random_jumps(-0.1), "ratio must be finite and non-negative"),
        (lambda: random_jumps(float("nan")), "ratio must be finite and non-negative"),
        (lambda: random_jumps(0.1, seed=-2), "seed must be non-negative"),
        (lambda: adjacency(self_loops=1), "self_loops must be a bool"),
        (lambda: khop(2) | 3, "cannot combine"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_build_inputs_are_refused():
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="pos is required"):
        dilated_window(2, 1, "morton").build(edge_index, num_nodes=3)
    with pytest.raises(ValueError, match="edge_index has node ids outside"):
        adjacency().build(edge_index, num_nodes=2)
    with pytest.raises(ValueError, match="edge_index joins nodes of different graphs"):
        adjacency().build(edge_index, batch=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="pos must be"):
        adjacency().build(edge_index, num_nodes=3, pos=torch.rand(2, 3))
    with pytest.raises(ValueError, match="order is not a permutation"):
        dilated_window(1, 1, torch.tensor([0, 0, 1])).build(edge_index, num_nodes=3)
    with pytest.raises(TypeError, match="generator must be"):
        adjacency().build(edge_index, generator=5)


def test_to_dense_refuses_large_masks():
    gmask = adjacency().build(torch.tensor([[0], [1]]), num_nodes=100)
    with pytest.raises(ValueError, match="max_entries=1000"):
        gmask.to_dense(max_entries=1000)


@given(batches())
def test_reorder_and_device_round_trip(graph):
    edge_index, batch, pos = graph
    gmask = (khop(2) | global_tokens(1)).build(edge_index, pos=pos, batch=batch)
    perm = torch.randperm(gmask.num_rows, generator=torch.Generator().manual_seed(0))
    moved = gmask.reorder(perm)
    check_csr(moved)
    assert torch.equal(moved.to_dense(), gmask.to_dense()[perm][:, perm])
    assert torch.equal(perm[moved.node_rows], gmask.node_rows)
    assert torch.equal(perm[moved.token_rows], gmask.token_rows)
    assert torch.equal(gmask.to("cpu").col, gmask.col)
    assert torch.equal(gmask.edge_index[1], gmask.row())
