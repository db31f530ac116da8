r"""Training on sub-meshes in the mesh study (``partitions`` > 1).

Every mesh of the data set is split once into ``partitions`` sub-meshes whose halos cover the
step model's reach (:class:`~gnnagg.models.SimulationPartitions`, kept per data set and
model reach); a training step runs every trajectory of its batch on one part of that
trajectory's mesh (:func:`~gnnagg.models.sub_meshes_forward`) and puts the core's free nodes
in the loss. A mesh's parts take turns in a shuffled order, drawn from a generator of their
own, so that the batches and the input noise are those whole-mesh training draws from the same
seed. Everything else -- schedule, noise, normalisers, validation on whole meshes, the plateau
check -- is :func:`~gnnagg.bench.studies.mesh.train.fit_mesh_model`'s.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from ....data import MeshSimulation
from ....models import MeshSimulator, SimulationPartitions, model_reach, sub_meshes_forward

__all__ = ["PART_SEED_OFFSET", "SubMeshSteps", "mesh_partitions"]

#: The parts' order is drawn from ``seed + PART_SEED_OFFSET``, apart from the batches' stream.
PART_SEED_OFFSET = 7_919

_KEPT: weakref.WeakKeyDictionary[MeshSimulation, dict[tuple, SimulationPartitions]] = (
    weakref.WeakKeyDictionary()
)


def mesh_partitions(
    sim: MeshSimulation, num_parts: int, simulator: MeshSimulator, method: str = "auto"
) -> SimulationPartitions:
    """The partitions of ``sim``'s meshes into ``num_parts`` whose halos cover ``simulator``'s
    reach (:func:`~gnnagg.models.model_reach`), one object per data set, part count, reach
    and method, so that every run on ``sim`` builds each mesh's partition once."""
    num_layers, mask = model_reach(simulator)
    key = (num_parts, num_layers, repr(mask), method)
    kept = _KEPT.setdefault(sim, {})
    if key not in kept:
        kept[key] = SimulationPartitions(
            sim, num_parts, num_layers=num_layers, mask=mask, method=method
        )
    return kept[key]


class SubMeshSteps:
    """The loss terms of training steps on sub-meshes: called with a batch as
    :func:`~gnnagg.bench.studies.mesh.train.fit_mesh_model` draws it -- trajectories
    ``traj`` ``[B]``, noisy states ``current`` ``[B, N]``, target changes ``delta`` ``[B, N]``
    and free nodes ``free`` ``[B, N]`` -- it returns ``(prediction, target)``, both
    ``[M, 1]`` over the ``M`` free core nodes of the batch's parts, normalised (the output
    normaliser accumulating them, as on whole meshes). ``seed`` draws the parts' order. The
    partitions of the training meshes are built here, before any step."""

    def __init__(
        self, simulator: MeshSimulator, sim: MeshSimulation, num_parts: int, seed: int
    ) -> None:
        if not isinstance(simulator, MeshSimulator):
            raise TypeError(f"simulator: expected a MeshSimulator, got {type(simulator).__name__}")
        self.simulator = simulator
        self.sim = sim
        self.partitions = mesh_partitions(sim, num_parts, simulator)
        self._generator = torch.Generator().manual_seed(seed + PART_SEED_OFFSET)
        self._turns: dict[int, list[int]] = {}
        for trajectory in sim.split("train").tolist():  # built before the steps are timed
            self.partitions.of(trajectory)

    def _next_part(self, trajectory: int):
        partition = self.partitions.of(trajectory)
        turns = self._turns.setdefault(int(self.sim.mesh_ids[trajectory]), [])
        if not turns:
            order = torch.randperm(partition.num_parts, generator=self._generator).tolist()
            turns.extend(i for i in order if partition.parts[i].num_core)
        return partition.parts[turns.pop()]

    def __call__(
        self, traj: Tensor, current: Tensor, delta: Tensor, free: Tensor
    ) -> tuple[Tensor, Tensor]:
        parts = [self._next_part(t) for t in traj.tolist()]
        outputs = sub_meshes_forward(
            self.simulator, current, traj, self.sim, parts, accumulate=True
        )
        predictions, targets = [], []
        for row, (part, out) in enumerate(zip(parts, outputs)):
            core = part.core.to(current.device)
            keep = free[row, core]
            predictions.append(out[: part.num_core][keep])
            targets.append(delta[row, core][keep])
        target = self.simulator.output_normalizer(
            torch.cat(targets).reshape(-1, 1), accumulate=True
        )
        return torch.cat(predictions).reshape(-1, 1), target
