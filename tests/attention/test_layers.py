"""GraphAttention: the layer owns its tokens, reuses a built mask, checks its arguments."""

import pytest
import torch

from gnnagg.attention import GraphAttention, adjacency, global_tokens


def random_edges(n=24, edges=70, seed=0):
    return torch.randint(0, n, (2, edges), generator=torch.Generator().manual_seed(seed))


def test_graph_attention_layer_owns_tokens_and_matches_prebuilt_mask():
    edge_index = random_edges()
    layer = GraphAttention(8, heads=2, mask=adjacency() | global_tokens(1)).double()
    feats = torch.randn(24, 8, dtype=torch.float64)
    out = layer(feats, edge_index)
    assert out.shape == (24, 8) and layer.tokens.shape == (1, 8)
    mask_index = layer.mask.build(edge_index, num_nodes=24)
    torch.testing.assert_close(layer(feats, mask_index=mask_index), out)
    assert "heads=2" in repr(layer) and "backend='auto'" in repr(layer)


@pytest.mark.parametrize("backend", ["sparse", "dense"])
def test_backends_give_the_same_layer_output(backend):
    edge_index = random_edges()
    torch.manual_seed(0)
    layer = GraphAttention(8, heads=2, backend=backend).double()
    torch.manual_seed(0)
    auto = GraphAttention(8, heads=2).double()
    feats = torch.randn(24, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(feats, edge_index), auto(feats, edge_index))


def test_layer_arguments_are_checked():
    with pytest.raises(ValueError, match="channels=10 must be divisible by heads=4"):
        GraphAttention(10, heads=4)
    with pytest.raises(TypeError, match="mask must be a Mask"):
        GraphAttention(8, heads=2, mask="khop")
    with pytest.raises(ValueError, match="backend must be one of"):
        GraphAttention(8, heads=2, backend="fast")
    with pytest.raises(ValueError, match="dropout must be in"):
        GraphAttention(8, heads=2, dropout=1.0)
    with pytest.raises(ValueError, match="x has 23 rows but the mask was built for 24"):
        GraphAttention(8, 2)(torch.randn(23, 8),
                             mask_index=adjacency().build(random_edges(), num_nodes=24))


def test_lazy_input_width_sizes_projections_and_tokens_at_the_first_forward():
    edge_index = random_edges()
    layer = GraphAttention(8, heads=2, mask=adjacency() | global_tokens(2), in_channels=-1)
    assert "in_channels=-1" in repr(layer)
    out = layer(torch.randn(24, 5), edge_index)
    assert out.shape == (24, 8) and layer.tokens.shape == (2, 5) and layer.in_channels == 5
    out.sum().backward()
    assert layer.tokens.grad is not None and layer.query.weight.shape == (8, 5)
    wide = GraphAttention(8, heads=2, in_channels=5)
    assert wide(torch.randn(24, 5), edge_index).shape == (24, 8)
    with pytest.raises(ValueError, match="in_channels"):
        GraphAttention(8, in_channels=0)


@pytest.mark.parametrize(
    "x, error, match",
    [
        (torch.randn(24, 6), ValueError, r"x must be \[num_nodes, 8\], got shape \(24, 6\)"),
        (torch.randn(24), ValueError, r"x must be \[num_nodes, 8\]"),
        (torch.randn(24, 8, dtype=torch.float64), TypeError, "x has dtype torch.float64 but"),
        (torch.ones(24, 8, dtype=torch.int64), TypeError, "x must be floating point"),
        (torch.randn(24, 8).to_sparse(), TypeError, "x must be a dense tensor"),
        ([[0.0] * 8] * 24, TypeError, "x must be a torch.Tensor"),
    ],
)
def test_bad_features_are_named(x, error, match):
    with pytest.raises(error, match=match):
        GraphAttention(8, 2)(x, random_edges())


@pytest.mark.parametrize(
    "edge_index, error, match",
    [
        (torch.tensor([[0, 30], [1, 2]]), ValueError, "edge_index has node ids outside"),
        (torch.tensor([[0, -1], [1, 2]]), ValueError, "edge_index has node ids outside"),
        (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), TypeError, "edge_index must be int64"),
    ],
)
def test_bad_edges_are_named(edge_index, error, match):
    with pytest.raises(error, match=match):
        GraphAttention(8, 2)(torch.randn(24, 8), edge_index)


def test_sparse_attention_inputs_and_a_bad_bias_are_named():
    from gnnagg.attention import graph_attention

    mask_index = adjacency().build(random_edges(), num_nodes=24)
    q = torch.randn(24, 2, 4)
    with pytest.raises(TypeError, match="q must be a dense tensor"):
        graph_attention(q.to_sparse(), q, q, mask_index)
    with pytest.raises(TypeError, match="bias must be a bool"):
        GraphAttention(8, 2, bias="no")
