r"""A :class:`~gnnagg.models.MeshSimulator` on the sub-meshes of
:class:`~gnnagg.models.MeshPartition`\ s: the forward pass of sub-meshes (to train on them,
with the loss on their cores) and stitched next-step prediction (to roll out part by part).

A data set with a mesh per trajectory (``geometry="varied"``) gets a partition per mesh,
:class:`SimulationPartitions`, built on first use and kept; :func:`model_reach` gives the depth
and mask its halos must cover for a step model.

The node features are those of the whole mesh, sliced (a few columns per node); the network's
activations, which dominate the memory of a step, are those of the sub-meshes only. The
simulator's normalisers, when they accumulate, see the sub-meshes' nodes and edges (halos
included). A step model that builds its attention mask from the graph it is given (a
:class:`~gnnagg.models.GraphTransformer` in a :class:`~gnnagg.models.NodeFeatureModel`)
builds it on the sub-mesh: the same rows for the halo's inner layers as the whole mesh's
restricted mask for :func:`~gnnagg.attention.adjacency` and :func:`~gnnagg.attention.khop`
(a path of at most ``k`` edges stays inside the ``k``-hop halo), not for an ordering-based
:func:`~gnnagg.attention.dilated_window`, whose order is recomputed on the sub-mesh (use
:func:`~gnnagg.models.stitched_forward` with the restricted masks for exact inference there).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import check_count
from .._torchscript import NoTorchScript
from ..attention import Mask
from ..data import MeshSimulation
from .graph_transformer import GraphTransformer
from .meshgraphnet import MeshGraphNet
from .partition import PARTITION_METHODS, MeshPartition, SubMesh, partition_mesh
from .simulator import EdgeFeatureModel, MeshSimulator, NodeFeatureModel

__all__ = [
    "SimulationPartitions",
    "StitchedSimulator",
    "model_reach",
    "sub_mesh_forward",
    "sub_meshes_forward",
]


def model_reach(model: nn.Module) -> tuple[int, Mask | None]:
    """``(num_layers, mask)``: what a halo must cover for ``model`` -- a
    :class:`~gnnagg.models.GraphTransformer`'s blocks and mask, or a
    :class:`~gnnagg.models.MeshGraphNet`'s message-passing steps and ``None`` (the edges).
    A :class:`~gnnagg.models.MeshSimulator`, :class:`~gnnagg.models.NodeFeatureModel` or
    :class:`~gnnagg.models.EdgeFeatureModel` is unwrapped to its network."""
    network = model
    while isinstance(network, (MeshSimulator, NodeFeatureModel, EdgeFeatureModel)):
        network = network.model
    if isinstance(network, GraphTransformer):
        return len(network.blocks), network.mask
    if isinstance(network, MeshGraphNet):
        return len(network.processor), None
    raise TypeError(
        f"model: expected a GraphTransformer or a MeshGraphNet (or a simulator or adapter "
        f"of one), got {type(network).__name__}; build the partitions with num_layers= and "
        "mask= instead"
    )


class SimulationPartitions:
    """A :func:`~gnnagg.models.partition_mesh` of every mesh of ``sim`` into ``num_parts``
    sub-meshes whose halos cover ``num_layers`` layers of ``mask`` (``None``: message passing
    over the edges), each built the first time one of its trajectories asks for it and kept
    (:meth:`of`). ``method`` is the partitioner (:data:`~gnnagg.models.PARTITION_METHODS`);
    the mesh's coordinates are passed for it and for the mask. Cost per mesh: that of
    :func:`~gnnagg.models.partition_mesh`."""

    def __init__(
        self,
        sim: MeshSimulation,
        num_parts: int,
        *,
        num_layers: int,
        mask: Mask | None = None,
        method: str = "auto",
    ) -> None:
        if not isinstance(sim, MeshSimulation):
            raise TypeError(f"sim: expected a MeshSimulation, got {type(sim).__name__}")
        num_parts = check_count(num_parts, "num_parts")
        if not 1 <= num_parts <= sim.num_nodes:
            raise ValueError(
                f"num_parts: expected 1 to the meshes' {sim.num_nodes} nodes, got {num_parts}"
            )
        if mask is not None and not isinstance(mask, Mask):
            raise TypeError(f"mask: expected a Mask recipe or None, got {type(mask).__name__}")
        if not isinstance(method, str) or method not in PARTITION_METHODS:
            raise ValueError(f"method: expected one of {PARTITION_METHODS}, got {method!r}")
        self.sim = sim
        self.num_parts = num_parts
        self.num_layers = check_count(num_layers, "num_layers")
        self.mask = mask
        self.method = method
        self._built: dict[int, MeshPartition] = {}

    @classmethod
    def for_model(
        cls, sim: MeshSimulation, num_parts: int, model: nn.Module, method: str = "auto"
    ) -> SimulationPartitions:
        """The partitions whose halos cover ``model``'s reach (:func:`model_reach`)."""
        num_layers, mask = model_reach(model)
        return cls(sim, num_parts, num_layers=num_layers, mask=mask, method=method)

    def of(self, trajectory: int) -> MeshPartition:
        """The partition of ``trajectory``'s mesh (built on first use)."""
        graph = self.sim.graph(trajectory)
        partition = self._built.get(graph.mesh_id)
        if partition is None:
            partition = partition_mesh(
                graph.edge_index, self.num_parts, num_layers=self.num_layers, mask=self.mask,
                pos=graph.pos, method=self.method,
            )  # fmt: skip
            self._built[graph.mesh_id] = partition
        return partition

    @property
    def built(self) -> dict[int, MeshPartition]:
        """The partitions built so far, by mesh id (``sim.mesh_ids``)."""
        return dict(self._built)

    def __repr__(self) -> str:
        return (f"SimulationPartitions(parts={self.num_parts}, num_layers={self.num_layers}, "
                f"mask={self.mask!r}, method={self.method!r}, built={len(self._built)} of "
                f"{self.sim.num_meshes} meshes)")


