"""MeshGraphNet: the reference's processor step (a naive per-node implementation), aggregators
from PyG and gnnagg, equivariance, size and argument checks."""

import pytest
import torch
from torch_geometric.nn.aggr import MeanAggregation, MultiAggregation, SoftmaxAggregation

from gnnagg.aggr import GRUAggregation, LCMAggregation
from gnnagg.models import MeshGraphNet, mesh_edge_features

from .model_graphs import permuted, random_graph


def naive_forward(model, x, edge_index, edge_attr):
    """DeepMind's GraphNetBlock, one node and one edge at a time: the node update sums the edge
    MLP's outputs e' over the incoming edges, then both residuals."""
    h, e = model.node_encoder(x), model.edge_encoder(edge_attr)
    src, dst = edge_index.tolist()
    for step in model.processor:
        new_e = torch.stack([step.edge_mlp(torch.cat([h[s], h[d], e[k]]))
                             for k, (s, d) in enumerate(zip(src, dst))])
        new_h = []
        for node in range(h.size(0)):
            incoming = [new_e[k] for k, d in enumerate(dst) if d == node]
            total = torch.stack(incoming).sum(0) if incoming else torch.zeros_like(h[node])
            new_h.append(step.node_mlp(torch.cat([h[node], total])))
        h, e = h + torch.stack(new_h), e + new_e
    return model.decoder(h)


def test_sum_processor_equals_a_naive_per_node_reference():
    x, edge_index, pos = random_graph(n=12, edges=30)
    edge_index = torch.cat([edge_index, torch.tensor([[0], [11]])], dim=1)  # node 11: one edge
    torch.manual_seed(0)
    model = MeshGraphNet(5, 8, 2, edge_dim=4, num_layers=2).double()
    edge_attr = mesh_edge_features(edge_index, pos)
    with torch.no_grad():
        torch.testing.assert_close(model(x, edge_index, edge_attr),
                                   naive_forward(model, x, edge_index, edge_attr))


def test_mesh_graph_net_shapes_equivariance_and_size():
    x, edge_index, pos = random_graph()
    torch.manual_seed(0)
    model = MeshGraphNet(5, 32, 2, edge_dim=4, num_layers=3).double()
    out = model(x, edge_index, pos=pos)
    assert out.shape == (24, 2)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(2))
    x2, e2, p2, _ = permuted(x, edge_index, pos, perm)
    torch.testing.assert_close(model(x2, e2, pos=p2), out[perm])
    torch.testing.assert_close(
        model(x, edge_index, edge_attr=mesh_edge_features(edge_index, pos)), out
    )
    # DeepMind's CylinderFlow configuration: 11 node inputs, 2-D relative position + length.
    cylinder = MeshGraphNet(11, 128, 2, edge_dim=3)
    assert 2.2e6 < sum(p.numel() for p in cylinder.parameters()) < 2.4e6


@pytest.mark.parametrize(
    "aggr",
    [
        "mean",
        MeanAggregation(),
        ["sum", "max"],
        SoftmaxAggregation(learn=True),
        LCMAggregation(16, 16, monoid="softmax"),
        LCMAggregation(16, 16),
        GRUAggregation(16, 16),
    ],
    ids=["mean", "mean-module", "multi", "pyg-softmax", "lcm-softmax", "lcm-gru", "gru"],
)
def test_aggregators_train_with_one_module_per_step(aggr):
    x, edge_index, pos = random_graph()
    torch.manual_seed(0)
    model = MeshGraphNet(5, 16, 2, edge_dim=4, num_layers=2, aggr=aggr)
    steps = [step.aggr for step in model.processor]
    assert steps[0] is not steps[1] and all(step is not aggr for step in steps)
    loss = model(x.float(), edge_index, pos=pos.float()).square().mean()
    loss.backward()
    learned = [p for step in steps for p in step.parameters()]
    assert all(p.grad is not None for p in learned)
    if learned:  # steps learn separately: no parameter is shared between them
        first = {id(p) for p in steps[0].parameters()}
        assert first.isdisjoint(id(p) for p in steps[1].parameters())


