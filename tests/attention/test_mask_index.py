"""MaskIndex: the CSR's views and conversions, the row layout, FlexAttention block masks."""

import pytest
import torch
from hypothesis import given
from torch.nn.attention.flex_attention import create_block_mask

from gnnagg.attention import adjacency, global_tokens, khop
from gnnagg.attention.mask_index import csr_mask_mod

from .attention_graphs import batches


def check_csr(mask_index):
    """Sorted keys, no duplicates, consistent sizes."""
    assert mask_index.rowptr[0] == 0 and mask_index.rowptr[-1] == mask_index.nnz
    keys = mask_index.row() * mask_index.num_rows + mask_index.col
    assert bool((keys[1:] > keys[:-1]).all())


def test_to_dense_refuses_large_masks():
    mask_index = adjacency().build(torch.tensor([[0], [1]]), num_nodes=100)
    with pytest.raises(ValueError, match="max_entries=1000"):
        mask_index.to_dense(max_entries=1000)


@given(batches())
def test_reorder_and_device_round_trip(graph):
    edge_index, batch, pos = graph
    mask_index = (khop(2) | global_tokens(1)).build(edge_index, pos=pos, batch=batch)
    perm = torch.randperm(mask_index.num_rows, generator=torch.Generator().manual_seed(0))
    moved = mask_index.reorder(perm)
    check_csr(moved)
    assert torch.equal(moved.to_dense(), mask_index.to_dense()[perm][:, perm])
    assert torch.equal(perm[moved.node_rows], mask_index.node_rows)
    assert torch.equal(perm[moved.token_rows], mask_index.token_rows)
    assert torch.equal(mask_index.to("cpu").col, mask_index.col)
    assert torch.equal(mask_index.edge_index[1], mask_index.row())


def test_rows_and_nodes_round_trip_with_tokens():
    edge_index = torch.tensor([[0, 1, 3], [1, 2, 4]])
    batch = torch.tensor([0, 0, 0, 1, 1])
    mask_index = (adjacency() | global_tokens(2)).build(edge_index, batch=batch)
    x = torch.arange(10.0).view(5, 2)
    tokens = torch.tensor([[-1.0, -1.0], [-2.0, -2.0], [-3.0, -3.0]])
    rows = mask_index.to_rows(x, tokens)
    assert rows.shape == (9, 2)
    assert torch.equal(rows[mask_index.node_rows], x)
    assert torch.equal(rows[mask_index.token_rows[1]], tokens[:2])
    assert torch.equal(mask_index.to_nodes(rows), x)
    with pytest.raises(ValueError, match="2 global tokens per graph but 1 token"):
        mask_index.to_rows(x, tokens[:1])
    with pytest.raises(ValueError, match="x has 4 rows but the mask was built for 5"):
        mask_index.to_rows(x[:4], tokens)
    with pytest.raises(ValueError, match="rows has 5 rows but the mask has 9"):
        mask_index.to_nodes(x)


def test_rows_are_the_nodes_themselves_without_tokens():
    mask_index = khop(2).build(torch.tensor([[0, 1], [1, 2]]))
    x = torch.randn(3, 4)
    assert mask_index.to_rows(x) is x and mask_index.to_nodes(x) is x


@pytest.mark.parametrize("block_size", [2, 3, 8, 128])
@pytest.mark.parametrize("separate_full_blocks", [False, True])
def test_block_mask_from_csr_equals_create_block_mask(block_size, separate_full_blocks):
    generator = torch.Generator().manual_seed(block_size)
    edge_index = torch.randint(0, 21, (2, 50), generator=generator)
    batch = (torch.arange(21) >= 12).long()
    edge_index = edge_index[:, batch[edge_index[0]] == batch[edge_index[1]]]
    mask_index = (khop(2) | global_tokens(2)).build(edge_index, batch=batch)
    dense = mask_index.to_dense()
    rows = mask_index.num_rows

    def lookup(b, h, q_idx, kv_idx):
        return dense[q_idx.clamp(max=rows - 1), kv_idx.clamp(max=rows - 1)] & (q_idx < rows) & (
            kv_idx < rows
        )

    expected = create_block_mask(lookup, None, None, rows, rows, device="cpu",
                                 BLOCK_SIZE=block_size, separate_full_blocks=separate_full_blocks)
    got = mask_index.to_block_mask(block_size, separate_full_blocks=separate_full_blocks)

    def ordered(num, idx):
        return [sorted(idx[0, 0, i, : num[0, 0, i]].tolist()) for i in range(num.size(-1))]

    assert ordered(got.kv_num_blocks, got.kv_indices) == ordered(
        expected.kv_num_blocks, expected.kv_indices)
    assert ordered(got.q_num_blocks, got.q_indices) == ordered(
        expected.q_num_blocks, expected.q_indices)
    if separate_full_blocks:
        assert ordered(got.full_kv_num_blocks, got.full_kv_indices) == ordered(
            expected.full_kv_num_blocks, expected.full_kv_indices)
    # The element-wise mask_mod reproduces the CSR exactly.
    q_idx = torch.arange(rows + 3).view(-1, 1)
    kv_idx = torch.arange(rows + 3).view(1, -1)
    zero = torch.zeros((), dtype=torch.int64)
    element = csr_mask_mod(mask_index.rowptr, mask_index.col)(zero, zero, q_idx, kv_idx)
    assert torch.equal(element[:rows, :rows], dense) and not element[rows:].any()


def test_block_density_counts_non_empty_tiles():
    mask_index = adjacency().build(torch.tensor([[0, 5], [5, 0]]), num_nodes=8)
    # Diagonal + (0, 5) + (5, 0) with 4-wide blocks: tiles (0,0), (1,1), (0,1), (1,0).
    assert mask_index.block_density(4) == 1.0
    assert mask_index.block_density(8) == 1.0
    assert adjacency().build(torch.zeros(2, 0, dtype=torch.long), num_nodes=8).block_density(
        4) == 0.5


def test_row_layout_names_bad_inputs():
    from gnnagg.attention import adjacency, global_tokens

    mask_index = (adjacency() | global_tokens(1)).build(torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(ValueError, match=r"tokens must be \[T, 3\] like x"):
        mask_index.to_rows(torch.randn(3, 3), torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"x must be a \[num_nodes, C\] tensor"):
        mask_index.to_rows(torch.randn(3), torch.randn(1))
    with pytest.raises(ValueError, match="rows must be"):
        mask_index.to_nodes(torch.tensor(1.0))
    with pytest.raises(ValueError, match="device"):
        mask_index.to("nowhere")
