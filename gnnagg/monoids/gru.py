"""The LCM paper's operator: x ⊕ y = ½(GRUCell(x, y) + GRUCell(y, x)).

Commutative by construction (IEEE addition is commutative, so exactly, not just up to rounding);
associative only approximately, which the associativity regulariser encourages. The identity
element is a learned vector: it is what a node with no neighbours receives.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor, nn

from .._checks import check_allocation, check_choice, check_count
from ..segment.backends import get_backend
from .base import Monoid
from .gru_kernel import GRUPairKernel, gru_cell_parameters, symmetric_gru

__all__ = ["GRUMonoid"]

#: The values of :class:`GRUMonoid`'s ``backend=``.
_BACKENDS = ("auto", "torch", "triton")

#: Dtypes the Triton kernel takes (it computes the gates in float32).
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _triton_can_run_on(tensor: Tensor) -> bool:
    # Triton compiles for CUDA devices; its interpreter (TRITON_INTERPRET=1) runs the same
    # kernels on CPU tensors, which is how the tests compare the two kernels without a GPU.
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    return tensor.is_cuda or (interpreting and tensor.device.type == "cpu")


class GRUMonoid(Monoid):
    """Symmetrised GRU cell as a binary operator on ``channels``-wide features.

    Args:
        channels: size of the features and states.
        backend: which kernels compute the tree's levels. ``"torch"``: hand-derived forward
            and backward in torch ops (:class:`~gnnagg.monoids.gru_kernel.GRUPairKernel`), on
            any device and dtype. ``"triton"``: the gate arithmetic in Triton kernels
            (float32/float16/bfloat16 parameters on a CUDA device, or on the CPU under
            ``TRITON_INTERPRET=1``; anything else is an error at the forward). ``"auto"``
            (default): the torch kernels, except inside
            ``gnnagg.segment.use_backend("triton")``, where the Triton ones run wherever they
            can (so one switch moves every kernel of a model to Triton).
    """

    exact = False

    def __init__(self, channels: int, backend: str = "auto") -> None:
        super().__init__(channels)
        backend = check_choice(backend, "backend", _BACKENDS)
        if backend == "triton" and importlib.util.find_spec("triton") is None:
            raise ValueError("backend='triton' needs triton (pip install 'gnnagg[triton]')")
        self.backend = backend
        check_allocation((6 * self.channels + 7) * self.channels * 4,
                         f"channels={self.channels}: the GRU cell's parameters", "cpu")
        self.cell = nn.GRUCell(self.channels, self.channels)
        self.identity_element = nn.Parameter(torch.zeros(self.channels))

    def reset_parameters(self) -> None:
        self.cell.reset_parameters()
        nn.init.zeros_(self.identity_element)

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        self._check_operands(a, b)
        return symmetric_gru(a, b, self.cell)

    def pair_kernel(self) -> tuple[GRUPairKernel, tuple[Tensor, ...]]:
        """The tree kernel ``backend`` selects, with the cell's parameters."""
        params = gru_cell_parameters(self.cell)
        if self._runs_triton(params[0]):
            from .gru_triton import TritonGRUPairKernel

            return TritonGRUPairKernel(), params
        return GRUPairKernel(), params

    def _runs_triton(self, weight: Tensor) -> bool:
        if self.backend == "torch":
            return False
        if self.backend == "auto":
            return (
                get_backend().uses_triton
                and weight.dtype in TRITON_DTYPES
                and _triton_can_run_on(weight)
            )
        if not _triton_can_run_on(weight):
            raise ValueError(
                f"backend='triton' needs the monoid on a CUDA device, got {weight.device} (set "
                "TRITON_INTERPRET=1 to run the kernels on Triton's CPU interpreter, or use "
                "backend='torch')"
            )
        if weight.dtype not in TRITON_DTYPES:
            raise TypeError(
                f"backend='triton' computes in float32, float16 or bfloat16, but the monoid's "
                f"parameters are {weight.dtype}; convert it or use backend='torch'"
            )
        return True

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend!r}"

    def identity(self, like: Tensor, num: int) -> Tensor:
        num = check_count(num, "num")
        element = self.identity_element.to(like.dtype)
        return element.expand(num, *like.shape[1:])
