r"""Reference predictors for a learned mesh simulator: what it must beat, and what it would be
if it were perfect.

Each has the ``predict_next(u, trajectories, sim)`` of
:class:`~gnnagg.models.simulator.NextStepPredictor`, so :func:`~gnnagg.models.rollout_rmse` and
:func:`~gnnagg.models.one_step_rmse` evaluate them like a trained :class:`~gnnagg.models.
MeshSimulator`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..data import MeshSimulation

__all__ = ["MeanDeltaBaseline", "PersistenceBaseline", "SolverOracle"]


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
    r"""The trivial baseline :math:`u^{t+1} = u^t + \overline{\Delta u}`: the mean change of
    every node over all transitions of the ``split`` trajectories (a per-node constant that
    knows where the obstacle feeds the field in on average, and nothing else)."""

    def __init__(self, sim: MeshSimulation, split: str = "train") -> None:
        ids = sim.split(split)
        if len(ids) == 0:
            raise ValueError(f"split: {split!r} has no trajectories in this data set")
        u = sim.u[ids].to(torch.float64)
        self.mean_delta = (u[:, 1:] - u[:, :-1]).mean(dim=(0, 1))
        self.sim = sim

    def predict_next(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor:
        if sim.num_nodes != self.mean_delta.numel():
            raise ValueError(f"sim: built for {self.mean_delta.numel()} nodes, got {sim.num_nodes}")
        return (u.to(torch.float64) + self.mean_delta).to(u.dtype)
