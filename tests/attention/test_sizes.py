"""Sizes refused before anything is allocated, with the argument and the bytes named; masks whose
arguments exceed the graph give the pairs the graph allows, without overflow or hang."""

import pytest
import torch

from gnnagg import _checks
from gnnagg.attention import (
    adjacency,
    dilated_window,
    global_tokens,
    khop,
    morton_codes,
    random_jumps,
    reverse_cuthill_mckee,
)

from ..allocations import AllocationLog
from .attention_graphs import khop_reference, node_dense, window_reference

SMALL = dict(edge_index=torch.tensor([[0, 1, 3, 4], [1, 2, 4, 5]]),
             batch=torch.tensor([0, 0, 0, 1, 1, 1]))
NO_EDGES = torch.zeros(2, 0, dtype=torch.int64)


@pytest.fixture
def four_gib(monkeypatch):
    """A device with 4 GiB available, whatever this machine has."""
    monkeypatch.setattr(_checks, "available_memory", lambda device: 4 << 30)


def refused(build, match):
    """``build()`` raises a ValueError matching ``match`` before any tensor over 64 MiB exists."""
    log = AllocationLog()
    with log, pytest.raises(ValueError, match=match):
        build()
    assert log.largest < 64 << 20


@pytest.mark.parametrize("size, dilation", [(10**9, 1), (3, 6148914691236517205), (2, 2**62)])
def test_a_window_wider_than_its_graph_gives_the_pairs_the_graph_allows(size, dilation):
    mask = dilated_window(size, dilation, "index")
    log = AllocationLog()
    with log:
        mask_index = mask.build(**SMALL)
    assert log.largest < 1 << 20
    positions = torch.tensor([0, 1, 2, 0, 1, 2])
    expected = window_reference(positions, SMALL["batch"], size, dilation)
    assert torch.equal(mask_index.to_dense(), node_dense(mask_index, expected))


def test_window_arguments_beyond_int64_are_refused_by_name():
    with pytest.raises(ValueError, match="dilation must be at most"):
        dilated_window(2, 2**64 + 1)
    with pytest.raises(ValueError, match="size must be at most"):
        dilated_window(2**63, 1)


def test_a_window_too_large_for_memory_is_refused(four_gib):
    refused(lambda: dilated_window(10**5, 1, "index").build(NO_EDGES, num_nodes=10**6),
            r"dilated_window\(size=100000.*GiB")


def test_global_tokens_beyond_memory_are_refused(four_gib):
    refused(lambda: global_tokens(10**9).build(**SMALL), r"tokens_per_graph=1000000000.*GiB")
    refused(lambda: global_tokens(10**5).build(NO_EDGES, num_nodes=10**5),
            r"global_tokens\(100000\).*GiB")


@pytest.mark.parametrize(
    "ratio, match",
    [(1e12, r"random_jumps\(1000000000000.0, seed=0\).*291 TiB"),
     (1e300, r"random_jumps\(1e\+300, seed=0\).*beyond int64")],
)
def test_random_jumps_beyond_memory_are_refused(ratio, match):
    refused(lambda: random_jumps(ratio, seed=0).build(**SMALL), match)


def test_node_and_graph_counts_beyond_memory_are_refused(four_gib):
    refused(lambda: adjacency().build(NO_EDGES, num_nodes=2 * 10**9), r"num_nodes=2000000000.*GiB")
    refused(lambda: adjacency().build(NO_EDGES, num_nodes=10**12),
            "num_nodes=1000000000000 is beyond")
    batch = torch.tensor([0, 0, 10**9])
    refused(lambda: adjacency().build(NO_EDGES, batch=batch), r"batch: graph id 1000000000.*GiB")


def test_khop_on_a_large_star_is_refused_before_the_product():
    leaves = torch.arange(1, 50_001)
    star = torch.cat([torch.stack([leaves, torch.zeros_like(leaves)]),
                      torch.stack([torch.zeros_like(leaves), leaves])], dim=1)
    refused(lambda: khop(2).build(star), r"khop\(2\) on 50001 nodes.*GiB")


def test_khop_stops_when_the_reachable_set_stops_growing():
    ring = torch.stack([torch.arange(7), (torch.arange(7) + 1) % 7])
    path = torch.tensor([[0, 1, 2], [1, 2, 3]])
    for edge_index, nodes in ((ring, 7), (path, 4)):
        mask_index = khop(10**9).build(edge_index, num_nodes=nodes)
        expected = khop_reference(edge_index, nodes, nodes)
        assert torch.equal(mask_index.to_dense(), node_dense(mask_index, expected))


def test_to_dense_names_a_bad_max_entries():
    mask_index = adjacency().build(**SMALL)
    with pytest.raises(TypeError, match="max_entries must be an integer"):
        mask_index.to_dense(max_entries="x")


def test_morton_codes_of_huge_coordinates_keep_their_order():
    pos = torch.tensor([[-1e308, 1e308], [1e308, -1e308], [0.0, 0.0], [5e307, 5e307]],
                       dtype=torch.float64)
    codes = morton_codes(pos)
    assert torch.equal(codes, morton_codes(pos / 1e300))
    assert len(set(codes.tolist())) == 4


@pytest.mark.parametrize(
    "batch, error, match",
    [
        (torch.tensor([0, 0]), ValueError, r"batch must be a \[num_nodes=3\]"),
        (torch.tensor([0, -1, 0]), ValueError, "negative graph ids"),
        (torch.tensor([0.0, 0.0, 1.0]), TypeError, "batch must be int64 or int32"),
        ([0, 0, 1], ValueError, "batch must be a"),
    ],
)
def test_morton_codes_name_a_bad_batch(batch, error, match):
    with pytest.raises(error, match=match):
        morton_codes(torch.rand(3, 2), batch)


@pytest.mark.parametrize(
    "edge_index, num_nodes, error, match",
    [
        (torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), 3, ValueError, "outside \\[0, num_nodes=3\\)"),
        (torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), -1, ValueError, "num_nodes must be non-neg"),
        (torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]), 4.0, TypeError, "num_nodes must be an int"),
        (torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 2, TypeError, "edge_index must be int64"),
        (torch.tensor([0, 1]), 2, ValueError, r"edge_index must be a \[2, E\]"),
    ],
)
def test_reverse_cuthill_mckee_names_a_bad_argument(edge_index, num_nodes, error, match):
    with pytest.raises(error, match=match):
        reverse_cuthill_mckee(edge_index, num_nodes)


def test_counts_beyond_the_row_encoding_are_refused_when_the_mask_is_made():
    with pytest.raises(ValueError, match="g must be at most 3000000000"):
        global_tokens(10**30)
    with pytest.raises(ValueError, match="seed must be at most"):
        random_jumps(0.1, seed=10**30)


def test_token_embeddings_beyond_memory_are_refused(four_gib):
    from gnnagg.attention import GraphAttention

    refused(lambda: GraphAttention(512, 8, mask=global_tokens(10**7)), r"global_tokens\(10000000\)")
