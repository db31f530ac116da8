"""Mesh graph-transformer attention: composable masks and one attention op.

Implements the attention of "Training Transformers for Mesh-Based Simulations" (Garnier et al.
2025, `arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_) natively on PyG batches:

* masks -- :func:`adjacency`, :func:`khop`, :func:`dilated_window`, :func:`global_tokens`,
  :func:`random_jumps`, composed with ``|`` and ``&``. A :class:`Mask` is a recipe;
  ``mask.build(...)`` gives a :class:`MaskIndex` (a CSR over query rows). New masks implement
  :meth:`Mask.pairs` on a :class:`MaskContext`, or wrap a function with :func:`pair_mask`;
* :func:`graph_attention` -- masked multi-head attention with a ``"sparse"`` (CSR kernels,
  recomputing), ``"flex"`` (FlexAttention block mask) and ``"dense"`` backend;
* :class:`GraphTransformerConv` -- PyG's ``TransformerConv`` (same arguments and weights)
  whose neighbourhoods a mask widens;
* :class:`GraphAttention` -- one attention layer. The models built from it (the graph
  transformer, MeshGraphNet, simulators) are in :mod:`gnnagg.models`.
"""

from .builtin_masks import adjacency, dilated_window, global_tokens, khop, random_jumps
from .layers import GraphAttention
from .mask_context import MaskContext
from .mask_index import MaskIndex
from .masks import Mask, pair_mask
from .ops import graph_attention
from .ordering import morton_codes, reverse_cuthill_mckee
from .transformer_conv import GraphTransformerConv

__all__ = [
    "GraphAttention",
    "GraphTransformerConv",
    "Mask",
    "MaskContext",
    "MaskIndex",
    "adjacency",
    "dilated_window",
    "global_tokens",
    "graph_attention",
    "khop",
    "morton_codes",
    "pair_mask",
    "random_jumps",
    "reverse_cuthill_mckee",
]
