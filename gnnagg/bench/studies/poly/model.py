"""GINE over OGB molecules that takes polynomial features as extra node, edge and readout inputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...._checks import check_bool, check_count, check_positive

__all__ = ["POLY_MODELS", "PolyGINE"]


# Model names of the polynomial-feature section: GINE, and GINE with a virtual node.
POLY_MODELS: tuple[str, ...] = ("gine", "gine_vn")


class PolyGINE(nn.Module):
    """GINE regression model over OGB molecules, optionally with polynomial features and a
    virtual node.

    ``h = node_in([AtomEncoder(x), poly_x])``, ``e = edge_in([BondEncoder(edge_attr),
    poly_edge_attr])``, ``num_layers`` residual :class:`~torch_geometric.nn.GINEConv` layers (Hu et
    al. 2020, `Strategies for Pre-training Graph Neural Networks
    <https://arxiv.org/abs/1905.12265>`_) with batch normalisation, mean pooling,
    ``head([pooled, poly_graph])``. With every ``*_poly`` width 0 the polynomial attributes are
    ignored and this is the plain model.

    With ``virtual_node`` a learnt per-graph state ``v`` (Gilmer et al. 2017; the "virtual node"
    of OGB's GIN baselines) is added to every node before each layer and updated between
    layers as ``v + MLP(LayerNorm(sum_i h_i + v))``: one global message per layer, which lets
    information cross a molecule in one step. The sum over a graph's nodes grows with the graph
    and with the input features; OGB normalises it with batch normalisation, which a one-graph
    batch cannot use, so a layer norm does it here (without it, the virtual node made GINE
    worse on zinc-plogp and the polynomial features made it worse still).

    Args:
        hidden_channels: width of the embeddings and layers.
        num_layers: number of GINE layers.
        graph_poly, node_poly, edge_poly: channels of ``poly_graph``, ``poly_x`` and
            ``poly_edge_attr`` (0: not used).
        virtual_node: add the virtual node.
        out_dim: outputs per graph.
    """

    def __init__(
        self,
        hidden_channels: int = 64,
        num_layers: int = 3,
        graph_poly: int = 0,
        node_poly: int = 0,
        edge_poly: int = 0,
        virtual_node: bool = False,
        out_dim: int = 1,
    ) -> None:
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
        from torch_geometric.nn import GINEConv

        for name, value in (
            ("hidden_channels", hidden_channels),
            ("num_layers", num_layers),
            ("out_dim", out_dim),
        ):
            check_positive(value, name)
        for name, value in (
            ("graph_poly", graph_poly),
            ("node_poly", node_poly),
            ("edge_poly", edge_poly),
        ):
            check_count(value, name)
        check_bool(virtual_node, "virtual_node")
        self.graph_poly, self.node_poly, self.edge_poly = graph_poly, node_poly, edge_poly
        self.virtual_node = virtual_node
        self.atom_encoder = AtomEncoder(hidden_channels)
        self.bond_encoder = BondEncoder(hidden_channels)
        # The plain model keeps these layers too (width hidden -> hidden), so that models with
        # and without features differ only in the input widths, not in depth.
        self.node_in = nn.Linear(hidden_channels + node_poly, hidden_channels)
        self.edge_in = nn.Linear(hidden_channels + edge_poly, hidden_channels)
        self.convs = nn.ModuleList(
            GINEConv(
                nn.Sequential(
                    nn.Linear(hidden_channels, hidden_channels),
                    nn.BatchNorm1d(hidden_channels),
                    nn.ReLU(),
                    nn.Linear(hidden_channels, hidden_channels),
                ),
                train_eps=True,
            )
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden_channels) for _ in range(num_layers))
        if virtual_node:
            self.virtual_init = nn.Parameter(torch.zeros(hidden_channels))
            self.virtual_mlps = nn.ModuleList(
                # Layer, not batch, normalisation: its rows are graphs, and a training batch
                # may hold a single graph.
                nn.Sequential(
                    nn.LayerNorm(hidden_channels),
                    nn.Linear(hidden_channels, hidden_channels),
                    nn.ReLU(),
                    nn.Linear(hidden_channels, hidden_channels),
                    nn.ReLU(),
                )
                for _ in range(num_layers - 1)
            )
        self.head = nn.Sequential(
            nn.Linear(hidden_channels + graph_poly, hidden_channels),
            nn.ReLU(),
            nn.Linear(hidden_channels, out_dim),
        )

    def forward(self, batch) -> Tensor:
        """Predictions ``[num_graphs, out_dim]`` for a PyG ``Batch``."""
        from torch_geometric.utils import scatter

        h = self.atom_encoder(batch.x)
        e = self.bond_encoder(batch.edge_attr)
        if self.node_poly:
            h = torch.cat([h, batch.poly_x.to(h.dtype)], dim=-1)
        if self.edge_poly:
            e = torch.cat([e, batch.poly_edge_attr.to(e.dtype)], dim=-1)
        h, e = self.node_in(h), self.edge_in(e)
        num_graphs = batch.num_graphs
        virtual = self.virtual_init.expand(num_graphs, -1) if self.virtual_node else None
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if virtual is not None:
                h = h + virtual[batch.batch]
            h = h + torch.relu(norm(conv(h, batch.edge_index, e)))
            if virtual is not None and i < len(self.convs) - 1:
                pooled = scatter(h, batch.batch, dim=0, dim_size=num_graphs, reduce="sum")
                virtual = virtual + self.virtual_mlps[i](pooled + virtual)
        pooled = scatter(h, batch.batch, dim=0, dim_size=num_graphs, reduce="mean")
        if self.graph_poly:
            pooled = torch.cat([pooled, batch.poly_graph.to(pooled.dtype)], dim=-1)
        return self.head(pooled)
