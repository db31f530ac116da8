r"""Download-free mesh simulations: advection–diffusion past an obstacle on unstructured meshes.

The mesh-based simulation literature (MeshGraphNet, Pfaff et al. 2021,
https://arxiv.org/abs/2010.03409; "Training Transformers for Mesh-Based Simulations", Garnier et
al. 2025, https://arxiv.org/abs/2508.18051) trains on CylinderFlow and similar sets, which are
large downloads. This module generates comparable data from a seed: a scalar field :math:`u`
carried and spread in CylinderFlow's channel,

.. math::

    \partial_t u + \nabla\cdot(\mathbf b\,u) - \kappa\,\Delta u = 0,

on :math:`[0, 2.2] \times [0, 0.41]` minus a cylinder of radius 0.05 centred at
:math:`(0.2, 0.2)` (in 3-D: the box :math:`[0, 2.2] \times [0, 0.41]^2` minus a sphere of
radius 0.05 centred at :math:`(0.2, 0.2, 0.2)`). The obstacle is held at :math:`u = 1`
(Dirichlet); every outer wall has zero total flux :math:`(\mathbf b u - \kappa \nabla u)\cdot
\mathbf n = 0`, so without the obstacle the total mass :math:`\int u` is conserved exactly.

Discretisation: a Delaunay mesh (scipy's Qhull) of a jittered grid with exactly the requested
number of nodes, elements inside the obstacle removed; P1 finite elements with the consistent
mass matrix :math:`M`, stiffness :math:`K` and the conservative advection matrix
:math:`C_{ij} = -\int \varphi_j\,\mathbf b\cdot\nabla\varphi_i`; implicit Euler

.. math::

    \bigl(M + \Delta t\,(\kappa K + C)\bigr)\,u^{n+1} = M u^n,

with the obstacle rows eliminated, factorised once per trajectory (``scipy.sparse.linalg.splu``).
Because the columns of :math:`K` and :math:`C` sum to zero, :math:`\mathbf 1^\top M u` changes
only through the obstacle.

Each trajectory draws its own diffusivity, drift and initial field (a sum of Gaussians). The
knob that matters for learned simulators is the diffusion length per step in mesh spacings,

.. math::

    \ell = \sqrt{\kappa\,\Delta t} / h,

with :math:`h` the mean edge length: roughly how many graph hops information travels in one
step. Trajectories are parameterised by :math:`\ell` (and the drift by the distance it carries
the field per step, also in spacings), so one configuration means the same thing at every mesh
size.

Entry points: :func:`mesh_simulation` (generate or load from the cache), :func:`channel_mesh`,
:func:`assemble_p1` and :class:`AdvectionDiffusionSolver` (the exact solver step, also used to
check learned models). The card is ``datasets/mesh_simulation.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from .download import cache_root, datasets_dir, sha256_file

__all__ = [
    "MAX_FIELD_BYTES",
    "NODE_TYPES",
    "AdvectionDiffusionSolver",
    "ChannelMesh",
    "FEOperators",
    "MeshSimulation",
    "MeshSimulationConfig",
    "assemble_p1",
    "channel_mesh",
    "load_mesh_simulation",
    "mesh_simulation",
    "save_mesh_simulation",
]

#: Node types, in the order of ``node_type``'s integer codes.
NODE_TYPES: tuple[str, ...] = ("interior", "wall", "obstacle")
INTERIOR, WALL, OBSTACLE = 0, 1, 2

# CylinderFlow's channel (Schäfer & Turek 1996) and its 3-D analogue: box, obstacle centre, radius.
_DOMAINS: dict[int, tuple[tuple[float, ...], tuple[float, ...], float]] = {
    2: ((2.2, 0.41), (0.2, 0.2), 0.05),
    3: ((2.2, 0.41, 0.41), (0.2, 0.2, 0.2), 0.05),
}
# Fewer nodes cannot resolve the obstacle; more would need more memory than Delaunay and the
# sparse LU can give on a workstation (3-D fill-in grows much faster than 2-D).
_MIN_NODES = {2: 200, 3: 1_000}
_MAX_NODES = {2: 2_000_000, 3: 200_000}
#: Largest stored field ``u`` (trajectories × (steps + 1) × nodes × bytes per value).
MAX_FIELD_BYTES = 4 * 2**30
_MAX_STEPS = 100_000
_MAX_TRAJECTORIES = 100_000
# Bump when the generator's output changes for the same configuration: caches get rebuilt.
_RECIPE_VERSION = 1
_DTYPES = {"float32": np.float32, "float64": np.float64}
_SPLITS = ("train", "val", "test")
# Interior grid points are shifted by up to this fraction of the spacing, per axis.
_JITTER = 0.25
# The committed fixture (datasets/mesh_simulation.md): its configuration, path and sha256.
_FIXTURE_OPTIONS: dict[str, Any] = {
    "dim": 2,
    "num_nodes": 300,
    "num_trajectories": 4,
    "num_steps": 10,
    "splits": (0.5, 0.25, 0.25),
}
_FIXTURE_PATH = "fixtures/mesh_simulation/advection_diffusion_2d_300.npz"
_FIXTURE_SHA256 = "ea8c71716b9ee4e9702f71b0de14fd6a47a8b8290525daa2886d85f3d5fe6fd5"


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}: expected an int in [{low}, {high}], got {value}")
    return int(value)


def _check_float(name: str, value: object, low: float, high: float, open_low: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value > high or value < low or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise ValueError(f"{name}: expected a number in {bracket}{low}, {high}], got {value}")
    return value


def _check_dim(dim: object) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim not in _DOMAINS:
        raise ValueError(f"dim: expected 2 or 3, got {dim!r}")
    return dim


def _check_num_nodes(num_nodes: object, dim: int) -> int:
    return _check_int("num_nodes", num_nodes, _MIN_NODES[dim], _MAX_NODES[dim])


# --------------------------------------------------------------------------------------------
# Mesh
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ChannelMesh:
    """A simplicial mesh of the channel: ``pos`` ``[N, dim]`` (float64), ``cells``
    ``[num_cells, dim + 1]`` (int64, node ids of each triangle or tetrahedron), ``node_type``
    ``[N]`` (codes into :data:`NODE_TYPES`), ``spacing`` (mean edge length :math:`h`) and
    ``obstacle`` (whether the obstacle was cut out)."""

    pos: np.ndarray
    cells: np.ndarray
    node_type: np.ndarray
    spacing: float
    obstacle: bool = True

    @property
    def dim(self) -> int:
        return int(self.pos.shape[1])

    @property
    def num_nodes(self) -> int:
        return int(self.pos.shape[0])

    def edges(self) -> np.ndarray:
        """The mesh edges ``[2, E]`` in both directions, sorted by source then target, without
        duplicates or self-loops (int64)."""
        return _mesh_edges(self.cells, self.num_nodes)

    def cell_volumes(self) -> np.ndarray:
        """Area (2-D) or volume (3-D) of every cell."""
        return _cell_geometry(self.pos, self.cells)[0]


def _mesh_edges(cells: np.ndarray, num_nodes: int) -> np.ndarray:
    corners = cells.shape[1]
    pairs = [(a, b) for a in range(corners) for b in range(corners) if a != b]
    src = np.concatenate([cells[:, a] for a, _ in pairs])
    dst = np.concatenate([cells[:, b] for _, b in pairs])
    keys = np.unique(src.astype(np.int64) * num_nodes + dst)
    return np.stack([keys // num_nodes, keys % num_nodes])


def _grid_points(spacing: float, dim: int, obstacle: bool, seed: int):
    """Jittered grid points, exact on the box faces, with the obstacle's surface points."""
    box, centre, radius = _DOMAINS[dim]
    size = np.asarray(box)
    cells_per_axis = np.maximum(np.ceil(size / spacing).astype(np.int64), 2)
    step = size / cells_per_axis
    axes = [np.arange(c + 1) for c in cells_per_axis]
    index = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
    on_wall = ((index == 0) | (index == cells_per_axis)).any(axis=1)
    points = index * step
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0, dim]))
    shift = rng.uniform(-_JITTER, _JITTER, size=points.shape) * step
    points = np.where(on_wall[:, None], points, points + shift)
    if not obstacle:
        return points, np.where(on_wall, WALL, INTERIOR), step
    h = float(step.min())
    # Clear a shell around the obstacle so that Delaunay keeps the obstacle's surface facets
    # (an exterior point closer than half a surface chord could cut across them).
    keep = np.linalg.norm(points - np.asarray(centre), axis=1) >= radius + 0.75 * h
    surface_spacing = 0.8 * h
    if dim == 2:
        count = max(12, math.ceil(2 * math.pi * radius / surface_spacing))
        angle = 2 * math.pi * np.arange(count) / count
        surface = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    else:
        # Fibonacci sphere with about one point per triangular-lattice cell of side surface_spacing.
        area = 4 * math.pi * radius**2
        count = max(24, math.ceil(area / (math.sqrt(3) / 2 * surface_spacing**2)))
        k = np.arange(count) + 0.5
        polar = np.arccos(1 - 2 * k / count)
        azimuth = math.pi * (1 + math.sqrt(5)) * k
        surface = np.stack(
            [np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)],
            axis=1,
        )
    points = np.concatenate([points[keep], np.asarray(centre) + radius * surface])
    types = np.concatenate(
        [np.where(on_wall[keep], WALL, INTERIOR), np.full(count, OBSTACLE, dtype=np.int64)]
    )
    return points, types, step


