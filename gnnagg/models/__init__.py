"""Models for graphs and meshes, built from :mod:`gnnagg.attention` and :mod:`gnnagg.aggr`.

* :class:`GraphTransformer` -- the mesh graph transformer (masked attention blocks) of Garnier
  et al. 2025;
* :class:`MeshGraphNet` -- the message-passing simulator of Pfaff et al. 2021, with any PyG or
  gnnagg aggregation (``aggr=``);
* :class:`MeshSimulator` -- a network wrapped into a next-step simulator of
  :func:`gnnagg.data.mesh_simulation` data (features, :class:`OnlineNormalizer`\\ s, update
  rule), evaluated by :func:`rollout`, :func:`one_step_rmse` and :func:`rollout_rmse`;
* reference predictors to compare with: :class:`PersistenceBaseline`,
  :class:`MeanDeltaBaseline` and the exact solver, :class:`SolverOracle`;
* partitioned meshes: :func:`partition_mesh` splits a mesh into sub-meshes whose halos cover a
  model's receptive field (:class:`MeshPartition`), :func:`stitched_forward` and
  :class:`StitchedSimulator` run a model part by part, :func:`sub_mesh_forward` and
  :func:`sub_meshes_forward` train a simulator on sub-meshes; :class:`SimulationPartitions`
  partitions every mesh of a data set with a mesh per trajectory.
"""

from .graph_transformer import GraphTransformer
from .meshgraphnet import MeshGraphNet, mesh_edge_features
from .normalizers import OnlineNormalizer
from .partition import (
    PARTITION_METHODS,
    MeshPartition,
    SubMesh,
    edge_reach,
    mask_reach,
    partition_mesh,
    partition_nodes,
    restrict_mask,
    stitched_forward,
)
from .partitioned_simulator import (
    SimulationPartitions,
    StitchedSimulator,
    model_reach,
    sub_mesh_forward,
    sub_meshes_forward,
)
from .predictors import MeanDeltaBaseline, PersistenceBaseline, SolverOracle
from .simulator import (
    MODELS_REVISION,
    EdgeFeatureModel,
    MeshSimulator,
    MeshStepModel,
    NextStepPredictor,
    NodeFeatureModel,
    edge_input_channels,
    node_input_channels,
    one_step_rmse,
    rollout,
    rollout_rmse,
)

__all__ = [
    "MODELS_REVISION",
    "PARTITION_METHODS",
    "EdgeFeatureModel",
    "GraphTransformer",
    "MeanDeltaBaseline",
    "MeshGraphNet",
    "MeshPartition",
    "MeshSimulator",
    "MeshStepModel",
    "NextStepPredictor",
    "NodeFeatureModel",
    "OnlineNormalizer",
    "PersistenceBaseline",
    "SimulationPartitions",
    "SolverOracle",
    "StitchedSimulator",
    "SubMesh",
    "edge_input_channels",
    "edge_reach",
    "mask_reach",
    "mesh_edge_features",
    "model_reach",
    "node_input_channels",
    "one_step_rmse",
    "partition_mesh",
    "partition_nodes",
    "restrict_mask",
    "rollout",
    "rollout_rmse",
    "stitched_forward",
    "sub_mesh_forward",
    "sub_meshes_forward",
]
