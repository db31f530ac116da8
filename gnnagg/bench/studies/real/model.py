"""A message-passing network for molecules and TU graphs: residual layers
``h + MLP([h, aggr(ReLU(h_j + e_ij))])`` around a registry aggregator, mean pooling, an MLP head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...._checks import check_positive
from ...registry import AGGREGATORS, RegularisedModel, build_aggregator

__all__ = ["AggregationLayer", "GraphModel"]


class AggregationLayer(nn.Module):
    """``h + MLP([h, aggr(ReLU(h_src + edge_encoder(e)))])`` over edges sorted by target."""

    def __init__(
        self,
        aggregator: str,
        hidden_channels: int,
        edge_encoder: nn.Module | None = None,
        deg: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.edge_encoder = edge_encoder
        self.aggr = build_aggregator(aggregator, hidden_channels, deg)
        width = AGGREGATORS[aggregator].width(hidden_channels)
        self.update = nn.Sequential(
            nn.Linear(hidden_channels + width, hidden_channels),
            nn.ReLU(),
            nn.Linear(hidden_channels, hidden_channels),
        )

    def forward(
        self, h: Tensor, src: Tensor, dst: Tensor, edge_attr: Tensor | None, num_nodes: int
    ) -> Tensor:
        """One round of message passing; ``dst`` must be sorted (PyG's padded aggregators)."""
        messages = h.index_select(0, src)
        if self.edge_encoder is not None and edge_attr is not None:
            messages = messages + self.edge_encoder(edge_attr)
        messages = torch.relu(messages)
        aggregated = self.aggr(messages, dst, dim_size=num_nodes)
        return h + self.update(torch.cat([h, aggregated], dim=-1))


class GraphModel(RegularisedModel):
    """Graph-level prediction with ``num_layers`` :class:`AggregationLayer` s.

    Args:
        aggregator: a registry name.
        out_dim: outputs per graph (regression targets or class logits).
        hidden_channels: width of every layer.
        num_layers: number of message-passing layers.
        node_features: ``None`` for OGB's categorical atom features (``AtomEncoder``), else the
            number of float node features (a linear encoder).
        edge_features: ``None`` for OGB's bond features (``BondEncoder``), ``0`` for no edge
            features, else the number of float edge features.
        deg: in-degree histogram of the training graphs (for ``pna``).
        regularise, reg_weight, reg_samples: as :class:`SetClassifier`.
    """

    def __init__(
        self,
        aggregator: str,
        out_dim: int,
        hidden_channels: int = 64,
        num_layers: int = 3,
        node_features: int | None = None,
        edge_features: int | None = None,
        deg: Tensor | None = None,
        regularise: bool = False,
        reg_weight: float = 0.1,
        reg_samples: int = 256,
    ) -> None:
        super().__init__()
        for name, value in (
            ("out_dim", out_dim),
            ("hidden_channels", hidden_channels),
            ("num_layers", num_layers),
        ):
            check_positive(value, name)
        self.aggregator = aggregator
        if node_features is None:
            from ogb.graphproppred.mol_encoder import AtomEncoder

            self.node_encoder: nn.Module = AtomEncoder(hidden_channels)
        else:
            self.node_encoder = nn.Linear(node_features, hidden_channels)
        self.layers = nn.ModuleList(
            AggregationLayer(
                aggregator, hidden_channels, self._edge_encoder(edge_features, hidden_channels), deg
            )
            for _ in range(num_layers)
        )
        self.head = nn.Sequential(
            nn.Linear(hidden_channels, hidden_channels),
            nn.ReLU(),
            nn.Linear(hidden_channels, out_dim),
        )
        self.regularise, self.reg_weight, self.reg_samples = regularise, reg_weight, reg_samples

    @staticmethod
    def _edge_encoder(edge_features: int | None, hidden_channels: int) -> nn.Module | None:
        if edge_features is None:
            from ogb.graphproppred.mol_encoder import BondEncoder

            return BondEncoder(hidden_channels)
        if edge_features == 0:
            return None
        return nn.Linear(edge_features, hidden_channels)

    def forward(self, batch) -> tuple[Tensor, Tensor]:
        """``([num_graphs, out_dim], regulariser)`` for a PyG ``Batch``."""
        from torch_geometric.utils import scatter

        h = self.node_encoder(batch.x)
        src, dst = batch.edge_index
        edge_attr = getattr(batch, "edge_attr", None)
        # One stable sort by target serves every layer (PyG's padded aggregators need it).
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
        if edge_attr is not None:
            edge_attr = edge_attr[order]
        num_nodes = h.shape[0]
        for layer in self.layers:
            h = layer(h, src, dst, edge_attr, num_nodes)
        pooled = scatter(h, batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
        out = self.head(pooled)
        return out, self._regulariser(out)
