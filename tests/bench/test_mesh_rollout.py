"""Next-step training and rollout evaluation on generated mesh simulations."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from gnnagg.bench import mesh_rollout
from gnnagg.bench.mesh_rollout import (
    EdgeFeatureModel,
    MeshSimulator,
    MeshStepModel,
    MeshTrainingConfig,
    NodeFeatureModel,
    OnlineNormalizer,
    SolverOracle,
    edge_input_channels,
    fit_mesh_model,
    node_input_channels,
    one_step_rmse,
    peak_memory_bytes,
    plot_field,
    rollout,
    rollout_rmse,
    summarise_mesh_runs,
    train_and_evaluate,
)
from gnnagg.data import mesh_simulation
from gnnagg.data import NODE_TYPES

OBSTACLE = NODE_TYPES.index("obstacle")


@pytest.fixture(scope="module")
def sim64():
    return mesh_simulation(
        2, 300, 4, 8, splits=(0.5, 0.25, 0.25), dtype="float64", max_drift=1.0, cache=False
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


class Recorder(nn.Module):
    """Records how it is called; returns zeros."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.calls = []

    def forward(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return torch.zeros(args[0].shape[0], 1) * self.weight


class NormalisedSolverOracle(nn.Module):
    """A step model that undoes the simulator's input normalisation, runs the exact solver and
    normalises its answer like a trained network would: the whole learned path with the
    network replaced by the truth."""

    def __init__(self, sim):
        super().__init__()
        self.sim = sim
        self.weight = nn.Parameter(torch.zeros((), dtype=torch.float64))
        # Set after wrapping: the normalisers live in the simulator (a list, so that the
        # simulator is not registered as a submodule of its own model).
        self.simulator = []

    def forward(self, x, edge_index, *, pos, edge_attr, batch):
        sim, simulator = self.sim, self.simulator[0]
        raw = simulator.node_normalizer.inverse(x)
        n = sim.num_nodes
        u = raw[:, 0].reshape(-1, n)
        kappa = raw[::n, 1 + len(NODE_TYPES)]
        trajectories = [int((sim.kappa - k).abs().argmin()) for k in kappa]
        nxt = torch.stack(
            [
                torch.from_numpy(sim.solver(t).step(u[row].numpy()))
                for row, t in enumerate(trajectories)
            ]
        )
        return simulator.output_normalizer((nxt - u).reshape(-1, 1)) + 0 * self.weight


def _tiny_model(dim=2):
    return EdgeFeatureModel(TinyMessagePassing(node_input_channels(dim), edge_input_channels(dim)))


# ------------------------------------------------------------------------ exact rollouts


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


def test_learned_path_with_an_exact_network_has_zero_rollout_error(sim64):
    oracle = NormalisedSolverOracle(sim64)
    simulator = MeshSimulator(oracle, 2).double()
    oracle.simulator.append(simulator)
    # Non-trivial normalisers, as after training.
    config = MeshTrainingConfig(epochs=1, batch_size=2, warmup_batches=3, lr=1e-9, lr_final=1e-9)
    fit_mesh_model(simulator, sim64, config)
    assert int(simulator.node_normalizer.accumulations) > 3
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


# ------------------------------------------------------------------------- normalisers


def test_online_normalizer_matches_batch_statistics_and_stops_accumulating():
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(50, 3, generator=gen) * 4 + 2 for _ in range(4)]
    norm = OnlineNormalizer(3, max_accumulations=3)
    x = torch.randn(5, 3, generator=gen)
    torch.testing.assert_close(norm(x), x)  # identity before any data
    for b in batches:
        norm(b, accumulate=True)
    seen = torch.cat(batches[:3]).double()
    torch.testing.assert_close(norm.mean(), seen.mean(0))
    torch.testing.assert_close(norm.std(), seen.std(0, unbiased=False))
    assert int(norm.accumulations) == 3
    torch.testing.assert_close(norm.inverse(norm(x)), x, rtol=1e-5, atol=1e-5)
    constant = OnlineNormalizer(1, std_epsilon=1e-8)
    constant(torch.ones(10, 1), accumulate=True)
    assert float(constant.std()) == 1e-8
    # The sums stay float64 when the module is cast, and survive state_dict.
    norm.float()
    assert norm.total.dtype == torch.float64
    other = OnlineNormalizer(3)
    other.load_state_dict(norm.state_dict())
    torch.testing.assert_close(other.mean(), norm.mean())
    with pytest.raises(ValueError, match="x"):
        norm(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="size"):
        OnlineNormalizer(0)


# --------------------------------------------------------------------------- adapters


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


def test_mesh_cache_never_serves_another_data_set(sim32, sim64):
    simulator = MeshSimulator(Recorder(), 2)
    first = simulator.batched_mesh(sim32, 1)
    assert first.source is sim32.edge_index
    # Pretend sim64 got a freed data set's id: the stale entry must not be used.
    (key,) = simulator._meshes
    simulator._meshes[(id(sim64),) + key[1:]] = first
    second = simulator.batched_mesh(sim64, 1)
    assert second.source is sim64.edge_index
    assert torch.equal(second.edge_index, sim64.edge_index)


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