def test_aggregator_names_take_resolver_arguments():
    model = MeshGraphNet(5, 16, 2, edge_dim=4, num_layers=1, aggr="softmax",
                         aggr_kwargs={"learn": True})
    assert isinstance(model.processor[0].aggr, SoftmaxAggregation)
    assert model.processor[0].aggr.learn
    multi = MeshGraphNet(5, 16, 2, edge_dim=4, num_layers=1, aggr=MultiAggregation(["sum", "max"]))
    assert multi.processor[0].node_mlp[0].in_features == 16 + 32


def test_mesh_graph_net_arguments_are_checked():
    with pytest.raises(ValueError, match="num_layers must be at least 1"):
        MeshGraphNet(3, 8, 1, edge_dim=4, num_layers=0)
    with pytest.raises(TypeError, match="edge_dim"):
        MeshGraphNet(3, 8, 1)
    with pytest.raises(ValueError, match="aggr: Could not resolve"):
        MeshGraphNet(3, 8, 1, edge_dim=4, aggr="median-of-three")
    with pytest.raises(TypeError, match="aggr must be an aggregation name"):
        MeshGraphNet(3, 8, 1, edge_dim=4, aggr=torch.sum)
    with pytest.raises(ValueError, match="aggr takes 16 input channels but .* hidden_channels=8"):
        MeshGraphNet(3, 8, 1, edge_dim=4, aggr=LCMAggregation(16, 16))
    with pytest.raises(ValueError, match="aggr_kwargs: only used with an aggregation name"):
        MeshGraphNet(3, 8, 1, edge_dim=4, aggr=MeanAggregation(), aggr_kwargs={"x": 1})
    model = MeshGraphNet(5, 16, 2, edge_dim=4, num_layers=2)
    x, edge_index, pos = random_graph()
    with pytest.raises(ValueError, match="edge_attr must be"):
        model(x.float(), edge_index, edge_attr=torch.randn(edge_index.size(1), 3))
    with pytest.raises(ValueError, match="pass edge_attr, or pos"):
        model(x.float(), edge_index)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(x=torch.randn(12, 4)), ValueError, r"x must be \[num_nodes, 5\]"),
        (dict(x=torch.randn(12)), ValueError, r"x must be \[num_nodes, 5\]"),
        (dict(x=torch.randn(12, 5, dtype=torch.float64)), TypeError, "x has dtype torch.float64"),
        (dict(x=torch.ones(12, 5, dtype=torch.int64)), TypeError, "x must be floating point"),
        (dict(edge_index=torch.tensor([[0, -1], [1, 2]])), ValueError, r"ids in \[-1, 2\]"),
        (dict(edge_index=torch.tensor([[0, 12], [1, 2]])), ValueError, "outside"),
        (dict(edge_index=torch.tensor([[0.0, 1.0], [1.0, 2.0]])), TypeError, "int64 or int32"),
        (dict(edge_index=torch.tensor([0, 1])), ValueError, r"edge_index must be \[2, num_edges\]"),
        (dict(pos=torch.randn(12, 2)), ValueError, r"pos must be \[num_nodes=12, edge_dim - 1=3\]"),
        (dict(pos=torch.ones(12, 3, dtype=torch.int64)), TypeError, "pos must be floating point"),
    ],
)
def test_bad_inputs_are_named(change, error, match):
    x, edge_index, pos = random_graph(n=12, edges=30)
    model = MeshGraphNet(5, 8, 2, edge_dim=4, num_layers=1)
    inputs = dict(x=x.float(), edge_index=edge_index, pos=pos.float()) | change
    with pytest.raises(error, match=match):
        model(**inputs)


def test_a_negative_node_id_is_not_the_last_node():
    x, edge_index, pos = random_graph(n=12, edges=30)
    model = MeshGraphNet(5, 8, 2, edge_dim=4, num_layers=1).double()
    edge_index = edge_index.clone()
    edge_index[0, 0] = -1
    with pytest.raises(ValueError, match="edge_index has node ids"):
        model(x, edge_index, pos=pos)
