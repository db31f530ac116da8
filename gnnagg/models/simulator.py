r"""Learned next-step simulators on mesh simulations, and their evaluation by rollout.

The recipe is MeshGraphNet's (Pfaff et al. 2021, https://arxiv.org/abs/2010.03409, and its
public code): a network maps the current state to the change of the field over one time step,

.. math::

    \hat u^{t+1} = u^t + \mathcal N\bigl(u^t, \text{node type}, \kappa, \mathbf b\bigr),

with inputs, edge features and targets standardised by online normalisers
(:class:`~gnnagg.models.OnlineNormalizer`). :class:`MeshSimulator` wraps a network with the
features, the normalisers and the update rule for the data of
:func:`gnnagg.data.mesh_simulation`. Evaluation: :func:`one_step_rmse` (from true states) and
:func:`rollout_rmse` (the simulator fed its own predictions over whole held-out trajectories,
:func:`rollout`); obstacle nodes are held at their boundary value, as the solver does. Anything
with a ``predict_next`` (:class:`NextStepPredictor`), such as the reference predictors of
:mod:`gnnagg.models.predictors`, is evaluated the same way.

Networks plug in through :class:`MeshStepModel`: ``model(x, edge_index, pos=, edge_attr=,
batch=)`` returning one value per node. :class:`NodeFeatureModel` adapts models called as
``model(x, edge_index, pos=pos, batch=batch)`` (a :class:`~gnnagg.models.GraphTransformer`) and
:class:`EdgeFeatureModel` models called as ``model(x, edge_index, edge_attr)``
(:class:`~gnnagg.models.MeshGraphNet`, whose edge features are the relative position and
distance).
"""

from __future__ import annotations

import math
import statistics
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .._torchscript import NoTorchScript
from ..data import NODE_TYPES, MeshSimulation
from .meshgraphnet import mesh_edge_features
from .normalizers import OnlineNormalizer

__all__ = [
    "MODELS_REVISION",
    "BatchedMesh",
    "EdgeFeatureModel",
    "MeshSimulator",
    "MeshStepModel",
    "NextStepPredictor",
    "NodeFeatureModel",
    "edge_input_channels",
    "node_input_channels",
    "one_step_rmse",
    "rollout",
    "rollout_rmse",
]

_OBSTACLE = NODE_TYPES.index("obstacle")

#: Bumped whenever a change to these models, their features or the simulator changes what a
#: trained model computes, so that results and weights kept from before are not reused
#: (the mesh study's job checkpoints carry it in their fingerprint). 2: MeshGraphNet
#: aggregates the edge MLP's output, as the reference implementation does.
MODELS_REVISION = 2


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}: expected an int >= {low}, got {value}")


