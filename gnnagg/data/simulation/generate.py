r"""Generated advection--diffusion data sets: their configuration, the data set, the generator.

Each trajectory of :func:`generate_simulation` draws its own diffusivity, drift and initial
field (a sum of Gaussians whose widths are counted in mesh spacings) on a
:func:`~gnnagg.data.meshes.channel_mesh` -- one mesh shared by every trajectory
(``geometry="fixed"``), or with ``geometry="varied"`` an obstacle of its own (position and
radius drawn from the seed) on a fresh Delaunay mesh, so that no two trajectories share a
geometry and the test split's geometries are never seen in training -- and is stepped by
the exact solver (:class:`~gnnagg.data.simulation.fem.AdvectionDiffusionSolver`); the obstacle
is held at :math:`u = 1` and every outer wall has zero total flux, so without the obstacle the
total mass is conserved exactly. The knob that matters for learned simulators is the diffusion
length per step in mesh spacings,

.. math::

    \ell = \sqrt{\kappa\,\Delta t} / h,

with :math:`h` the mean edge length: roughly how many graph hops information travels in one
step. Trajectories are parameterised by :math:`\ell` (and the drift by the distance it carries
the field per step, also in spacings), so one configuration means the same thing at every mesh
size.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from ..meshes import (
    _DOMAINS,
    OBSTACLE,
    ChannelMesh,
    _check_dim,
    _check_int,
    _check_num_nodes,
    channel_mesh,
)
from .fem import AdvectionDiffusionSolver, FEOperators, _check_float, assemble_p1

__all__ = [
    "GEOMETRIES",
    "MAX_FIELD_BYTES",
    "RECIPE_VERSION",
    "MeshSimulation",
    "MeshSimulationConfig",
    "SimulationGraph",
    "generate_simulation",
]

#: Largest stored field ``u`` (trajectories × (steps + 1) × nodes × bytes per value).
MAX_FIELD_BYTES = 4 * 2**30
_MAX_STEPS = 100_000
_MAX_TRAJECTORIES = 100_000
#: Bumped when the generator's output changes for the same configuration: caches get rebuilt.
RECIPE_VERSION = 2
#: ``fixed``: one mesh for every trajectory; ``varied``: an obstacle and a mesh per trajectory.
GEOMETRIES: tuple[str, ...] = ("fixed", "varied")
# Varied geometry: the radius is drawn in this range times the default one (0.05), and the
# obstacle keeps at least this many estimated grid spacings from every wall.
_RADIUS_RANGE = (0.6, 1.4)
_WALL_GAP = 2.0
_DTYPES = {"float32": np.float32, "float64": np.float64}
_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class MeshSimulationConfig:
    """Everything that determines a generated data set (and its cache key).

    ``ell``: the diffusion length per step :math:`\\sqrt{\\kappa\\Delta t}/h` in mesh spacings;
    each trajectory draws :math:`\\ell` uniformly in ``ell * [1 - ell_spread, 1 + ell_spread]``
    and sets :math:`\\kappa = (\\ell h)^2/\\Delta t`. ``max_drift``: the drift carries the field
    at most this many spacings per step (speed uniform in ``[0, max_drift]``, direction uniform);
    the cell Péclet number is then at most ``max_drift / ell**2``. The walls let nothing out,
    so a drift towards a wall piles the field up in a layer :math:`\\kappa/|\\mathbf b|` thick:
    the default 0.25 keeps such peaks within a few times the initial amplitude over 100 steps
    (``max_drift=1`` at ``ell=1`` reaches peaks above 100). ``splits``: fractions of
    trajectories for train, val and test (contiguous blocks of trajectory ids).
    ``geometry``: ``"fixed"`` (CylinderFlow's obstacle, one mesh for every trajectory) or
    ``"varied"`` (per trajectory an obstacle centre and radius, 0.6 to 1.4 times the default,
    anywhere in the channel at least two spacings from the walls, on its own mesh: every
    trajectory, and so every test trajectory, has a geometry of its own). ``blob_widths``:
    the range of the initial Gaussians' standard deviations, in mesh spacings.
    """

    dim: int = 2
    num_nodes: int = 10_000
    num_trajectories: int = 50
    num_steps: int = 100
    ell: float = 2.0
    ell_spread: float = 0.25
    max_drift: float = 0.25
    dt: float = 0.01
    obstacle: bool = True
    seed: int = 0
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    dtype: str = "float32"
    geometry: str = "fixed"
    blob_widths: tuple[float, float] = (2.0, 4.0)

    def __post_init__(self) -> None:
        dim = _check_dim(self.dim)
        _check_num_nodes(self.num_nodes, dim)
        trajectories = _check_int("num_trajectories", self.num_trajectories, 1, _MAX_TRAJECTORIES)
        steps = _check_int("num_steps", self.num_steps, 1, _MAX_STEPS)
        _check_float("ell", self.ell, 0.0, 16.0, open_low=True)
        _check_float("ell_spread", self.ell_spread, 0.0, 0.9)
        _check_float("max_drift", self.max_drift, 0.0, 16.0)
        _check_float("dt", self.dt, 0.0, 1e6, open_low=True)
        if not isinstance(self.obstacle, bool):
            raise TypeError(f"obstacle: expected a bool, got {type(self.obstacle).__name__}")
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype: expected one of {list(_DTYPES)}, got {self.dtype!r}")
        if isinstance(self.splits, (str, bytes)) or not hasattr(self.splits, "__iter__"):
            raise TypeError(f"splits: expected three fractions (train, val, test), got "
                            f"{self.splits!r}")
        splits = tuple(self.splits)
        if len(splits) != 3:
            raise ValueError(f"splits: expected three fractions (train, val, test), got {splits}")
        for name, value in zip(_SPLITS, splits):
            _check_float(f"splits[{name}]", value, 0.0, 1.0)
        if abs(sum(splits) - 1.0) > 1e-9:
            raise ValueError(f"splits: fractions must sum to 1, got {splits}")
        object.__setattr__(self, "splits", tuple(float(s) for s in splits))
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"geometry: expected one of {list(GEOMETRIES)}, got {self.geometry!r}")
        widths = tuple(self.blob_widths)
        if len(widths) != 2:
            raise ValueError(f"blob_widths: expected (smallest, largest), got {widths}")
        low = _check_float("blob_widths[0]", widths[0], 0.0, 1e3, open_low=True)
        high = _check_float("blob_widths[1]", widths[1], low, 1e3)
        object.__setattr__(self, "blob_widths", (low, high))
        self.split_ids()
        size = trajectories * (steps + 1) * self.num_nodes * np.dtype(_DTYPES[self.dtype]).itemsize
        if size > MAX_FIELD_BYTES:
            raise ValueError(
                f"num_trajectories × (num_steps + 1) × num_nodes = {trajectories} × {steps + 1} × "
                f"{self.num_nodes} values of {self.dtype} take {size / 2**30:.1f} GiB, above the "
                f"{MAX_FIELD_BYTES / 2**30:.0f} GiB limit (MAX_FIELD_BYTES); reduce one of them"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "splits": list(self.splits), "blob_widths": list(self.blob_widths)}

    def key(self) -> str:
        """A short stable hash of the configuration and the recipe version (the cache name)."""
        text = json.dumps({**self.to_dict(), "recipe": RECIPE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def split_ids(self) -> dict[str, np.ndarray]:
        """Trajectory ids per split: contiguous blocks, val and test first rounded to the
        nearest count (at least one when their fraction is positive), train the rest."""
        counts = [0] + [
            max(1, round(f * self.num_trajectories)) if f > 0 else 0 for f in self.splits[1:]
        ]
        counts[0] = self.num_trajectories - sum(counts)
        if counts[0] < (1 if self.splits[0] > 0 else 0):
            raise ValueError(
                f"num_trajectories: {self.num_trajectories} trajectories cannot fill the splits "
                f"{self.splits} (one at least for each positive fraction)"
            )
        bounds = np.concatenate([[0], np.cumsum(counts)])
        return {name: np.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(_SPLITS)}


@dataclass(frozen=True, eq=False)
class SimulationGraph:
    """One mesh of a :class:`MeshSimulation` as tensors: ``mesh_id`` (its index in
    ``sim.meshes``), the :class:`~gnnagg.data.meshes.ChannelMesh`, ``pos`` ``[N, dim]``
    (float32), ``edge_index`` ``[2, E]`` (both directions) and ``node_type`` ``[N]``."""

    mesh_id: int
    mesh: ChannelMesh
    pos: Tensor
    edge_index: Tensor
    node_type: Tensor


@dataclass(eq=False)
class MeshSimulation:
    """A generated data set: trajectories on one mesh or on a mesh each.

    ``meshes`` holds the data set's meshes (one for ``geometry="fixed"``, one per trajectory for
    ``"varied"``; every mesh has the same number of nodes ``N``) and ``mesh_ids`` ``[T]`` the
    mesh of every trajectory; :meth:`graph` gives a trajectory's mesh as tensors and
    :meth:`node_types` the node types of several. ``u`` ``[num_trajectories, num_steps + 1,
    N]``, and per trajectory ``kappa`` ``[T]``, ``drift`` ``[T, dim]``, ``ell`` ``[T]``
    (float64). ``splits`` maps ``"train"``, ``"val"``, ``"test"`` to trajectory ids.
    :meth:`data` gives the PyG ``Data`` of one time step; :meth:`solver` the exact solver of one
    trajectory. ``mesh``, ``pos``, ``edge_index`` and ``node_type`` are the shared mesh of a
    data set with one mesh (a ``ValueError`` otherwise).
    """

    config: MeshSimulationConfig
    meshes: tuple[ChannelMesh, ...]
    mesh_ids: Tensor
    u: Tensor
    kappa: Tensor
    drift: Tensor
    ell: Tensor
    splits: dict[str, Tensor]

    def __post_init__(self) -> None:
        self.meshes = tuple(self.meshes)
        self.mesh_ids = torch.as_tensor(self.mesh_ids, dtype=torch.long).reshape(-1)
        if len(self.mesh_ids) != self.num_trajectories:
            raise ValueError(
                f"mesh_ids: expected one per trajectory ({self.num_trajectories}), got "
                f"{len(self.mesh_ids)}"
            )
        if not self.meshes or int(self.mesh_ids.min()) < 0:
            raise ValueError("meshes: expected at least one mesh and non-negative mesh_ids")
        if int(self.mesh_ids.max()) >= len(self.meshes):
            raise ValueError(f"mesh_ids: ids must lie in [0, {len(self.meshes)})")
        sizes = {m.num_nodes for m in self.meshes}
        if sizes != {self.num_nodes}:
            raise ValueError(f"meshes: every mesh must have the {self.num_nodes} nodes of u")
        self._graphs: dict[int, SimulationGraph] = {}
        self._operators: dict[int, FEOperators] = {}

    @property
    def num_trajectories(self) -> int:
        return int(self.u.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.u.shape[1]) - 1

    @property
    def num_nodes(self) -> int:
        return int(self.u.shape[2])

    @property
    def num_meshes(self) -> int:
        return len(self.meshes)

    def graph(self, trajectory: int) -> SimulationGraph:
        """The mesh of ``trajectory`` as tensors (built once per mesh)."""
        trajectory = _check_int("trajectory", trajectory, 0, self.num_trajectories - 1)
        mesh_id = int(self.mesh_ids[trajectory])
        if mesh_id not in self._graphs:
            mesh = self.meshes[mesh_id]
            self._graphs[mesh_id] = SimulationGraph(
                mesh_id=mesh_id,
                mesh=mesh,
                pos=torch.from_numpy(mesh.pos).to(torch.float32),
                edge_index=torch.from_numpy(mesh.edges()),
                node_type=torch.from_numpy(mesh.node_type),
            )
        return self._graphs[mesh_id]

    def node_types(self, trajectories: Tensor | list[int]) -> Tensor:
        """``[len(trajectories), N]``: the node types of each trajectory's mesh."""
        ids = torch.as_tensor(trajectories, dtype=torch.long).reshape(-1).tolist()
        return torch.stack([self.graph(t).node_type for t in ids])

    def _single(self) -> SimulationGraph:
        if self.num_meshes != 1:
            raise ValueError(
                f"this data set has {self.num_meshes} meshes (geometry={self.config.geometry!r}): "
                "use sim.graph(trajectory) for the mesh of one trajectory"
            )
        return self.graph(0)

    @property
    def mesh(self) -> ChannelMesh:
        """The one mesh of a data set whose trajectories share it."""
        return self._single().mesh

    @property
    def pos(self) -> Tensor:
        return self._single().pos

    @property
    def edge_index(self) -> Tensor:
        return self._single().edge_index

    @property
    def node_type(self) -> Tensor:
        return self._single().node_type

    def operators(self, trajectory: int | None = None) -> FEOperators:
        """The P1 matrices of ``trajectory``'s mesh (``None``: the one mesh), assembled on first
        use."""
        graph = self._single() if trajectory is None else self.graph(trajectory)
        if graph.mesh_id not in self._operators:
            self._operators[graph.mesh_id] = assemble_p1(graph.mesh.pos, graph.mesh.cells)
        return self._operators[graph.mesh_id]

    def solver(self, trajectory: int) -> AdvectionDiffusionSolver:
        """The exact time stepper of ``trajectory`` (same mesh, κ, drift, Δt and obstacle)."""
        graph = self.graph(trajectory)
        return AdvectionDiffusionSolver(
            self.operators(trajectory),
            float(self.kappa[trajectory]),
            self.drift[trajectory].numpy(),
            self.config.dt,
            dirichlet=graph.mesh.node_type == OBSTACLE,
        )

    def delta_rms(self, split: str = "train") -> float:
        """The root mean square of the one-step change ``u[t + 1] - u[t]`` over the free
        (non-obstacle) nodes of every transition of ``split``: the scale of what a next-step
        model predicts (e.g. to set input noise as a fraction of it)."""
        ids = self.split(split)
        if len(ids) == 0:
            raise ValueError(f"split: {split!r} has no trajectories in this data set")
        free = (self.node_types(ids) != OBSTACLE).unsqueeze(1)
        u = self.u[ids].to(torch.float64)
        delta = (u[:, 1:] - u[:, :-1]) * free
        return float((delta.pow(2).sum() / (free.sum() * self.num_steps)).sqrt())

    def data(self, trajectory: int, step: int) -> Data:
        """Time step ``step`` of ``trajectory`` as ``Data(pos, edge_index, node_type, u, y,
        kappa, drift, ell, trajectory, step)``; ``u`` is ``[N, 1]`` at ``step``, ``y`` the next
        state ``[N, 1]`` (absent at the last step); constants are ``[1]`` / ``[1, dim]``."""
        trajectory = _check_int("trajectory", trajectory, 0, self.num_trajectories - 1)
        step = _check_int("step", step, 0, self.num_steps)
        graph = self.graph(trajectory)
        data = Data(
            pos=graph.pos,
            edge_index=graph.edge_index,
            node_type=graph.node_type,
            u=self.u[trajectory, step].unsqueeze(-1),
            kappa=self.kappa[trajectory].reshape(1),
            drift=self.drift[trajectory].reshape(1, -1),
            ell=self.ell[trajectory].reshape(1),
            trajectory=torch.tensor([trajectory]),
            step=torch.tensor([step]),
        )
        if step < self.num_steps:
            data.y = self.u[trajectory, step + 1].unsqueeze(-1)
        return data

    def trajectory(self, trajectory: int) -> list[Data]:
        """Every time step of ``trajectory`` (``num_steps + 1`` items)."""
        return [self.data(trajectory, t) for t in range(self.num_steps + 1)]

    def transitions(self, split: str) -> list[Data]:
        """Every (state, next state) pair of a split's trajectories, as :meth:`data` items."""
        return [self.data(int(i), t) for i in self.split(split) for t in range(self.num_steps)]

    def split(self, split: str) -> Tensor:
        """The trajectory ids of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in self.splits:
            raise ValueError(f"split: expected one of {list(self.splits)}, got {split!r}")
        return self.splits[split]

    def transition_index(self, split: str) -> Tensor:
        """``[K, 2]`` int64 (trajectory, step) of every transition ``u[t] -> u[t + 1]`` of a
        split's trajectories, trajectory by trajectory."""
        ids = self.split(split)
        steps = torch.arange(self.num_steps)
        return torch.stack(
            [ids.repeat_interleave(self.num_steps), steps.repeat(len(ids))], dim=1
        ).long()

    def __repr__(self) -> str:
        c = self.config
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        spacing = sum(m.spacing for m in self.meshes) / self.num_meshes
        return (
            f"MeshSimulation(dim={c.dim}, nodes={self.num_nodes}, meshes={self.num_meshes}, "
            f"trajectories={self.num_trajectories} ({sizes}), steps={self.num_steps}, "
            f"ell={c.ell}±{c.ell_spread * 100:.0f}%, h={spacing:.4g})"
        )


