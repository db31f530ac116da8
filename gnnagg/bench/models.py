"""The small models the benchmark trains, each around one aggregator from the registry.

* :class:`SetClassifier` -- the size-generalisation model of PyG's ``lcm_aggr_2nd_min`` example:
  element encoder, the aggregator over the star edges into the readout node, decoder MLP.
* :class:`GraphModel` -- a message-passing network for molecules and TU graphs: residual layers
  ``h + MLP([h, aggr(ReLU(h_j + e_ij))])``, mean pooling, an MLP head.
* :class:`PolyGINE` -- GINE over OGB molecules (optionally with a virtual node) that takes
  polynomial features as extra node, edge and readout inputs (the polynomial-feature section).

Both return ``(output, regulariser)``: the regulariser (``reg_weight`` times gnnagg's
associativity or permutation loss, or an exact zero) is computed inside ``forward`` so that
under DistributedDataParallel every parameter it touches is part of the forward's graph.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .registry import AGGREGATORS, build_aggregator, regulariser_loss

__all__ = ["POLY_MODELS", "AggregationLayer", "GraphModel", "PolyGINE", "SetClassifier"]


class _Regularised(nn.Module):
    """Adds the regulariser of every registry aggregator in the model (training mode only)."""

    regularise: bool
    reg_weight: float
    reg_samples: int

    def _regulariser(self, like: Tensor) -> Tensor:
        total = like.new_zeros(())
        if not (self.training and self.regularise and self.reg_weight > 0):
            return total
        for module in self.modules():
            loss = regulariser_loss(module, self.reg_samples) if module is not self else None
            if loss is not None:
                total = total + self.reg_weight * loss
        return total


class SetClassifier(_Regularised):
    """Classify multisets: ``decoder(aggr(encoder(x_i)))``.

    Args:
        aggregator: a registry name (see :data:`~gnnagg.bench.registry.AGGREGATORS`).
        num_classes: number of output logits.
        hidden: width of the encoder, the aggregator's messages and the decoder.
        in_features: features per element (8 bits for the synthetic tasks).
        deg: set-size histogram of the training data (for ``pna``).
        regularise: add ``reg_weight *`` the aggregator's regulariser in training mode.
        reg_weight: weight of the regulariser.
        reg_samples: samples the regulariser draws per forward.
    """

    def __init__(
        self,
        aggregator: str,
        num_classes: int,
        hidden: int = 64,
        in_features: int = 8,
        deg: Tensor | None = None,
        regularise: bool = False,
        reg_weight: float = 0.1,
        reg_samples: int = 256,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_classes", num_classes),
            ("hidden", hidden),
            ("in_features", in_features),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.aggregator = aggregator
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.aggr = build_aggregator(aggregator, hidden, deg)
        width = AGGREGATORS[aggregator].width(hidden)
        self.decoder = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )
        self.regularise, self.reg_weight, self.reg_samples = regularise, reg_weight, reg_samples

    def forward(self, x: Tensor, index: Tensor, num_sets: int) -> tuple[Tensor, Tensor]:
        """Logits ``[num_sets, num_classes]`` for elements ``x`` of set ``index`` (sorted),
        and the weighted regulariser (a scalar)."""
        pooled = self.aggr(self.encoder(x), index, dim_size=num_sets)
        logits = self.decoder(pooled)
        return logits, self._regulariser(logits)


class AggregationLayer(nn.Module):
    """``h + MLP([h, aggr(ReLU(h_src + edge_encoder(e)))])`` over edges sorted by target."""

    def __init__(
        self,
        aggregator: str,
        hidden: int,
        edge_encoder: nn.Module | None = None,
        deg: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.edge_encoder = edge_encoder
        self.aggr = build_aggregator(aggregator, hidden, deg)
        width = AGGREGATORS[aggregator].width(hidden)
        self.update = nn.Sequential(
            nn.Linear(hidden + width, hidden), nn.ReLU(), nn.Linear(hidden, hidden)
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


class GraphModel(_Regularised):
    """Graph-level prediction with ``layers`` :class:`AggregationLayer` s.

    Args:
        aggregator: a registry name.
        out_dim: outputs per graph (regression targets or class logits).
        hidden: width of every layer.
        layers: number of message-passing layers.
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
        hidden: int = 64,
        layers: int = 3,
        node_features: int | None = None,
        edge_features: int | None = None,
        deg: Tensor | None = None,
        regularise: bool = False,
        reg_weight: float = 0.1,
        reg_samples: int = 256,
    ) -> None:
        super().__init__()
        for name, value in (("out_dim", out_dim), ("hidden", hidden), ("layers", layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.aggregator = aggregator
        if node_features is None:
            from ogb.graphproppred.mol_encoder import AtomEncoder

            self.node_encoder: nn.Module = AtomEncoder(hidden)
        else:
            self.node_encoder = nn.Linear(node_features, hidden)
        self.layers = nn.ModuleList(
            AggregationLayer(aggregator, hidden, self._edge_encoder(edge_features, hidden), deg)
            for _ in range(layers)
        )
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        self.regularise, self.reg_weight, self.reg_samples = regularise, reg_weight, reg_samples

    @staticmethod
    def _edge_encoder(edge_features: int | None, hidden: int) -> nn.Module | None:
        if edge_features is None:
            from ogb.graphproppred.mol_encoder import BondEncoder

            return BondEncoder(hidden)
        if edge_features == 0:
            return None
        return nn.Linear(edge_features, hidden)

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


# Model names of the polynomial-feature section: GINE, and GINE with a virtual node.
POLY_MODELS: tuple[str, ...] = ("gine", "gine_vn")


class PolyGINE(nn.Module):
    """GINE regression model over OGB molecules, optionally with polynomial features and a
    virtual node.

    ``h = node_in([AtomEncoder(x), poly_x])``, ``e = edge_in([BondEncoder(edge_attr),
    poly_edge_attr])``, ``layers`` residual :class:`~torch_geometric.nn.GINEConv` layers (Hu et
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
        hidden: width of the embeddings and layers.
        layers: number of GINE layers.
        graph_poly, node_poly, edge_poly: channels of ``poly_graph``, ``poly_x`` and
            ``poly_edge_attr`` (0: not used).
        virtual_node: add the virtual node.
        out_dim: outputs per graph.
    """

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 3,
        graph_poly: int = 0,
        node_poly: int = 0,
        edge_poly: int = 0,
        virtual_node: bool = False,
        out_dim: int = 1,
    ) -> None:
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
        from torch_geometric.nn import GINEConv

        for name, value in (("hidden", hidden), ("layers", layers), ("out_dim", out_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        for name, value in (
            ("graph_poly", graph_poly),
            ("node_poly", node_poly),
            ("edge_poly", edge_poly),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
        if not isinstance(virtual_node, bool):
            raise TypeError(f"virtual_node: expected a bool, got {type(virtual_node).__name__}")
        self.graph_poly, self.node_poly, self.edge_poly = graph_poly, node_poly, edge_poly
        self.virtual_node = virtual_node
        self.atom_encoder = AtomEncoder(hidden)
        self.bond_encoder = BondEncoder(hidden)
        # The plain model keeps these layers too (width hidden -> hidden), so that models with
        # and without features differ only in the input widths, not in depth.
        self.node_in = nn.Linear(hidden + node_poly, hidden)
        self.edge_in = nn.Linear(hidden + edge_poly, hidden)
        self.convs = nn.ModuleList(
            GINEConv(
                nn.Sequential(
                    nn.Linear(hidden, hidden),
                    nn.BatchNorm1d(hidden),
                    nn.ReLU(),
                    nn.Linear(hidden, hidden),
                ),
                train_eps=True,
            )
            for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        if virtual_node:
            self.virtual_init = nn.Parameter(torch.zeros(hidden))
            self.virtual_mlps = nn.ModuleList(
                # Layer, not batch, normalisation: its rows are graphs, and a training batch
                # may hold a single graph.
                nn.Sequential(
                    nn.LayerNorm(hidden),
                    nn.Linear(hidden, hidden),
                    nn.ReLU(),
                    nn.Linear(hidden, hidden),
                    nn.ReLU(),
                )
                for _ in range(layers - 1)
            )
        self.head = nn.Sequential(
            nn.Linear(hidden + graph_poly, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
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
