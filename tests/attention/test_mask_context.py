"""MaskContext: the row layout a mask sees (tokens first in each graph's block) and its checks."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.attention import MaskContext

from .attention_graphs import batches


@given(batches(), st.integers(0, 3))
def test_rows_are_laid_out_graph_by_graph_tokens_first(graph, tokens):
    edge_index, batch, pos = graph
    ctx = MaskContext(edge_index, pos=pos, batch=batch, tokens_per_graph=tokens)
    assert ctx.num_nodes == batch.numel()
    assert ctx.num_rows == ctx.num_nodes + tokens * ctx.num_graphs
    assert torch.equal(ctx.counts, torch.bincount(batch, minlength=ctx.num_graphs))
    rows = torch.cat([ctx.node_rows, ctx.token_rows.reshape(-1)])
    assert torch.equal(torch.sort(rows).values, torch.arange(ctx.num_rows))
    for graph_id in range(ctx.num_graphs):
        block = torch.nonzero(ctx.row_graph == graph_id).view(-1)
        nodes = torch.nonzero(batch == graph_id).view(-1)
        assert torch.equal(block[:tokens], ctx.token_rows[graph_id])
        assert torch.equal(block[tokens:], ctx.node_rows[nodes])  # nodes in index order


def test_one_graph_by_default_and_sizes_inferred():
    ctx = MaskContext(torch.tensor([[0, 1], [1, 2]]))
    assert ctx.num_nodes == 3 and ctx.num_graphs == 1 and ctx.pos is None
    assert torch.equal(ctx.node_rows, torch.arange(3)) and ctx.token_rows.shape == (1, 0)
    assert MaskContext(torch.zeros(2, 0, dtype=torch.long), pos=torch.rand(5, 2)).num_nodes == 5
    assert "nodes=3" in repr(ctx)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"edge_index": torch.zeros(3, 2, dtype=torch.long)}, ValueError, "edge_index must be"),
        ({"edge_index": torch.zeros(2, 1)}, TypeError, "edge_index must be int64"),
        ({"num_nodes": 2}, ValueError, "edge_index has node ids outside"),
        ({"num_nodes": -1}, ValueError, "num_nodes must be non-negative"),
        ({"pos": torch.rand(2, 3), "num_nodes": 3}, ValueError, "pos must be"),
        ({"pos": torch.ones(3, 2, dtype=torch.long)}, TypeError, "pos must be floating"),
        ({"batch": torch.tensor([0, 1]), "num_nodes": 3}, ValueError, "batch must be"),
        ({"batch": torch.tensor([0, -1, -1])}, ValueError, "negative graph ids"),
        ({"batch": torch.tensor([0, 0, 1])}, ValueError, "joins nodes of different graphs"),
        ({"generator": 3}, TypeError, "generator must be"),
        ({"tokens_per_graph": -1}, ValueError, "tokens_per_graph must be non-negative"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, error, match):
    options = {"edge_index": torch.tensor([[0, 1], [1, 2]])} | kwargs
    with pytest.raises(error, match=match):
        MaskContext(**options)
