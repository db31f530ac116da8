"""The mesh graph transformer of Garnier et al. 2025: encode, masked-attention blocks, decode."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as recompute_in_backward

from .._checks import check_bool, check_features
from .._torchscript import NoTorchScript
from ..attention import GraphAttention, Mask, MaskIndex, adjacency
from .mlp import _check_parameters, _check_positive, mlp

__all__ = ["GraphTransformer"]


class GraphTransformer(NoTorchScript, nn.Module):
    r"""Mesh graph transformer: encoder MLP, ``num_layers`` pre-norm blocks, decoder MLP.

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
        hidden_channels: model width, divisible by ``heads``.
        out_channels: output width.
        heads: attention heads.
        num_layers: number of blocks.
        mask: a :class:`~gnnagg.attention.Mask` (default ``adjacency()``).
        dropout: attention-weight dropout in training.
        backend: which implementation computes the attention
            (:func:`~gnnagg.attention.graph_attention`'s ``backend``).
        mlp_expansion: hidden width of the gated MLP, in multiples of ``hidden_channels``.
        checkpoint: keep only each block's input for backward and recompute the block there
            (activation checkpointing, :func:`torch.utils.checkpoint.checkpoint` with
            ``use_reentrant=False``): the same values and gradients, attention dropout
            included (the random state is replayed), for one more forward pass per block.
            Training then holds one block's activations at a time instead of ``num_layers``.

    Mixed precision: the model runs under ``torch.autocast`` (``bfloat16`` on the CPU, ``float16``
    or ``bfloat16`` on CUDA). Its linear layers then compute in the low precision; the RMS norms,
    the residual stream and the parameters stay in float32, and the attention's softmax
    statistics are accumulated in float32 (:func:`~gnnagg.attention.graph_attention`).

    Garnier et al., "Training Transformers for Mesh-Based Simulations", 2025,
    `arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        *,
        heads: int = 8,
        num_layers: int = 6,
        mask: Mask | None = None,
        dropout: float = 0.0,
        backend: str = "auto",
        mlp_expansion: int = 3,
        checkpoint: bool = False,
    ) -> None:
        super().__init__()
        self.checkpoint = check_bool(checkpoint, "checkpoint")
        in_channels = _check_positive(in_channels, "in_channels")
        hidden_channels = _check_positive(hidden_channels, "hidden_channels")
        out_channels = _check_positive(out_channels, "out_channels")
        num_layers = _check_positive(num_layers, "num_layers")
        mlp_expansion = _check_positive(mlp_expansion, "mlp_expansion")
        h = hidden_channels
        _check_parameters(
            (in_channels + 2 * h + out_channels + 4) * h
            + num_layers * (4 + 3 * mlp_expansion) * h * h,
            f"hidden_channels={h}, num_layers={num_layers}, mlp_expansion={mlp_expansion}",
        )
        if mask is None:
            mask = adjacency()
        if not isinstance(mask, Mask):
            raise TypeError(
                f"mask must be a Mask such as khop(2) | global_tokens(4), got "
                f"{type(mask).__name__}"
            )
        self.mask = mask
        self.encoder = mlp([in_channels, hidden_channels, hidden_channels])
        self.blocks = nn.ModuleList(
            _TransformerBlock(hidden_channels, heads, mask, dropout, backend, mlp_expansion)
            for _ in range(num_layers)
        )
        self.norm = nn.RMSNorm(hidden_channels)
        self.decoder = mlp([hidden_channels, hidden_channels, out_channels])
        tokens = mask.tokens_per_graph
        self.tokens = nn.Parameter(torch.randn(tokens, hidden_channels) * 0.02) if tokens else None

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        mask_index: MaskIndex | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``[N, in_channels]`` node features to ``[N, out_channels]``.

        The mask is built from ``edge_index``/``pos``/``batch`` unless a built ``mask_index``
        is given (reuse it across steps on a fixed mesh); ``generator`` redraws random jumps.
        """
        x = check_features(x, "x", self.encoder[0].in_features, like=self.encoder[0].weight)
        if mask_index is not None and not isinstance(mask_index, MaskIndex):
            raise TypeError(
                f"mask_index must be a MaskIndex (from mask.build), got {type(mask_index).__name__}"
            )
        if mask_index is None:
            if edge_index is None:
                raise ValueError("pass edge_index (to build the mask) or a built mask_index")
            mask_index = self.mask.build(edge_index, num_nodes=x.size(0), pos=pos, batch=batch,
                                         generator=generator)
        # The residual stream stays in the parameters' dtype under autocast (the encoder's
        # linear layers return bfloat16/float16 there): sums of many small updates need it.
        rows = mask_index.to_rows(self.encoder(x).to(x.dtype), self.tokens)
        for block in self.blocks:
            if self.checkpoint and torch.is_grad_enabled():
                rows = recompute_in_backward(block, rows, mask_index, use_reentrant=False)
            else:
                rows = block(rows, mask_index)
        return self.decoder(self.norm(mask_index.to_nodes(rows)))


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
    def __init__(self, channels, heads, mask, dropout, backend, expansion) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(channels)
        self.attention = GraphAttention(channels, heads, mask, dropout=dropout, backend=backend)
        # The model owns the token embeddings; the layers see tokens only as rows.
        self.attention.tokens = None
        self.mlp_norm = nn.RMSNorm(channels)
        self.mlp = _GatedMLP(channels, expansion)

    def forward(self, rows: Tensor, mask_index: MaskIndex) -> Tensor:
        rows = rows + self.attention.attend(self.attention_norm(rows), mask_index)
        return rows + self.mlp(self.mlp_norm(rows))
