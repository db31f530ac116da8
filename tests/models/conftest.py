"""Fixtures of the model tests: small generated mesh simulations, on one mesh and on a mesh per
trajectory."""

import pytest

from gnnagg.data import mesh_simulation


@pytest.fixture(scope="module")
def sim64():
    return mesh_simulation(
        2, 300, 4, 8, splits=(0.5, 0.25, 0.25), dtype="float64", max_drift=1.0, cache=False
    )


@pytest.fixture(scope="module")
def sim32():
    return mesh_simulation(2, 300, 4, 6, splits=(0.5, 0.25, 0.25), cache=False)


@pytest.fixture(scope="module")
def sim_varied():
    return mesh_simulation(
        2, 300, 4, 5, splits=(0.5, 0.25, 0.25), dtype="float64", geometry="varied", cache=False
    )
