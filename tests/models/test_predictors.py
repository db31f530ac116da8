"""Reference predictors: the exact solver has zero error; persistence and mean Δu are what
their formulas say."""

import pytest
import torch

from gnnagg.data import NODE_TYPES
from gnnagg.models import (
    MeanDeltaBaseline,
    PersistenceBaseline,
    SolverOracle,
    one_step_rmse,
    rollout,
    rollout_rmse,
)

OBSTACLE = NODE_TYPES.index("obstacle")


def test_solver_oracle_has_zero_rollout_error(sim64):
    result = rollout_rmse(SolverOracle(), sim64)
    assert result["rmse"] < 1e-12
    assert len(result["rmse_per_step"]) == sim64.num_steps
    assert max(result["rmse_per_step"]) < 1e-12
    assert one_step_rmse(SolverOracle(), sim64) < 1e-12


def test_solver_oracle_on_float32_data_is_exact_to_storage_precision(sim32):
    result = rollout_rmse(SolverOracle(), sim32, split="val")
    scale = float(sim32.u.abs().max())
    assert result["rmse"] < 1e-6 * scale


def test_persistence_keeps_the_state(sim64):
    u = sim64.u[[0, 1], 3]
    assert torch.equal(PersistenceBaseline().predict_next(u, torch.tensor([0, 1]), sim64), u)
    predicted, _ = rollout(PersistenceBaseline(), sim64, [0], num_steps=2)
    free = sim64.node_type != OBSTACLE
    assert torch.equal(predicted[0, 2, free], sim64.u[0, 0, free])


def test_mean_delta_adds_the_training_mean_change(sim64):
    baseline = MeanDeltaBaseline(sim64)
    train = sim64.u[sim64.split("train")].double()
    expected = (train[:, 1:] - train[:, :-1]).mean(dim=(0, 1))
    torch.testing.assert_close(baseline.mean_delta, expected)
    u = sim64.u[[2], 4]
    torch.testing.assert_close(baseline.predict_next(u, torch.tensor([2]), sim64), u + expected)
    assert one_step_rmse(baseline, sim64) < one_step_rmse(PersistenceBaseline(), sim64) * 10
    assert rollout_rmse(baseline, sim64)["rmse"] > 0
    with pytest.raises(ValueError, match="split"):
        MeanDeltaBaseline(sim64, split="holdout")


def test_solver_oracle_is_exact_on_varied_geometry(sim_varied):
    assert sim_varied.num_meshes == sim_varied.num_trajectories
    assert rollout_rmse(SolverOracle(), sim_varied, "test")["rmse"] < 1e-12


def test_mean_delta_on_varied_geometry_is_the_mean_change_at_each_place(sim_varied):
    import dataclasses

    # A field that grows by 0.5 a step everywhere: the mean change is 0.5 at every place,
    # also on the test trajectory's mesh, which no training trajectory has.
    steps = torch.arange(sim_varied.num_steps + 1, dtype=torch.float64)
    ramp = (0.5 * steps).reshape(1, -1, 1).expand_as(sim_varied.u).clone()
    baseline = MeanDeltaBaseline(dataclasses.replace(sim_varied, u=ramp))
    assert baseline.mean_delta is None and baseline.bin_size > 0
    torch.testing.assert_close(baseline.bin_mean, torch.full_like(baseline.bin_mean, 0.5))
    test = sim_varied.split("test")
    u = sim_varied.u[test, 1]
    torch.testing.assert_close(baseline.predict_next(u, test, sim_varied), u + 0.5)
    # On the real data it is a field over the channel, not one number.
    real = MeanDeltaBaseline(sim_varied)
    assert real.bin_mean.std() > 0
    assert rollout_rmse(real, sim_varied, "test")["rmse"] > 0
