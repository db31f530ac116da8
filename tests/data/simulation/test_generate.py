"""Generated data sets: the ℓ parameterisation, determinism, items, splits, argument checks."""

import numpy as np
import pytest
import torch

from gnnagg.data import NODE_TYPES, MeshSimulationConfig, mesh_simulation
from gnnagg.data.simulation import cache

OBSTACLE = NODE_TYPES.index("obstacle")


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


# ------------------------------------------------------------------------- varied geometry


def test_varied_geometry_gives_every_trajectory_its_own_obstacle_and_mesh():
    sim = _small(num_trajectories=6, num_steps=3, geometry="varied", splits=(0.5, 0.17, 0.33))
    assert sim.num_meshes == 6 and torch.equal(sim.mesh_ids, torch.arange(6))
    centres = {m.centre for m in sim.meshes}
    radii = [m.radius for m in sim.meshes]
    assert len(centres) == 6 and len(set(radii)) == 6
    assert all(0.03 <= r <= 0.07 for r in radii)
    for t in range(6):
        graph, mesh = sim.graph(t), sim.meshes[t]
        assert graph.pos.shape == (300, 2) and graph.mesh is mesh
        # The obstacle nodes lie on this trajectory's own circle.
        on = mesh.pos[mesh.node_type == OBSTACLE] - np.asarray(mesh.centre)
        np.testing.assert_allclose(np.linalg.norm(on, axis=1), mesh.radius, rtol=1e-9)
        # The obstacle is held at 1 on its own mesh.
        assert torch.all(sim.u[t, :, torch.from_numpy(mesh.node_type == OBSTACLE)] == 1)
    # No test geometry is a training geometry.
    train = {sim.meshes[int(t)].centre for t in sim.split("train")}
    assert not train & {sim.meshes[int(t)].centre for t in sim.split("test")}
    # Node types per trajectory; the single-mesh shortcuts say what to use instead.
    assert sim.node_types([0, 3]).shape == (2, 300)
    with pytest.raises(ValueError, match="sim.graph"):
        _ = sim.pos
    # Same seed, same data; the fixed geometry keeps one mesh.
    again = _small(num_trajectories=6, num_steps=3, geometry="varied", splits=(0.5, 0.17, 0.33))
    assert torch.equal(again.u, sim.u)
    assert _small(num_trajectories=3, num_steps=2).num_meshes == 1


def test_solver_of_each_trajectory_reproduces_its_steps_on_varied_geometry():
    sim = _small(num_trajectories=3, num_steps=3, geometry="varied")
    for t in range(3):
        np.testing.assert_allclose(
            sim.solver(t).step(sim.u[t, 1].numpy()), sim.u[t, 2].numpy(), rtol=0, atol=1e-12
        )


def test_blob_widths_are_counted_in_mesh_spacings():
    # One Gaussian of the same width in spacings spans the same number of nodes at any size:
    # the fraction of nodes above half its peak is about the same at 400 and 1,600 nodes.
    def fraction_above_half(n):
        sim = _small(num_nodes=n, num_trajectories=4, num_steps=1, obstacle=False,
                     blob_widths=(3.0, 3.0))  # fmt: skip
        u0 = sim.u[:, 0]
        return float((u0 > 0.5 * u0.amax(dim=1, keepdim=True)).double().mean())

    small, large = fraction_above_half(400), fraction_above_half(1_600)
    assert large < 0.5 * small


def test_delta_rms_is_the_rms_of_the_one_step_change_over_free_nodes():
    sim = _small(num_trajectories=4, num_steps=3)
    ids = sim.split("train")
    free = sim.node_type != OBSTACLE
    delta = (sim.u[ids, 1:] - sim.u[ids, :-1])[:, :, free]
    assert sim.delta_rms("train") == pytest.approx(float(delta.pow(2).mean().sqrt()), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"geometry": "random"}, "geometry"), ({"blob_widths": (3.0, 2.0)}, "blob_widths"),
     ({"blob_widths": (0.0, 2.0)}, "blob_widths"), ({"blob_widths": (1.0,)}, "blob_widths")],
)  # fmt: skip
def test_geometry_and_blob_widths_are_checked(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MeshSimulationConfig(**kwargs)
