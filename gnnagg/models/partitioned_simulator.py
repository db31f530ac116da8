r"""A :class:`~gnnagg.models.MeshSimulator` on the sub-meshes of a
:class:`~gnnagg.models.MeshPartition`: the forward pass of one part (to train on sub-meshes,
with the loss on its core) and stitched next-step prediction (to roll out part by part).

The node features are those of the whole mesh, sliced (a few columns per node); the network's
activations, which dominate the memory of a step, are those of the sub-mesh only. The
simulator's normalisers, when they accumulate, see the sub-mesh's nodes and edges (halos
included). A step model that builds its attention mask from the graph it is given (a
:class:`~gnnagg.models.GraphTransformer` in a :class:`~gnnagg.models.NodeFeatureModel`)
builds it on the sub-mesh: the same rows for the halo's inner layers as the whole mesh's
restricted mask for :func:`~gnnagg.attention.adjacency` and :func:`~gnnagg.attention.khop`
(a path of at most ``k`` edges stays inside the ``k``-hop halo), not for an ordering-based
:func:`~gnnagg.attention.dilated_window`, whose order is recomputed on the sub-mesh (use
:func:`~gnnagg.models.stitched_forward` with the restricted masks for exact inference there).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._torchscript import NoTorchScript
from ..data import MeshSimulation
from .partition import MeshPartition, SubMesh
from .simulator import MeshSimulator

__all__ = ["StitchedSimulator", "sub_mesh_forward"]


def sub_mesh_forward(
    simulator: MeshSimulator,
    u: Tensor,
    trajectories: Tensor,
    sim: MeshSimulation,
    part: SubMesh,
    accumulate: bool = False,
) -> Tensor:
    """The normalised predicted change ``[B, n]`` on the ``n`` nodes of ``part`` (core first)
    from the whole mesh's states ``u`` ``[B, N]``, as ``simulator(u, trajectories, sim,
    accumulate)`` computes it on the whole mesh; ``accumulate`` feeds the normalisers the
    sub-mesh's features. Train with the loss on the first ``part.num_core`` columns."""
    if not isinstance(simulator, MeshSimulator):
        raise TypeError(f"simulator must be a MeshSimulator, got {type(simulator).__name__}")
    if not isinstance(part, SubMesh):
        raise TypeError(f"part must be a SubMesh, got {type(part).__name__}")
    if sim.num_meshes != 1:
        raise ValueError(
            f"sim: a partition is of one mesh, and this data set has {sim.num_meshes} "
            "(geometry='varied'); partition each trajectory's mesh, or use geometry='fixed'"
        )
    if u.dim() != 2 or u.size(1) != sim.num_nodes:
        raise ValueError(f"u must be [B, num_nodes={sim.num_nodes}], got {tuple(u.shape)}")
    if part.num_nodes and int(part.nodes.max()) >= sim.num_nodes:
        raise ValueError(f"part: has node ids beyond the mesh's {sim.num_nodes} nodes")
    b, n = u.shape
    device = simulator.device
    nodes, ids = part.nodes.to(device), part.edge_ids.to(device)
    m, e = part.num_nodes, part.edge_ids.numel()
    mesh = simulator.batched_mesh(sim, trajectories)
    features = simulator.node_features(u, trajectories, sim)
    x = features.view(b, n, -1)[:, nodes].reshape(b * m, -1)
    raw_edges = mesh.edge_attr.view(b, -1, mesh.edge_attr.size(1))[:, ids]
    offsets = (torch.arange(b, device=device) * m).repeat_interleave(e)
    edge_index = part.edge_index.to(device).repeat(1, b) + offsets
    x = simulator.node_normalizer(x, accumulate)
    edge_attr = simulator.edge_normalizer(raw_edges.reshape(b * e, -1), accumulate)
    pos = mesh.pos.view(b, n, -1)[:, nodes].reshape(b * m, -1)
    batch = torch.arange(b, device=device).repeat_interleave(m)
    out = simulator.model(x, edge_index, pos=pos, edge_attr=edge_attr, batch=batch)
    if out.shape not in ((b * m, 1), (b * m,)):
        raise ValueError(f"model: expected an output of shape [{b * m}, 1] (one value per "
                         f"node), got {tuple(out.shape)}")
    return out.reshape(b, m)


class StitchedSimulator(NoTorchScript):
    """``simulator``'s next-step prediction computed part by part over ``partition`` and
    stitched; a :class:`~gnnagg.models.NextStepPredictor` for :func:`~gnnagg.models.rollout`,
    :func:`~gnnagg.models.one_step_rmse` and :func:`~gnnagg.models.rollout_rmse`.

    The partition must be of the data's mesh (``partition_mesh(sim.edge_index, P,
    num_layers=depth)``, halos covering the model's depth)."""

    def __init__(self, simulator: MeshSimulator, partition: MeshPartition) -> None:
        if not isinstance(simulator, MeshSimulator):
            raise TypeError(f"simulator must be a MeshSimulator, got {type(simulator).__name__}")
        if not isinstance(partition, MeshPartition):
            raise TypeError(f"partition must be a MeshPartition, got {type(partition).__name__}")
        self.simulator = simulator
        self.partition = partition

    @torch.no_grad()
    def predict_next(self, u: Tensor, trajectories: Tensor, sim: MeshSimulation) -> Tensor:
        """``u + Δu`` ``[B, N]``, Δu stitched from the parts' cores (obstacle nodes are held
        by the caller, as with :meth:`MeshSimulator.predict_next`)."""
        if self.partition.num_nodes != sim.num_nodes:
            raise ValueError(f"sim: the partition is of a {self.partition.num_nodes}-node mesh, "
                             f"the data's has {sim.num_nodes}")
        simulator = self.simulator
        state = u.to(device=simulator.device, dtype=simulator.dtype)

        def part_delta(part: SubMesh) -> Tensor:
            return sub_mesh_forward(simulator, state, trajectories, sim, part).t()

        delta = self.partition.apply(part_delta).t()
        delta = simulator.output_normalizer.inverse(delta.unsqueeze(-1)).squeeze(-1)
        return (state + delta).to(u.device)
