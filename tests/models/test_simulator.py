"""MeshSimulator and its evaluation: the learned path with an exact network, rollouts, the
1-step and rollout RMSEs against direct computations, adapters and features."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from gnnagg.data import NODE_TYPES
from gnnagg.models import (
    EdgeFeatureModel,
    MeshSimulator,
    MeshStepModel,
    NodeFeatureModel,
    edge_input_channels,
    node_input_channels,
    one_step_rmse,
    rollout,
    rollout_rmse,
)

from .step_models import NormalisedSolverOracle, Recorder, TinyMessagePassing

OBSTACLE = NODE_TYPES.index("obstacle")


def feed_normalizers(simulator, sim, batches=4):
    """What training does first: the normalisers see a few batches of transitions."""
    free = sim.node_type != OBSTACLE
    for first in range(batches):
        traj = sim.split("train")[[first % 2, (first + 1) % 2]]
        u, nxt = sim.u[traj, first], sim.u[traj, first + 1]
        simulator(u, traj, sim, accumulate=True)
        simulator.output_normalizer((nxt - u)[:, free].reshape(-1, 1), accumulate=True)


def test_learned_path_with_an_exact_network_has_zero_rollout_error(sim64):
    oracle = NormalisedSolverOracle(sim64)
    simulator = MeshSimulator(oracle, 2).double()
    oracle.simulator.append(simulator)
    feed_normalizers(simulator, sim64)  # non-trivial normalisers, as after training
    assert int(simulator.node_normalizer.accumulations) == 4
    assert not torch.allclose(simulator.output_normalizer.std(), torch.ones(1, dtype=torch.float64))
    result = rollout_rmse(simulator, sim64)
    assert result["rmse"] < 1e-9
    assert one_step_rmse(simulator, sim64) < 1e-9


def test_rmse_of_persistence_matches_a_direct_computation(sim64):
    class Persistence:
        def predict_next(self, u, trajectories, sim):
            return u.clone()

    result = rollout_rmse(Persistence(), sim64, split="train", batch_size=1)
    ids = sim64.splits["train"]
    free = sim64.node_type != OBSTACLE
    u = sim64.u[ids].numpy()
    # Persistence keeps u0 on free nodes; obstacle nodes are held at the truth.
    errors = (u[:, 1:] - u[:, :1])[:, :, free.numpy()]
    per_step = np.sqrt((errors**2).mean(axis=(0, 2)))
    np.testing.assert_allclose(result["rmse_per_step"], per_step, rtol=1e-12)
    assert result["rmse"] == pytest.approx(math.sqrt((errors**2).mean()), rel=1e-12)
    one_step = (u[:, 1:] - u[:, :-1])[:, :, free.numpy()]
    assert one_step_rmse(Persistence(), sim64, split="train") == pytest.approx(
        math.sqrt((one_step**2).mean()), rel=1e-12
    )
    # A stride keeps the transitions from steps 0, 3, 6, ...
    strided = one_step_rmse(Persistence(), sim64, split="train", stride=3)
    assert strided == pytest.approx(math.sqrt((one_step[:, ::3] ** 2).mean()), rel=1e-12)
    with pytest.raises(ValueError, match="stride"):
        one_step_rmse(Persistence(), sim64, stride=0)


def test_rollout_holds_obstacle_nodes_and_checks_arguments(sim64):
    class Zeros:
        def predict_next(self, u, trajectories, sim):
            return torch.zeros_like(u)

    predicted, seconds = rollout(Zeros(), sim64, [0, 2], num_steps=3)
    assert predicted.shape == (2, 4, sim64.num_nodes) and seconds >= 0
    obstacle = sim64.node_type == OBSTACLE
    assert (predicted[:, 1:, obstacle] == 1).all()
    assert (predicted[:, 1:, ~obstacle] == 0).all()
    torch.testing.assert_close(predicted[:, 0], sim64.u[[0, 2], 0])
    with pytest.raises(ValueError, match="trajectories"):
        rollout(Zeros(), sim64, [7])
    with pytest.raises(ValueError, match="num_steps"):
        rollout(Zeros(), sim64, [0], num_steps=99)
    with pytest.raises(ValueError, match="split"):
        rollout_rmse(Zeros(), sim64, split="holdout")


def test_adapters_pass_what_each_model_family_takes(sim32):
    node_model, edge_model = Recorder(), Recorder()
    for adapter in (
        NodeFeatureModel(node_model),
        EdgeFeatureModel(edge_model),
    ):
        assert isinstance(adapter, MeshStepModel)
        simulator = MeshSimulator(adapter, 2)
        out = simulator(sim32.u[[0, 1], 0], torch.tensor([0, 1]), sim32)
        assert out.shape == (2, sim32.num_nodes)
    ((args, kwargs),) = node_model.calls
    assert len(args) == 2 and set(kwargs) == {"pos", "batch"}
    assert kwargs["pos"].shape == (2 * sim32.num_nodes, 2)
    assert kwargs["batch"].tolist() == [0] * sim32.num_nodes + [1] * sim32.num_nodes
    assert args[1].max() == 2 * sim32.num_nodes - 1
    ((args, kwargs),) = edge_model.calls
    assert len(args) == 3 and kwargs == {}
    assert args[2].shape == (args[1].shape[1], edge_input_channels(2))
    assert args[0].shape == (2 * sim32.num_nodes, node_input_channels(2))


def test_node_features_carry_state_type_and_trajectory_constants(sim32):
    simulator = MeshSimulator(Recorder(), 2, position_features=True)
    x = simulator.node_features(sim32.u[[2], 3], torch.tensor([2]), sim32)
    assert x.shape == (sim32.num_nodes, node_input_channels(2, position_features=True))
    torch.testing.assert_close(x[:, 0], sim32.u[2, 3])
    assert torch.equal(x[:, 1:4].argmax(1), sim32.node_type)
    torch.testing.assert_close(x[:, 4], sim32.kappa[2].float().expand(sim32.num_nodes))
    torch.testing.assert_close(x[:, 5:7], sim32.drift[2].float().expand(sim32.num_nodes, 2))
    torch.testing.assert_close(x[:, 7:], sim32.pos)


def test_wrong_model_output_shape_is_named(sim32):
    class Wide(nn.Module):
        def forward(self, x, edge_index, *, pos, edge_attr, batch):
            return torch.zeros(x.shape[0], 2)

    with pytest.raises(ValueError, match="model"):
        MeshSimulator(Wide(), 2)(sim32.u[[0], 0], torch.tensor([0]), sim32)


def test_mesh_cache_never_serves_another_data_set(sim32, sim64):
    simulator = MeshSimulator(Recorder(), 2)
    first = simulator.batched_mesh(sim32, [0])
    assert torch.equal(first.edge_index, sim32.edge_index)
    # Pretend sim64 got a freed data set's id: the stale entries must not be used.
    for cache in (simulator._parts, simulator._batches):
        for key, value in list(cache.items()):
            cache[(id(sim64),) + key[1:]] = value
    second = simulator.batched_mesh(sim64, [0])
    assert torch.equal(second.edge_index, sim64.edge_index)


def test_batched_mesh_joins_each_trajectory_s_own_mesh(sim_varied):
    simulator = MeshSimulator(Recorder(), 2)
    ids = torch.tensor([2, 0, 2])
    mesh = simulator.batched_mesh(sim_varied, ids)
    n = sim_varied.num_nodes
    graphs = [sim_varied.graph(int(t)) for t in ids]
    expected = torch.cat([g.edge_index + b * n for b, g in enumerate(graphs)], dim=1)
    assert torch.equal(mesh.edge_index, expected)
    torch.testing.assert_close(mesh.pos, torch.cat([g.pos for g in graphs]))
    assert torch.equal(mesh.obstacle, sim_varied.node_types(ids) == OBSTACLE)
    assert torch.equal(mesh.batch, torch.arange(3).repeat_interleave(n))
    assert mesh.edge_attr.shape == (expected.shape[1], edge_input_channels(2))
    assert simulator.batched_mesh(sim_varied, ids) is mesh  # kept for the next step


def test_learned_path_is_exact_on_varied_geometry(sim_varied):
    oracle = NormalisedSolverOracle(sim_varied)
    simulator = MeshSimulator(oracle, 2).double()
    oracle.simulator.append(simulator)
    assert rollout_rmse(simulator, sim_varied, "test")["rmse"] < 1e-5
    assert one_step_rmse(simulator, sim_varied, "test") < 1e-5


def test_simulator_follows_its_network_dtype_and_checks_arguments(sim32):
    network = EdgeFeatureModel(TinyMessagePassing(node_input_channels(2), edge_input_channels(2)))
    simulator = MeshSimulator(network, 2).double()
    assert simulator.dtype == torch.float64 and simulator.device == torch.device("cpu")
    assert simulator.batched_mesh(sim32, [0, 1]).edge_attr.dtype == torch.float64
    nxt = simulator.predict_next(sim32.u[[0], 0].double(), torch.tensor([0]), sim32)
    assert nxt.shape == (1, sim32.num_nodes) and nxt.dtype == torch.float64
    with pytest.raises(ValueError, match="dim"):
        MeshSimulator(network, 4)
    with pytest.raises(TypeError, match="model"):
        MeshSimulator(lambda *args: None, 2)


def test_batched_mesh_refuses_ids_outside_the_data_set(sim32):
    simulator = MeshSimulator(Recorder(), 2)
    for ids in ([], [-1], [sim32.num_trajectories]):
        with pytest.raises(ValueError, match="trajectories"):
            simulator.batched_mesh(sim32, ids)


@pytest.mark.parametrize("trajectories", [[0.5], "0", [True], torch.tensor([0.0])])
def test_rollout_names_trajectory_ids_that_are_not_integers(sim32, trajectories):
    from gnnagg.models import PersistenceBaseline

    with pytest.raises(TypeError, match="trajectories: expected integer trajectory ids"):
        rollout(PersistenceBaseline(), sim32, trajectories)
