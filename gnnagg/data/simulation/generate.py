r"""Generated advection--diffusion data sets: their configuration, the data set, the generator.

Each trajectory of :func:`generate_simulation` draws its own diffusivity, drift and initial
field (a sum of Gaussians) on one :func:`~gnnagg.data.meshes.channel_mesh`, and is stepped by
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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from ..meshes import OBSTACLE, ChannelMesh, _check_dim, _check_int, _check_num_nodes, channel_mesh
from .fem import AdvectionDiffusionSolver, FEOperators, _check_float, assemble_p1

__all__ = [
    "MAX_FIELD_BYTES",
    "RECIPE_VERSION",
    "MeshSimulation",
    "MeshSimulationConfig",
    "generate_simulation",
]

#: Largest stored field ``u`` (trajectories × (steps + 1) × nodes × bytes per value).
MAX_FIELD_BYTES = 4 * 2**30
_MAX_STEPS = 100_000
_MAX_TRAJECTORIES = 100_000
#: Bumped when the generator's output changes for the same configuration: caches get rebuilt.
RECIPE_VERSION = 1
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
        self.split_ids()
        size = trajectories * (steps + 1) * self.num_nodes * np.dtype(_DTYPES[self.dtype]).itemsize
        if size > MAX_FIELD_BYTES:
            raise ValueError(
                f"num_trajectories × (num_steps + 1) × num_nodes = {trajectories} × {steps + 1} × "
                f"{self.num_nodes} values of {self.dtype} take {size / 2**30:.1f} GiB, above the "
                f"{MAX_FIELD_BYTES / 2**30:.0f} GiB limit (MAX_FIELD_BYTES); reduce one of them"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "splits": list(self.splits)}

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


@dataclass(eq=False)
class MeshSimulation:
    """A generated data set: one mesh, many trajectories.

    Tensors: ``pos`` ``[N, dim]`` (float32), ``edge_index`` ``[2, E]`` (both directions),
    ``node_type`` ``[N]``, ``u`` ``[num_trajectories, num_steps + 1, N]``, and per trajectory
    ``kappa`` ``[T]``, ``drift`` ``[T, dim]``, ``ell`` ``[T]`` (float64). ``splits`` maps
    ``"train"``, ``"val"``, ``"test"`` to trajectory ids. :meth:`data` gives the PyG ``Data`` of
    one time step; :meth:`solver` the exact solver of one trajectory.
    """

    config: MeshSimulationConfig
    mesh: ChannelMesh
    u: Tensor
    kappa: Tensor
    drift: Tensor
    ell: Tensor
    splits: dict[str, Tensor]
    pos: Tensor = field(init=False)
    edge_index: Tensor = field(init=False)
    node_type: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.pos = torch.from_numpy(self.mesh.pos).to(torch.float32)
        self.edge_index = torch.from_numpy(self.mesh.edges())
        self.node_type = torch.from_numpy(self.mesh.node_type)
        self._operators: FEOperators | None = None

    @property
    def num_trajectories(self) -> int:
        return int(self.u.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.u.shape[1]) - 1

    @property
    def num_nodes(self) -> int:
        return int(self.u.shape[2])

    def operators(self) -> FEOperators:
        """The mesh's P1 matrices (assembled on first use)."""
        if self._operators is None:
            self._operators = assemble_p1(self.mesh.pos, self.mesh.cells)
        return self._operators

    def solver(self, trajectory: int) -> AdvectionDiffusionSolver:
        """The exact time stepper of ``trajectory`` (same κ, drift, Δt and obstacle value)."""
        trajectory = _check_int("trajectory", trajectory, 0, self.num_trajectories - 1)
        return AdvectionDiffusionSolver(
            self.operators(),
            float(self.kappa[trajectory]),
            self.drift[trajectory].numpy(),
            self.config.dt,
            dirichlet=self.mesh.node_type == OBSTACLE,
        )

    def data(self, trajectory: int, step: int) -> Data:
        """Time step ``step`` of ``trajectory`` as ``Data(pos, edge_index, node_type, u, y,
        kappa, drift, ell, trajectory, step)``; ``u`` is ``[N, 1]`` at ``step``, ``y`` the next
        state ``[N, 1]`` (absent at the last step); constants are ``[1]`` / ``[1, dim]``."""
        trajectory = _check_int("trajectory", trajectory, 0, self.num_trajectories - 1)
        step = _check_int("step", step, 0, self.num_steps)
        data = Data(
            pos=self.pos,
            edge_index=self.edge_index,
            node_type=self.node_type,
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
        return (
            f"MeshSimulation(dim={c.dim}, nodes={self.num_nodes}, "
            f"edges={self.edge_index.shape[1]}, "
            f"trajectories={self.num_trajectories} ({sizes}), steps={self.num_steps}, "
            f"ell={c.ell}±{c.ell_spread * 100:.0f}%, h={self.mesh.spacing:.4g})"
        )


def _initial_field(mesh: ChannelMesh, rng: np.random.Generator) -> np.ndarray:
    pos, spacing, box = mesh.pos, mesh.spacing, mesh.box
    count = int(rng.integers(1, 5))
    u = np.zeros(len(pos))
    for _ in range(count):
        centre = rng.uniform(0.0, 1.0, size=pos.shape[1]) * np.asarray(box)
        # Widths resolved by the mesh: at least two spacings.
        width = rng.uniform(max(0.02, 2 * spacing), max(0.08, 4 * spacing))
        amplitude = rng.uniform(0.25, 1.0)
        u += amplitude * np.exp(-((pos - centre) ** 2).sum(axis=1) / (2 * width**2))
    return u


def generate_simulation(config: MeshSimulationConfig) -> MeshSimulation:
    """Generate the data set ``config`` describes (no cache: see
    :func:`~gnnagg.data.mesh_simulation`)."""
    mesh = channel_mesh(config.num_nodes, config.dim, obstacle=config.obstacle, seed=config.seed)
    operators = assemble_p1(mesh.pos, mesh.cells)
    dirichlet = mesh.node_type == OBSTACLE
    h, dt, dim = mesh.spacing, config.dt, config.dim
    num = config.num_trajectories
    u = np.empty((num, config.num_steps + 1, mesh.num_nodes), dtype=_DTYPES[config.dtype])
    kappa, ell, drift = np.empty(num), np.empty(num), np.empty((num, dim))
    for i in range(num):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2, i]))
        ell[i] = config.ell * rng.uniform(1 - config.ell_spread, 1 + config.ell_spread)
        kappa[i] = (ell[i] * h) ** 2 / dt
        direction = rng.normal(size=dim)
        direction /= np.linalg.norm(direction)
        drift[i] = direction * rng.uniform(0.0, config.max_drift) * h / dt
        u0 = _initial_field(mesh, rng)
        solver = AdvectionDiffusionSolver(operators, kappa[i], drift[i], dt, dirichlet)
        u[i] = solver.run(u0, config.num_steps)
    return MeshSimulation(
        config=config,
        mesh=mesh,
        u=torch.from_numpy(u),
        kappa=torch.from_numpy(kappa),
        drift=torch.from_numpy(drift),
        ell=torch.from_numpy(ell),
        splits={k: torch.from_numpy(v) for k, v in config.split_ids().items()},
    )


# --------------------------------------------------------------------------------------------
# Files and the cache
# --------------------------------------------------------------------------------------------
