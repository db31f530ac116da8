"""GraphTransformer: permutation equivariance, batch isolation, training, argument checks."""

import pytest
import torch

from gnnagg.attention import adjacency, dilated_window, global_tokens, khop, random_jumps
from gnnagg.models import GraphTransformer

from .model_graphs import permuted, random_graph


def transformer(mask, backend="sparse"):
    torch.manual_seed(0)
    return GraphTransformer(5, 16, 3, heads=2, num_layers=2, mask=mask, backend=backend).double()


@pytest.mark.parametrize(
    "mask", [adjacency(), khop(2), khop(2) | global_tokens(2), adjacency(self_loops=False)]
)
@pytest.mark.parametrize("backend", ["sparse", "dense"])
def test_graph_transformer_is_permutation_equivariant(mask, backend):
    x, edge_index, pos = random_graph()
    batch = (torch.arange(24) >= 10).long()
    edge_index = edge_index[:, batch[edge_index[0]] == batch[edge_index[1]]]
    model = transformer(mask, backend)
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
    model = GraphTransformer(5, 16, 2, heads=4, num_layers=1,
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


def test_graph_transformer_reuses_a_built_mask_index():
    x, edge_index, pos = random_graph()
    model = transformer(khop(2) | global_tokens(2))
    built = model.mask.build(edge_index, num_nodes=24)
    torch.testing.assert_close(model(x, mask_index=built), model(x, edge_index))


def test_graph_transformer_arguments_are_checked():
    with pytest.raises(ValueError, match="num_layers must be at least 1"):
        GraphTransformer(3, 8, 1, heads=2, num_layers=0)
    with pytest.raises(ValueError, match="hidden_channels must be at least 1"):
        GraphTransformer(3, 0, 1)
    with pytest.raises(TypeError, match="mask must be a Mask"):
        GraphTransformer(3, 8, 1, heads=2, mask="khop")
    with pytest.raises(ValueError, match="backend must be one of"):
        GraphTransformer(3, 8, 1, heads=2, backend="fast")
    with pytest.raises(ValueError, match="pass edge_index"):
        GraphTransformer(3, 8, 1, heads=2)(torch.randn(4, 3))


@pytest.mark.parametrize(
    "x, edge_index, error, match",
    [
        (torch.randn(6, 4), None, ValueError, r"x must be \[num_nodes, 3\]"),
        (torch.randn(6), None, ValueError, r"x must be \[num_nodes, 3\]"),
        (torch.randn(6, 3, dtype=torch.float64), None, TypeError, "x has dtype torch.float64"),
        (torch.ones(6, 3, dtype=torch.int64), None, TypeError, "x must be floating point"),
        (torch.randn(6, 3), torch.tensor([[0, 7], [1, 2]]), ValueError, "outside"),
        (torch.randn(6, 3), torch.tensor([[0, -1], [1, 2]]), ValueError, "outside"),
        (torch.randn(6, 3), torch.tensor([[0.0, 1.0], [1.0, 2.0]]), TypeError, "int64 or int32"),
    ],
)
def test_bad_inputs_are_named(x, edge_index, error, match):
    model = GraphTransformer(3, 8, 2, heads=2, num_layers=1)
    edge_index = torch.tensor([[0, 1], [1, 2]]) if edge_index is None else edge_index
    with pytest.raises(error, match=match):
        model(x, edge_index)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(hidden_channels=10**30), "hidden_channels=10{30}"),
        (dict(num_layers=10**30), "num_layers=10{30}"),
        (dict(hidden_channels=2**20, num_layers=64), "parameters"),
    ],
)
def test_models_beyond_memory_are_refused_before_any_layer_is_made(monkeypatch, kwargs, match):
    from gnnagg import _checks
    from gnnagg.models import MeshGraphNet

    monkeypatch.setattr(_checks, "available_memory", lambda device: 4 << 30)
    options = dict(hidden_channels=8, num_layers=1) | kwargs
    hidden, layers = options["hidden_channels"], options["num_layers"]
    match = match.replace("10{30}", "1" + "0" * 30)
    with pytest.raises(ValueError, match=match):
        GraphTransformer(3, hidden, 2, heads=1, num_layers=layers)
    with pytest.raises(ValueError, match=match):
        MeshGraphNet(3, hidden, 2, edge_dim=3, num_layers=layers)
