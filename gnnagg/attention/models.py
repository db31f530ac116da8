"""Models: one masked attention layer, the mesh graph transformer, and MeshGraphNet.

* :class:`GraphAttention` -- q/k/v/output projections around :func:`graph_attention`; owns the
  embeddings of its mask's global tokens.
* :class:`GraphTransformer` -- encode, process (pre-norm attention and gated-MLP blocks), decode,
  after Garnier et al. 2025 (`arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_).
* :class:`MeshGraphNet` -- the message-passing baseline of Pfaff et al. 2021, "Learning
  Mesh-Based Simulation with Graph Networks" (`arXiv:2010.03409
  <https://arxiv.org/abs/2010.03409>`_).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_count
from ..segment import segment
from .graph_mask import GraphMask
from .masks import Mask, adjacency
from .ops import PATHS, graph_attention

__all__ = ["GraphAttention", "GraphTransformer", "MeshGraphNet", "mesh_edge_features"]


def _check_positive(value: object, name: str) -> int:
    count = check_count(value, name)
    if count < 1:
        raise ValueError(f"{name} must be at least 1, got {count}")
    return count


def _check_mask_arg(mask: object) -> Mask:
    if mask is None:
        return adjacency()
    if not isinstance(mask, Mask):
        raise TypeError(
            f"mask must be a mask expression such as khop(2) | global_tokens(4), got "
            f"{type(mask).__name__}"
        )
    return mask


def _rows_from_nodes(x: Tensor, gmask: GraphMask, tokens: Tensor | None) -> Tensor:
    """Node features ``[N, C]`` into the mask's row layout, token rows from ``tokens [T, C]``."""
    if x.size(0) != gmask.num_nodes:
        raise ValueError(f"x has {x.size(0)} rows but the mask was built for {gmask.num_nodes}")
    if gmask.tokens_per_graph == 0:
        if gmask.num_rows == x.size(0) and "identity_rows" not in gmask._cache:
            gmask._cache["identity_rows"] = bool(
                torch.equal(gmask.node_rows, torch.arange(x.size(0), device=x.device))
            )
        if gmask._cache.get("identity_rows"):
            return x
    rows = x.new_zeros(gmask.num_rows, x.size(1))
    rows = rows.index_copy(0, gmask.node_rows, x)
    if gmask.tokens_per_graph:
        if tokens is None or tokens.size(0) < gmask.tokens_per_graph:
            raise ValueError(
                f"the mask has {gmask.tokens_per_graph} global tokens per graph but the layer "
                f"owns {0 if tokens is None else tokens.size(0)} token embeddings"
            )
        token_values = tokens[: gmask.tokens_per_graph].to(x.dtype)
        token_values = token_values.unsqueeze(0).expand(gmask.num_graphs, -1, -1)
        rows = rows.index_copy(0, gmask.token_rows.reshape(-1),
                               token_values.reshape(-1, x.size(1)))
    return rows


def _nodes_from_rows(rows: Tensor, gmask: GraphMask) -> Tensor:
    if gmask._cache.get("identity_rows") and gmask.tokens_per_graph == 0:
        return rows
    return rows.index_select(0, gmask.node_rows)


