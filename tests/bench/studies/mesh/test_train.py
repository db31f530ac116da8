"""Next-step training of one mesh simulator and its record."""

import math

import pytest
import torch
from torch import nn

from gnnagg.bench.studies.mesh import train
from gnnagg.bench.studies.mesh.config import MeshConfig
from gnnagg.bench.studies.mesh.train import budget_clock, fit_mesh_model, train_and_evaluate
from gnnagg.data import mesh_simulation
from gnnagg.models import EdgeFeatureModel, MeshSimulator, edge_input_channels, node_input_channels


@pytest.fixture(scope="module")
def sim32():
    return mesh_simulation(2, 300, 4, 6, splits=(0.5, 0.25, 0.25), cache=False)


class TinyMessagePassing(nn.Module):
    """A two-step message-passing network called as ``model(x, edge_index, edge_attr)``."""

    def __init__(self, in_channels: int, edge_channels: int, hidden: int = 8):
        super().__init__()
        self.encode = nn.Linear(in_channels, hidden)
        self.message = nn.Linear(2 * hidden + edge_channels, hidden)
        self.update = nn.Linear(2 * hidden, hidden)
        self.decode = nn.Linear(hidden, 1)

    def forward(self, x, edge_index, edge_attr):
        h = torch.relu(self.encode(x))
        src, dst = edge_index
        for _ in range(2):
            m = torch.relu(self.message(torch.cat([h[src], h[dst], edge_attr], dim=1)))
            h = h + torch.relu(
                self.update(torch.cat([h, torch.zeros_like(h).index_add_(0, dst, m)], 1))
            )
        return self.decode(h)


def _tiny_model(dim=2):
    return EdgeFeatureModel(TinyMessagePassing(node_input_channels(dim), edge_input_channels(dim)))


def _config(**changes):
    base = dict(
        nodes=300, trajectories=4, steps=6, ells=(2.0,), models=("mgn-2x8",), epochs=1,
        max_seconds=None, warmup_batches=20, eval_trajectories=None,
    )  # fmt: skip
    return MeshConfig(**(base | changes))


def test_training_reduces_the_loss_and_is_deterministic(sim32):
    config = _config(epochs=4, batch_size=2, lr=3e-3, lr_final=1e-3)

    def fit():
        torch.manual_seed(0)
        simulator = MeshSimulator(_tiny_model(), 2)
        return simulator, fit_mesh_model(simulator, sim32, config, seed=3)

    first, record = fit()
    assert record["epochs"] == 4 and record["stopped_by"] == "epochs"
    assert record["steps"] == 4 * math.ceil(2 * sim32.num_steps / 2)
    assert record["loss_per_epoch"][-1] < record["loss_per_epoch"][0]
    assert record["time_per_epoch_s"] > 0
    second, again = fit()
    assert again["loss_per_epoch"] == record["loss_per_epoch"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_warmup_and_training_feed_the_normalisers(sim32):
    simulator = MeshSimulator(_tiny_model(), 2)
    record = fit_mesh_model(simulator, sim32, _config(batch_size=2, warmup_batches=3))
    assert int(simulator.node_normalizer.accumulations) == 3 + record["steps"]
    assert int(simulator.output_normalizer.accumulations) == 3 + record["steps"]
    assert not torch.allclose(simulator.output_normalizer.std(), torch.ones(1, dtype=torch.float64))


def test_time_budget_stops_training(sim32):
    simulator = MeshSimulator(_tiny_model(), 2)
    config = _config(epochs=None, max_seconds=1e-9, warmup_batches=0)
    record = fit_mesh_model(simulator, sim32, config)
    assert record["stopped_by"] == "max_seconds" and record["steps"] == 0


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_time_budget_counts_the_chosen_clock(sim32, monkeypatch, clock):
    # Each read of the chosen clock advances it by one second, the other clock never moves:
    # a 2.5 s budget then stops after the batch that crosses it, whatever the real time.
    ticks = iter(range(10**6))
    fake = {"cpu": "process_time", "wall": "perf_counter"}[clock]
    still = {"cpu": "perf_counter", "wall": "process_time"}[clock]
    monkeypatch.setattr(train.time, fake, lambda: float(next(ticks)))
    monkeypatch.setattr(train.time, still, lambda: 0.0)
    simulator = MeshSimulator(_tiny_model(), 2)
    config = _config(epochs=None, max_seconds=2.5, warmup_batches=0, budget_clock=clock)
    record = fit_mesh_model(simulator, sim32, config)
    assert record["stopped_by"] == "max_seconds" and record["clock"] == clock
    assert record["steps"] == 1


def test_cpu_budget_clock_is_refused_on_a_gpu():
    assert budget_clock("auto", "cpu")[0] == "cpu"
    assert budget_clock("auto", "cuda:0")[0] == "wall"
    assert budget_clock("wall", "cpu")[0] == "wall"
    with pytest.raises(ValueError, match="budget_clock"):
        budget_clock("cpu", "cuda")


def test_train_and_evaluate_record(sim32):
    record = train_and_evaluate("tiny", _tiny_model, sim32, _config(batch_size=3), seed=1)
    for key in ("num_params", "train_time_s", "time_per_epoch_s", "one_step_rmse",
                "rollout_rmse", "inference_s_per_step"):  # fmt: skip
        assert record[key] > 0, key
    assert record["train_peak_extra_bytes"] >= 0 and record["seed"] == 1
    assert len(record["rollout_rmse_per_step"]) == sim32.num_steps
    assert record["num_params"] == sum(p.numel() for p in _tiny_model().parameters())


def test_config_and_dimension_mismatch_are_refused(sim32):
    simulator = MeshSimulator(EdgeFeatureModel(TinyMessagePassing(8, 4)), 3)
    with pytest.raises(ValueError, match="dim"):
        fit_mesh_model(simulator, sim32, _config())
    with pytest.raises(TypeError, match="config"):
        fit_mesh_model(MeshSimulator(_tiny_model(), 2), sim32, {"epochs": 1})