def _trajectory_ids(trajectories: object, count: int) -> list[int]:
    ids = torch.as_tensor(trajectories).reshape(-1)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"trajectories: expected integer trajectory ids, got {ids.dtype}")
    if ids.numel() != count:
        raise ValueError(f"trajectories: expected {count} ids (one per row of u), got "
                         f"{ids.numel()}")
    return ids.tolist()


def sub_meshes_forward(
    simulator: MeshSimulator,
    u: Tensor,
    trajectories: Tensor,
    sim: MeshSimulation,
    parts: Sequence[SubMesh],
    accumulate: bool = False,
) -> list[Tensor]:
    """The normalised predicted change on each trajectory's sub-mesh, ``[n_b]`` per row ``b``
    of ``u`` (``[B, N]``, the whole meshes' states) on the ``n_b`` nodes of ``parts[b]`` (a
    part of trajectory ``trajectories[b]``'s mesh; core first), as ``simulator(u,
    trajectories, sim, accumulate)`` computes it on the whole meshes, all ``B`` sub-meshes in
    one batch; ``accumulate`` feeds the normalisers the sub-meshes' features. Train with the
    loss on the first ``parts[b].num_core`` values of each."""
    if not isinstance(simulator, MeshSimulator):
        raise TypeError(f"simulator must be a MeshSimulator, got {type(simulator).__name__}")
    if u.dim() != 2 or u.size(1) != sim.num_nodes:
        raise ValueError(f"u must be [B, num_nodes={sim.num_nodes}], got {tuple(u.shape)}")
    b, n = u.shape
    ids = _trajectory_ids(trajectories, b)
    if isinstance(parts, SubMesh) or len(parts) != b:
        raise ValueError(f"parts: expected a sequence of {b} SubMesh (one per trajectory)")
    edge_counts = [int(sim.graph(t).edge_index.size(1)) for t in ids]
    for index, part in enumerate(parts):
        if not isinstance(part, SubMesh):
            raise TypeError(f"parts[{index}] must be a SubMesh, got {type(part).__name__}")
        if part.num_nodes and int(part.nodes.max()) >= n:
            raise ValueError(f"parts[{index}]: has node ids beyond the mesh's {n} nodes")
        if part.edge_ids.numel() and int(part.edge_ids.max()) >= edge_counts[index]:
            raise ValueError(f"parts[{index}]: has edge ids beyond the mesh of trajectory "
                             f"{ids[index]} ({edge_counts[index]} edges): not a part of it")
    device = simulator.device
    sizes = [part.num_nodes for part in parts]
    node_first = torch.tensor([0, *sizes[:-1]]).cumsum(0).tolist()
    edge_first = torch.tensor([0, *edge_counts[:-1]]).cumsum(0).tolist()
    node_rows = torch.cat([part.nodes + row * n for row, part in enumerate(parts)]).to(device)
    edge_rows = torch.cat([part.edge_ids + first for part, first in zip(parts, edge_first)])
    edge_index = torch.cat(
        [part.edge_index + first for part, first in zip(parts, node_first)], dim=1
    ).to(device)
    mesh = simulator.batched_mesh(sim, ids)
    x = simulator.node_features(u, torch.tensor(ids), sim)[node_rows]
    x = simulator.node_normalizer(x, accumulate)
    edge_attr = simulator.edge_normalizer(mesh.edge_attr[edge_rows.to(device)], accumulate)
    batch = torch.arange(b, device=device).repeat_interleave(torch.tensor(sizes, device=device))
    out = simulator.model(x, edge_index, pos=mesh.pos[node_rows], edge_attr=edge_attr,
                          batch=batch)
    total = sum(sizes)
    if out.shape not in ((total, 1), (total,)):
        raise ValueError(f"model: expected an output of shape [{total}, 1] (one value per "
                         f"node), got {tuple(out.shape)}")
    return list(out.reshape(-1).split(sizes))