class GraphAttention(nn.Module):
    r"""One masked multi-head attention layer: q/k/v projections, :func:`graph_attention`, an
    output projection.

    Args:
        channels: feature width ``C`` (in and out), divisible by ``heads``.
        heads: attention heads; each has ``C / heads`` channels.
        mask: a mask expression (default :func:`~gnnagg.attention.adjacency`). Its
            :func:`~gnnagg.attention.global_tokens` get learnable embeddings owned here.
        dropout: attention-weight dropout in training.
        path: ``graph_attention``'s path (``"auto"`` by default).
        bias: whether the projections have biases.

    ``forward(x, edge_index, pos=None, batch=None, gmask=None, generator=None)`` returns
    ``[N, C]``; :meth:`attend` works on rows already laid out as ``gmask`` expects (nodes and
    tokens), as :class:`GraphTransformer` does across layers.
    """

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        mask: Mask | None = None,
        *,
        dropout: float = 0.0,
        path: str = "auto",
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.channels = _check_positive(channels, "channels")
        self.heads = _check_positive(heads, "heads")
        if channels % heads:
            raise ValueError(f"channels={channels} must be divisible by heads={heads}")
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.mask = _check_mask_arg(mask)
        self.dropout = float(dropout)
        self.path = path
        self.query = nn.Linear(channels, channels, bias=bias)
        self.key = nn.Linear(channels, channels, bias=bias)
        self.value = nn.Linear(channels, channels, bias=bias)
        self.out = nn.Linear(channels, channels, bias=bias)
        tokens = self.mask.tokens_per_graph
        self.tokens = nn.Parameter(torch.randn(tokens, channels) * 0.02) if tokens else None

    def attend(self, rows: Tensor, gmask: GraphMask) -> Tensor:
        """Attention over rows ``[R, C]`` in ``gmask``'s layout; returns ``[R, C]``."""
        shape = (rows.size(0), self.heads, self.channels // self.heads)
        q = self.query(rows).view(shape)
        k = self.key(rows).view(shape)
        v = self.value(rows).view(shape)
        out = graph_attention(q, k, v, gmask, dropout=self.dropout if self.training else 0.0,
                              path=self.path)
        return self.out(out.reshape(rows.size(0), self.channels))

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        gmask: GraphMask | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if gmask is None:
            if edge_index is None:
                raise ValueError("pass edge_index (to build the mask) or a built gmask")
            gmask = self.mask.build(edge_index, num_nodes=x.size(0), pos=pos, batch=batch,
                                    generator=generator)
        rows = _rows_from_nodes(x, gmask, self.tokens)
        return _nodes_from_rows(self.attend(rows, gmask), gmask)

    def extra_repr(self) -> str:
        return f"{self.channels}, heads={self.heads}, mask={self.mask!r}, path={self.path!r}"


class _GatedMLP(nn.Module):
    """``W_3 (GELU(W_1 x) * W_2 x)``, the transformer block's feed-forward."""

    def __init__(self, channels: int, expansion: int) -> None:
        super().__init__()
        self.gate = nn.Linear(channels, expansion * channels)
        self.up = nn.Linear(channels, expansion * channels)
        self.down = nn.Linear(expansion * channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(nn.functional.gelu(self.gate(x)) * self.up(x))


class _TransformerBlock(nn.Module):
    def __init__(self, channels, heads, mask, dropout, path, expansion) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(channels)
        self.attention = GraphAttention(channels, heads, mask, dropout=dropout, path=path)
        # The model owns the token embeddings; the layers see tokens only as rows.
        self.attention.tokens = None
        self.mlp_norm = nn.RMSNorm(channels)
        self.mlp = _GatedMLP(channels, expansion)

    def forward(self, rows: Tensor, gmask: GraphMask) -> Tensor:
        rows = rows + self.attention.attend(self.attention_norm(rows), gmask)
        return rows + self.mlp(self.mlp_norm(rows))


def _mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU,
         layer_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    if layer_norm:
        layers.append(nn.LayerNorm(sizes[-1]))
    return nn.Sequential(*layers)


class GraphTransformer(nn.Module):
    r"""Mesh graph transformer: encoder MLP, ``layers`` pre-norm blocks, decoder MLP.

    Each block is

    .. math::

        h &\leftarrow h + \mathrm{Attn}_{\mathcal{M}}(\mathrm{RMSNorm}(h)) \\
        h &\leftarrow h + W_3\big(\mathrm{GELU}(W_1 \mathrm{RMSNorm}(h)) \odot
            W_2 \mathrm{RMSNorm}(h)\big)

    with attention restricted to the mask :math:`\mathcal{M}` (built once per forward and shared
    by all blocks). Global tokens, if the mask has them, start from learnable embeddings owned by
    the model and are carried through every block; the decoder reads the node rows only.
    Positional information enters through the node features (coordinates, or Laplacian
    eigenvectors from ``torch_geometric.transforms.AddLaplacianEigenvectorPE``).

    Args:
        in_channels: node feature width.
        hidden: model width, divisible by ``heads``.
        out_channels: output width (keyword).
        heads: attention heads.
        layers: number of blocks.
        mask: mask expression (default ``adjacency()``).
        dropout: attention-weight dropout in training.
        path: ``graph_attention`` path.
        mlp_expansion: hidden width of the gated MLP, in multiples of ``hidden``.

    Garnier et al., "Training Transformers for Mesh-Based Simulations", 2025,
    `arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int = 128,
        *,
        out_channels: int,
        heads: int = 8,
        layers: int = 6,
        mask: Mask | None = None,
        dropout: float = 0.0,
        path: str = "auto",
        mlp_expansion: int = 3,
    ) -> None:
        super().__init__()
        in_channels = _check_positive(in_channels, "in_channels")
        hidden = _check_positive(hidden, "hidden")
        out_channels = _check_positive(out_channels, "out_channels")
        layers = _check_positive(layers, "layers")
        mlp_expansion = _check_positive(mlp_expansion, "mlp_expansion")
        self.mask = _check_mask_arg(mask)
        self.encoder = _mlp([in_channels, hidden, hidden])
        self.blocks = nn.ModuleList(
            _TransformerBlock(hidden, heads, self.mask, dropout, path, mlp_expansion)
            for _ in range(layers)
        )
        self.norm = nn.RMSNorm(hidden)
        self.decoder = _mlp([hidden, hidden, out_channels])
        tokens = self.mask.tokens_per_graph
        self.tokens = nn.Parameter(torch.randn(tokens, hidden) * 0.02) if tokens else None

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        gmask: GraphMask | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``[N, in_channels]`` node features to ``[N, out_channels]``.

        The mask is built from ``edge_index``/``pos``/``batch`` unless a built ``gmask`` is
        given (reuse it across steps on a fixed mesh); ``generator`` redraws random jumps.
        """
        if gmask is None:
            if edge_index is None:
                raise ValueError("pass edge_index (to build the mask) or a built gmask")
            gmask = self.mask.build(edge_index, num_nodes=x.size(0), pos=pos, batch=batch,
                                    generator=generator)
        rows = _rows_from_nodes(self.encoder(x), gmask, self.tokens)
        for block in self.blocks:
            rows = block(rows, gmask)
        return self.decoder(self.norm(_nodes_from_rows(rows, gmask)))


def mesh_edge_features(edge_index: Tensor, pos: Tensor) -> Tensor:
    """MeshGraphNet's edge inputs: relative position ``pos[src] - pos[dst]`` and its length,
    ``[E, d + 1]``."""
    relative = pos[edge_index[0]] - pos[edge_index[1]]
    return torch.cat([relative, relative.norm(dim=-1, keepdim=True)], dim=-1)


class _ProcessorStep(nn.Module):
    def __init__(self, hidden: int, mlp_layers: int) -> None:
        super().__init__()
        self.edge_mlp = _mlp([3 * hidden] + [hidden] * mlp_layers + [hidden], layer_norm=True)
        self.node_mlp = _mlp([2 * hidden] + [hidden] * mlp_layers + [hidden], layer_norm=True)

    def forward(self, x: Tensor, e: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        src, dst = edge_index
        e = e + self.edge_mlp(torch.cat([x[src], x[dst], e], dim=-1))
        incoming = segment(e, index=dst, dim_size=x.size(0), reduce="sum")
        x = x + self.node_mlp(torch.cat([x, incoming], dim=-1))
        return x, e


class MeshGraphNet(nn.Module):
    r"""MeshGraphNet (Pfaff et al. 2021, `arXiv:2010.03409 <https://arxiv.org/abs/2010.03409>`_):
    encode, ``steps`` message-passing steps, decode.

    Node and edge encoders are MLPs (``mlp_layers`` hidden layers of width ``hidden``, ReLU,
    LayerNorm on the output). Each processor step updates, with residuals,

    .. math::

        e_{ij} &\leftarrow e_{ij} + \mathrm{MLP}_e([x_i, x_j, e_{ij}]) \\
        x_j &\leftarrow x_j + \mathrm{MLP}_x\big([x_j, \textstyle\sum_{i \to j} e_{ij}]\big)

    (sender ``i``, receiver ``j``; the sum through :func:`gnnagg.segment.segment`). The decoder
    MLP has no LayerNorm.

    Args:
        in_channels: node feature width.
        edge_channels: edge feature width, e.g. ``d + 1`` for :func:`mesh_edge_features`.
        hidden: latent width (128 in the paper).
        out_channels: output width (keyword).
        steps: processor steps (15 in the paper).
        mlp_layers: hidden layers per MLP (2 in the paper).

    ``forward(x, edge_index, edge_attr=None, pos=None)``: without ``edge_attr`` the edge inputs
    are :func:`mesh_edge_features` of ``pos``.
    """

    def __init__(
        self,
        in_channels: int,
        edge_channels: int,
        hidden: int = 128,
        *,
        out_channels: int,
        steps: int = 15,
        mlp_layers: int = 2,
    ) -> None:
        super().__init__()
        in_channels = _check_positive(in_channels, "in_channels")
        self.edge_channels = _check_positive(edge_channels, "edge_channels")
        hidden = _check_positive(hidden, "hidden")
        out_channels = _check_positive(out_channels, "out_channels")
        steps = _check_positive(steps, "steps")
        mlp_layers = _check_positive(mlp_layers, "mlp_layers")
        self.node_encoder = _mlp([in_channels] + [hidden] * (mlp_layers + 1), layer_norm=True)
        self.edge_encoder = _mlp([edge_channels] + [hidden] * (mlp_layers + 1), layer_norm=True)
        self.steps = nn.ModuleList(_ProcessorStep(hidden, mlp_layers) for _ in range(steps))
        self.decoder = _mlp([hidden] * (mlp_layers + 1) + [out_channels])

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor | None = None,
        pos: Tensor | None = None,
    ) -> Tensor:
        if edge_attr is None:
            if pos is None:
                raise ValueError("pass edge_attr, or pos to compute mesh_edge_features")
            edge_attr = mesh_edge_features(edge_index, pos).to(x.dtype)
        if edge_attr.dim() != 2 or edge_attr.shape != (edge_index.size(1), self.edge_channels):
            raise ValueError(
                f"edge_attr must be [E={edge_index.size(1)}, edge_channels={self.edge_channels}]"
                f", got {tuple(edge_attr.shape)}"
            )
        h, e = self.node_encoder(x), self.edge_encoder(edge_attr)
        for step in self.steps:
            h, e = step(h, e, edge_index)
        return self.decoder(h)
