r"""P1 finite elements and the exact time stepper of the advection--diffusion equation

.. math::

    \partial_t u + \nabla\cdot(\mathbf b\,u) - \kappa\,\Delta u = 0

on a simplicial mesh: the consistent mass matrix :math:`M`, the stiffness :math:`K` and the
conservative advection matrix :math:`C_{ij} = -\int \varphi_j\,\mathbf b\cdot\nabla\varphi_i`
(:func:`assemble_p1`), and implicit Euler

.. math::

    \bigl(M + \Delta t\,(\kappa K + C)\bigr)\,u^{n+1} = M u^n

with the Dirichlet rows eliminated, factorised once per trajectory
(:class:`AdvectionDiffusionSolver`, ``scipy.sparse.linalg.splu``). Because the columns of
:math:`K` and :math:`C` sum to zero, :math:`\mathbf 1^\top M u` changes only through the
Dirichlet nodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._checks import check_allocation, check_count

__all__ = ["AdvectionDiffusionSolver", "FEOperators", "assemble_p1", "cell_geometry"]


def _check_float(name: str, value: object, low: float, high: float, open_low: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value > high or value < low or (open_low and value == low):
        bracket = "(" if open_low else "["
        raise ValueError(f"{name}: expected a number in {bracket}{low}, {high}], got {value}")
    return value


def cell_geometry(pos: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Volumes ``[C]`` and the gradients of the P1 basis functions ``[C, dim + 1, dim]``.

    A degenerate cell (zero area or volume, up to rounding) has no basis gradients: it raises a
    ``ValueError`` naming it."""
    dim = pos.shape[1]
    corners = pos[cells]
    # edges[c, :, k] is the k-th edge vector of cell c, so that x = x0 + edges @ xi.
    edges = (corners[:, 1:] - corners[:, :1]).transpose(0, 2, 1)
    det = np.linalg.det(edges)
    # |det| against the product of the edge lengths (the largest it can be): ~1e-16 is flat.
    lengths = np.prod(np.linalg.norm(edges, axis=1), axis=1)
    flat = ~(np.abs(det) > 1e-12 * lengths)
    if flat.any():
        first = int(np.flatnonzero(flat)[0])
        raise ValueError(
            f"cells: {int(flat.sum())} cell(s) have zero area or volume (the first is cell "
            f"{first}, nodes {cells[first].tolist()}); P1 elements need non-degenerate cells"
        )
    volumes = np.abs(det) / math.factorial(dim)
    inverse = np.linalg.inv(edges)
    # grad xi_k is row k of edges^-1; phi_0 = 1 - sum xi.
    grads = np.concatenate([-inverse.sum(axis=1, keepdims=True), inverse], axis=1)
    return volumes, grads


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
        if not np.isfinite(drift).all():
            raise ValueError(f"drift: components must be finite, got {drift.tolist()}")
        out = self.advection[0] * drift[0]
        for component, matrix in zip(drift[1:], self.advection[1:]):
            out = out + matrix * component
        return out


def assemble_p1(pos: np.ndarray, cells: np.ndarray) -> FEOperators:
    """Assemble the P1 mass, stiffness and advection matrices, vectorised over cells."""
    from scipy.sparse import coo_matrix

    pos = np.asarray(pos, dtype=np.float64)
    if np.asarray(cells).dtype.kind not in "iu":
        raise TypeError(f"cells: expected integer node ids, got dtype {np.asarray(cells).dtype}")
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
    if not np.isfinite(pos).all():
        raise ValueError("pos: coordinates must be finite")
    volumes, grads = cell_geometry(pos, cells)
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
        self.boundary_value = _check_float("boundary_value", boundary_value, -math.inf, math.inf)
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
        num_steps = check_count(num_steps, "num_steps")
        u0 = np.asarray(u0, dtype=np.float64)
        if u0.shape != (self.num_nodes,):
            raise ValueError(f"u0: expected shape [{self.num_nodes}], got {u0.shape}")
        check_allocation((num_steps + 1) * self.num_nodes * 8, f"num_steps={num_steps}", "cpu")
        out = np.empty((num_steps + 1, self.num_nodes))
        out[0] = u0
        out[0, self._fixed] = self.boundary_value
        for t in range(num_steps):
            out[t + 1] = self.step(out[t])
        return out
