"""The simulator on sub-meshes: the reach of a step model, a partition per mesh of a data set,
the sub-meshes' forward pass (the core losses add up to the whole mesh's) and stitched
rollouts, on one shared mesh and on a mesh per trajectory."""

import pytest
import torch
from torch import nn

from gnnagg.attention import khop
from gnnagg.models import (
    EdgeFeatureModel,
    GraphTransformer,
    MeshGraphNet,
    MeshSimulator,
    NodeFeatureModel,
    SimulationPartitions,
    StitchedSimulator,
    edge_input_channels,
    edge_reach,
    model_reach,
    node_input_channels,
    partition_mesh,
    rollout,
    sub_mesh_forward,
    sub_meshes_forward,
)


def _simulators():
    """A 3-step MeshGraphNet and a 2-block k-hop transformer, wrapped (float64)."""
    mgn = MeshGraphNet(node_input_channels(2), 16, 1, edge_dim=edge_input_channels(2),
                       num_layers=3)
    gt = GraphTransformer(node_input_channels(2, position_features=True), 16, 1, heads=2,
                          num_layers=2, mask=khop(2))
    return [
        (MeshSimulator(EdgeFeatureModel(mgn), 2).double(), None, 3),
        (MeshSimulator(NodeFeatureModel(gt), 2, position_features=True).double(), khop(2), 2),
    ]


def _warm(simulator, sim):
    """Feed the normalisers one batch, so that they are not the identity."""
    simulator(sim.u[:2, 1], torch.tensor([0, 1]), sim, accumulate=True)


def test_model_reach_unwraps_simulators_and_adapters():
    for simulator, mask, depth in _simulators():
        for model in (simulator, simulator.model, simulator.model.model):
            layers, got = model_reach(model)
            assert layers == depth and repr(got) == repr(mask)
    with pytest.raises(TypeError, match="model"):
        model_reach(nn.Linear(2, 2))


def test_a_partition_per_mesh_is_built_once(sim_varied, sim64):
    simulator, _, depth = _simulators()[0]
    partitions = SimulationPartitions.for_model(sim_varied, 3, simulator, method="rcb")
    assert partitions.num_layers == depth and partitions.mask is None
    first = partitions.of(0)
    assert partitions.of(0) is first and list(partitions.built) == [int(sim_varied.mesh_ids[0])]
    graph = sim_varied.graph(0)
    for part in first.parts:  # halos of this trajectory's own mesh
        reach = edge_reach(graph.edge_index, part.core, depth, num_nodes=sim_varied.num_nodes)
        assert torch.equal(torch.sort(part.nodes).values, reach.nonzero().view(-1))
    assert partitions.of(1) is not first  # another mesh
    shared = SimulationPartitions(sim64, 3, num_layers=depth, method="rcb")
    assert shared.of(0) is shared.of(3)  # one mesh for every trajectory
    assert "built=2 of 4 meshes" in repr(partitions)


@pytest.mark.parametrize("index", [0, 1])
def test_stitched_rollout_equals_whole_mesh_rollout_on_a_mesh_per_trajectory(sim_varied, index):
    torch.manual_seed(5)
    simulator, mask, depth = _simulators()[index]
    _warm(simulator, sim_varied)
    partitions = SimulationPartitions(sim_varied, 4, num_layers=depth, mask=mask, method="rcb")
    whole, _ = rollout(simulator, sim_varied, [2, 3], num_steps=3)
    parts, _ = rollout(StitchedSimulator(simulator, partitions), sim_varied, [2, 3], num_steps=3)
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-10)


def test_stitched_rollout_equals_whole_mesh_rollout_on_one_mesh(sim64):
    torch.manual_seed(5)
    for simulator, mask, depth in _simulators():
        _warm(simulator, sim64)
        partition = partition_mesh(sim64.edge_index, 4, num_layers=depth, mask=mask,
                                   pos=sim64.pos, method="rcb")
        whole, _ = rollout(simulator, sim64, [2, 3], num_steps=4)
        parts, _ = rollout(StitchedSimulator(simulator, partition), sim64, [2, 3], num_steps=4)
        torch.testing.assert_close(parts, whole, rtol=0, atol=1e-10)


