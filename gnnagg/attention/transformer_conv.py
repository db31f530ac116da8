r"""A ``TransformerConv``-shaped layer whose neighbourhood a mask can widen:
:class:`GraphTransformerConv`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import is_torch_sparse_tensor, to_edge_index

from .._checks import check_bool, check_finite, check_positive
from .._torchscript import NoTorchScript
from ..segment import resolve_plan, segment, segment_softmax
from .mask_index import MaskIndex
from .masks import Mask

__all__ = ["GraphTransformerConv"]


class GraphTransformerConv(NoTorchScript, MessagePassing):
    r"""The graph transformer operator of PyG's ``TransformerConv`` (Shi et al. 2021,
    `arXiv:2009.03509 <https://arxiv.org/abs/2009.03509>`_), whose neighbourhood a
    :class:`~gnnagg.attention.Mask` can widen:

    .. math::

        \mathbf{x}'_i = \mathbf{W}_1 \mathbf{x}_i + \sum_{j \in \mathcal{N}(i) \cup
            \mathcal{M}(i)} \alpha_{ij} \big(\mathbf{W}_2 \mathbf{x}_j +
            \mathbf{W}_6 \mathbf{e}_{ij}\big), \qquad
        \alpha_{ij} = \operatorname{softmax}_j \frac{(\mathbf{W}_3 \mathbf{x}_i)^\top
            (\mathbf{W}_4 \mathbf{x}_j + \mathbf{W}_6 \mathbf{e}_{ij})}{\sqrt{d}}

    per head, where :math:`\mathcal{N}(i)` are the sources of the edges into ``i`` (each edge
    once, parallel edges included, as ``TransformerConv``) and :math:`\mathcal{M}(i)` the keys
    the mask adds (Garnier et al. 2025's k-hop, window or random-jump neighbourhoods); a pair
    that is no edge has no edge features (:math:`\mathbf{e}_{ij} = 0`).

    Arguments, parameters and their names are ``TransformerConv``'s, so its weights load with
    ``load_state_dict`` and, without a mask, the outputs, attention weights and gradients are
    the same up to float rounding:

    Args:
        in_channels: size of each input, a ``(source, target)`` pair for bipartite graphs, or
            ``-1`` (either side) to learn it from the first forward.
        out_channels: size of each head's output.
        heads: attention heads.
        concat: concatenate the heads (``heads * out_channels`` outputs) or average them.
        beta: gate the skip connection: :math:`\beta_i \mathbf{W}_1\mathbf{x}_i +
            (1-\beta_i)\mathbf{m}_i` with :math:`\beta_i = \sigma(\mathbf{w}_5^\top
            [\mathbf{m}_i, \mathbf{W}_1\mathbf{x}_i, \mathbf{m}_i - \mathbf{W}_1\mathbf{x}_i])`.
        dropout: dropout on the attention weights in training.
        edge_dim: size of the edge features ``edge_attr`` (added to keys and values after
            ``lin_edge``), or ``None`` for none.
        bias: biases in the query/key/value/skip projections.
        root_weight: add the projected target features :math:`\mathbf{W}_1\mathbf{x}_i`
            (``False`` also turns ``beta`` off).
        mask: a mask whose pairs are attended besides the edges, built from ``edge_index``
            (e.g. ``khop(2)``, ``adjacency()`` for self-loops, ``random_jumps(0.1)``);
            ``None`` (default) attends the edges only, as ``adjacency(self_loops=False)``
            would. It only adds pairs, never removes an edge. Masks with global tokens are for
            :class:`~gnnagg.attention.GraphAttention`.
        **kwargs: further ``MessagePassing`` arguments.

    ``forward(x, edge_index, edge_attr=None, return_attention_weights=None, *, pos=None,
    batch=None, mask_index=None)``: ``edge_index`` is a ``[2, E]`` tensor, an ``EdgeIndex``, a
    transposed sparse adjacency ``adj_t`` (``torch.sparse`` or ``torch_sparse.SparseTensor``;
    two-dimensional values are edge features, as in PyG); ``pos``/``batch`` are what the mask
    needs; ``mask_index`` is ``conv.mask.build(edge_index, ...)`` built once for a fixed graph.
    With ``return_attention_weights`` set, also returns ``(edge_index, alpha)`` (``alpha``
    ``[P, heads]``; for a sparse adjacency, the adjacency with ``alpha`` as values), where the
    pairs are the edges in their order followed by the pairs the mask adds.

    The attention is computed on the attended pairs only (sparse: gathered keys and values, a
    softmax and a sum per target node); no dense score matrix is built. Under
    ``torch.compile`` a layer without a mask traces into the graph.
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        beta: bool = False,
        dropout: float = 0.0,
        edge_dim: int | None = None,
        bias: bool = True,
        root_weight: bool = True,
        mask: Mask | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        pair = in_channels if isinstance(in_channels, (tuple, list)) else (in_channels,) * 2
        if len(pair) != 2:
            raise ValueError(f"in_channels must be an int or a pair, got {in_channels!r}")
        pair = tuple(_check_channels(c, "in_channels") for c in pair)
        self.in_channels = in_channels
        self.out_channels = check_positive(out_channels, "out_channels")
        self.heads = check_positive(heads, "heads")
        self.concat = check_bool(concat, "concat")
        self.root_weight = check_bool(root_weight, "root_weight")
        self.beta = check_bool(beta, "beta") and self.root_weight
        self.dropout = check_finite(dropout, "dropout", minimum=0.0)
        if self.dropout >= 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.edge_dim = None if edge_dim is None else _check_channels(edge_dim, "edge_dim")
        bias = check_bool(bias, "bias")
        if mask is not None and not isinstance(mask, Mask):
            raise TypeError(f"mask must be a Mask such as khop(2), got {type(mask).__name__}")
        if mask is not None and mask.tokens_per_graph:
            raise ValueError(
                f"mask {mask!r} has global tokens, which need token embeddings: use "
                "GraphAttention (or gnnagg.models.GraphTransformer), which owns them"
            )
        self.mask = mask
        width = self.heads * self.out_channels
        self.lin_key = Linear(pair[0], width, bias=bias)
        self.lin_query = Linear(pair[1], width, bias=bias)
        self.lin_value = Linear(pair[0], width, bias=bias)
        if self.edge_dim is not None:
            self.lin_edge = Linear(self.edge_dim, width, bias=False)
        else:
            self.register_parameter("lin_edge", None)
        out_width = width if self.concat else self.out_channels
        self.lin_skip = Linear(pair[1], out_width, bias=bias)
        if self.beta:
            self.lin_beta = Linear(3 * out_width, 1, bias=False)
        else:
            self.register_parameter("lin_beta", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for lin in (self.lin_key, self.lin_query, self.lin_value, self.lin_edge, self.lin_skip,
                    self.lin_beta):  # fmt: skip
            if lin is not None:
                lin.reset_parameters()

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor | SparseTensor,
        edge_attr: Tensor | None = None,
        return_attention_weights: bool | None = None,
        *,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        mask_index: MaskIndex | None = None,
    ):
        x_src, x_dst = _node_features(x)
        src, dst, edge_attr, sparse = _edges(edge_index, edge_attr)
        num_dst = x_dst.size(0)
        if edge_attr is not None and self.lin_edge is None:
            raise ValueError("edge_attr was given but edge_dim is None: set edge_dim to use it")
        if edge_attr is None and self.lin_edge is not None:
            raise ValueError(f"edge_attr is required: the layer has edge_dim={self.edge_dim}")
        widened = self.mask is not None or mask_index is not None
        if widened:
            if not isinstance(x, Tensor):
                raise ValueError(
                    "a mask widens the neighbourhoods of a graph whose sources and targets are "
                    "the same nodes: pass x as one tensor (not a bipartite pair)"
                )
            src, dst = self._with_mask_pairs(src, dst, num_dst, pos, batch, mask_index)
        heads, channels = self.heads, self.out_channels
        query = self.lin_query(x_dst).view(-1, heads, channels)
        key = self.lin_key(x_src).view(-1, heads, channels)
        value = self.lin_value(x_src).view(-1, heads, channels)

        key_j, value_j = key.index_select(0, src), value.index_select(0, src)
        if self.lin_edge is not None:
            edge = self.lin_edge(edge_attr).view(-1, heads, channels)
            extra = src.numel() - edge.size(0)  # pairs the mask added have no edge features
            if extra:
                edge = torch.cat([edge, edge.new_zeros(extra, heads, channels)])
            key_j, value_j = key_j + edge, value_j + edge
        scores = (query.index_select(0, dst) * key_j).sum(dim=-1) / math.sqrt(channels)
        # The edge index's grouping is cached (layers and epochs share it); widened pairs are
        # new tensors every call, which would only crowd the cache.
        plan = resolve_plan(scores.size(0), index=dst, dim_size=num_dst, cache=not widened)
        alpha = segment_softmax(scores, plan=plan)
        weights = F.dropout(alpha, p=self.dropout, training=self.training)
        out = segment(value_j * weights.unsqueeze(-1), plan=plan, reduce="sum")

        out = out.reshape(-1, heads * channels) if self.concat else out.mean(dim=1)
        if self.root_weight:
            x_r = self.lin_skip(x_dst)
            if self.lin_beta is not None:
                gate = self.lin_beta(torch.cat([out, x_r, out - x_r], dim=-1)).sigmoid()
                out = gate * x_r + (1 - gate) * out
            else:
                out = out + x_r
        if return_attention_weights is None:
            return out
        if isinstance(edge_index, SparseTensor) and sparse:
            return out, edge_index.set_value(alpha, layout="coo")
        if widened:
            return out, (torch.stack([src, dst]), alpha)
        return out, (edge_index, alpha)

    def _with_mask_pairs(self, src, dst, num_nodes, pos, batch, mask_index):
        """The edges followed by the pairs of the mask that are not edges."""
        if mask_index is None:
            mask_index = self.mask.build(
                torch.stack([src, dst]), num_nodes=num_nodes, pos=pos, batch=batch
            )
        elif not isinstance(mask_index, MaskIndex):
            raise TypeError(f"mask_index must be a MaskIndex, got {type(mask_index).__name__}")
        if mask_index.num_tokens or mask_index.num_nodes != num_nodes:
            raise ValueError(
                f"mask_index was built for {mask_index.num_nodes} nodes and "
                f"{mask_index.num_tokens} tokens; x has {num_nodes} nodes and tokens need "
                "GraphAttention"
            )
        node_of_row = torch.empty_like(mask_index.node_rows)
        node_of_row[mask_index.node_rows] = torch.arange(num_nodes, device=src.device)
        queries, keys = node_of_row[mask_index.row()], node_of_row[mask_index.col]
        added = ~torch.isin(queries * num_nodes + keys, dst * num_nodes + src)
        return torch.cat([src, keys[added]]), torch.cat([dst, queries[added]])

    def __repr__(self) -> str:
        mask = "" if self.mask is None else f", mask={self.mask!r}"
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads}{mask})"
        )