def _initial_field(mesh: ChannelMesh, widths: tuple[float, float], rng: np.random.Generator):
    pos, spacing, box = mesh.pos, mesh.spacing, mesh.box
    count = int(rng.integers(1, 5))
    u = np.zeros(len(pos))
    for _ in range(count):
        centre = rng.uniform(0.0, 1.0, size=pos.shape[1]) * np.asarray(box)
        # In mesh spacings, so that a blob spans the same number of hops at every mesh size.
        width = rng.uniform(*widths) * spacing
        amplitude = rng.uniform(0.25, 1.0)
        u += amplitude * np.exp(-((pos - centre) ** 2).sum(axis=1) / (2 * width**2))
    return u


def _varied_mesh(config: MeshSimulationConfig, trajectory: int) -> ChannelMesh:
    """Trajectory ``trajectory``'s own obstacle and mesh, drawn from the data seed."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 3, trajectory]))
    box, _, default_radius = _DOMAINS[config.dim]
    radius = default_radius * rng.uniform(*_RADIUS_RANGE)
    # The grid spacing a mesh of this many nodes has, about; the obstacle keeps _WALL_GAP of it.
    gap = _WALL_GAP * (np.prod(box) / config.num_nodes) ** (1 / config.dim)
    centre = []
    for size in box:
        low, high = radius + gap, size - radius - gap
        centre.append(float(rng.uniform(low, high)) if low < high else size / 2)
    mesh_seed = int(rng.integers(2**62))
    return channel_mesh(
        config.num_nodes, config.dim, seed=mesh_seed, centre=tuple(centre), radius=radius
    )


def generate_simulation(config: MeshSimulationConfig) -> MeshSimulation:
    """Generate the data set ``config`` describes (no cache: see
    :func:`~gnnagg.data.mesh_simulation`)."""
    num, dt, dim = config.num_trajectories, config.dt, config.dim
    if config.geometry == "varied" and config.obstacle:
        meshes = [_varied_mesh(config, i) for i in range(num)]
        mesh_ids = np.arange(num)
    else:
        meshes = [
            channel_mesh(config.num_nodes, dim, obstacle=config.obstacle, seed=config.seed)
        ]
        mesh_ids = np.zeros(num, dtype=np.int64)
    operators = [assemble_p1(mesh.pos, mesh.cells) for mesh in meshes]
    u = np.empty((num, config.num_steps + 1, config.num_nodes), dtype=_DTYPES[config.dtype])
    kappa, ell, drift = np.empty(num), np.empty(num), np.empty((num, dim))
    for i in range(num):
        mesh = meshes[mesh_ids[i]]
        h = mesh.spacing
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2, i]))
        ell[i] = config.ell * rng.uniform(1 - config.ell_spread, 1 + config.ell_spread)
        kappa[i] = (ell[i] * h) ** 2 / dt
        direction = rng.normal(size=dim)
        direction /= np.linalg.norm(direction)
        drift[i] = direction * rng.uniform(0.0, config.max_drift) * h / dt
        u0 = _initial_field(mesh, config.blob_widths, rng)
        dirichlet = mesh.node_type == OBSTACLE
        solver = AdvectionDiffusionSolver(operators[mesh_ids[i]], kappa[i], drift[i], dt, dirichlet)
        u[i] = solver.run(u0, config.num_steps)
    return MeshSimulation(
        config=config,
        meshes=tuple(meshes),
        mesh_ids=torch.from_numpy(mesh_ids),
        u=torch.from_numpy(u),
        kappa=torch.from_numpy(kappa),
        drift=torch.from_numpy(drift),
        ell=torch.from_numpy(ell),
        splits={k: torch.from_numpy(v) for k, v in config.split_ids().items()},
    )
