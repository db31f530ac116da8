"""Models for graphs and meshes, built from :mod:`gnnagg.attention` and :mod:`gnnagg.aggr`.

* :class:`GraphTransformer` -- the mesh graph transformer (masked attention blocks) of Garnier
  et al. 2025;
* :class:`MeshGraphNet` -- the message-passing simulator of Pfaff et al. 2021, with any PyG or
  gnnagg aggregation (``aggr=``);
* :class:`MeshSimulator` -- a network wrapped into a next-step simulator of
  :func:`gnnagg.data.mesh_simulation` data (features, :class:`OnlineNormalizer`\\ s, update
  rule), evaluated by :func:`rollout`, :func:`one_step_rmse` and :func:`rollout_rmse`;
* reference predictors to compare with: :class:`PersistenceBaseline`,
  :class:`MeanDeltaBaseline` and the exact solver, :class:`SolverOracle`.
"""

from .graph_transformer import GraphTransformer
from .meshgraphnet import MeshGraphNet, mesh_edge_features
from .normalizers import OnlineNormalizer
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
    "EdgeFeatureModel",
    "GraphTransformer",
    "MeanDeltaBaseline",
    "MeshGraphNet",
    "MeshSimulator",
    "MeshStepModel",
    "NextStepPredictor",
    "NodeFeatureModel",
    "OnlineNormalizer",
    "PersistenceBaseline",
    "SolverOracle",
    "edge_input_channels",
    "mesh_edge_features",
    "node_input_channels",
    "one_step_rmse",
    "rollout",
    "rollout_rmse",
]