def _check_channels(value: object, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value == -1:
        return -1
    return check_positive(value, name)


def _node_features(x: object) -> tuple[Tensor, Tensor]:
    if isinstance(x, Tensor):
        return x, x
    if isinstance(x, (tuple, list)) and len(x) == 2:
        if not all(isinstance(part, Tensor) for part in x):
            raise TypeError(
                "x must be a tensor or a (source, target) pair of tensors; the target "
                "features give the queries, so neither may be None"
            )
        return x[0], x[1]
    raise TypeError(f"x must be a tensor or a (source, target) pair, got {type(x).__name__}")


def _edges(edge_index: object, edge_attr: Tensor | None):
    """``(src, dst, edge_attr, from_sparse)`` of any of PyG's edge formats."""
    if isinstance(edge_index, SparseTensor):
        dst, src, value = edge_index.coo()
        if edge_attr is None and value is not None and value.dim() > 1:
            edge_attr = value
        return src, dst, edge_attr, True
    if isinstance(edge_index, Tensor) and is_torch_sparse_tensor(edge_index):
        indices, value = to_edge_index(edge_index)
        if edge_attr is None and value.dim() > 1:
            edge_attr = value
        return indices[1], indices[0], edge_attr, True
    if not isinstance(edge_index, Tensor):
        raise TypeError(
            f"edge_index must be a tensor, an EdgeIndex or a sparse adjacency, got "
            f"{type(edge_index).__name__}"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must be [2, E], got shape {tuple(edge_index.shape)}")
    if edge_index.is_floating_point():
        raise TypeError(f"edge_index must hold integers, got {edge_index.dtype}")
    plain = edge_index.as_tensor() if hasattr(edge_index, "as_tensor") else edge_index
    return plain[0], plain[1], edge_attr, False