@runtime_checkable
class MeshStepModel(Protocol):
    """What the training core calls: normalised node features ``x`` ``[N, C_in]``, the batched
    mesh ``edge_index`` ``[2, E]`` (both directions), node positions ``pos`` ``[N, dim]``,
    normalised edge features ``edge_attr`` ``[E, dim + 1]`` (relative position of the source
    seen from the target, and its length) and the graph id of every node ``batch`` ``[N]``;
    returns ``[N, 1]`` (or ``[N]``): the normalised change of ``u`` over one step."""

    def __call__(
        self, x: Tensor, edge_index: Tensor, *, pos: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> Tensor: ...


class NodeFeatureModel(NoTorchScript, nn.Module):
    """Adapts ``model(x, edge_index, pos=pos, batch=batch)`` (e.g. a ``GraphTransformer``, whose
    masks may use ``pos``) to :class:`MeshStepModel`; edge features are not passed."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model: expected a callable module, got {type(model).__name__}")
        self.model = model

    def forward(
        self, x: Tensor, edge_index: Tensor, *, pos: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> Tensor:
        return self.model(x, edge_index, pos=pos, batch=batch)


class EdgeFeatureModel(NoTorchScript, nn.Module):
    """Adapts ``model(x, edge_index, edge_attr)`` (e.g. ``MeshGraphNet(in_channels,
    edge_channels=dim + 1, ...)``) to :class:`MeshStepModel`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model: expected a callable module, got {type(model).__name__}")
        self.model = model

    def forward(
        self, x: Tensor, edge_index: Tensor, *, pos: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> Tensor:
        return self.model(x, edge_index, edge_attr)


def node_input_channels(dim: int, position_features: bool = False) -> int:
    """Width of ``x``: ``u``, the node-type one-hot, κ, the drift (and the position)."""
    if dim not in (2, 3):
        raise ValueError(f"dim: expected 2 or 3, got {dim!r}")
    return 1 + len(NODE_TYPES) + 1 + dim + (dim if position_features else 0)


def edge_input_channels(dim: int) -> int:
    """Width of ``edge_attr``: relative position and distance."""
    if dim not in (2, 3):
        raise ValueError(f"dim: expected 2 or 3, got {dim!r}")
    return dim + 1


@dataclass(frozen=True)
class BatchedMesh:
    """The meshes of ``B`` trajectories as one graph (each trajectory's own mesh, or ``B``
    copies of a shared one), as :meth:`MeshSimulator.batched_mesh` builds it on the simulator's
    device and dtype: ``edge_index`` ``[2, E_1 + ... + E_B]``, ``pos`` ``[B * N, dim]``,
    ``node_type_one_hot`` ``[B * N, len(NODE_TYPES)]``, raw ``edge_attr`` ``[E_1 + ... + E_B,
    dim + 1]``, ``batch`` ``[B * N]`` and the ``obstacle`` nodes ``[B, N]``."""

    edge_index: Tensor
    pos: Tensor
    node_type_one_hot: Tensor
    edge_attr: Tensor
    batch: Tensor
    obstacle: Tensor


class NextStepPredictor(Protocol):
    """Anything :func:`rollout` and :func:`one_step_rmse` can evaluate: maps the states
    ``u`` ``[B, N]`` of trajectories ``trajectories`` ``[B]`` of ``sim`` to the next states."""

    def predict_next(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor: ...


class MeshSimulator(NoTorchScript, nn.Module):
    r"""A :class:`MeshStepModel` wrapped with the feature construction, the three online
    normalisers (node inputs, edge features, output Δu) and the update rule
    :math:`u^{t+1} = u^t + \Delta u`.

    ``x`` per node: ``u``, the one-hot node type (:data:`~gnnagg.data.meshes.NODE_TYPES`), κ and
    the drift of the trajectory (and ``pos`` if ``position_features``); edge features: the
    relative position of the source seen from the target and its length.

    Args:
        model: the network, a :class:`MeshStepModel` (wrap a ``GraphTransformer`` in
            :class:`NodeFeatureModel`, a ``MeshGraphNet`` in :class:`EdgeFeatureModel`), taking
            :func:`node_input_channels` and :func:`edge_input_channels` features.
        dim: the mesh's dimension, 2 or 3.
        position_features: append the node coordinates to ``x``.
        max_accumulations: batches the normalisers learn their statistics from.

    Calling it, ``simulator(u, trajectories, sim, accumulate=False)``, gives the normalised
    Δu (compare it with ``output_normalizer(true Δu)`` to train); :meth:`predict_next` the next
    state in the data's units.
    """

    def __init__(
        self,
        model: nn.Module,
        dim: int,
        *,
        position_features: bool = False,
        max_accumulations: int = 10**6,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        if dim not in (2, 3) or isinstance(dim, bool):
            raise ValueError(f"dim: expected 2 or 3, got {dim!r}")
        self.model = model
        self.dim = dim
        self.position_features = bool(position_features)
        self.node_normalizer = OnlineNormalizer(
            node_input_channels(dim, position_features), max_accumulations
        )
        self.edge_normalizer = OnlineNormalizer(edge_input_channels(dim), max_accumulations)
        self.output_normalizer = OnlineNormalizer(1, max_accumulations)
        # Keyed by the data set's id, holding a weak reference to it: a key that reuses a freed
        # data set's id cannot match (the reference no longer points at the new one).
        self._parts: dict[tuple[Any, ...], tuple[weakref.ref, BatchedMesh]] = {}
        self._batches: dict[tuple[Any, ...], tuple[weakref.ref, BatchedMesh]] = {}

    @property
    def dtype(self) -> torch.dtype:
        """The network's dtype (that of its first parameter), in which features are built."""
        for p in self.model.parameters():
            return p.dtype
        return torch.get_default_dtype()

    @property
    def device(self) -> torch.device:
        """Where the network lives, and with it the features and the batched mesh."""
        for p in self.model.parameters():
            return p.device
        return self.output_normalizer.total.device

    def _mesh_part(self, sim: MeshSimulation, trajectory: int) -> BatchedMesh:
        """One trajectory's mesh as a one-graph :class:`BatchedMesh` (cached per mesh)."""
        device, dtype = self.device, self.dtype
        graph = sim.graph(trajectory)
        key = (id(sim), graph.mesh_id, str(device), dtype)
        cached = self._parts.get(key)
        if cached is None or cached[0]() is not sim:
            if len(self._parts) >= 512:
                self._parts.clear()
            one_hot = nn.functional.one_hot(graph.node_type, len(NODE_TYPES))
            part = BatchedMesh(
                edge_index=graph.edge_index.to(device),
                pos=graph.pos.to(device=device, dtype=dtype),
                node_type_one_hot=one_hot.to(device=device, dtype=dtype),
                edge_attr=mesh_edge_features(graph.edge_index, graph.pos.to(dtype)).to(device),
                batch=torch.zeros(graph.pos.shape[0], dtype=torch.long, device=device),
                obstacle=(graph.node_type == _OBSTACLE).unsqueeze(0).to(device),
            )
            self._parts[key] = cached = (weakref.ref(sim), part)
        return cached[1]

    def batched_mesh(
        self, sim: MeshSimulation, trajectories: Tensor | Sequence[int]
    ) -> BatchedMesh:
        """The meshes of ``trajectories`` as one graph, in their order (each mesh's tensors are
        built once per data set, device and dtype; the 16 most recent batches are kept)."""
        ids = torch.as_tensor(trajectories, dtype=torch.long).reshape(-1).tolist()
        if not ids:
            raise ValueError("trajectories: expected at least one trajectory id")
        if min(ids) < 0 or max(ids) >= sim.num_trajectories:
            raise ValueError(f"trajectories: ids must lie in [0, {sim.num_trajectories})")
        mesh_ids = tuple(int(sim.mesh_ids[t]) for t in ids)
        key = (id(sim), mesh_ids, str(self.device), self.dtype)
        cached = self._batches.get(key)
        if cached is not None and cached[0]() is sim:
            return cached[1]
        parts = [self._mesh_part(sim, t) for t in ids]
        n = sim.num_nodes
        batched = BatchedMesh(
            edge_index=torch.cat([p.edge_index + b * n for b, p in enumerate(parts)], dim=1),
            pos=torch.cat([p.pos for p in parts]),
            node_type_one_hot=torch.cat([p.node_type_one_hot for p in parts]),
            edge_attr=torch.cat([p.edge_attr for p in parts]),
            batch=torch.cat([p.batch + b for b, p in enumerate(parts)]),
            obstacle=torch.cat([p.obstacle for p in parts]),
        )
        if len(self._batches) >= 16:
            self._batches.pop(next(iter(self._batches)))
        self._batches[key] = (weakref.ref(sim), batched)
        return batched

    def node_features(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor:
        """Raw (unnormalised) node features ``[B * N, C_in]`` for states ``u`` ``[B, N]``."""
        b, n = u.shape
        mesh = self.batched_mesh(sim, trajectories)
        dtype = mesh.pos.dtype
        ids = trajectories.cpu()
        constants = torch.cat([sim.kappa[ids].unsqueeze(1), sim.drift[ids]], dim=1)
        constants = constants.to(device=u.device, dtype=dtype).repeat_interleave(n, dim=0)
        parts = [u.reshape(-1, 1).to(dtype), mesh.node_type_one_hot, constants]
        if self.position_features:
            parts.append(mesh.pos)
        return torch.cat(parts, dim=1)

    def forward(
        self,
        u: Tensor,
        trajectories: Tensor,
        sim: MeshSimulation,
        accumulate: bool = False,
    ) -> Tensor:
        """The normalised predicted change ``[B, N]`` from states ``u`` ``[B, N]``."""
        b, n = u.shape
        mesh = self.batched_mesh(sim, trajectories)
        x = self.node_normalizer(self.node_features(u, trajectories, sim), accumulate)
        edge_attr = self.edge_normalizer(mesh.edge_attr, accumulate)
        out = self.model(x, mesh.edge_index, pos=mesh.pos, edge_attr=edge_attr, batch=mesh.batch)
        if out.shape not in ((b * n, 1), (b * n,)):
            raise ValueError(
                f"model: expected an output of shape [{b * n}, 1] (one value per node), "
                f"got {tuple(out.shape)}"
            )
        return out.reshape(b, n)

    @torch.no_grad()
    def predict_next(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor:
        """``u + Δu`` with the obstacle nodes left for the caller to hold (see :func:`rollout`)."""
        delta = self.output_normalizer.inverse(self(u, trajectories, sim).unsqueeze(-1))
        return u + delta.squeeze(-1).to(u.dtype)


def _held(prediction: Tensor, truth: Tensor, obstacle: Tensor) -> Tensor:
    """Obstacle nodes take the true (boundary) value, as in the solver."""
    return torch.where(obstacle, truth, prediction)


@torch.no_grad()
def one_step_rmse(
    predictor: NextStepPredictor,
    sim: MeshSimulation,
    split: str = "test",
    batch_size: int = 8,
    max_trajectories: int | None = None,
    stride: int = 1,
) -> float:
    """RMSE of one step predicted from the true state, over the transitions of ``split`` (of
    its first ``max_trajectories`` trajectories when given) from steps 0, ``stride``,
    2 ``stride``, ... and every non-obstacle node. A stride above 1 estimates the RMSE of all
    transitions at a fraction of the cost (neighbouring steps are strongly correlated)."""
    _check_int("batch_size", batch_size, 1)
    _check_int("stride", stride, 1)
    pairs = sim.transition_index(split)
    if len(pairs) == 0:
        raise ValueError(f"split: {split!r} has no trajectories in this data set")
    if max_trajectories is not None:
        _check_int("max_trajectories", max_trajectories, 1)
        pairs = pairs[: max_trajectories * sim.num_steps]
    pairs = pairs[pairs[:, 1] % stride == 0]
    squared, count = 0.0, 0
    for first in range(0, len(pairs), batch_size):
        traj, step = pairs[first : first + batch_size].unbind(1)
        current, truth = sim.u[traj, step], sim.u[traj, step + 1]
        prediction = _predict(predictor, current, traj, sim)
        free = sim.node_types(traj) != _OBSTACLE
        error = (prediction.to(torch.float64) - truth.to(torch.float64)) * free
        squared += float(error.pow(2).sum())
        count += int(free.sum())
    return math.sqrt(squared / count)


def _predict(predictor: NextStepPredictor, u: Tensor, traj: Tensor, sim: MeshSimulation):
    if isinstance(predictor, MeshSimulator):
        device, dtype = predictor.device, predictor.dtype
        return predictor.predict_next(u.to(device=device, dtype=dtype), traj, sim).cpu()
    return predictor.predict_next(u, traj, sim)


@torch.no_grad()
def rollout(
    predictor: NextStepPredictor,
    sim: MeshSimulation,
    trajectories: Sequence[int] | Tensor,
    num_steps: int | None = None,
) -> tuple[Tensor, float]:
    """Autoregressive prediction from the true initial states of ``trajectories`` (all at
    once, as one batch): ``[len(trajectories), num_steps + 1, N]`` (float64, step 0 the truth)
    and the wall-clock seconds per step of the batch. Obstacle nodes are held at their true
    values."""
    try:
        ids = torch.as_tensor(trajectories).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        ids = None
    if ids is None or (ids.numel() and (ids.is_floating_point() or ids.dtype == torch.bool)):
        raise TypeError(f"trajectories: expected integer trajectory ids, got {trajectories!r}")
    ids = ids.long()
    if len(ids) == 0:
        raise ValueError("trajectories: expected at least one trajectory id")
    if ids.min() < 0 or ids.max() >= sim.num_trajectories:
        raise ValueError(f"trajectories: ids must lie in [0, {sim.num_trajectories})")
    num_steps = sim.num_steps if num_steps is None else num_steps
    _check_int("num_steps", num_steps, 1)
    if num_steps > sim.num_steps:
        raise ValueError(f"num_steps: the data have {sim.num_steps} steps, got {num_steps}")
    obstacle = sim.node_types(ids) == _OBSTACLE
    out = torch.empty(len(ids), num_steps + 1, sim.num_nodes, dtype=torch.float64)
    out[:, 0] = sim.u[ids, 0]
    state = sim.u[ids, 0]
    start = time.perf_counter()
    for t in range(num_steps):
        prediction = _predict(predictor, state, ids, sim)
        state = _held(prediction.to(sim.u.dtype), sim.u[ids, t + 1], obstacle)
        out[:, t + 1] = state
    return out, (time.perf_counter() - start) / num_steps


def rollout_rmse(
    predictor: NextStepPredictor,
    sim: MeshSimulation,
    split: str = "test",
    batch_size: int = 8,
    max_trajectories: int | None = None,
) -> dict[str, Any]:
    """Roll out every trajectory of ``split`` (its first ``max_trajectories`` when given;
    ``batch_size`` at a time) and compare with the data over the non-obstacle nodes:
    ``{"rmse"`` (all steps), ``"rmse_per_step"`` (steps 1..T, over trajectories and nodes),
    ``"seconds_per_step"`` (one step of a batch), ``"seconds_per_graph_step"``,
    ``"batch_size"``, ``"trajectories"`` (the ids rolled out)``}``."""
    _check_int("batch_size", batch_size, 1)
    ids = sim.split(split)
    if len(ids) == 0:
        raise ValueError(f"split: {split!r} has no trajectories in this data set")
    if max_trajectories is not None:
        _check_int("max_trajectories", max_trajectories, 1)
        ids = ids[:max_trajectories]
    squared = torch.zeros(sim.num_steps, dtype=torch.float64)
    free_nodes = 0
    seconds: list[float] = []
    for first in range(0, len(ids), batch_size):
        chunk = ids[first : first + batch_size]
        predicted, per_step = rollout(predictor, sim, chunk)
        free = (sim.node_types(chunk) != _OBSTACLE).unsqueeze(1)
        error = (predicted[:, 1:] - sim.u[chunk, 1:].to(torch.float64)) * free
        squared += error.pow(2).sum(dim=(0, 2))
        free_nodes += int(free.sum())
        seconds.append(per_step)
    per_step_mse = squared / free_nodes
    batch = min(batch_size, len(ids))
    return {
        "rmse": float(per_step_mse.mean().sqrt()),
        "rmse_per_step": per_step_mse.sqrt().tolist(),
        "seconds_per_step": statistics.fmean(seconds),
        "seconds_per_graph_step": statistics.fmean(seconds) / batch,
        "batch_size": batch,
        "trajectories": ids.tolist(),
    }
