"""One masked multi-head attention layer: :class:`GraphAttention`."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter, is_lazy
from torch_geometric.nn.dense.linear import Linear

from .._checks import check_allocation, check_bool, check_count, check_features, check_tensor
from .._torchscript import NoTorchScript
from .builtin_masks import adjacency
from .mask_index import MaskIndex
from .masks import Mask
from .ops import BACKENDS, graph_attention

__all__ = ["GraphAttention"]


class GraphAttention(NoTorchScript, nn.Module):
    r"""One masked multi-head attention layer: q/k/v projections, :func:`graph_attention`, an
    output projection,

    .. math::

        \mathrm{out} = W_o \, \mathrm{Attn}_{\mathcal{M}}(W_q x, W_k x, W_v x)

    with attention restricted to the pairs of the mask :math:`\mathcal{M}` (Garnier et al.
    2025, `arXiv:2508.18051 <https://arxiv.org/abs/2508.18051>`_).

    Args:
        channels: feature width ``C`` (in and out), divisible by ``heads``.
        heads: attention heads; each has ``C / heads`` channels.
        mask: a mask (default :func:`~gnnagg.attention.adjacency`). Its
            :func:`~gnnagg.attention.global_tokens` get learnable embeddings owned here.
        dropout: attention-weight dropout in training.
        backend: which implementation computes the attention (:func:`graph_attention`'s
            ``backend``, ``"auto"`` by default).
        bias: whether the projections have biases.
        in_channels: width of the input features when it differs from ``channels`` (the
            q/k/v projections and the token embeddings take it), or ``-1`` to learn it from
            the first forward as PyG's lazy modules do; default ``channels``.

    ``forward(x, edge_index, pos=None, batch=None, mask_index=None, generator=None)`` returns
    ``[N, C]``; :meth:`attend` works on rows already laid out as ``mask_index`` expects (nodes
    and tokens), as :class:`~gnnagg.models.GraphTransformer` does across layers.
    """

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        mask: Mask | None = None,
        *,
        dropout: float = 0.0,
        backend: str = "auto",
        bias: bool = True,
        in_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.channels = _check_positive(channels, "channels")
        if in_channels is None:
            in_channels = self.channels
        elif not (type(in_channels) is int and in_channels == -1):
            in_channels = _check_positive(in_channels, "in_channels")
        self.in_channels = in_channels
        self.heads = _check_positive(heads, "heads")
        if channels % heads:
            raise ValueError(f"channels={channels} must be divisible by heads={heads}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
            raise TypeError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        bias = check_bool(bias, "bias")
        if mask is None:
            mask = adjacency()
        if not isinstance(mask, Mask):
            raise TypeError(
                f"mask must be a Mask such as khop(2) | global_tokens(4), got "
                f"{type(mask).__name__}"
            )
        self.mask = mask
        self.dropout = float(dropout)
        self.backend = backend
        self.query = _linear(in_channels, channels, bias)
        self.key = _linear(in_channels, channels, bias)
        self.value = _linear(in_channels, channels, bias)
        self.out = nn.Linear(channels, channels, bias=bias)
        tokens = self.mask.tokens_per_graph
        check_allocation(tokens * max(in_channels, channels) * 4,
                         f"{self.mask!r}: {tokens} token embeddings", "cpu")
        if not tokens:
            self.tokens = None
        elif in_channels == -1:  # sized with the projections, at the first forward
            self.tokens = UninitializedParameter()
        else:
            self.tokens = nn.Parameter(torch.randn(tokens, in_channels) * 0.02)

    def attend(self, rows: Tensor, mask_index: MaskIndex) -> Tensor:
        """Attention over rows ``[R, in_channels]`` in ``mask_index``'s layout; returns
        ``[R, C]``."""
        rows = check_features(rows, "rows", self.in_channels, like=self.query.weight)
        shape = (rows.size(0), self.heads, self.channels // self.heads)
        q = self.query(rows).view(shape)
        k = self.key(rows).view(shape)
        v = self.value(rows).view(shape)
        # Under autocast the projections run in low precision; the attention op takes their
        # bfloat16/float16 q, k, v as they are and keeps its softmax statistics in float32.
        with torch.autocast(rows.device.type, enabled=False):
            out = graph_attention(q, k, v, mask_index, backend=self.backend,
                                  dropout=self.dropout if self.training else 0.0)
        return self.out(out.reshape(rows.size(0), self.channels))

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        mask_index: MaskIndex | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``[N, in_channels]`` node features to ``[N, C]``; the mask is built from
        ``edge_index``, ``pos`` and ``batch`` unless a built ``mask_index`` is given."""
        if self.in_channels == -1:
            x = check_tensor(x, "x")
            if x.dim() != 2:
                raise ValueError(f"x must be [num_nodes, in_channels], got shape {tuple(x.shape)}")
            self._initialize_channels(x.size(-1))
        x = check_features(x, "x", self.in_channels, like=self.query.weight)
        if mask_index is not None and not isinstance(mask_index, MaskIndex):
            raise TypeError(
                f"mask_index must be a MaskIndex (from mask.build), got {type(mask_index).__name__}"
            )
        if mask_index is None:
            if edge_index is None:
                raise ValueError("pass edge_index (to build the mask) or a built mask_index")
            mask_index = self.mask.build(edge_index, num_nodes=x.size(0), pos=pos, batch=batch,
                                         generator=generator)
        rows = mask_index.to_rows(x, self.tokens)
        return mask_index.to_nodes(self.attend(rows, mask_index))

    @torch.compiler.disable
    def _initialize_channels(self, in_channels: int) -> None:
        self.in_channels = int(in_channels)
        if self.tokens is not None and is_lazy(self.tokens):
            self.tokens.materialize((self.mask.tokens_per_graph, self.in_channels))
            with torch.no_grad():
                self.tokens.normal_(0.0, 0.02)

    def extra_repr(self) -> str:
        width = "" if self.in_channels == self.channels else f", in_channels={self.in_channels}"
        return (
            f"{self.channels}, heads={self.heads}, mask={self.mask!r}, "
            f"backend={self.backend!r}{width}"
        )


def _linear(in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    # PyG's Linear learns a lazy width (-1) at its first call; same state-dict keys.
    if in_channels == -1:
        return Linear(-1, out_channels, bias=bias)
    return nn.Linear(in_channels, out_channels, bias=bias)


def _check_positive(value: object, name: str) -> int:
    count = check_count(value, name)
    if count < 1:
        raise ValueError(f"{name} must be at least 1, got {count}")
    return count
