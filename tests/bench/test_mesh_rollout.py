"""Next-step training of mesh simulators, the study's records, summaries and field plots."""

import math

import pytest
import torch
from torch import nn

from gnnagg.bench import mesh_rollout
from gnnagg.bench.mesh_rollout import (
    MeshTrainingConfig,
    fit_mesh_model,
    peak_memory_bytes,
    plot_field,
    summarise_mesh_runs,
    train_and_evaluate,
)
from gnnagg.data import mesh_simulation
from gnnagg.models import (
    EdgeFeatureModel,
    MeshSimulator,
    edge_input_channels,
    node_input_channels,
    rollout,
)


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


# --------------------------------------------------------------------------- training


def test_training_reduces_the_loss_and_is_deterministic(sim32):
    config = MeshTrainingConfig(epochs=4, batch_size=2, lr=3e-3, lr_final=1e-3, seed=3)

    def train():
        torch.manual_seed(0)
        simulator = MeshSimulator(_tiny_model(), 2)
        return simulator, fit_mesh_model(simulator, sim32, config)

    first, record = train()
    assert record["epochs"] == 4 and record["stopped_by"] == "epochs"
    assert record["steps"] == 4 * math.ceil(2 * sim32.num_steps / 2)
    assert record["loss_per_epoch"][-1] < record["loss_per_epoch"][0]
    assert record["time_per_epoch_s"] > 0
    second, again = train()
    assert again["loss_per_epoch"] == record["loss_per_epoch"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_warmup_and_training_feed_the_normalisers(sim32):
    simulator = MeshSimulator(_tiny_model(), 2)
    config = MeshTrainingConfig(epochs=1, batch_size=2, warmup_batches=3)
    record = fit_mesh_model(simulator, sim32, config)
    assert int(simulator.node_normalizer.accumulations) == 3 + record["steps"]
    assert int(simulator.output_normalizer.accumulations) == 3 + record["steps"]
    assert not torch.allclose(simulator.output_normalizer.std(), torch.ones(1, dtype=torch.float64))


def test_time_budget_stops_training(sim32):
    simulator = MeshSimulator(_tiny_model(), 2)
    config = MeshTrainingConfig(epochs=None, max_seconds=1e-9, warmup_batches=0)
    record = fit_mesh_model(simulator, sim32, config)
    assert record["stopped_by"] == "max_seconds" and record["steps"] == 0


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_time_budget_counts_the_chosen_clock(sim32, monkeypatch, clock):
    # Each read of the chosen clock advances it by one second, the other clock never moves:
    # a 2.5 s budget then stops after the batch that crosses it, whatever the real time.
    ticks = iter(range(10**6))
    fake = {"cpu": "process_time", "wall": "perf_counter"}[clock]
    still = {"cpu": "perf_counter", "wall": "process_time"}[clock]
    monkeypatch.setattr(mesh_rollout.time, fake, lambda: float(next(ticks)))
    monkeypatch.setattr(mesh_rollout.time, still, lambda: 0.0)
    simulator = MeshSimulator(_tiny_model(), 2)
    config = MeshTrainingConfig(epochs=None, max_seconds=2.5, warmup_batches=0, budget_clock=clock)
    record = fit_mesh_model(simulator, sim32, config)
    assert record["stopped_by"] == "max_seconds" and record["clock"] == clock
    assert record["steps"] == 1


def test_cpu_budget_clock_is_refused_on_a_gpu():
    assert mesh_rollout.budget_clock("auto", "cpu")[0] == "cpu"
    assert mesh_rollout.budget_clock("auto", "cuda:0")[0] == "wall"
    assert mesh_rollout.budget_clock("wall", "cpu")[0] == "wall"
    with pytest.raises(ValueError, match="budget_clock"):
        mesh_rollout.budget_clock("cpu", "cuda")


def test_train_and_evaluate_record_and_summary(sim32):
    runs = [
        train_and_evaluate(
            "tiny", _tiny_model, sim32, MeshTrainingConfig(epochs=1, batch_size=3, seed=seed)
        )
        for seed in (0, 1)
    ]
    record = runs[0]
    for key in (
        "num_params",
        "train_time_s",
        "time_per_epoch_s",
        "one_step_rmse",
        "rollout_rmse",
        "inference_s_per_step",
        "peak_memory_bytes",
    ):
        assert record[key] > 0, key
    assert len(record["rollout_rmse_per_step"]) == sim32.num_steps
    assert record["num_params"] == sum(p.numel() for p in _tiny_model().parameters())
    (row,) = summarise_mesh_runs(runs)
    assert row["seeds"] == [0, 1] and row["rollout_rmse"]["n"] == 2
    assert row["rollout_rmse"]["mean"] == pytest.approx(
        (runs[0]["rollout_rmse"] + runs[1]["rollout_rmse"]) / 2
    )
    assert peak_memory_bytes("cpu") > 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"epochs": None, "max_seconds": None}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"max_seconds": -1.0}, "max_seconds"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": 1e-3, "lr_final": 1e-2}, "lr_final"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"warmup_batches": -1}, "warmup_batches"),
        ({"seed": -1}, "seed"),
        ({"budget_clock": "cpu-time"}, "budget_clock"),
    ],
)
def test_training_config_errors_name_the_argument(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        MeshTrainingConfig(**kwargs)


def test_dimension_mismatch_is_refused(sim32):
    simulator = MeshSimulator(EdgeFeatureModel(TinyMessagePassing(8, 4)), 3)
    with pytest.raises(ValueError, match="dim"):
        fit_mesh_model(simulator, sim32, MeshTrainingConfig(epochs=1))


def test_plot_field_writes_a_png_and_checks_its_inputs(sim32, tmp_path):
    class Persistence:
        def predict_next(self, u, trajectories, sim):
            return u.clone()

    predicted, _ = rollout(Persistence(), sim32, [1])
    path = plot_field(sim32, predicted[0, -1], 1, sim32.num_steps, tmp_path / "f.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="predicted"):
        plot_field(sim32, predicted[0, -1, :10], 1, 2, tmp_path / "g.png")
    with pytest.raises(ValueError, match="step"):
        plot_field(sim32, predicted[0, -1], 1, 99, tmp_path / "g.png")
