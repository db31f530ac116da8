"""k-hop reachability: cached per edge_index tensor, never stale after an in-place change."""

import torch

from gnnagg.attention import hops, khop

from .attention_graphs import khop_reference, node_dense


def test_khop_is_cached_per_graph():
    hops._khop_cache.clear()
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    khop(2).build(edge_index)
    khop(2).build(edge_index)
    assert len(hops._khop_cache) == 1
    edge_index[0, 0] = 3  # an in-place change bumps the version: no stale reuse
    mask_index = khop(2).build(edge_index)
    expected = node_dense(mask_index, khop_reference(edge_index, 4, 2))
    assert torch.equal(mask_index.to_dense(), expected)
