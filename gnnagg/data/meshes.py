"""Mesh graphs with coordinates: the airfoil mesh, generated 3-D meshes of any size, and the
simulation channel.

``airfoil``
    PyGSP's airfoil mesh (4,253 nodes) from ``pointclouds/airfoil.mat``: 2-D node coordinates
    ``pos`` ``[4253, 2]`` and the mesh edges, made undirected (both directions), without
    self-loops or duplicates, as PyGSP's ``graphs.Airfoil`` does with ``(A + A^T) / 2``.

:func:`lattice_mesh` and :func:`delaunay_mesh` generate 3-D meshes up to hundreds of thousands of
nodes for the attention benchmarks. All these mesh graphs are ``Data(pos, edge_index)`` with
``edge_index`` undirected, coalesced (sorted by source, then target) and loop-free.

:func:`channel_mesh` is the simplicial mesh (cells and node types, not only edges) on which
:mod:`gnnagg.data.simulation` solves its advection--diffusion problems: CylinderFlow's channel
:math:`[0, 2.2] \times [0, 0.41]` minus a cylinder (by default of radius 0.05 centred at
:math:`(0.2, 0.2)`), or in 3-D the box :math:`[0, 2.2] \times [0, 0.41]^2` minus a sphere (by
default of radius 0.05 centred at :math:`(0.2, 0.2, 0.2)`); any other centre and radius that
keep the obstacle inside the box give another geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

from .._checks import check_allocation, check_finite
from .._files import atomic_write
from .download import FetchError
from .safe_load import load_weights_only

__all__ = [
    "NODE_TYPES",
    "ChannelMesh",
    "build_airfoil",
    "channel_mesh",
    "delaunay_mesh",
    "lattice_mesh",
    "load_airfoil",
    "obstacle_geometry",
]

_AIRFOIL_FILE = "airfoil.pt"


def _undirected(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    edge_index, _ = remove_self_loops(edge_index)
    return coalesce(to_undirected(edge_index, num_nodes=num_nodes), num_nodes=num_nodes)


def build_airfoil(raw: dict[str, Path], out: Path) -> None:
    """Convert PyGSP's ``airfoil.mat`` into ``out/airfoil.pt`` (plain tensors)."""
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise ImportError("the airfoil data set needs scipy: pip install 'gnnagg[data]'") from err
    mat = loadmat(str(raw["airfoil.mat"]))
    pos = np.concatenate([mat["x"], mat["y"]], axis=1)
    # MATLAB indices are 1-based.
    rows = mat["i_inds"].astype(np.int64).reshape(-1) - 1
    cols = mat["j_inds"].astype(np.int64).reshape(-1) - 1
    num_nodes = pos.shape[0]
    if rows.min() < 0 or max(rows.max(), cols.max()) >= num_nodes:
        raise ValueError("airfoil.mat: edge indices fall outside the node range")
    edge_index = _undirected(torch.from_numpy(np.stack([rows, cols])), num_nodes)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {"pos": torch.from_numpy(pos).to(torch.float32), "edge_index": edge_index}
    atomic_write(out / _AIRFOIL_FILE, lambda handle: torch.save(tensors, handle))


def load_airfoil(out: Path) -> Data:
    """Load the airfoil mesh built by :func:`build_airfoil` as ``Data(pos, edge_index)``."""
    path = out / _AIRFOIL_FILE
    tensors = load_weights_only(path)
    if not isinstance(tensors, dict) or not all(
        isinstance(tensors.get(k), torch.Tensor) for k in ("pos", "edge_index")
    ):
        raise FetchError(f"{path} does not hold the tensors 'pos' and 'edge_index'")
    return Data(pos=tensors["pos"], edge_index=tensors["edge_index"])


