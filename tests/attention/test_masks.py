"""Masks against brute-force definitions, composition laws, batch isolation, errors, and the
extension protocol (a subclass, a function mask, checks of their pairs)."""

from dataclasses import dataclass

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.attention import (
    Mask,
    MaskContext,
    adjacency,
    dilated_window,
    global_tokens,
    khop,
    pair_mask,
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


def same_graph(mask_index):
    return mask_index.row_graph.unsqueeze(1) == mask_index.row_graph.unsqueeze(0)


def check_csr(mask_index):
    """Sorted keys, no duplicates, consistent sizes."""
    assert mask_index.rowptr[0] == 0 and mask_index.rowptr[-1] == mask_index.nnz
    assert bool((mask_index.degree() >= 0).all())
    keys = mask_index.row() * mask_index.num_rows + mask_index.col
    assert bool((keys[1:] > keys[:-1]).all())


@given(batches(), st.booleans())
def test_adjacency_matches_definition(graph, self_loops):
    edge_index, batch, pos = graph
    mask_index = adjacency(self_loops=self_loops).build(edge_index, batch=batch)
    check_csr(mask_index)
    expected = adjacency_reference(edge_index, batch.numel(), self_loops)
    assert torch.equal(mask_index.to_dense(), node_dense(mask_index, expected))


@given(batches(), st.integers(1, 4))
def test_khop_matches_breadth_first_search(graph, k):
    edge_index, batch, _ = graph
    mask_index = khop(k).build(edge_index, batch=batch)
    check_csr(mask_index)
    expected = khop_reference(edge_index, batch.numel(), k)
    assert torch.equal(mask_index.to_dense(), node_dense(mask_index, expected))


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
    mask_index = mask.build(edge_index, pos=pos, batch=batch)
    check_csr(mask_index)
    positions = positions_from_order(global_order, batch)
    expected = window_reference(positions, batch, size, dilation)
    assert torch.equal(mask_index.to_dense(), node_dense(mask_index, expected))


@given(batches(), st.integers(0, 3), st.integers(0, 3))
def test_global_tokens_layout_and_pairs(graph, g, other):
    edge_index, batch, _ = graph
    mask = global_tokens(g) | global_tokens(other) if other else global_tokens(g)
    mask_index = mask.build(edge_index, batch=batch)
    tokens = max(g, other)
    assert mask_index.tokens_per_graph == tokens
    assert mask_index.num_rows == batch.numel() + tokens * mask_index.num_graphs
    # Tokens come first in each graph's block, then the graph's nodes.
    for graph_id in range(mask_index.num_graphs):
        rows = torch.nonzero(mask_index.row_graph == graph_id).view(-1)
        assert torch.equal(rows[:tokens], mask_index.token_rows[graph_id])
    expected = token_reference(mask_index, g) | token_reference(mask_index, other)
    assert torch.equal(mask_index.to_dense(), expected)
    rows = torch.cat([mask_index.node_rows, mask_index.token_rows.view(-1)])
    assert torch.equal(torch.sort(rows).values, torch.arange(mask_index.num_rows))


@given(batches(), st.floats(0.0, 2.0), st.integers(0, 100))
def test_random_jumps_symmetric_inside_graphs_and_reproducible(graph, ratio, seed):
    edge_index, batch, _ = graph
    mask_index = random_jumps(ratio, seed=seed).build(edge_index, batch=batch)
    dense = mask_index.to_dense()
    assert torch.equal(dense, dense.t())
    assert not bool(dense.diagonal().any())
    assert not bool((dense & ~same_graph(mask_index)).any())
    graphs = mask_index.row_graph[mask_index.row()]
    per_graph = torch.bincount(graphs, minlength=mask_index.num_graphs)
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
        mask_index = mask.build(edge_index, pos=pos, batch=batch)
        # Compare in a common layout: both sides get the larger token count.
        return mask_index, mask_index.to_dense()

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




# ------------------------------------------------------------------- the extension protocol


@dataclass(frozen=True, repr=False)
class Radius(Mask):
    """Pairs of nodes of one graph within distance ``r`` (brute force, for the tests)."""

    r: float
    needs_pos = True

    def pairs(self, ctx):
        close = torch.cdist(ctx.pos, ctx.pos) <= self.r
        close &= ctx.batch.unsqueeze(0) == ctx.batch.unsqueeze(1)
        query, key = close.nonzero().unbind(1)
        return ctx.node_rows[query], ctx.node_rows[key]

    def __repr__(self):
        return f"radius({self.r})"


def radius_reference(pos, batch, r):
    n = batch.numel()
    return torch.tensor([[bool(batch[i] == batch[j] and (pos[i] - pos[j]).norm() <= r)
                          for j in range(n)] for i in range(n)])


@given(batches(), st.floats(0.0, 0.8))
def test_a_subclassed_mask_builds_and_composes(graph, r):
    edge_index, batch, pos = graph
    mask_index = Radius(r).build(edge_index, pos=pos, batch=batch)
    check_csr(mask_index)
    expected = radius_reference(pos, batch, r)
    assert torch.equal(mask_index.to_dense(), node_dense(mask_index, expected))
    both = (Radius(r) | global_tokens(1)) & (adjacency() | global_tokens(1))
    built = both.build(edge_index, pos=pos, batch=batch)
    adjacent = adjacency_reference(edge_index, batch.numel(), True)
    nodes = built.to_dense()[built.node_rows][:, built.node_rows]
    assert torch.equal(nodes, expected & adjacent)
    assert repr(both) == "(radius(" + repr(r) + ") | global_tokens(1)) & (adjacency() | " \
        "global_tokens(1))"


def test_declarations_of_parts_carry_to_expressions():
    assert Radius(0.1).needs_pos and not adjacency().needs_pos
    assert (adjacency() | Radius(0.1)).needs_pos and (khop(2) & Radius(0.1)).needs_pos
    assert dilated_window(1, order="morton").needs_pos
    assert not dilated_window(1, order="rcm").needs_pos
    assert (khop(2) | global_tokens(3) | global_tokens(1)).tokens_per_graph == 3
    assert (Radius(0.1) & global_tokens(2)).tokens_per_graph == 2
    edge_index = torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match=r"pos is required: radius\(0.1\) uses node coordinates"):
        (adjacency() | Radius(0.1)).build(edge_index)


