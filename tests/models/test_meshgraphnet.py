"""MeshGraphNet: equivariance, size and argument checks."""

import pytest
import torch
from model_graphs import permuted, random_graph

from gnnagg.models import MeshGraphNet, mesh_edge_features


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


def test_mesh_graph_net_arguments_are_checked():
    with pytest.raises(ValueError, match="num_layers must be at least 1"):
        MeshGraphNet(3, 8, 1, edge_dim=4, num_layers=0)
    with pytest.raises(TypeError, match="edge_dim"):
        MeshGraphNet(3, 8, 1)
    model = MeshGraphNet(5, 16, 2, edge_dim=4, num_layers=2)
    x, edge_index, pos = random_graph()
    with pytest.raises(ValueError, match="edge_attr must be"):
        model(x.float(), edge_index, edge_attr=torch.randn(edge_index.size(1), 3))
    with pytest.raises(ValueError, match="pass edge_attr, or pos"):
        model(x.float(), edge_index)
