"""Mesh graphs with coordinates: the airfoil mesh and generated 3-D meshes of any size.

``airfoil``
    PyGSP's airfoil mesh (4,253 nodes) from ``pointclouds/airfoil.mat``: 2-D node coordinates
    ``pos`` ``[4253, 2]`` and the mesh edges, made undirected (both directions), without
    self-loops or duplicates, as PyGSP's ``graphs.Airfoil`` does with ``(A + A^T) / 2``.

:func:`lattice_mesh` and :func:`delaunay_mesh` generate 3-D meshes up to hundreds of thousands of
nodes for the attention benchmarks. All mesh graphs are ``Data(pos, edge_index)`` with
``edge_index`` undirected, coalesced (sorted by source, then target) and loop-free.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

from .download import FetchError
from .safe_load import load_weights_only

__all__ = ["build_airfoil", "delaunay_mesh", "lattice_mesh", "load_airfoil"]

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
    torch.save(
        {"pos": torch.from_numpy(pos).to(torch.float32), "edge_index": edge_index},
        out / _AIRFOIL_FILE,
    )


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
    ``numpy.random.default_rng(seed)``; the triangulation is scipy's Qhull, which takes a few
    seconds per 100k points (about 20 s for 300k on one CPU core).
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
