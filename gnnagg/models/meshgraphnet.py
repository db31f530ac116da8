"""MeshGraphNet (Pfaff et al. 2021): encode, message-passing processor, decode."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..segment import segment
from .mlp import _check_positive, mlp

__all__ = ["MeshGraphNet", "mesh_edge_features"]


def mesh_edge_features(edge_index: Tensor, pos: Tensor) -> Tensor:
    """MeshGraphNet's edge inputs: relative position ``pos[src] - pos[dst]`` and its length,
    ``[E, d + 1]``."""
    relative = pos[edge_index[0]] - pos[edge_index[1]]
    return torch.cat([relative, relative.norm(dim=-1, keepdim=True)], dim=-1)


class MeshGraphNet(nn.Module):
    r"""MeshGraphNet (Pfaff et al. 2021, `arXiv:2010.03409 <https://arxiv.org/abs/2010.03409>`_):
    encode, ``num_layers`` message-passing steps, decode.

    Node and edge encoders are MLPs (``mlp_layers`` hidden layers of width
    ``hidden_channels``, ReLU, LayerNorm on the output). Each processor step updates, with
    residuals,

    .. math::

        e_{ij} &\leftarrow e_{ij} + \mathrm{MLP}_e([x_i, x_j, e_{ij}]) \\
        x_j &\leftarrow x_j + \mathrm{MLP}_x\big([x_j, \textstyle\sum_{i \to j} e_{ij}]\big)

    (sender ``i``, receiver ``j``; the sum through :func:`gnnagg.segment.segment`). The decoder
    MLP has no LayerNorm.

    Args:
        in_channels: node feature width.
        hidden_channels: latent width (128 in the paper).
        out_channels: output width.
        edge_dim: edge feature width, e.g. ``d + 1`` for :func:`mesh_edge_features`.
        num_layers: processor steps (15 in the paper).
        mlp_layers: hidden layers per MLP (2 in the paper).

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
    ) -> None:
        super().__init__()
        in_channels = _check_positive(in_channels, "in_channels")
        hidden = _check_positive(hidden_channels, "hidden_channels")
        out_channels = _check_positive(out_channels, "out_channels")
        self.edge_dim = _check_positive(edge_dim, "edge_dim")
        num_layers = _check_positive(num_layers, "num_layers")
        mlp_layers = _check_positive(mlp_layers, "mlp_layers")
        self.node_encoder = mlp([in_channels] + [hidden] * (mlp_layers + 1), layer_norm=True)
        self.edge_encoder = mlp([edge_dim] + [hidden] * (mlp_layers + 1), layer_norm=True)
        self.processor = nn.ModuleList(
            _ProcessorStep(hidden, mlp_layers)
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
        if edge_attr is None:
            if pos is None:
                raise ValueError("pass edge_attr, or pos to compute mesh_edge_features")
            edge_attr = mesh_edge_features(edge_index, pos).to(x.dtype)
        if edge_attr.dim() != 2 or edge_attr.shape != (edge_index.size(1), self.edge_dim):
            raise ValueError(
                f"edge_attr must be [E={edge_index.size(1)}, edge_dim={self.edge_dim}], got "
                f"{tuple(edge_attr.shape)}"
            )
        h, e = self.node_encoder(x), self.edge_encoder(edge_attr)
        for step in self.processor:
            h, e = step(h, e, edge_index)
        return self.decoder(h)


class _ProcessorStep(nn.Module):
    def __init__(self, hidden: int, mlp_layers: int) -> None:
        super().__init__()
        self.edge_mlp = mlp([3 * hidden] + [hidden] * mlp_layers + [hidden], layer_norm=True)
        self.node_mlp = mlp([2 * hidden] + [hidden] * mlp_layers + [hidden], layer_norm=True)

    def forward(self, x: Tensor, e: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        src, dst = edge_index
        e = e + self.edge_mlp(torch.cat([x[src], x[dst], e], dim=-1))
        incoming = segment(e, index=dst, dim_size=x.size(0), reduce="sum")
        x = x + self.node_mlp(torch.cat([x, incoming], dim=-1))
        return x, e