def sub_mesh_forward(
    simulator: MeshSimulator,
    u: Tensor,
    trajectories: Tensor,
    sim: MeshSimulation,
    part: SubMesh,
    accumulate: bool = False,
) -> Tensor:
    """The normalised predicted change ``[B, n]`` on the ``n`` nodes of ``part`` (core first)
    from the states ``u`` ``[B, N]`` of ``trajectories`` that share ``part``'s mesh
    (:func:`sub_meshes_forward` with ``part`` for every row). Train with the loss on the
    first ``part.num_core`` columns."""
    if not isinstance(part, SubMesh):
        raise TypeError(f"part must be a SubMesh, got {type(part).__name__}")
    ids = _trajectory_ids(trajectories, u.size(0) if u.dim() == 2 else -1)
    meshes = {int(sim.mesh_ids[t]) for t in ids}
    if len(meshes) > 1:
        raise ValueError(
            f"trajectories: on {len(meshes)} different meshes, and a SubMesh is of one; use "
            "sub_meshes_forward with a part of each trajectory's mesh (SimulationPartitions)"
        )
    outputs = sub_meshes_forward(simulator, u, trajectories, sim, [part] * len(ids), accumulate)
    return torch.stack(outputs)


class StitchedSimulator(NoTorchScript):
    """``simulator``'s next-step prediction computed part by part and stitched; a
    :class:`~gnnagg.models.NextStepPredictor` for :func:`~gnnagg.models.rollout`,
    :func:`~gnnagg.models.one_step_rmse` and :func:`~gnnagg.models.rollout_rmse`.

    ``partitions``: a :class:`~gnnagg.models.MeshPartition` of the data's one mesh
    (``partition_mesh(sim.edge_index, P, num_layers=depth)``), or the
    :class:`SimulationPartitions` of the data set (a partition per mesh), with halos covering
    the model's reach. The ``p``-th parts of a batch's trajectories run as one batch."""

    def __init__(
        self, simulator: MeshSimulator, partitions: MeshPartition | SimulationPartitions
    ) -> None:
        if not isinstance(simulator, MeshSimulator):
            raise TypeError(f"simulator must be a MeshSimulator, got {type(simulator).__name__}")
        if not isinstance(partitions, (MeshPartition, SimulationPartitions)):
            raise TypeError(f"partitions must be a MeshPartition or SimulationPartitions, got "
                            f"{type(partitions).__name__}")
        self.simulator = simulator
        self.partitions = partitions

    def _partition(self, trajectory: int, sim: MeshSimulation) -> MeshPartition:
        if isinstance(self.partitions, SimulationPartitions):
            if self.partitions.sim is not sim:
                raise ValueError("sim: the partitions are of another data set")
            return self.partitions.of(trajectory)
        if sim.num_meshes != 1:
            raise ValueError(
                f"sim: a MeshPartition is of one mesh, and this data set has {sim.num_meshes} "
                "(geometry='varied'); use SimulationPartitions(sim, ...) for a partition per mesh"
            )
        if self.partitions.num_nodes != sim.num_nodes:
            raise ValueError(f"sim: the partition is of a {self.partitions.num_nodes}-node "
                             f"mesh, the data's has {sim.num_nodes}")
        return self.partitions

    @torch.no_grad()
    def predict_next(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor:
        """``u + Δu`` ``[B, N]``, Δu stitched from the parts' cores (obstacle nodes are held
        by the caller, as with :meth:`MeshSimulator.predict_next`)."""
        simulator = self.simulator
        state = u.to(device=simulator.device, dtype=simulator.dtype)
        ids = _trajectory_ids(trajectories, state.size(0))
        partitions = [self._partition(t, sim) for t in ids]
        delta = torch.zeros_like(state)
        for index in range(max(p.num_parts for p in partitions)):
            rows = [r for r, p in enumerate(partitions)
                    if index < p.num_parts and p.parts[index].num_core]
            if not rows:
                continue
            parts = [partitions[r].parts[index] for r in rows]
            outputs = sub_meshes_forward(simulator, state[rows], torch.tensor(ids)[rows], sim,
                                         parts)
            for row, part, out in zip(rows, parts, outputs):
                delta[row, part.core.to(state.device)] = out[: part.num_core]
        delta = simulator.output_normalizer.inverse(delta.unsqueeze(-1)).squeeze(-1)
        return (state + delta).to(u.device)
