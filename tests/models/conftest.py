"""Fixtures of the model tests: two small generated mesh simulations."""

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
