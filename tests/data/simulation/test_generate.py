"""Generated data sets: the ℓ parameterisation, determinism, items, splits, argument checks."""

import numpy as np
import pytest
import torch

from gnnagg.data import MeshSimulationConfig, mesh_simulation
from gnnagg.data.simulation import cache


def _small(**overrides):
    options = dict(
        dim=2, num_nodes=300, num_trajectories=3, num_steps=15, dtype="float64", cache=False
    )
    options.update(overrides)
    return mesh_simulation(**options)


# ------------------------------------------------------------------------- trajectories


def test_trajectories_follow_the_ell_parameterisation():
    sim = _small(num_trajectories=6, ell=3.0, ell_spread=0.2, max_drift=0.5)
    h, dt = sim.mesh.spacing, sim.config.dt
    assert ((sim.ell >= 2.4) & (sim.ell <= 3.6)).all()
    torch.testing.assert_close(sim.kappa, (sim.ell * h) ** 2 / dt, rtol=1e-12, atol=0)
    speed = sim.drift.norm(dim=1) * dt / h
    assert (speed <= 0.5 + 1e-12).all()
    assert len(set(sim.kappa.tolist())) == 6


def test_generation_is_deterministic_for_a_seed():
    a, b = _small(seed=5), _small(seed=5)
    assert np.array_equal(a.mesh.pos, b.mesh.pos) and np.array_equal(a.mesh.cells, b.mesh.cells)
    for name in ("u", "kappa", "drift", "ell"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    c = _small(seed=6)
    assert not torch.equal(a.u, c.u)
    # A trajectory does not depend on how many others are generated.
    longer = _small(seed=5, num_trajectories=4)
    assert torch.equal(longer.u[:3], a.u)


def test_data_items_and_splits():
    sim = _small(num_trajectories=10)
    splits = sim.splits
    assert [len(splits[k]) for k in ("train", "val", "test")] == [8, 1, 1]
    assert torch.equal(torch.cat(list(splits.values())).sort().values, torch.arange(10))
    item = sim.data(3, 4)
    n = sim.num_nodes
    assert item.num_nodes == n and item.pos.shape == (n, 2) and item.pos.dtype == torch.float32
    assert item.u.shape == (n, 1) and torch.equal(item.y[:, 0], sim.u[3, 5])
    assert item.kappa.shape == (1,) and item.drift.shape == (1, 2)
    assert item.node_type.shape == (n,) and item.edge_index.shape[0] == 2
    assert "y" not in sim.data(3, sim.num_steps)
    assert len(sim.trajectory(2)) == sim.num_steps + 1
    assert len(sim.transitions("val")) == sim.num_steps
    assert "trajectories=10" in repr(sim)


def test_solver_reproduces_the_stored_steps():
    sim = _small()
    solver = sim.solver(1)
    u = sim.u[1].numpy()
    batched = solver.step(np.stack([u[3], u[7]], axis=1))
    np.testing.assert_allclose(batched[:, 0], u[4], rtol=0, atol=1e-13)
    np.testing.assert_allclose(batched[:, 1], u[8], rtol=0, atol=1e-13)


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"dim": 4}, ValueError, "dim"),
        ({"dim": True}, ValueError, "dim"),
        ({"num_nodes": 100}, ValueError, "num_nodes"),
        ({"num_nodes": 300.0}, TypeError, "num_nodes"),
        ({"dim": 3, "num_nodes": 500_000}, ValueError, "num_nodes"),
        ({"num_trajectories": 0}, ValueError, "num_trajectories"),
        ({"num_trajectories": 2}, ValueError, "num_trajectories"),
        ({"num_steps": 0}, ValueError, "num_steps"),
        ({"ell": 0.0}, ValueError, "ell"),
        ({"ell": float("nan")}, ValueError, "ell"),
        ({"ell_spread": 1.0}, ValueError, "ell_spread"),
        ({"max_drift": -1.0}, ValueError, "max_drift"),
        ({"dt": 0.0}, ValueError, "dt"),
        ({"obstacle": 1}, TypeError, "obstacle"),
        ({"seed": -1}, ValueError, "seed"),
        ({"splits": (0.5, 0.5)}, ValueError, "splits"),
        ({"splits": (0.5, 0.4, 0.2)}, ValueError, "splits"),
        ({"splits": 0.5}, TypeError, "splits"),
        ({"splits": None}, TypeError, "splits"),
        ({"dtype": "float16"}, ValueError, "dtype"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, name):
    options = dict(num_nodes=300, num_trajectories=10, num_steps=2) | kwargs
    with pytest.raises(error, match=name):
        MeshSimulationConfig(**options)


def test_huge_data_sets_are_refused_before_allocating(monkeypatch, tmp_path):
    def fail(*args, **kwargs):
        raise AssertionError("nothing may be generated")

    monkeypatch.setattr(cache, "generate_simulation", fail)
    with pytest.raises(ValueError, match="MAX_FIELD_BYTES"):
        mesh_simulation(3, 100_000, 1000, 100, root=tmp_path)
    assert not (tmp_path / "mesh_simulation").exists()


def test_fixture_refuses_other_arguments():
    with pytest.raises(ValueError, match="num_nodes"):
        mesh_simulation(num_nodes=500, fixture=True)




def test_transition_index_lists_every_step_of_the_split():
    sim = _small(num_trajectories=10, num_steps=3)
    pairs = sim.transition_index("train")
    assert pairs.dtype == torch.int64 and pairs.shape == (8 * 3, 2)
    assert pairs[:4].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]
    with pytest.raises(ValueError, match="split"):
        sim.transition_index("validation")
