"""GraphAttention, GraphTransformer and MeshGraphNet: shapes, equivariance, batch isolation."""

import pytest
import torch

from gnnagg.attention import (
    GraphAttention,
    GraphTransformer,
    MeshGraphNet,
    adjacency,
    dilated_window,
    global_tokens,
    khop,
    mesh_edge_features,
    random_jumps,
)


def random_graph(n=24, edges=70, seed=0):
    generator = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, edges), generator=generator)
    x = torch.randn(n, 5, generator=generator, dtype=torch.float64)
    pos = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    return x, edge_index, pos


def permuted(x, edge_index, pos, perm, batch=None):
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    return x[perm], inverse[edge_index], pos[perm], None if batch is None else batch[perm]


def transformer(mask, path="sparse"):
    torch.manual_seed(0)
    return GraphTransformer(5, 16, out_channels=3, heads=2, layers=2, mask=mask,
                            path=path).double()


@pytest.mark.parametrize(
    "mask", [adjacency(), khop(2), khop(2) | global_tokens(2), adjacency(self_loops=False)]
)
@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_graph_transformer_is_permutation_equivariant(mask, path):
    x, edge_index, pos = random_graph()
    batch = (torch.arange(24) >= 10).long()
    edge_index = edge_index[:, batch[edge_index[0]] == batch[edge_index[1]]]
    model = transformer(mask, path)
    out = model(x, edge_index, pos=pos, batch=batch)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(1))
    out_perm = model(*permuted(x, edge_index, pos, perm)[:2], batch=batch[perm])
    torch.testing.assert_close(out_perm, out[perm])


def test_index_window_is_not_permutation_equivariant():
    """Documented: dilated_window(order="index") depends on node numbering."""
    x, edge_index, pos = random_graph()
    model = transformer(dilated_window(2, 3, "index"))
    out = model(x, edge_index)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(1))
    out_perm = model(*permuted(x, edge_index, pos, perm)[:2])
    assert not torch.allclose(out_perm, out[perm])
    # Morton order follows the coordinates, so it moves with the nodes (no ties here).
    model = transformer(dilated_window(2, 3, "morton"))
    out = model(x, edge_index, pos=pos)
    x2, e2, p2, _ = permuted(x, edge_index, pos, perm)
    torch.testing.assert_close(model(x2, e2, pos=p2), out[perm])


def test_batched_graphs_do_not_interact():
    mask = khop(2) | dilated_window(1, 2, "morton") | global_tokens(2)
    model = transformer(mask)
    graphs = [random_graph(n, 3 * n, seed) for n, seed in ((9, 1), (14, 2), (6, 3))]
    xs, edges, positions, batch, offset = [], [], [], [], 0
    for index, (x, edge_index, pos) in enumerate(graphs):
        xs.append(x)
        edges.append(edge_index + offset)
        positions.append(pos)
        batch.append(torch.full((x.size(0),), index))
        offset += x.size(0)
    out = model(torch.cat(xs), torch.cat(edges, 1), pos=torch.cat(positions),
                batch=torch.cat(batch))
    start = 0
    for x, edge_index, pos in graphs:
        alone = model(x, edge_index, pos=pos)
        torch.testing.assert_close(out[start:start + x.size(0)], alone)
        start += x.size(0)


def test_graph_transformer_trains_with_tokens_dropout_and_jumps():
    x, edge_index, pos = random_graph()
    model = GraphTransformer(5, 16, out_channels=2, heads=4, layers=1,
                             mask=khop(2) | random_jumps(0.2) | global_tokens(3), dropout=0.1)
    generator = torch.Generator().manual_seed(0)
    loss = model(x.float(), edge_index, generator=generator).square().mean()
    loss.backward()
    assert model.tokens.grad is not None and model.tokens.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        y = model(x.float(), edge_index, generator=torch.Generator().manual_seed(0))
        assert torch.equal(y, model(x.float(), edge_index,
                                    generator=torch.Generator().manual_seed(0)))


def test_graph_attention_layer_owns_tokens_and_matches_prebuilt_mask():
    x, edge_index, pos = random_graph()
    layer = GraphAttention(8, heads=2, mask=adjacency() | global_tokens(1)).double()
    feats = torch.randn(24, 8, dtype=torch.float64)
    out = layer(feats, edge_index)
    assert out.shape == (24, 8) and layer.tokens.shape == (1, 8)
    gmask = layer.mask.build(edge_index, num_nodes=24)
    torch.testing.assert_close(layer(feats, gmask=gmask), out)
    assert "heads=2" in repr(layer)


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="channels=10 must be divisible by heads=4"):
        GraphAttention(10, heads=4)
    with pytest.raises(TypeError, match="mask must be a mask expression"):
        GraphAttention(8, heads=2, mask="khop")
    with pytest.raises(ValueError, match="layers must be at least 1"):
        GraphTransformer(3, 8, out_channels=1, heads=2, layers=0)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        MeshGraphNet(3, 4, out_channels=1, steps=0)
    model = MeshGraphNet(5, 4, 16, out_channels=2, steps=2)
    x, edge_index, pos = random_graph()
    with pytest.raises(ValueError, match="edge_attr must be"):
        model(x.float(), edge_index, edge_attr=torch.randn(edge_index.size(1), 3))
    with pytest.raises(ValueError, match="x has 23 rows but the mask was built for 24"):
        GraphAttention(8, 2)(torch.randn(23, 8), gmask=adjacency().build(edge_index,
                                                                          num_nodes=24))


def test_mesh_graph_net_shapes_equivariance_and_size():
    x, edge_index, pos = random_graph()
    torch.manual_seed(0)
    model = MeshGraphNet(5, 4, 32, out_channels=2, steps=3).double()
    out = model(x, edge_index, pos=pos)
    assert out.shape == (24, 2)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(2))
    x2, e2, p2, _ = permuted(x, edge_index, pos, perm)
    torch.testing.assert_close(model(x2, e2, pos=p2), out[perm])
    torch.testing.assert_close(
        model(x, edge_index, edge_attr=mesh_edge_features(edge_index, pos)), out
    )
    # DeepMind's CylinderFlow configuration: 11 node inputs, 2-D relative position + length.
    cylinder = MeshGraphNet(11, 3, out_channels=2)
    assert 2.2e6 < sum(p.numel() for p in cylinder.parameters()) < 2.4e6