def _cell_geometry(pos: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Volumes ``[C]`` and the gradients of the P1 basis functions ``[C, dim + 1, dim]``."""
    dim = pos.shape[1]
    corners = pos[cells]
    # edges[c, :, k] is the k-th edge vector of cell c, so that x = x0 + edges @ xi.
    edges = (corners[:, 1:] - corners[:, :1]).transpose(0, 2, 1)
    det = np.linalg.det(edges)
    volumes = np.abs(det) / math.factorial(dim)
    inverse = np.linalg.inv(edges)
    # grad xi_k is row k of edges^-1; phi_0 = 1 - sum xi.
    grads = np.concatenate([-inverse.sum(axis=1, keepdims=True), inverse], axis=1)
    return volumes, grads


def channel_mesh(num_nodes: int, dim: int = 2, *, obstacle: bool = True, seed: int = 0):
    """A Delaunay mesh of the channel with exactly ``num_nodes`` nodes.

    Points: a grid jittered by up to a quarter spacing (exact on the walls), with the obstacle's
    surface sampled at 0.8 spacings and a clear shell around it; the spacing is the largest that
    gives at least ``num_nodes`` points, and the few extra interior points are dropped at random.
    Elements with every vertex on the obstacle (those inside it) and degenerate elements from
    co-planar wall points are removed. Deterministic for ``seed``.

    :param num_nodes: node count; 2-D from 200 to 2,000,000, 3-D from 1,000 to 200,000.
    :param dim: 2 (the cylinder channel) or 3 (a sphere in a box).
    :param obstacle: cut the obstacle out (``False``: the plain box, for conservation tests).
    :param seed: seed of the jitter and of the dropped points.
    :returns: a :class:`ChannelMesh`.
    """
    dim = _check_dim(dim)
    num_nodes = _check_num_nodes(num_nodes, dim)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    if not isinstance(obstacle, bool):
        raise TypeError(f"obstacle: expected a bool, got {type(obstacle).__name__}")
    try:
        from scipy.spatial import Delaunay
    except ImportError as err:  # pragma: no cover - scipy is in the data extra
        raise ImportError("mesh simulations need scipy: pip install 'gnnagg[data]'") from err

    box, _, radius = _DOMAINS[dim]
    volume = math.prod(box) - (obstacle * (math.pi * radius**2 if dim == 2 else 0.0))

    def count(h: float) -> int:
        return len(_grid_points(h, dim, obstacle, seed)[0])

    # The largest spacing with enough points: grow a bracket, then bisect.
    fine = (volume / num_nodes) ** (1 / dim)
    while count(fine) < num_nodes:
        fine *= 0.9
    coarse = fine
    while count(coarse) >= num_nodes:
        coarse /= 0.9
    for _ in range(30):
        middle = 0.5 * (fine + coarse)
        if count(middle) >= num_nodes:
            fine = middle
        else:
            coarse = middle
        if coarse - fine < 1e-9 * fine:
            break
    points, types, _ = _grid_points(fine, dim, obstacle, seed)
    excess = len(points) - num_nodes
    if excess:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, dim]))
        candidates = np.flatnonzero(types == INTERIOR)
        drop = rng.choice(candidates, size=excess, replace=False)
        keep = np.ones(len(points), dtype=bool)
        keep[drop] = False
        points, types = points[keep], types[keep]

    # 3-D wall points are co-planar by design; Qhull resolves such degeneracies slowly (4x on
    # 30k nodes) unless it joggles the input ("QJ", seeded, so still deterministic). Flat
    # elements the joggle leaves on the walls are dropped below with the degenerate ones.
    options = "QJ Qbb Qc Q12" if dim == 3 else None
    cells = Delaunay(points, qhull_options=options).simplices.astype(np.int64)
    if obstacle:
        cells = cells[~(types[cells] == OBSTACLE).all(axis=1)]
    corners = points[cells]
    det = np.abs(np.linalg.det((corners[:, 1:] - corners[:, :1]).transpose(0, 2, 1)))
    cells = cells[det > 1e-9 * fine**dim]
    unused = int((np.bincount(cells.ravel(), minlength=num_nodes) == 0).sum())
    if unused:
        raise RuntimeError(
            f"channel_mesh: Delaunay left {unused} node(s) outside "
            f"every element (num_nodes={num_nodes}, dim={dim}, seed={seed}); try another seed"
        )
    edges = _mesh_edges(cells, num_nodes)
    forward = edges[0] < edges[1]
    spacing = float(
        np.linalg.norm(points[edges[0, forward]] - points[edges[1, forward]], axis=1).mean()
    )
    return ChannelMesh(
        pos=points,
        cells=cells,
        node_type=types.astype(np.int64),
        spacing=spacing,
        obstacle=obstacle,
    )


# --------------------------------------------------------------------------------------------
# Finite elements and the solver
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FEOperators:
    """P1 matrices of a mesh (``scipy.sparse`` CSR): ``mass`` :math:`M_{ij} = \\int \\varphi_i
    \\varphi_j`, ``stiffness`` :math:`K_{ij} = \\int \\nabla\\varphi_i\\cdot\\nabla\\varphi_j` and
    ``advection[k]`` :math:`= -\\int \\varphi_j\\,\\partial_k \\varphi_i`, so that the advection
    matrix of a drift :math:`\\mathbf b` is :math:`\\sum_k b_k` ``advection[k]``."""

    mass: Any
    stiffness: Any
    advection: tuple[Any, ...]

    def advection_matrix(self, drift: Sequence[float] | np.ndarray) -> Any:
        drift = np.asarray(drift, dtype=np.float64).reshape(-1)
        if drift.shape != (len(self.advection),):
            raise ValueError(f"drift: expected {len(self.advection)} components, got {drift.shape}")
        out = self.advection[0] * drift[0]
        for component, matrix in zip(drift[1:], self.advection[1:]):
            out = out + matrix * component
        return out


def assemble_p1(pos: np.ndarray, cells: np.ndarray) -> FEOperators:
    """Assemble the P1 mass, stiffness and advection matrices, vectorised over cells."""
    from scipy.sparse import coo_matrix

    pos = np.asarray(pos, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.int64)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise ValueError(f"pos: expected shape [N, 2] or [N, 3], got {pos.shape}")
    dim, n = pos.shape[1], pos.shape[0]
    if cells.ndim != 2 or cells.shape[1] != dim + 1:
        raise ValueError(f"cells: expected shape [C, {dim + 1}], got {cells.shape}")
    if cells.size and (cells.min() < 0 or cells.max() >= n):
        raise ValueError(
            f"cells: node ids must lie in [0, {n}), got [{cells.min()}, {cells.max()}]"
        )
    volumes, grads = _cell_geometry(pos, cells)
    corners = dim + 1
    rows = np.broadcast_to(cells[:, :, None], (len(cells), corners, corners)).ravel()
    cols = np.broadcast_to(cells[:, None, :], (len(cells), corners, corners)).ravel()

    def build(local: np.ndarray) -> Any:
        return coo_matrix((local.ravel(), (rows, cols)), shape=(n, n)).tocsr()

    stiffness = build(volumes[:, None, None] * grads @ grads.transpose(0, 2, 1))
    local_mass = (np.ones((corners, corners)) + np.eye(corners)) / ((dim + 1) * (dim + 2))
    mass = build(volumes[:, None, None] * local_mass)
    # The integral of phi_j over a cell is volume / (dim + 1); grad phi_i is constant there.
    advection = tuple(
        build(
            np.broadcast_to(
                (-grads[:, :, k] * volumes[:, None] / corners)[:, :, None],
                (len(cells), corners, corners),
            )
        )
        for k in range(dim)
    )
    return FEOperators(mass=mass, stiffness=stiffness, advection=advection)


class AdvectionDiffusionSolver:
    """Implicit Euler steps of one trajectory: :math:`(M + \\Delta t(\\kappa K + C)) u^{n+1} =
    M u^n` with ``u`` fixed to ``boundary_value`` on the ``dirichlet`` nodes.

    The matrix restricted to the free nodes is factorised once (``splu``); :meth:`step` then
    costs two sparse products and one pair of triangular solves, for one field ``[N]`` or for
    several at once ``[N, B]``.
    """

    def __init__(
        self,
        operators: FEOperators,
        kappa: float,
        drift: Sequence[float] | np.ndarray,
        dt: float,
        dirichlet: np.ndarray | None = None,
        boundary_value: float = 1.0,
    ) -> None:
        from scipy.sparse.linalg import splu

        kappa = _check_float("kappa", kappa, 0.0, math.inf)
        dt = _check_float("dt", dt, 0.0, math.inf, open_low=True)
        mass = operators.mass
        n = mass.shape[0]
        matrix = mass + dt * (kappa * operators.stiffness + operators.advection_matrix(drift))
        matrix = matrix.tocsr()
        if dirichlet is None:
            dirichlet = np.zeros(n, dtype=bool)
        dirichlet = np.asarray(dirichlet, dtype=bool)
        if dirichlet.shape != (n,):
            raise ValueError(
                f"dirichlet: expected a boolean mask of shape ({n},), got {dirichlet.shape}"
            )
        self.num_nodes = n
        self.dirichlet = dirichlet
        self.boundary_value = float(boundary_value)
        self._free = np.flatnonzero(~dirichlet)
        self._fixed = np.flatnonzero(dirichlet)
        free_rows = matrix[self._free]
        self._lu = splu(free_rows[:, self._free].tocsc())
        self._coupling = free_rows[:, self._fixed]
        self._mass_rows = mass[self._free]

    def step(self, u: np.ndarray) -> np.ndarray:
        """One time step from ``u`` (``[N]`` or ``[N, B]``, float64); returns a new array."""
        u = np.asarray(u, dtype=np.float64)
        if u.shape[0] != self.num_nodes or u.ndim not in (1, 2):
            raise ValueError(
                f"u: expected shape [{self.num_nodes}] or [{self.num_nodes}, B], got {u.shape}"
            )
        fixed = np.full((len(self._fixed),) + u.shape[1:], self.boundary_value)
        rhs = self._mass_rows @ u - self._coupling @ fixed
        out = np.empty_like(u)
        out[self._free] = self._lu.solve(rhs)
        out[self._fixed] = fixed
        return out

    def run(self, u0: np.ndarray, num_steps: int) -> np.ndarray:
        """``[num_steps + 1, N]``: ``u0`` (with the Dirichlet nodes set) and every step after."""
        out = np.empty((num_steps + 1, self.num_nodes))
        out[0] = u0
        out[0, self._fixed] = self.boundary_value
        for t in range(num_steps):
            out[t + 1] = self.step(out[t])
        return out


# --------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------


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
        text = json.dumps({**self.to_dict(), "recipe": _RECIPE_VERSION}, sort_keys=True)
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
        if split not in self.splits:
            raise ValueError(f"split: expected one of {list(self.splits)}, got {split!r}")
        return self.splits[split]

    def __repr__(self) -> str:
        c = self.config
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return (
            f"MeshSimulation(dim={c.dim}, nodes={self.num_nodes}, "
            f"edges={self.edge_index.shape[1]}, "
            f"trajectories={self.num_trajectories} ({sizes}), steps={self.num_steps}, "
            f"ell={c.ell}±{c.ell_spread * 100:.0f}%, h={self.mesh.spacing:.4g})"
        )


def _initial_field(pos: np.ndarray, spacing: float, rng: np.random.Generator) -> np.ndarray:
    box, _, _ = _DOMAINS[pos.shape[1]]
    count = int(rng.integers(1, 5))
    u = np.zeros(len(pos))
    for _ in range(count):
        centre = rng.uniform(0.0, 1.0, size=pos.shape[1]) * np.asarray(box)
        # Widths resolved by the mesh: at least two spacings.
        width = rng.uniform(max(0.02, 2 * spacing), max(0.08, 4 * spacing))
        amplitude = rng.uniform(0.25, 1.0)
        u += amplitude * np.exp(-((pos - centre) ** 2).sum(axis=1) / (2 * width**2))
    return u


def _generate(config: MeshSimulationConfig) -> MeshSimulation:
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
        u0 = _initial_field(mesh.pos, h, rng)
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


def save_mesh_simulation(sim: MeshSimulation, path: str | os.PathLike[str]) -> str:
    """Write ``sim`` to ``path`` (an ``.npz`` of plain arrays, no pickled objects) atomically:
    a temporary file in the same folder, renamed into place when complete. Returns its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "config": np.array(json.dumps(sim.config.to_dict(), sort_keys=True)),
        "recipe": np.array(_RECIPE_VERSION),
        "pos": sim.mesh.pos,
        "cells": sim.mesh.cells,
        "node_type": sim.mesh.node_type,
        "spacing": np.array(sim.mesh.spacing),
        "u": sim.u.numpy(),
        "kappa": sim.kappa.numpy(),
        "drift": sim.drift.numpy(),
        "ell": sim.ell.numpy(),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


_ARRAYS = ("config", "recipe", "pos", "cells", "node_type", "spacing", "u", "kappa", "drift", "ell")


def load_mesh_simulation(path: str | os.PathLike[str], sha256: str | None = None) -> MeshSimulation:
    """Load a file written by :func:`save_mesh_simulation` (``allow_pickle=False``); with
    ``sha256``, the file's hash must match. A file that is not such a data set, or whose arrays
    disagree with its configuration, raises ``ValueError`` naming the file."""
    path = Path(path)
    if sha256 is not None and sha256_file(path) != sha256:
        raise ValueError(f"{path}: sha256 does not match the expected {sha256}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        missing = [k for k in _ARRAYS if k not in arrays]
        if missing:
            raise ValueError(f"arrays {missing} are missing")
        config_dict = json.loads(str(arrays["config"]))
        config_dict["splits"] = tuple(config_dict["splits"])
        config = MeshSimulationConfig(**config_dict)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{path}: not a mesh simulation file ({err})") from err
    n, dim, num = config.num_nodes, config.dim, config.num_trajectories
    expected = {
        "pos": (n, dim),
        "node_type": (n,),
        "u": (num, config.num_steps + 1, n),
        "kappa": (num,),
        "drift": (num, dim),
        "ell": (num,),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(f"{path}: {name} has shape {arrays[name].shape}, expected {shape}")
    cells = arrays["cells"]
    if cells.ndim != 2 or cells.shape[1] != dim + 1 or cells.min() < 0 or cells.max() >= n:
        raise ValueError(f"{path}: cells do not index the {n} nodes with {dim + 1} corners")
    mesh = ChannelMesh(
        pos=arrays["pos"],
        cells=cells,
        node_type=arrays["node_type"],
        spacing=float(arrays["spacing"]),
        obstacle=config.obstacle,
    )
    return MeshSimulation(
        config=config,
        mesh=mesh,
        u=torch.from_numpy(arrays["u"]),
        kappa=torch.from_numpy(arrays["kappa"]),
        drift=torch.from_numpy(arrays["drift"]),
        ell=torch.from_numpy(arrays["ell"]),
        splits={k: torch.from_numpy(v) for k, v in config.split_ids().items()},
    )


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached(config: MeshSimulationConfig, root: Path) -> MeshSimulation | None:
    folder = root / "mesh_simulation"
    data, stamp = folder / f"{config.key()}.npz", folder / f"{config.key()}.json"
    try:
        with open(stamp, encoding="utf-8") as f:
            expected = json.load(f)
    except (OSError, ValueError):
        return None
    if expected.get("config") != config.to_dict() or expected.get("recipe") != _RECIPE_VERSION:
        return None
    if not data.is_file() or sha256_file(data) != expected.get("sha256"):
        warnings.warn(
            f"{data}: missing or its sha256 does not match {stamp}; rebuilding", stacklevel=3
        )
        return None
    try:
        loaded = load_mesh_simulation(data)
    except ValueError as err:
        warnings.warn(f"{err}; rebuilding", stacklevel=3)
        return None
    if loaded.config != config:
        warnings.warn(f"{data}: holds another configuration than {stamp}; rebuilding", stacklevel=3)
        return None
    return loaded


def mesh_simulation(
    dim: int = 2,
    num_nodes: int = 10_000,
    num_trajectories: int = 50,
    num_steps: int = 100,
    *,
    ell: float = 2.0,
    ell_spread: float = 0.25,
    max_drift: float = 0.25,
    dt: float = 0.01,
    obstacle: bool = True,
    seed: int = 0,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    dtype: str = "float32",
    root: str | os.PathLike[str] | None = None,
    cache: bool = True,
    fixture: bool = False,
) -> MeshSimulation:
    """Generate (or load from the cache) an advection–diffusion data set.

    The arguments are those of :class:`MeshSimulationConfig`. With ``cache=True`` the result is
    stored in ``<root>/mesh_simulation/<key>.npz`` beside a ``<key>.json`` stamp holding the
    configuration and the file's sha256; both are written atomically (temporary file, then
    ``os.replace``) and a file whose hash no longer matches is rebuilt. ``root`` defaults to
    ``$GNNAGG_DATA`` or ``~/.cache/gnnagg``. ``fixture=True`` returns the small committed data
    set instead (2-D, 300 nodes, 4 trajectories of 10 steps, hash-checked; the other arguments
    must be left at their defaults), as generated by :func:`write_fixture`.

    Cost: the 2-D default (10,000 nodes × 50 trajectories × 100 steps) took 20-45 s on one
    shared CPU core and 193 MiB; see ``datasets/mesh_simulation.md``.
    """
    if fixture:
        given = {
            "dim": dim,
            "num_nodes": num_nodes,
            "num_trajectories": num_trajectories,
            "num_steps": num_steps,
            "ell": ell,
            "ell_spread": ell_spread,
            "max_drift": max_drift,
            "dt": dt,
            "obstacle": obstacle,
            "seed": seed,
            "splits": tuple(splits),
            "dtype": dtype,
        }
        defaults = MeshSimulationConfig().to_dict() | {"splits": MeshSimulationConfig().splits}
        changed = sorted(k for k, v in given.items() if v != defaults[k])
        if changed:
            raise ValueError(f"fixture=True loads a fixed data set; do not pass {changed}")
        return load_mesh_simulation(datasets_dir() / _FIXTURE_PATH, sha256=_FIXTURE_SHA256)
    config = MeshSimulationConfig(
        dim=dim,
        num_nodes=num_nodes,
        num_trajectories=num_trajectories,
        num_steps=num_steps,
        ell=ell,
        ell_spread=ell_spread,
        max_drift=max_drift,
        dt=dt,
        obstacle=obstacle,
        seed=seed,
        splits=splits,
        dtype=dtype,
    )
    if not cache:
        return _generate(config)
    folder = cache_root(root) / "mesh_simulation"
    found = _cached(config, folder.parent)
    if found is not None:
        return found
    sim = _generate(config)
    folder.mkdir(parents=True, exist_ok=True)
    digest = save_mesh_simulation(sim, folder / f"{config.key()}.npz")
    _write_json(
        folder / f"{config.key()}.json",
        {"config": config.to_dict(), "recipe": _RECIPE_VERSION, "sha256": digest},
    )
    return sim


def write_fixture(folder: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Regenerate the committed fixture into ``folder`` (default: the ``datasets/`` folder);
    returns its path and sha256 (to be written into ``_FIXTURE_SHA256``)."""
    base = Path(folder) if folder is not None else datasets_dir()
    sim = mesh_simulation(**_FIXTURE_OPTIONS, cache=False)
    path = base / _FIXTURE_PATH
    return path, save_mesh_simulation(sim, path)
