r"""Reference predictors for a learned mesh simulator: what it must beat, and what it would be
if it were perfect.

Each has the ``predict_next(u, trajectories, sim)`` of
:class:`~gnnagg.models.simulator.NextStepPredictor`, so :func:`~gnnagg.models.rollout_rmse` and
:func:`~gnnagg.models.one_step_rmse` evaluate them like a trained :class:`~gnnagg.models.
MeshSimulator`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..data import NODE_TYPES, MeshSimulation

__all__ = ["MeanDeltaBaseline", "PersistenceBaseline", "SolverOracle"]

OBSTACLE = NODE_TYPES.index("obstacle")


class SolverOracle:
    """The exact solver as a :class:`NextStepPredictor` (one LU per trajectory, cached): what
    a perfect learned simulator would return. Rollout RMSE against the data is zero up to the
    data's storage precision."""

    def __init__(self) -> None:
        self._solvers: dict[tuple[int, int], tuple[MeshSimulation, Any]] = {}

    def predict_next(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor:
        out = torch.empty_like(u)
        for row, trajectory in enumerate(trajectories.tolist()):
            key = (id(sim), trajectory)
            # The entry holds the data set, so its id cannot be reused while cached.
            if key not in self._solvers or self._solvers[key][0] is not sim:
                self._solvers[key] = (sim, sim.solver(trajectory))
            state = u[row].detach().cpu().to(torch.float64).numpy()
            out[row] = torch.from_numpy(self._solvers[key][1].step(state)).to(u)
        return out


class PersistenceBaseline:
    """The trivial baseline :math:`u^{t+1} = u^t` (nothing changes): a learned simulator that
    does not beat it has learned nothing about the dynamics."""

    def predict_next(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor:
        return u.clone()


class MeanDeltaBaseline:
    r"""The trivial baseline :math:`u^{t+1} = u^t + \overline{\Delta u}`: the mean change at each
    place of the channel over all transitions of the ``split`` trajectories (a constant field
    that knows where the obstacle feeds the field in on average, and nothing else).

    When every trajectory shares one mesh the place is the node (``mean_delta`` ``[N]``). With
    one mesh per trajectory (``geometry="varied"``) it is a cell of a grid of one mean mesh
    spacing laid over the channel (``bin_mean``, over the free nodes that fell in each cell; a
    cell no training node fell in takes the mean over all of them), so that the baseline
    applies to meshes it has never seen.
    """

    def __init__(self, sim: MeshSimulation, split: str = "train") -> None:
        ids = sim.split(split)
        if len(ids) == 0:
            raise ValueError(f"split: {split!r} has no trajectories in this data set")
        u = sim.u[ids].to(torch.float64)
        per_trajectory = (u[:, 1:] - u[:, :-1]).mean(dim=1)
        self.sim = sim
        self.mean_delta: Tensor | None = None
        if sim.num_meshes == 1:
            self.mean_delta = per_trajectory.mean(dim=0)
            return
        self.bin_size = sum(m.spacing for m in sim.meshes) / sim.num_meshes
        self.shape = tuple(math.ceil(size / self.bin_size) for size in sim.meshes[0].box)
        sums = torch.zeros(math.prod(self.shape), dtype=torch.float64)
        counts = torch.zeros_like(sums)
        free = sim.node_types(ids) != OBSTACLE
        for row, trajectory in enumerate(ids.tolist()):
            bins = self._bins(sim, trajectory)[free[row]]
            sums.index_add_(0, bins, per_trajectory[row, free[row]])
            counts.index_add_(0, bins, torch.ones(len(bins), dtype=torch.float64))
        overall = float(sums.sum() / counts.sum())
        self.bin_mean = torch.where(counts > 0, sums / counts.clamp_min(1.0), overall)

    def _bins(self, sim: MeshSimulation, trajectory: int) -> Tensor:
        pos = sim.graph(trajectory).pos.to(torch.float64)
        cell = (pos / self.bin_size).floor().long()
        for axis, count in enumerate(self.shape):
            cell[:, axis] = cell[:, axis].clamp(0, count - 1)
        flat = torch.zeros(len(pos), dtype=torch.long)
        for axis, count in enumerate(self.shape):
            flat = flat * count + cell[:, axis]
        return flat

    def predict_next(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor:
        if self.mean_delta is not None:
            if sim.num_nodes != self.mean_delta.numel() or sim.num_meshes != 1:
                raise ValueError(
                    f"sim: built for one mesh of {self.mean_delta.numel()} nodes, got "
                    f"{sim.num_meshes} mesh(es) of {sim.num_nodes}"
                )
            return (u.to(torch.float64) + self.mean_delta).to(u.dtype)
        delta = torch.stack(
            [self.bin_mean[self._bins(sim, t)] for t in trajectories.reshape(-1).tolist()]
        )
        return (u.to(torch.float64) + delta.to(u.device)).to(u.dtype)
