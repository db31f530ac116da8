"""Mesh graph-transformer attention: composable masks, one attention op, models.

Implements "Training Transformers for Mesh-Based Simulations" (Garnier et al. 2025,
`arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_) natively on PyG batches:

* masks -- :func:`adjacency`, :func:`khop`, :func:`dilated_window`, :func:`global_tokens`,
  :func:`random_jumps`, composed with ``|`` and ``&``; ``mask.build(...)`` gives a
  :class:`GraphMask` (a CSR over query rows);
* :func:`graph_attention` -- masked multi-head attention with a ``"sparse"`` (chunked,
  recomputing), ``"flex"`` (FlexAttention block mask) and ``"dense"`` path;
* models -- :class:`GraphAttention`, :class:`GraphTransformer` and the message-passing baseline
  :class:`MeshGraphNet`.
"""

from .graph_mask import GraphMask
from .masks import Mask, adjacency, dilated_window, global_tokens, khop, random_jumps
from .models import GraphAttention, GraphTransformer, MeshGraphNet, mesh_edge_features
from .ops import PATHS, graph_attention
from .ordering import morton_codes, reverse_cuthill_mckee

__all__ = [
    "PATHS",
    "GraphAttention",
    "GraphMask",
    "GraphTransformer",
    "MeshGraphNet",
    "Mask",
    "adjacency",
    "dilated_window",
    "global_tokens",
    "graph_attention",
    "khop",
    "mesh_edge_features",
    "morton_codes",
    "random_jumps",
    "reverse_cuthill_mckee",
]