def test_core_losses_of_the_parts_give_the_whole_mesh_gradient(sim_varied):
    """Summed over the parts, the core losses' gradients are the whole-mesh loss's, with each
    trajectory of the batch on a part of its own mesh: training on every sub-mesh of a batch is
    whole-mesh training, at the halos' extra cost."""
    torch.manual_seed(6)
    simulator, _, depth = _simulators()[0]
    traj, u = torch.tensor([0, 1]), sim_varied.u[:2, 3]
    _warm(simulator, sim_varied)
    params = list(simulator.parameters())
    whole = torch.autograd.grad(simulator(u, traj, sim_varied).pow(2).sum(), params)
    partitions = SimulationPartitions(sim_varied, 3, num_layers=depth, method="morton")
    summed = [torch.zeros_like(p) for p in params]
    for index in range(3):
        parts = [partitions.of(int(t)).parts[index] for t in traj]
        outputs = sub_meshes_forward(simulator, u, traj, sim_varied, parts)
        loss = sum(out[: part.num_core].pow(2).sum() for part, out in zip(parts, outputs))
        for total, grad in zip(summed, torch.autograd.grad(loss, params)):
            total += grad
    for got, expected in zip(summed, whole):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)


def test_sub_mesh_forward_is_one_part_for_every_trajectory_of_a_mesh(sim64):
    simulator, _, depth = _simulators()[0]
    partition = partition_mesh(sim64.edge_index, 4, num_layers=depth, pos=sim64.pos,
                               method="rcb")
    part = partition.parts[0]
    traj, u = torch.tensor([0, 1]), sim64.u[:2, 0]
    out = sub_mesh_forward(simulator, u, traj, sim64, part, accumulate=True)
    assert out.shape == (2, part.num_nodes)
    assert float(simulator.node_normalizer.count) == 2 * part.num_nodes
    separate = sub_meshes_forward(simulator, u, traj, sim64, [part, part])
    torch.testing.assert_close(out, torch.stack(separate), rtol=0, atol=0)


def test_bad_arguments_are_named(sim_varied, sim64):
    simulator, _, depth = _simulators()[0]
    for bad, error in ((0, ValueError), (301, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="num_parts"):
            SimulationPartitions(sim_varied, bad, num_layers=1)
    with pytest.raises(TypeError, match="sim"):
        SimulationPartitions("data", 2, num_layers=1)
    with pytest.raises(TypeError, match="mask"):
        SimulationPartitions(sim_varied, 2, num_layers=1, mask="khop2")
    with pytest.raises(ValueError, match="method"):
        SimulationPartitions(sim_varied, 2, num_layers=1, method="kmeans")
    with pytest.raises(ValueError, match="num_layers"):
        SimulationPartitions(sim_varied, 2, num_layers=-1)
    partitions = SimulationPartitions(sim_varied, 2, num_layers=depth, method="rcb")
    traj, u = torch.tensor([0, 1]), sim_varied.u[:2, 0]
    parts = [partitions.of(0).parts[0], partitions.of(1).parts[0]]
    with pytest.raises(ValueError, match="parts"):
        sub_meshes_forward(simulator, u, traj, sim_varied, parts[:1])
    with pytest.raises(ValueError, match="trajectories"):
        sub_mesh_forward(simulator, u, traj, sim_varied, parts[0])
    with pytest.raises(ValueError, match="trajectories"):
        sub_meshes_forward(simulator, u, torch.tensor([0]), sim_varied, parts)
    with pytest.raises(TypeError, match="trajectories"):
        sub_meshes_forward(simulator, u, torch.tensor([0.0, 1.0]), sim_varied, parts)
    with pytest.raises(ValueError, match="u"):
        sub_meshes_forward(simulator, u[:, :10], traj, sim_varied, parts)
    with pytest.raises(TypeError, match=r"parts\[1\]"):
        sub_meshes_forward(simulator, u, traj, sim_varied, [parts[0], "part"])
    with pytest.raises(TypeError, match="part"):
        sub_mesh_forward(simulator, u, traj, sim_varied, parts)
    with pytest.raises(TypeError, match="partitions"):
        StitchedSimulator(simulator, "parts")
    with pytest.raises(TypeError, match="simulator"):
        StitchedSimulator(simulator.model, partitions)
    one = partition_mesh(sim64.edge_index, 2, num_layers=depth, pos=sim64.pos, method="rcb")
    with pytest.raises(ValueError, match="SimulationPartitions"):
        StitchedSimulator(simulator, one).predict_next(u, traj, sim_varied)
    with pytest.raises(ValueError, match="sim"):
        StitchedSimulator(simulator, partitions).predict_next(sim64.u[:2, 0], traj, sim64)
