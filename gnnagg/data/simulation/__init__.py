"""Download-free mesh simulations: advection–diffusion past an obstacle on unstructured meshes.

The mesh-based simulation literature (MeshGraphNet, Pfaff et al. 2021,
https://arxiv.org/abs/2010.03409; "Training Transformers for Mesh-Based Simulations", Garnier et
al. 2025, https://arxiv.org/abs/2508.18051) trains on CylinderFlow and similar sets, which are
large downloads. This package generates comparable data from a seed: a scalar field carried and
spread in CylinderFlow's channel (:func:`~gnnagg.data.meshes.channel_mesh`).

* :mod:`~gnnagg.data.simulation.fem` -- P1 finite elements and the exact implicit-Euler solver;
* :mod:`~gnnagg.data.simulation.generate` -- the configuration, the data set
  (:class:`MeshSimulation`) and its generator;
* :mod:`~gnnagg.data.simulation.cache` -- files, the hash-stamped cache and the committed
  fixture; :func:`mesh_simulation` (also ``gnnagg.data.mesh_simulation``) is the entry point.
"""

from .cache import load_mesh_simulation, mesh_simulation, save_mesh_simulation, write_fixture
from .fem import AdvectionDiffusionSolver, FEOperators, assemble_p1
from .generate import (
    GEOMETRIES,
    MAX_FIELD_BYTES,
    RECIPE_VERSION,
    MeshSimulation,
    MeshSimulationConfig,
    SimulationGraph,
    generate_simulation,
)

__all__ = [
    "GEOMETRIES",
    "MAX_FIELD_BYTES",
    "RECIPE_VERSION",
    "AdvectionDiffusionSolver",
    "FEOperators",
    "MeshSimulation",
    "MeshSimulationConfig",
    "SimulationGraph",
    "assemble_p1",
    "generate_simulation",
    "load_mesh_simulation",
    "mesh_simulation",
    "save_mesh_simulation",
    "write_fixture",
]
