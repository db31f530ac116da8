"""MeshGraphNet (Pfaff et al. 2021): encode, message-passing processor, decode."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.nn.resolver import aggregation_resolver

from .._checks import check_edge_index, check_features, check_tensor
from .._torchscript import NoTorchScript
from .mlp import _check_parameters, _check_positive, mlp

__all__ = ["MeshGraphNet", "mesh_edge_features"]


def mesh_edge_features(edge_index: Tensor, pos: Tensor) -> Tensor:
    """MeshGraphNet's edge inputs: relative position ``pos[src] - pos[dst]`` and its length,
    ``[E, d + 1]``."""
    relative = pos[edge_index[0]] - pos[edge_index[1]]
    return torch.cat([relative, relative.norm(dim=-1, keepdim=True)], dim=-1)


class MeshGraphNet(NoTorchScript, nn.Module):
    r"""MeshGraphNet (Pfaff et al. 2021, `arXiv:2010.03409 <https://arxiv.org/abs/2010.03409>`_):
    encode, ``num_layers`` message-passing steps, decode.

    Node and edge encoders are MLPs (``mlp_layers`` hidden layers of width
    ``hidden_channels``, ReLU, LayerNorm on the output). Each processor step computes, for an
    edge from sender :math:`i` to receiver :math:`j`,

    .. math::

        e'_{ij} &= \mathrm{MLP}_e([x_i, x_j, e_{ij}]) \\
        x'_j &= \mathrm{MLP}_x\big([x_j, \textstyle\bigoplus_{i \to j} e'_{ij}]\big) \\
        x_j &\leftarrow x_j + x'_j, \qquad e_{ij} \leftarrow e_{ij} + e'_{ij}

    as DeepMind's reference implementation does: the node update aggregates the edge MLP's
    output :math:`e'`, and both residuals come after. :math:`\bigoplus` is ``aggr``, a sum by
    default. The decoder MLP has no LayerNorm.

    Args:
        in_channels: node feature width.
        hidden_channels: latent width (128 in the paper).
        out_channels: output width.
        edge_dim: edge feature width, e.g. ``d + 1`` for :func:`mesh_edge_features`.
        num_layers: processor steps (15 in the paper).
        mlp_layers: hidden layers per MLP (2 in the paper).
        aggr: how a node gathers its incoming edges: a PyG aggregation name (``"sum"``,
            ``"mean"``, ``"softmax"``, a list of names for ``MultiAggregation``...) resolved by
            PyG's ``aggregation_resolver``, or an ``Aggregation`` module (gnnagg's
            :class:`~gnnagg.aggr.LCMAggregation` and :class:`~gnnagg.aggr.GRUAggregation`
            included) taking ``hidden_channels`` inputs. Every step gets its own copy of it, so
            learnable aggregators never share parameters across steps.
        aggr_kwargs: keyword arguments for the resolver, with a name.

    ``forward(x, edge_index, edge_attr=None, pos=None)``: without ``edge_attr`` the edge inputs
    are :func:`mesh_edge_features` of ``pos``.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        edge_dim: int,
        num_layers: int = 15,
        mlp_layers: int = 2,
        aggr: str | list[str] | Aggregation = "sum",
        aggr_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        in_channels = _check_positive(in_channels, "in_channels")
        hidden = _check_positive(hidden_channels, "hidden_channels")
        out_channels = _check_positive(out_channels, "out_channels")
        self.edge_dim = _check_positive(edge_dim, "edge_dim")
        num_layers = _check_positive(num_layers, "num_layers")
        mlp_layers = _check_positive(mlp_layers, "mlp_layers")
        _check_parameters(
            (in_channels + edge_dim + out_channels + (3 * mlp_layers + 2) * hidden) * hidden
            + num_layers * (5 + 2 * mlp_layers) * hidden * hidden,
            f"hidden_channels={hidden}, num_layers={num_layers}, mlp_layers={mlp_layers}",
        )
        template, aggr_channels = _resolve_aggr(aggr, aggr_kwargs, hidden)
        self.node_encoder = mlp([in_channels] + [hidden] * (mlp_layers + 1), layer_norm=True)
        self.edge_encoder = mlp([edge_dim] + [hidden] * (mlp_layers + 1), layer_norm=True)
        self.processor = nn.ModuleList(
            _ProcessorStep(hidden, mlp_layers, copy.deepcopy(template), aggr_channels)
            for _ in range(num_layers)
        )
        self.decoder = mlp([hidden] * (mlp_layers + 1) + [out_channels])

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor | None = None,
        pos: Tensor | None = None,
    ) -> Tensor:
        """``[N, in_channels]`` node features to ``[N, out_channels]``."""
        weight = self.node_encoder[0].weight
        x = check_features(x, "x", self.node_encoder[0].in_features, like=weight)
        edge_index = check_edge_index(edge_index, "edge_index", x.size(0))
        if edge_index.device != x.device:
            raise ValueError(f"edge_index is on {edge_index.device} but x on {x.device}")
        if edge_attr is None:
            if pos is None:
                raise ValueError("pass edge_attr, or pos to compute mesh_edge_features")
            pos = check_tensor(pos, "pos")
            if pos.dim() != 2 or pos.shape != (x.size(0), self.edge_dim - 1):
                raise ValueError(
                    f"pos must be [num_nodes={x.size(0)}, edge_dim - 1={self.edge_dim - 1}] "
                    f"for mesh_edge_features, got {tuple(pos.shape)}"
                )
            if not pos.is_floating_point():
                raise TypeError(f"pos must be floating point, got {pos.dtype}")
            edge_attr = mesh_edge_features(edge_index, pos.to(x.device)).to(x.dtype)
        edge_attr = check_tensor(edge_attr, "edge_attr")
        if edge_attr.dim() != 2 or edge_attr.shape != (edge_index.size(1), self.edge_dim):
            raise ValueError(
                f"edge_attr must be [E={edge_index.size(1)}, edge_dim={self.edge_dim}], got "
                f"{tuple(edge_attr.shape)}"
            )
        edge_attr = check_features(edge_attr, "edge_attr", self.edge_dim, like=weight)
        h, e = self.node_encoder(x), self.edge_encoder(edge_attr)
        for step in self.processor:
            h, e = step(h, e, edge_index)
        return self.decoder(h)


