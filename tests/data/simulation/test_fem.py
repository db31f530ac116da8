"""P1 finite elements and the exact solver: exact integrals, conservation, convergence."""

import math

import numpy as np
import pytest

from gnnagg.data import NODE_TYPES, channel_mesh, mesh_simulation
from gnnagg.data.simulation import AdvectionDiffusionSolver, assemble_p1

OBSTACLE = NODE_TYPES.index("obstacle")


def _small(**overrides):
    options = dict(
        dim=2, num_nodes=300, num_trajectories=3, num_steps=15, dtype="float64", cache=False
    )
    options.update(overrides)
    return mesh_simulation(**options)


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


def test_a_degenerate_cell_is_named():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    cells = np.array([[0, 1, 2], [0, 1, 3]])  # the second is flat
    flat = r"cells: 1 cell\(s\) have zero area.*cell 1, nodes \[0, 1, 3\]"
    with pytest.raises(ValueError, match=flat):
        assemble_p1(pos, cells)
    with pytest.raises(TypeError, match="cells: expected integer node ids"):
        assemble_p1(pos, cells[:1] + 0.5)


@pytest.mark.parametrize("num_steps, error", [(-1, ValueError), (2.5, TypeError), ("3", TypeError)])
def test_run_names_a_bad_num_steps(num_steps, error):
    mesh = channel_mesh(300, 2)
    solver = AdvectionDiffusionSolver(assemble_p1(mesh.pos, mesh.cells), 1e-3, [0.0, 0.0], 0.01)
    with pytest.raises(error, match="num_steps"):
        solver.run(np.zeros(mesh.num_nodes), num_steps)
    with pytest.raises(ValueError, match="u0"):
        solver.run(np.zeros(3), 2)


def test_a_non_finite_drift_is_named():
    mesh = channel_mesh(300, 2)
    with pytest.raises(ValueError, match="drift: components must be finite"):
        AdvectionDiffusionSolver(assemble_p1(mesh.pos, mesh.cells), 1e-3, [np.nan, 0.0], 0.01)
