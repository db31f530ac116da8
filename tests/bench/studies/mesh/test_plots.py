"""The mesh study's pictures: the field plot from a data set or from plain arrays."""

import pytest

from gnnagg.bench.studies.mesh.plots import plot_field, plot_field_arrays
from gnnagg.data import mesh_simulation
from gnnagg.models import PersistenceBaseline, rollout


@pytest.fixture(scope="module")
def sim():
    return mesh_simulation(2, 200, 4, 3, ell=2.0, cache=False)


def test_plot_field_writes_a_png_and_checks_its_inputs(sim, tmp_path):
    predicted, _ = rollout(PersistenceBaseline(), sim, [1])
    path = plot_field(sim, predicted[0, -1], 1, sim.num_steps, tmp_path / "f.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="predicted"):
        plot_field(sim, predicted[0, -1, :10], 1, 2, tmp_path / "g.png")
    with pytest.raises(ValueError, match="step"):
        plot_field(sim, predicted[0, -1], 1, 99, tmp_path / "g.png")


def test_plot_field_arrays_checks_its_arrays(sim, tmp_path):
    pos, cells = sim.mesh.pos, sim.mesh.cells
    path = plot_field_arrays(pos, cells, sim.u[0, 1], sim.u[0, 0], tmp_path / "f.png", "t")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="cells"):
        plot_field_arrays(pos, cells + 10_000, sim.u[0, 1], sim.u[0, 0], tmp_path / "g.png")
    with pytest.raises(ValueError, match="predicted"):
        plot_field_arrays(pos, cells, sim.u[0, 1], sim.u[0, :5], tmp_path / "g.png")