def _check_n(n: object, smallest: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < smallest:
        raise ValueError(f"n: need at least {smallest} nodes, got {n}")
    # Coordinates (3 float64), about 6 undirected edges per node (int64) and their sort.
    check_allocation(n * 256, f"n={n}: the mesh", "cpu")
    return n


def lattice_mesh(n: int) -> Data:
    """The first ``n`` points (in x-major order) of a ``k × k × k`` cubic lattice with
    ``k = ceil(n ** (1/3))``, scaled into the unit cube, with edges between axis neighbours.

    Exactly ``n`` nodes; interior degree 6. Deterministic, O(n) time and memory.
    """
    n = _check_n(n, 1)
    k = max(1, math.ceil(round(n ** (1 / 3), 9)))
    idx = torch.arange(n)
    coords = torch.stack([idx // (k * k), (idx // k) % k, idx % k], dim=1)
    pos = coords.to(torch.float32) / max(k - 1, 1)
    edges = []
    for axis, stride in enumerate((k * k, k, 1)):
        # Neighbour along this axis exists if the coordinate is not last and the id is < n.
        src = idx[(coords[:, axis] < k - 1) & (idx + stride < n)]
        edges.append(torch.stack([src, src + stride]))
    edge_index = _undirected(torch.cat(edges, dim=1), n)
    return Data(pos=pos, edge_index=edge_index)


def delaunay_mesh(n: int, seed: int = 0) -> Data:
    """Delaunay tetrahedralisation of ``n`` points drawn uniformly in the unit cube.

    Edges are the tetrahedra's edges (mean degree about 15). Points come from
    ``numpy.random.default_rng(seed)``; the triangulation is scipy's Qhull.
    """
    n = _check_n(n, 5)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed!r}")
    try:
        from scipy.spatial import Delaunay
    except ImportError as err:
        raise ImportError("delaunay_mesh needs scipy: pip install 'gnnagg[data]'") from err
    points = np.random.default_rng(seed).random((n, 3))
    simplices = torch.from_numpy(Delaunay(points).simplices.astype(np.int64))
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    edge_index = torch.cat([simplices[:, [a, b]].t() for a, b in pairs], dim=1)
    edge_index = _undirected(edge_index, n)
    return Data(pos=torch.from_numpy(points).to(torch.float32), edge_index=edge_index)


# --------------------------------------------------------------------------------------------
# The simulation channel
# --------------------------------------------------------------------------------------------

#: Node types of a :class:`ChannelMesh`, in the order of ``node_type``'s integer codes.
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
# Interior grid points are shifted by up to this fraction of the spacing, per axis.
_JITTER = 0.25


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}: expected an int in [{low}, {high}], got {value}")
    return int(value)


def _check_dim(dim: object) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim not in _DOMAINS:
        raise ValueError(f"dim: expected 2 or 3, got {dim!r}")
    return dim


def _check_num_nodes(num_nodes: object, dim: int) -> int:
    return _check_int("num_nodes", num_nodes, _MIN_NODES[dim], _MAX_NODES[dim])


@dataclass(frozen=True, eq=False)
class ChannelMesh:
    """A simplicial mesh of the channel: ``pos`` ``[N, dim]`` (float64), ``cells``
    ``[num_cells, dim + 1]`` (int64, node ids of each triangle or tetrahedron), ``node_type``
    ``[N]`` (codes into :data:`NODE_TYPES`), ``spacing`` (mean edge length :math:`h`),
    ``obstacle`` (whether the obstacle was cut out), and the obstacle's ``centre`` and
    ``radius`` (:func:`obstacle_geometry`; ``None`` where not recorded)."""

    pos: np.ndarray
    cells: np.ndarray
    node_type: np.ndarray
    spacing: float
    obstacle: bool = True
    centre: tuple[float, ...] | None = None
    radius: float | None = None

    @property
    def dim(self) -> int:
        return int(self.pos.shape[1])

    @property
    def num_nodes(self) -> int:
        return int(self.pos.shape[0])

    @property
    def box(self) -> tuple[float, ...]:
        """The channel's extent per axis (its lower corner is the origin)."""
        return _DOMAINS[self.dim][0]

    def edges(self) -> np.ndarray:
        """The mesh edges ``[2, E]`` in both directions, sorted by source then target, without
        duplicates or self-loops (int64)."""
        return _mesh_edges(self.cells, self.num_nodes)

    def cell_volumes(self) -> np.ndarray:
        """Area (2-D) or volume (3-D) of every cell."""
        corners = self.pos[self.cells]
        edges = corners[:, 1:] - corners[:, :1]
        return np.abs(np.linalg.det(edges)) / math.factorial(self.dim)


def _mesh_edges(cells: np.ndarray, num_nodes: int) -> np.ndarray:
    corners = cells.shape[1]
    pairs = [(a, b) for a in range(corners) for b in range(corners) if a != b]
    src = np.concatenate([cells[:, a] for a, _ in pairs])
    dst = np.concatenate([cells[:, b] for _, b in pairs])
    keys = np.unique(src.astype(np.int64) * num_nodes + dst)
    return np.stack([keys // num_nodes, keys % num_nodes])


def obstacle_geometry(
    dim: int, centre: object = None, radius: object = None
) -> tuple[tuple[float, ...], float]:
    """The obstacle's ``(centre, radius)`` in the ``dim``-D channel: the given ones, checked
    (the obstacle must lie inside the box), or CylinderFlow's where ``None``."""
    dim = _check_dim(dim)
    box, default_centre, default_radius = _DOMAINS[dim]
    radius = default_radius if radius is None else check_finite(radius, "radius", positive=True)
    if centre is None:
        centre = default_centre
    try:
        centre = tuple(check_finite(c, "centre") for c in centre)  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(f"centre: expected {dim} coordinates, got {centre!r}") from None
    if len(centre) != dim:
        raise ValueError(f"centre: expected {dim} coordinates, got {len(centre)}")
    if any(c - radius <= 0 or c + radius >= size for c, size in zip(centre, box)):
        raise ValueError(
            f"centre, radius: the obstacle (centre {centre}, radius {radius}) must lie inside "
            f"the box {box}"
        )
    return centre, radius


def _grid_points(
    spacing: float,
    dim: int,
    obstacle: bool,
    seed: int,
    centre: tuple[float, ...],
    radius: float,
):
    """Jittered grid points, exact on the box faces, with the obstacle's surface points."""
    box = _DOMAINS[dim][0]
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


def channel_mesh(
    num_nodes: int,
    dim: int = 2,
    *,
    obstacle: bool = True,
    seed: int = 0,
    centre: tuple[float, ...] | None = None,
    radius: float | None = None,
) -> ChannelMesh:
    """A Delaunay mesh of the channel with exactly ``num_nodes`` nodes.

    Points: a grid jittered by up to a quarter spacing (exact on the walls), with the obstacle's
    surface sampled at 0.8 spacings and a clear shell around it; the spacing is the largest that
    gives at least ``num_nodes`` points, and the few extra interior points are dropped at random.
    Elements with every vertex on the obstacle (those inside it) and degenerate elements from
    co-planar wall points are removed. Deterministic for ``seed`` and the geometry.

    :param num_nodes: node count; 2-D from 200 to 2,000,000, 3-D from 1,000 to 200,000.
    :param dim: 2 (the cylinder channel) or 3 (a sphere in a box).
    :param obstacle: cut the obstacle out (``False``: the plain box, for conservation tests).
    :param seed: seed of the jitter and of the dropped points.
    :param centre: the obstacle's centre (``dim`` coordinates; default CylinderFlow's).
    :param radius: the obstacle's radius (default 0.05). The obstacle and its clear shell (a
        spacing thick) must stay inside the box: a ``ValueError`` says so otherwise.
    :returns: a :class:`ChannelMesh`.
    """
    dim = _check_dim(dim)
    num_nodes = _check_num_nodes(num_nodes, dim)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    if not isinstance(obstacle, bool):
        raise TypeError(f"obstacle: expected a bool, got {type(obstacle).__name__}")
    centre, radius = obstacle_geometry(dim, centre, radius)
    try:
        from scipy.spatial import Delaunay
    except ImportError as err:  # pragma: no cover - scipy is in the data extra
        raise ImportError("mesh simulations need scipy: pip install 'gnnagg[data]'") from err

    box = _DOMAINS[dim][0]
    volume = math.prod(box) - (obstacle * (math.pi * radius**2 if dim == 2 else 0.0))

    def count(h: float) -> int:
        return len(_grid_points(h, dim, obstacle, seed, centre, radius)[0])

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
    gap = min(min(c - radius, size - c - radius) for c, size in zip(centre, box))
    if obstacle and gap < fine:
        raise ValueError(
            f"centre, radius: the obstacle comes within {gap:.3g} of a wall, less than the "
            f"mesh spacing {fine:.3g} of {num_nodes} nodes; move it, shrink it or use more nodes"
        )
    points, types, _ = _grid_points(fine, dim, obstacle, seed, centre, radius)
    excess = len(points) - num_nodes
    if excess:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 1, dim]))
        candidates = np.flatnonzero(types == INTERIOR)
        drop = rng.choice(candidates, size=excess, replace=False)
        keep = np.ones(len(points), dtype=bool)
        keep[drop] = False
        points, types = points[keep], types[keep]

    # 3-D wall points are co-planar by design; Qhull resolves such degeneracies several times
    # more slowly unless it joggles the input ("QJ", seeded, so still deterministic). Flat
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
        centre=centre,
        radius=radius,
    )