def test_a_function_mask_equals_the_subclass():
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    pos = torch.tensor([[0.0], [0.1], [0.5], [0.55], [2.0]])

    def close_pairs(ctx):
        return Radius(0.2).pairs(ctx)

    made = pair_mask(close_pairs, needs_pos=True)
    assert repr(made) == "pair_mask(close_pairs)"
    assert repr(pair_mask(close_pairs, name="close")) == "close"
    assert made == pair_mask(close_pairs, needs_pos=True) and made != pair_mask(close_pairs)
    got = (made | adjacency()).build(edge_index, pos=pos).to_dense()
    assert torch.equal(got, (Radius(0.2) | adjacency()).build(edge_index, pos=pos).to_dense())
    with pytest.raises(ValueError, match="pos is required"):
        made.build(edge_index)
    with pytest.raises(TypeError, match="function must be callable"):
        pair_mask(3)
    with pytest.raises(TypeError, match="needs_pos must be a bool"):
        pair_mask(close_pairs, needs_pos="yes")


@pytest.mark.parametrize(
    ("pairs", "error", "match"),
    [
        (lambda ctx: ([0], [1]), TypeError, "two 1-D integer tensors"),
        (lambda ctx: (torch.tensor([0.0]), torch.tensor([1.0])), TypeError, "not int64"),
        (lambda ctx: (torch.tensor([0, 1]), torch.tensor([1])), ValueError, "2 query rows but 1"),
        (lambda ctx: (torch.tensor([0]), torch.tensor([9])), ValueError, "outside"),
        (lambda ctx: (torch.tensor([0]), torch.tensor([4])), ValueError, "joining two graphs"),
    ],
)
def test_invalid_pairs_of_a_new_mask_are_refused(pairs, error, match):
    edge_index = torch.tensor([[0, 3], [1, 4]])
    batch = torch.tensor([0, 0, 0, 1, 1])
    with pytest.raises(error, match=r"pair_mask\(<lambda>\): pairs\(ctx\).*" + match):
        (adjacency() | pair_mask(pairs)).build(edge_index, batch=batch)


def test_built_in_masks_answer_the_public_pairs_method():
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])
    ctx = MaskContext(edge_index, tokens_per_graph=1)
    query, key = khop(2).pairs(ctx)
    assert query.shape == key.shape and bool((ctx.row_graph[query] == ctx.row_graph[key]).all())
    union = khop(1) | global_tokens(1)
    query, key = union.pairs(ctx)
    dense = torch.zeros(ctx.num_rows, ctx.num_rows, dtype=torch.bool)
    dense[query, key] = True
    assert torch.equal(dense, union.build(edge_index).to_dense())
    with pytest.raises(NotImplementedError, match="Bare must implement pairs"):
        type("Bare", (Mask,), {})().build(edge_index)


def test_a_pairs_method_returning_something_else_is_named():
    mask = pair_mask(lambda ctx: None, name="nothing")
    with pytest.raises(TypeError, match=r"nothing: pairs\(ctx\) must return \(query_rows"):
        mask.build(torch.tensor([[0, 1], [1, 2]]))
