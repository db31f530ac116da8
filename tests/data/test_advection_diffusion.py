"""The advection–diffusion generator: meshes, conservation, convergence, determinism, cache."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnagg.data import advection_diffusion as ms
from gnnagg.data.advection_diffusion import (
    NODE_TYPES,
    AdvectionDiffusionSolver,
    MeshSimulationConfig,
    assemble_p1,
    channel_mesh,
    load_mesh_simulation,
    mesh_simulation,
    save_mesh_simulation,
)

OBSTACLE = NODE_TYPES.index("obstacle")
WALL = NODE_TYPES.index("wall")


def _small(**overrides):
    options = dict(
        dim=2, num_nodes=300, num_trajectories=3, num_steps=15, dtype="float64", cache=False
    )
    options.update(overrides)
    return mesh_simulation(**options)


# ---------------------------------------------------------------------------------- meshes


@pytest.mark.parametrize(("dim", "n"), [(2, 200), (2, 777), (2, 3000), (3, 1000), (3, 2500)])
def test_mesh_has_exactly_the_requested_nodes_all_used(dim, n):
    mesh = channel_mesh(n, dim, seed=3)
    assert mesh.pos.shape == (n, dim)
    assert mesh.cells.shape[1] == dim + 1
    assert np.array_equal(np.unique(mesh.cells), np.arange(n))
    assert (mesh.cell_volumes() > 0).all()
    assert set(np.unique(mesh.node_type)) == {0, 1, 2}


@pytest.mark.parametrize("n", [300, 2000])
def test_mesh_covers_the_channel_minus_the_polygonal_cylinder(n):
    mesh = channel_mesh(n, 2)
    (length, height), centre, radius = ms._DOMAINS[2]
    on_circle = mesh.pos[mesh.node_type == OBSTACLE]
    np.testing.assert_allclose(np.linalg.norm(on_circle - centre, axis=1), radius)
    m = len(on_circle)
    polygon = 0.5 * m * radius**2 * math.sin(2 * math.pi / m)
    assert mesh.cell_volumes().sum() == pytest.approx(length * height - polygon, rel=1e-12)
    # No element has its centroid inside the cylinder.
    centroids = mesh.pos[mesh.cells].mean(axis=1)
    assert (np.linalg.norm(centroids - centre, axis=1) > radius * math.cos(math.pi / m)).all()


def test_mesh_without_obstacle_covers_the_box():
    mesh = channel_mesh(1200, 3, obstacle=False)
    assert mesh.cell_volumes().sum() == pytest.approx(2.2 * 0.41 * 0.41, rel=1e-12)
    assert OBSTACLE not in mesh.node_type


def test_wall_nodes_lie_on_the_box_and_edges_are_symmetric():
    mesh = channel_mesh(500, 2)
    box = np.asarray(ms._DOMAINS[2][0])
    walls = mesh.pos[mesh.node_type == WALL]
    assert (np.isclose(walls, 0).any(1) | np.isclose(walls, box).any(1)).all()
    edges = mesh.edges()
    forward = set(map(tuple, edges.T.tolist()))
    assert forward == {(b, a) for a, b in forward}
    assert (edges[0] != edges[1]).all()
    keys = edges[0] * mesh.num_nodes + edges[1]
    assert (np.diff(keys) > 0).all()


# ---------------------------------------------------------------------------- operators


@pytest.mark.parametrize("dim", [2, 3])
def test_operators_annihilate_constants_and_integrate_exactly(dim):
    mesh = channel_mesh(1000, dim, seed=1)
    ops = assemble_p1(mesh.pos, mesh.cells)
    one = np.ones(mesh.num_nodes)
    np.testing.assert_allclose(ops.stiffness @ one, 0, atol=1e-12)
    for matrix in ops.advection:
        np.testing.assert_allclose(matrix.T @ one, 0, atol=1e-14)
    assert ops.mass.sum() == pytest.approx(mesh.cell_volumes().sum(), rel=1e-12)
    # P1 reproduces linear functions: grad(x) . grad(x) integrates to the volume.
    x = mesh.pos[:, 0]
    assert x @ (ops.stiffness @ x) == pytest.approx(mesh.cell_volumes().sum(), rel=1e-10)
    assert (abs(ops.stiffness - ops.stiffness.T) > 1e-12).nnz == 0


# -------------------------------------------------------------------------- conservation


@pytest.mark.parametrize("max_drift", [0.0, 1.0])
@pytest.mark.parametrize("dim", [2, 3])
def test_mass_is_conserved_without_the_obstacle(dim, max_drift):
    sim = _small(dim=dim, num_nodes=300 if dim == 2 else 1000, obstacle=False, max_drift=max_drift)
    mass = sim.operators().mass
    u = sim.u.numpy()
    for i in range(sim.num_trajectories):
        totals = np.array([(mass @ u[i, t]).sum() for t in range(sim.num_steps + 1)])
        assert totals[0] > 0
        np.testing.assert_allclose(totals, totals[0], rtol=1e-12)
        if max_drift == 0.0:
            assert float(sim.drift[i].abs().max()) == 0.0
    # The fields actually move (the test would pass trivially for a frozen field).
    assert np.abs(u[:, -1] - u[:, 0]).max() > 1e-2


def test_mass_changes_only_through_the_obstacle():
    sim = _small(max_drift=1.0)
    ops = sim.operators()
    obstacle = sim.mesh.node_type == OBSTACLE
    u = sim.u.numpy()
    for i in range(sim.num_trajectories):
        operator = float(sim.kappa[i]) * ops.stiffness + ops.advection_matrix(sim.drift[i].numpy())
        for t in range(sim.num_steps):
            # Residual of the implicit Euler equation; zero on every free node.
            residual = ops.mass @ (u[i, t + 1] - u[i, t]) + sim.config.dt * operator @ u[i, t + 1]
            scale = np.abs(ops.mass @ u[i, t]).max()
            np.testing.assert_allclose(residual[~obstacle], 0, atol=1e-12 * scale)
            gained = (ops.mass @ (u[i, t + 1] - u[i, t])).sum()
            # What the obstacle nodes' equations do not balance is the flux through it.
            assert gained == pytest.approx(residual[obstacle].sum(), rel=1e-9, abs=1e-15)
        assert (u[i, 1:, obstacle] == 1.0).all()
        totals = [(ops.mass @ u[i, t]).sum() for t in range(sim.num_steps + 1)]
        assert totals[-1] > totals[0]  # the obstacle at u = 1 feeds the channel


# --------------------------------------------------------------------------- convergence


def _heat_kernel_error(num_nodes: int) -> tuple[float, float]:
    """Nodal RMS error of pure diffusion of a Gaussian against the exact free-space solution,
    with dt proportional to h**2 (fixed ell) so that time and space errors shrink together."""
    mesh = channel_mesh(num_nodes, 2, obstacle=False, seed=0)
    ops = assemble_p1(mesh.pos, mesh.cells)
    kappa, width, centre = 1e-3, 0.04, np.array([1.1, 0.205])
    final_time = width**2 / (2 * kappa)  # the variance doubles; the walls stay far away
    steps = max(4, round(final_time * kappa / (0.5 * mesh.spacing) ** 2))
    dt = final_time / steps

    def exact(t: float) -> np.ndarray:
        variance = width**2 + 2 * kappa * t
        r2 = ((mesh.pos - centre) ** 2).sum(axis=1)
        return width**2 / variance * np.exp(-r2 / (2 * variance))

    solver = AdvectionDiffusionSolver(ops, kappa, [0.0, 0.0], dt)
    u = solver.run(exact(0.0), steps)[-1]
    return mesh.spacing, float(np.sqrt(np.mean((u - exact(final_time)) ** 2)))


def test_pure_diffusion_converges_to_the_heat_kernel_under_refinement():
    spacings, errors = zip(*(_heat_kernel_error(n) for n in (500, 2000, 8000)))
    assert errors[0] > errors[1] > errors[2]
    # Space and time errors are both O(h^2); jittered meshes make single ratios noisy, so the
    # order is measured over the whole range (about 1.9 here).
    order = math.log(errors[0] / errors[2]) / math.log(spacings[0] / spacings[2])
    assert order > 1.5
    assert errors[2] < 3e-4


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

    monkeypatch.setattr(ms, "_generate", fail)
    monkeypatch.setattr(ms, "channel_mesh", fail)
    with pytest.raises(ValueError, match="MAX_FIELD_BYTES"):
        mesh_simulation(3, 100_000, 1000, 100, root=tmp_path)
    assert not (tmp_path / "mesh_simulation").exists()


def test_fixture_refuses_other_arguments():
    with pytest.raises(ValueError, match="num_nodes"):
        mesh_simulation(num_nodes=500, fixture=True)


def test_solver_checks_its_inputs():
    mesh = channel_mesh(300, 2)
    ops = assemble_p1(mesh.pos, mesh.cells)
    with pytest.raises(ValueError, match="drift"):
        AdvectionDiffusionSolver(ops, 1e-3, [0.0, 0.0, 0.0], 0.01)
    with pytest.raises(ValueError, match="dt"):
        AdvectionDiffusionSolver(ops, 1e-3, [0.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="dirichlet"):
        AdvectionDiffusionSolver(ops, 1e-3, [0.0, 0.0], 0.01, dirichlet=np.zeros(3, dtype=bool))
    solver = AdvectionDiffusionSolver(ops, 1e-3, [0.0, 0.0], 0.01)
    with pytest.raises(ValueError, match="u"):
        solver.step(np.zeros(299))
    with pytest.raises(ValueError, match="cells"):
        assemble_p1(mesh.pos, mesh.cells[:, :2])


# -------------------------------------------------------------------------------- cache


CACHED = dict(dim=2, num_nodes=300, num_trajectories=3, num_steps=4)


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "mesh_simulation").iterdir())


def test_cache_round_trip_and_no_leftovers(tmp_path, monkeypatch):
    first = mesh_simulation(**CACHED, root=tmp_path)
    key = first.config.key()
    assert _files(tmp_path) == [f"{key}.json", f"{key}.npz"]

    def fail(config):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(ms, "_generate", fail)
    second = mesh_simulation(**CACHED, root=tmp_path)
    assert torch.equal(first.u, second.u) and torch.equal(first.kappa, second.kappa)
    assert np.array_equal(first.mesh.cells, second.mesh.cells)
    assert second.config == first.config
    assert torch.equal(second.edge_index, first.edge_index)


def test_cache_rebuilds_a_file_with_a_flipped_byte(tmp_path, monkeypatch):
    first = mesh_simulation(**CACHED, root=tmp_path)
    path = tmp_path / "mesh_simulation" / f"{first.config.key()}.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    calls = []
    generate = ms._generate
    monkeypatch.setattr(ms, "_generate", lambda config: calls.append(config) or generate(config))
    with pytest.warns(UserWarning, match="sha256"):
        again = mesh_simulation(**CACHED, root=tmp_path)
    assert len(calls) == 1
    assert torch.equal(again.u, first.u)
    # The rebuilt file is valid again: a third call loads it without warnings or generation.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mesh_simulation(**CACHED, root=tmp_path)
    assert len(calls) == 1


def test_cache_ignores_a_stamp_for_another_configuration(tmp_path, monkeypatch):
    first = mesh_simulation(**CACHED, root=tmp_path)
    stamp = tmp_path / "mesh_simulation" / f"{first.config.key()}.json"
    stamp.write_text(stamp.read_text().replace('"num_steps": 4', '"num_steps": 5'))
    calls = []
    generate = ms._generate
    monkeypatch.setattr(ms, "_generate", lambda config: calls.append(config) or generate(config))
    mesh_simulation(**CACHED, root=tmp_path)
    assert len(calls) == 1


def test_interrupted_save_leaves_nothing(tmp_path, monkeypatch):
    sim = _small(num_steps=2)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ms.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_mesh_simulation(sim, tmp_path / "sim.npz")
    assert list(tmp_path.iterdir()) == []


def test_saved_files_load_without_pickle_and_check_their_hash(tmp_path):
    sim = _small(num_steps=2)
    digest = save_mesh_simulation(sim, tmp_path / "sim.npz")
    with np.load(tmp_path / "sim.npz", allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
    loaded = load_mesh_simulation(tmp_path / "sim.npz", sha256=digest)
    assert torch.equal(loaded.u, sim.u)
    with pytest.raises(ValueError, match="sha256"):
        load_mesh_simulation(tmp_path / "sim.npz", sha256="0" * 64)


# ------------------------------------------------------------------------------ fixture


def test_fixture_loads_hash_checked_and_matches_the_generator():
    fixture = mesh_simulation(fixture=True)
    assert fixture.num_nodes == 300 and fixture.num_trajectories == 4 and fixture.num_steps == 10
    assert [len(fixture.splits[k]) for k in ("train", "val", "test")] == [2, 1, 1]
    again = mesh_simulation(**ms._FIXTURE_OPTIONS, cache=False)
    assert np.array_equal(fixture.mesh.pos, again.mesh.pos)
    assert np.array_equal(fixture.mesh.cells, again.mesh.cells)
    torch.testing.assert_close(fixture.u, again.u, rtol=1e-6, atol=1e-6)


def test_fixture_write_goes_where_asked(tmp_path):
    # Byte equality with the committed file holds on one machine but not across CPUs (numpy's
    # exp differs in the last bit between SIMD paths), hence the tolerance check above.
    path, digest = ms.write_fixture(tmp_path)
    assert path.is_relative_to(tmp_path) and digest == ms.sha256_file(path)
    assert load_mesh_simulation(path, sha256=digest).config.num_nodes == 300


def test_files_that_are_not_simulations_are_refused(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a mesh simulation"):
        load_mesh_simulation(tmp_path / "other.npz")
    sim = _small(num_steps=2)
    save_mesh_simulation(sim, tmp_path / "sim.npz")
    with np.load(tmp_path / "sim.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["u"] = arrays["u"][:, :2]
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(ValueError, match="u has shape"):
        load_mesh_simulation(tmp_path / "cut.npz")


def test_cache_rebuilds_when_the_stamp_matches_but_the_file_is_foreign(tmp_path, monkeypatch):
    first = mesh_simulation(**CACHED, root=tmp_path)
    folder = tmp_path / "mesh_simulation"
    data, stamp = folder / f"{first.config.key()}.npz", folder / f"{first.config.key()}.json"
    np.savez(data, x=np.zeros(3))
    payload = json.loads(stamp.read_text())
    payload["sha256"] = ms.sha256_file(data)
    stamp.write_text(json.dumps(payload))
    with pytest.warns(UserWarning, match="not a mesh simulation"):
        again = mesh_simulation(**CACHED, root=tmp_path)
    assert torch.equal(again.u, first.u)
