"""Hand-derived forward and backward of the symmetrised GRU cell ½(GRU(a, b) + GRU(b, a)).

Autograd through two ``nn.GRUCell`` calls records about twenty nodes per tree level; their
bookkeeping, not the arithmetic, dominates small and medium reductions (and on a GPU it is what
the launch-bound tree waits for). Here both orderings share one projection per operand: operand
``x`` is multiplied once by ``[W_ih; W_hh]``, giving the input gates it contributes to one
ordering and the hidden gates it contributes to the other, and the backward produces the
gradient of each operand's projection in one buffer, so each operand costs one GEMM forward and
two backward (input and weight gradient), whatever the tree level.

Commutativity stays exact: each operand is projected by its own GEMM of the same shape, and the
two orderings are summed with IEEE addition, so swapping ``a`` and ``b`` swaps bit-identical
terms.

:func:`symmetric_gru_reference` is the same operator written with ``nn.GRUCell``; the tests
compare the two.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "GRUPairKernel",
    "gru_cell_parameters",
    "symmetric_gru",
    "symmetric_gru_reference",
]


def symmetric_gru_reference(cell: nn.GRUCell, a: Tensor, b: Tensor) -> Tensor:
    """½(GRUCell(a, b) + GRUCell(b, a)) through ``nn.GRUCell`` (the plain torch reference)."""
    return 0.5 * (cell(a, b) + cell(b, a))


class GRUPairKernel:
    """Forward and backward of the symmetrised GRU cell on 2-D operands ``[m, C]``.

    Parameters are packed once per reduction (:meth:`pack`): ``weight = [W_ih; W_hh]``
    (``[6C, C]``) and ``bias = [b_ih; b_hh]`` (``[6C]``), gate order r, z, n as in
    ``nn.GRUCell``. Ordering ``k`` takes operand ``k`` as the hidden state and the other operand
    as the input. What the backward needs besides the operands is ``saved`` ``[m, 8C]``: r, z,
    n and W_hn·h + b_hn of ordering 0, then of ordering 1.
    """

    def saved_width(self, channels: int) -> int:
        return 8 * channels

    def reference(
        self,
        a: Tensor,
        b: Tensor,
        weight_ih: Tensor,
        weight_hh: Tensor,
        bias_ih: Tensor,
        bias_hh: Tensor,
    ) -> Tensor:
        """The operator in differentiable torch ops on ``[..., C]`` operands (used for second
        derivatives)."""
        params = weight_ih, weight_hh, bias_ih, bias_hh
        a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        out = torch.gru_cell(a2, b2, *params) + torch.gru_cell(b2, a2, *params)
        return (0.5 * out).view(a.shape)

    def pack(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor, bias_hh: Tensor):
        return torch.cat([weight_ih, weight_hh]), torch.cat([bias_ih, bias_hh])

    def unpack_grads(self, packed_grads) -> tuple[Tensor, ...]:
        grad_weight, grad_bias = packed_grads
        return (*grad_weight.chunk(2), *grad_bias.chunk(2))

    def forward(self, a: Tensor, b: Tensor, packed, saved: Tensor) -> Tensor:
        """``a ⊕ b``, writing what the backward needs into ``saved``."""
        weight, bias = packed
        c = a.shape[1]
        # projections[x] = [input gates from x | hidden gates from x]
        projections = (torch.addmm(bias, a, weight.t()), torch.addmm(bias, b, weight.t()))
        halves = []
        for k, hidden in enumerate((a, b)):
            gates = saved[:, 4 * k * c : 4 * (k + 1) * c]
            rz, n, hidden_n = gates[:, : 2 * c], gates[:, 2 * c : 3 * c], gates[:, 3 * c :]
            into_input, into_hidden = projections[1 - k][:, : 3 * c], projections[k][:, 3 * c :]
            torch.add(into_input[:, : 2 * c], into_hidden[:, : 2 * c], out=rz).sigmoid_()
            hidden_n.copy_(into_hidden[:, 2 * c :])
            torch.addcmul(into_input[:, 2 * c :], rz[:, :c], hidden_n, out=n).tanh_()
            halves.append(torch.lerp(n, hidden, rz[:, c:]))
        return halves[0].add_(halves[1]).mul_(0.5)

    def backward(
        self,
        grad: Tensor,
        a: Tensor,
        b: Tensor,
        saved: Tensor,
        packed,
        packed_grads,
        grad_a: Tensor,
        grad_b: Tensor,
    ) -> None:
        """Write the gradients of ``a`` and ``b`` into ``grad_a`` and ``grad_b``; accumulate
        those of the packed weight and bias into ``packed_grads``."""
        weight, _ = packed
        grad_weight, grad_bias = packed_grads
        c = a.shape[1]
        half = grad * 0.5
        # projection_grads[x]: gradient of operand x's projection [input part | hidden part].
        projection_grads = a.new_empty((2, a.shape[0], 6 * c))
        direct = a.new_empty((2, a.shape[0], c))
        grad_rz = a.new_empty((a.shape[0], 2 * c))
        for k, hidden in enumerate((a, b)):
            gates = saved[:, 4 * k * c : 4 * (k + 1) * c]
            rz, n, hidden_n = gates[:, : 2 * c], gates[:, 2 * c : 3 * c], gates[:, 3 * c :]
            into_input = projection_grads[1 - k, :, : 3 * c]
            into_hidden = projection_grads[k, :, 3 * c :]
            torch.mul(half, rz[:, c:], out=direct[k])
            grad_pre_n = into_input[:, 2 * c :]
            torch.sub(half, direct[k], out=grad_pre_n)
            torch.ops.aten.tanh_backward.grad_input(grad_pre_n, n, grad_input=grad_pre_n)
            torch.mul(grad_pre_n, hidden_n, out=grad_rz[:, :c])
            torch.sub(hidden, n, out=grad_rz[:, c:]).mul_(half)
            torch.ops.aten.sigmoid_backward.grad_input(
                grad_rz, rz, grad_input=into_input[:, : 2 * c]
            )
            into_hidden[:, : 2 * c].copy_(into_input[:, : 2 * c])
            torch.mul(grad_pre_n, rz[:, :c], out=into_hidden[:, 2 * c :])
        for k, (operand, out) in enumerate(((a, grad_a), (b, grad_b))):
            torch.addmm(direct[k], projection_grads[k], weight, out=out)
            grad_weight.addmm_(projection_grads[k].t(), operand)
        grad_bias.add_(projection_grads.sum((0, 1)))


class _SymmetricGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, weight_ih, weight_hh, bias_ih, bias_hh):
        kernel = GRUPairKernel()
        packed = kernel.pack(weight_ih, weight_hh, bias_ih, bias_hh)
        saved = a.new_empty((a.shape[0], kernel.saved_width(a.shape[1])))
        out = kernel.forward(a, b, packed, saved)
        ctx.save_for_backward(a, b, weight_ih, weight_hh, bias_ih, bias_hh, saved)
        return out

    @staticmethod
    def backward(ctx, grad):
        *inputs, saved = ctx.saved_tensors
        kernel = GRUPairKernel()
        if torch.is_grad_enabled():
            # A second derivative was asked for: differentiate the plain formulation instead.
            with torch.enable_grad():
                out = kernel.reference(*inputs)
            return torch.autograd.grad(out, inputs, grad, create_graph=True, allow_unused=True)
        a, b, *params = inputs
        packed = kernel.pack(*params)
        packed_grads = tuple(torch.zeros_like(p) for p in packed)
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(b)
        kernel.backward(grad.contiguous(), a, b, saved, packed, packed_grads, grad_a, grad_b)
        return grad_a, grad_b, *kernel.unpack_grads(packed_grads)


def symmetric_gru(a: Tensor, b: Tensor, cell: nn.GRUCell) -> Tensor:
    """½(GRUCell(a, b) + GRUCell(b, a)) for ``a``, ``b`` ``[..., C]`` with ``cell``'s weights.

    Equal to :func:`symmetric_gru_reference` up to rounding and exactly commutative. First
    derivatives use the hand-derived backward; second derivatives (``create_graph=True``)
    differentiate the plain formulation.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    shape = a.shape
    c = cell.hidden_size
    a2, b2 = a.reshape(-1, c).contiguous(), b.reshape(-1, c).contiguous()
    out = _SymmetricGRU.apply(a2, b2, *gru_cell_parameters(cell))
    return out.view(shape)


def gru_cell_parameters(cell: nn.GRUCell) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(W_ih, W_hh, b_ih, b_hh)`` of ``cell``, zeros standing in for absent biases."""
    if cell.input_size != cell.hidden_size:
        raise ValueError(
            f"cell must map {cell.hidden_size} to {cell.hidden_size} channels, "
            f"got input_size={cell.input_size}"
        )
    if cell.bias:
        return cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    zeros = cell.weight_ih.new_zeros(3 * cell.hidden_size)
    return cell.weight_ih, cell.weight_hh, zeros, zeros
