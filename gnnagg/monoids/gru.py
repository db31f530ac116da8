"""The LCM paper's operator: x ⊕ y = ½(GRUCell(x, y) + GRUCell(y, x)).

Commutative by construction (IEEE addition is commutative, so exactly, not just up to rounding);
associative only approximately, which the associativity regulariser encourages. The identity
element is a learned vector: it is what a node with no neighbours receives.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..segment.backends import get_backend
from .base import Monoid
from .gru_kernel import GRUPairKernel, gru_cell_parameters, symmetric_gru

__all__ = ["GRUMonoid"]


class GRUMonoid(Monoid):
    """Symmetrised GRU cell as a binary operator on ``channels``-wide features."""

    exact = False

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.cell = nn.GRUCell(channels, channels)
        self.identity_element = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self) -> None:
        self.cell.reset_parameters()
        nn.init.zeros_(self.identity_element)

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        return symmetric_gru(a, b, self.cell)

    def pair_kernel(self) -> tuple[GRUPairKernel, tuple[Tensor, ...]]:
        """The torch kernel, or with the ``triton`` segment backend selected, the Triton one
        (float32/float16/bfloat16 on CUDA, or anywhere under ``TRITON_INTERPRET=1``)."""
        params = gru_cell_parameters(self.cell)
        backend = get_backend()
        if backend.name == "triton" and backend.supports(params[0]):
            if params[0].dtype in (torch.float32, torch.float16, torch.bfloat16):
                from .gru_triton import TritonGRUPairKernel

                return TritonGRUPairKernel(), params
        return GRUPairKernel(), params

    def identity(self, like: Tensor, num: int) -> Tensor:
        element = self.identity_element.to(like.dtype)
        return element.expand(num, *like.shape[1:])
