"""Training one mesh simulator under the protocol: the schedule, equal steps, the noise scale,
the validation curve and the plateau check, the time cap."""

import math

import pytest
import torch

from gnnagg.bench.studies.mesh import train
from gnnagg.bench.studies.mesh.config import MeshConfig
from gnnagg.bench.studies.mesh.train import (
    budget_clock,
    fit_mesh_model,
    half_budget_moved,
    learning_rate,
    plateau,
    train_and_evaluate,
)
from gnnagg.data import mesh_simulation
from gnnagg.models import EdgeFeatureModel, MeshSimulator, edge_input_channels, node_input_channels

from ....models.step_models import TinyMessagePassing


@pytest.fixture(scope="module")
def sim32():
    return mesh_simulation(
        2, 300, 5, 4, splits=(0.6, 0.2, 0.2), geometry="varied", cache=False
    )


def _tiny_model(dim=2, hidden=8):
    model = TinyMessagePassing(node_input_channels(dim), edge_input_channels(dim), hidden)
    return EdgeFeatureModel(model)


def _config(**changes):
    base = dict(
        nodes=300, trajectories=5, val_trajectories=1, test_trajectories=1, steps=4,
        ells=(2.0,), models=("mgn-2x8",), train_steps=12, warmup_steps=3, val_points=4,
        normalizer_batches=2, batch_size=2,
    )  # fmt: skip
    return MeshConfig(**(base | changes))


def test_learning_rate_warms_up_then_follows_a_cosine_to_zero():
    config = _config(train_steps=100, warmup_steps=10, lr=1e-3)
    rates = [learning_rate(step, config) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4 * 0.5 * (1 + math.cos(0)))
    assert rates[9] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 9 / 100)))
    assert max(rates) == rates[9]
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] < 1e-6
    assert learning_rate(50, _config(train_steps=100, warmup_steps=0, lr=1e-3)) == pytest.approx(
        5e-4
    )


def _curve(values, steps=100):
    every = steps // len(values)
    return [{"step": every * (k + 1), "val_rollout_rmse": v} for k, v in enumerate(values)]


def test_plateau_check_marks_a_model_still_moving_as_not_converged():
    # Ten points, one every 10 steps: the window is steps 80..100 (three points).
    flat = plateau(_curve([1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 0.11, 0.100, 0.101, 0.102]), 100)
    assert flat["converged"] is True and flat["moved"] == pytest.approx(0.02)
    assert flat["window_start"] == 80
    falling = plateau(_curve([1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 0.11, 0.100, 0.09, 0.08]), 100)
    assert falling["converged"] is False and falling["moved"] == pytest.approx(0.25)
    # A curve that stops before the last step (a time cap) cannot pass.
    short = plateau(_curve([1.0, 0.5, 0.3, 0.2]), 100)
    assert short["converged"] is None and short["moved"] is None


def test_half_budget_check_compares_the_ends_of_the_two_runs():
    # A run whose last 20 % is flat passes the plateau check, yet the run with half the
    # steps ended 20 % higher: more steps still help, and this check says so.
    full = _curve([1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 0.11, 0.100, 0.100, 0.100])
    half = _curve([1.0, 0.6, 0.4, 0.3, 0.12], steps=50)
    assert plateau(full, 100)["converged"] is True
    assert half_budget_moved(full, half) == pytest.approx(0.2)
    assert half_budget_moved(full, _curve([0.2, 0.103], steps=50)) == pytest.approx(0.03)
    assert half_budget_moved(full, []) is None and half_budget_moved([], half) is None


def test_every_model_gets_the_same_steps_and_a_validation_curve(sim32):
    config = _config()
    records = []
    for hidden in (4, 16):  # one model four times the width of the other: the same steps
        torch.manual_seed(0)
        simulator = MeshSimulator(_tiny_model(hidden=hidden), 2)
        records.append(fit_mesh_model(simulator, sim32, config, seed=1))
    for record in records:
        assert record["steps"] == config.train_steps and record["stopped_by"] == "train_steps"
        # val_points evenly spaced measurements, and one at the start of the plateau window.
        assert [p["step"] for p in record["curve"]] == [3, 6, 9, 12]
        assert all(p["val_rollout_rmse"] > 0 for p in record["curve"])
        assert record["plateau"]["converged"] in (True, False)
        assert record["time_per_step_s"] > 0
    # The noise is the configured fraction of the data's Δu RMS.
    assert records[0]["noise_std"] == pytest.approx(config.noise * sim32.delta_rms("train"))


def test_training_is_deterministic_and_feeds_the_normalisers(sim32):
    config = _config(normalizer_batches=3)

    def fit():
        torch.manual_seed(0)
        simulator = MeshSimulator(_tiny_model(), 2)
        return simulator, fit_mesh_model(simulator, sim32, config, seed=3)

    first, record = fit()
    assert int(first.node_normalizer.accumulations) == 3 + record["steps"]
    assert int(first.output_normalizer.accumulations) == 3 + record["steps"]
    second, again = fit()
    assert [p["val_rollout_rmse"] for p in again["curve"]] == [
        p["val_rollout_rmse"] for p in record["curve"]
    ]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_a_time_cap_stops_training_and_says_so(sim32, monkeypatch, clock):
    # Each read of the chosen clock advances it by one second, the other clock never moves:
    # a 2.5 s cap stops after the third step, whatever the real time.
    ticks = iter(range(10**6))
    fake = {"cpu": "process_time", "wall": "perf_counter"}[clock]
    still = {"cpu": "perf_counter", "wall": "process_time"}[clock]
    monkeypatch.setattr(train.time, fake, lambda: float(next(ticks)))
    monkeypatch.setattr(train.time, still, lambda: 0.0)
    simulator = MeshSimulator(_tiny_model(), 2)
    config = _config(max_seconds=2.5, budget_clock=clock)
    record = fit_mesh_model(simulator, sim32, config)
    assert record["stopped_by"] == "max_seconds" and record["clock"] == clock
    assert record["steps"] == 3 and record["plateau"]["converged"] is None


def test_cpu_budget_clock_is_refused_on_a_gpu():
    assert budget_clock("auto", "cpu")[0] == "cpu"
    assert budget_clock("auto", "cuda:0")[0] == "wall"
    assert budget_clock("wall", "cpu")[0] == "wall"
    with pytest.raises(ValueError, match="budget_clock"):
        budget_clock("cpu", "cuda")


def test_train_and_evaluate_record(sim32):
    record = train_and_evaluate("tiny", _tiny_model, sim32, _config(), seed=1)
    for key in ("num_params", "train_time_s", "time_per_step_s", "one_step_rmse",
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
        fit_mesh_model(MeshSimulator(_tiny_model(), 2), sim32, {"train_steps": 1})
