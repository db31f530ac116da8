"""The LCM paper's operator: x ⊕ y = ½(GRUCell(x, y) + GRUCell(y, x)).

Commutative by construction (IEEE addition is commutative, so exactly, not just up to rounding);
associative only approximately, which the associativity regulariser encourages. The identity
element is a learned vector: it is what a node with no neighbours receives.

Two options change how it trains, not what it is: ``init="average"`` starts every combination
close to the mean of its operands (whose balanced tree is the multiset's mean at any depth),
and ``layer_norm=True`` normalises every combination's result, so states have one scale at
every level of the tree.
"""

from __future__ import annotations

import importlib.util
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_allocation, check_bool, check_choice, check_count
from ..segment.backends import get_backend
from .base import Monoid
from .gru_kernel import (
    LAYER_NORM_EPS,
    GRUPairKernel,
    LayerNormPairKernel,
    gru_cell_parameters,
    symmetric_gru,
)

__all__ = ["GRUMonoid"]

#: The values of :class:`GRUMonoid`'s ``backend=``.
_BACKENDS = ("auto", "torch", "triton")

#: The values of :class:`GRUMonoid`'s ``init=``.
INITS = ("torch", "average")

#: ``init="average"``: the update gate's biases (input and hidden side) start here, so that at
#: zero input z = sigmoid(2) ~ 0.88 and each ordering keeps most of its hidden operand.
AVERAGE_UPDATE_BIAS = 1.0

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
        init: ``"torch"`` (default): ``nn.GRUCell``'s uniform initialisation. ``"average"``:
            the same, then the update gate's biases set to :data:`AVERAGE_UPDATE_BIAS`, so
            each combination starts near ``½(a + b)``.
        layer_norm: apply layer normalisation (no learned scale or shift) over the channels
            to every combination's result, ``LN(½(GRUCell(a, b) + GRUCell(b, a)))``; still
            exactly commutative. The tree's kernels normalise in their forward and backward
            (:class:`~gnnagg.monoids.gru_kernel.LayerNormPairKernel`), so it stays one
            autograd node.
    """

    exact = False

    def __init__(
        self, channels: int, backend: str = "auto", init: str = "torch", layer_norm: bool = False
    ) -> None:
        super().__init__(channels)
        backend = check_choice(backend, "backend", _BACKENDS)
        if backend == "triton" and importlib.util.find_spec("triton") is None:
            raise ValueError("backend='triton' needs triton (pip install 'gnnagg[triton]')")
        self.backend = backend
        self.init = check_choice(init, "init", INITS)
        self.layer_norm = check_bool(layer_norm, "layer_norm")
        check_allocation((6 * self.channels + 7) * self.channels * 4,
                         f"channels={self.channels}: the GRU cell's parameters", "cpu")
        self.cell = nn.GRUCell(self.channels, self.channels)
        self.identity_element = nn.Parameter(torch.zeros(self.channels))
        self._init_update_gate()

    def reset_parameters(self) -> None:
        self.cell.reset_parameters()
        self._init_update_gate()
        nn.init.zeros_(self.identity_element)

    def _init_update_gate(self) -> None:
        if self.init != "average" or not self.cell.bias:
            return
        update_gate = slice(self.channels, 2 * self.channels)  # gate order r, z, n
        with torch.no_grad():
            self.cell.bias_ih[update_gate] = AVERAGE_UPDATE_BIAS
            self.cell.bias_hh[update_gate] = AVERAGE_UPDATE_BIAS

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        self._check_operands(a, b)
        out = symmetric_gru(a, b, self.cell)
        if self.layer_norm:
            return F.layer_norm(out, out.shape[-1:], eps=LAYER_NORM_EPS)
        return out

    def pair_kernel(self) -> tuple[GRUPairKernel | LayerNormPairKernel, tuple[Tensor, ...]]:
        """The tree kernel ``backend`` selects, with the cell's parameters (wrapped in a
        :class:`~gnnagg.monoids.gru_kernel.LayerNormPairKernel` with ``layer_norm``)."""
        params = gru_cell_parameters(self.cell)
        kernel = GRUPairKernel()
        if self._runs_triton(params[0]):
            from .gru_triton import TritonGRUPairKernel

            kernel = TritonGRUPairKernel()
        return (LayerNormPairKernel(kernel) if self.layer_norm else kernel), params

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
        extra = f"{super().extra_repr()}, backend={self.backend!r}"
        if self.init != "torch":
            extra += f", init={self.init!r}"
        return extra + (", layer_norm=True" if self.layer_norm else "")

    def identity(self, like: Tensor, num: int) -> Tensor:
        num = check_count(num, "num")
        element = self.identity_element.to(like.dtype)
        return element.expand(num, *like.shape[1:])