class _ProcessorStep(nn.Module):
    def __init__(self, hidden: int, mlp_layers: int, aggr: Aggregation, aggr_channels: int):
        super().__init__()
        self.edge_mlp = mlp([3 * hidden] + [hidden] * mlp_layers + [hidden], layer_norm=True)
        self.aggr = aggr
        self.node_mlp = mlp(
            [hidden + aggr_channels] + [hidden] * mlp_layers + [hidden], layer_norm=True
        )

    def forward(self, x: Tensor, e: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        src, dst = edge_index
        message = self.edge_mlp(torch.cat([x[src], x[dst], e], dim=-1))
        incoming = self.aggr(message, dst, dim_size=x.size(0))
        x = x + self.node_mlp(torch.cat([x, incoming], dim=-1))
        return x, e + message


def _resolve_aggr(aggr: object, kwargs: dict[str, Any] | None, hidden: int):
    """The aggregation module ``aggr`` names (a template to copy per step) and its output
    width for ``hidden`` input channels."""
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError(f"aggr_kwargs must be a dict, got {type(kwargs).__name__}")
    if not isinstance(aggr, (str, list, tuple, Aggregation)):
        raise TypeError(
            f"aggr must be an aggregation name, a list of names or an Aggregation module, got "
            f"{type(aggr).__name__}"
        )
    if isinstance(aggr, Aggregation) and kwargs:
        raise ValueError("aggr_kwargs: only used with an aggregation name, not a module")
    try:
        module = aggregation_resolver(aggr, **(kwargs or {}))
    except ValueError as error:
        raise ValueError(f"aggr: {error}") from None
    in_channels = getattr(module, "in_channels", None)
    if isinstance(in_channels, int) and in_channels != hidden:
        raise ValueError(
            f"aggr takes {in_channels} input channels but the edge latents have "
            f"hidden_channels={hidden}"
        )
    if hasattr(module, "get_out_channels"):
        width = module.get_out_channels(hidden)
    else:
        width = getattr(module, "out_channels", hidden)
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"aggr: cannot tell its output width (got {width!r})")
    return module, width
