"""Hand-derived forward and backward of the symmetrised GRU cell ½(GRU(a, b) + GRU(b, a)).

Autograd through two ``nn.GRUCell`` calls records about twenty nodes per tree level; their
bookkeeping, not the arithmetic, dominates small and medium reductions (and on a GPU it is what
the launch-bound tree waits for). Here the two orderings are computed together: operands come as
one ``[m, 2, C]`` pair (ordering ``k`` takes operand ``k`` as the hidden state and the other as
the input), the four projections are written by four GEMMs into one buffer laid out so that the
input gates and the hidden gates of both orderings are each a single strided view, and every
gate formula then runs once over both orderings. The backward is the same in reverse, so a tree
level costs about a dozen kernels forward and twenty backward, and no autograd bookkeeping.

Commutativity stays exact: in :func:`symmetric_gru` each operand is projected from its own fresh
copy by its own GEMM of one shape, and the two orderings are averaged (a sum of two terms), so
swapping ``a`` and ``b`` swaps bit-identical terms.

``symmetric_gru_reference`` is the same operator written with ``nn.GRUCell``; the tests
compare the two.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_tensor

__all__ = [
    "GRUPairKernel",
    "LayerNormPairKernel",
    "gru_cell_parameters",
    "symmetric_gru",
]


def symmetric_gru_reference(cell: nn.GRUCell, a: Tensor, b: Tensor) -> Tensor:
    """½(GRUCell(a, b) + GRUCell(b, a)) through ``nn.GRUCell`` (the plain torch reference)."""
    return 0.5 * (cell(a, b) + cell(b, a))


class GRUPairKernel:
    """Forward and backward of the symmetrised GRU cell on operand pairs ``[m, 2, C]``.

    Gate order r, z, n as in ``nn.GRUCell``. The projection buffer ``[m, 4, 3C]`` holds, per
    row, the input gates of ordering 0 (from operand 1), the hidden gates of ordering 0 (from
    operand 0), the input gates of ordering 1 (from operand 0) and the hidden gates of
    ordering 1 (from operand 1): positions 0 and 2 are the input gates of both orderings,
    1 and 3 the hidden gates, and 1-2 the whole projection of operand 0. What the backward
    needs besides the operands is ``saved`` ``[m, 8C]``: r, z, n and W_hn·h + b_hn of
    ordering 0, then of ordering 1.
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
        """``(W_ih, W_hh, b_ih, b_hh, [W_hh; W_ih], [b_hh; b_ih])``."""
        # [W_hh; W_ih] maps an operand to [hidden gates | input gates] in one GEMM: for
        # operand 0 that is positions 1-2 of the projection buffer as they stand.
        stacked_bias = torch.cat([bias_hh, bias_ih])
        return (
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            torch.cat([weight_hh, weight_ih]),
            stacked_bias,
        )

    def packed_grad_buffers(self, packed) -> tuple[Tensor, Tensor]:
        """Zeroed accumulators: ``[W_hh; W_ih]``'s gradient and the bias gradient per
        projection position ``[4, 3C]``."""
        bias_ih, stacked = packed[2], packed[4]
        return torch.zeros_like(stacked), bias_ih.new_zeros((4, bias_ih.shape[0]))

    def unpack_grads(self, packed_grads) -> tuple[Tensor, ...]:
        grad_stacked, grad_bias = packed_grads
        grad_weight_hh, grad_weight_ih = grad_stacked.chunk(2)
        return (
            grad_weight_ih,
            grad_weight_hh,
            grad_bias[0] + grad_bias[2],
            grad_bias[1] + grad_bias[3],
        )

    def forward(self, pair: Tensor, packed, saved: Tensor) -> Tensor:
        """``pair[:, 0] ⊕ pair[:, 1]``, writing what the backward needs into ``saved``."""
        weight_ih, weight_hh, bias_ih, bias_hh, stacked, stacked_bias = packed
        m, _, c = pair.shape
        a, b = pair[:, 0], pair[:, 1]
        projections = pair.new_empty((m, 4, 3 * c))
        of_a = projections[:, 1:3].view(m, 6 * c)
        torch.addmm(stacked_bias, a, stacked.t(), out=of_a)
        torch.addmm(bias_ih, b, weight_ih.t(), out=projections[:, 0])
        torch.addmm(bias_hh, b, weight_hh.t(), out=projections[:, 3])
        return self.finish(projections, pair, saved)

    def project_separately(self, a: Tensor, b: Tensor, packed) -> Tensor:
        """The projection buffer, each operand projected from its own fresh copy into its own
        fresh buffer: a GEMM's rounding may depend on where its operands sit (alignment, or
        a matrix-vector path for one row), so this is what makes ``a ⊕ b`` and ``b ⊕ a``
        bit-identical wherever ``a`` and ``b`` come from."""
        stacked, stacked_bias = packed[4], packed[5]
        c = a.shape[1]
        fresh = torch.contiguous_format
        # Each is [hidden gates | input gates] of its operand, as positions 1-2 hold for a.
        of_a = torch.addmm(stacked_bias, a.clone(memory_format=fresh), stacked.t())
        of_b = torch.addmm(stacked_bias, b.clone(memory_format=fresh), stacked.t())
        return torch.stack(
            [of_b[:, 3 * c :], of_a[:, : 3 * c], of_a[:, 3 * c :], of_b[:, : 3 * c]], 1
        )

    def finish(self, projections: Tensor, pair: Tensor, saved: Tensor) -> Tensor:
        """The gates and the result from the projection buffer."""
        m, _, c = pair.shape
        into_input, into_hidden = projections[:, 0::2], projections[:, 1::2]
        gates = saved.view(m, 2, 4 * c)
        rz, n, hidden_n = gates[..., : 2 * c], gates[..., 2 * c : 3 * c], gates[..., 3 * c :]
        torch.add(into_input[..., : 2 * c], into_hidden[..., : 2 * c], out=rz).sigmoid_()
        hidden_n.copy_(into_hidden[..., 2 * c :])
        torch.addcmul(into_input[..., 2 * c :], rz[..., :c], hidden_n, out=n).tanh_()
        # The mean of the two orderings: a sum of two terms, so swapping them changes no bit
        # (an add of the halves: a reduction over that axis of two costs three times as much).
        both = torch.lerp(n, pair, rz[..., c:])
        return torch.add(both[:, 0], both[:, 1]).mul_(0.5)

    def backward(
        self,
        grad: Tensor,
        pair: Tensor,
        saved: Tensor,
        packed,
        packed_grads,
        grad_pair: Tensor,
    ) -> None:
        """Write the gradient of ``pair`` into ``grad_pair``; accumulate those of the packed
        parameters into ``packed_grads``."""
        weight_ih, weight_hh, stacked = packed[0], packed[1], packed[4]
        grad_stacked, grad_bias = packed_grads
        m, _, c = pair.shape
        a, b = pair[:, 0], pair[:, 1]
        gates = saved.view(m, 2, 4 * c)
        rz, n, hidden_n = gates[..., : 2 * c], gates[..., 2 * c : 3 * c], gates[..., 3 * c :]
        # Each ordering receives half of ``grad``; the halving is left to the GEMMs' alpha and
        # beta, so everything up to them is twice its true value (exactly: a power of two).
        twice = grad.unsqueeze(1)
        projection_grads = pair.new_empty((m, 4, 3 * c))
        into_input, into_hidden = projection_grads[:, 0::2], projection_grads[:, 1::2]
        # The hidden state's direct path, z ⊙ dh; the GEMMs below add the gate paths to it.
        torch.mul(twice, rz[..., c:], out=grad_pair)
        grad_pre_n = into_input[..., 2 * c :]
        torch.sub(twice, grad_pair, out=grad_pre_n)
        torch.ops.aten.tanh_backward.grad_input(grad_pre_n, n, grad_input=grad_pre_n)
        grad_rz = pair.new_empty((m, 2, 2 * c))
        torch.mul(grad_pre_n, hidden_n, out=grad_rz[..., :c])
        torch.sub(pair, n, out=grad_rz[..., c:]).mul_(twice)
        torch.ops.aten.sigmoid_backward.grad_input(grad_rz, rz, grad_input=into_input[..., : 2 * c])
        into_hidden[..., : 2 * c].copy_(into_input[..., : 2 * c])
        torch.mul(grad_pre_n, rz[..., :c], out=into_hidden[..., 2 * c :])
        of_a = projection_grads[:, 1:3].reshape(m, 6 * c)
        grad_pair[:, 0].addmm_(of_a, stacked, beta=0.5, alpha=0.5)
        grad_pair[:, 1].addmm_(projection_grads[:, 3], weight_hh, beta=0.5, alpha=0.5).addmm_(
            projection_grads[:, 0], weight_ih, alpha=0.5
        )
        grad_stacked.addmm_(of_a.t(), a, alpha=0.5)
        grad_weight_hh, grad_weight_ih = grad_stacked.chunk(2)
        grad_weight_hh.addmm_(projection_grads[:, 3].t(), b, alpha=0.5)
        grad_weight_ih.addmm_(projection_grads[:, 0].t(), b, alpha=0.5)
        grad_bias.add_(projection_grads.sum(0), alpha=0.5)


#: ``eps`` of the layer normalisation :class:`LayerNormPairKernel` applies (``F.layer_norm``'s).
LAYER_NORM_EPS = 1e-5


class LayerNormPairKernel:
    """Another pair kernel's operator followed by layer normalisation over the channels (no
    learned scale or shift): ``LN(a ⊕ b)``, forward and backward by hand (ATen's layer-norm
    kernels), so a tree of it still runs as one autograd node.

    ``saved`` (contiguous: the tree hands out row ranges of one buffer, the same range to the
    forward and the backward of a chunk) holds the inner kernel's block ``[m,
    inner.saved_width(C)]``, then the unnormalised result ``[m, C]``, its mean ``[m]`` and its
    reciprocal standard deviation ``[m]``, each block contiguous.
    """

    def __init__(self, inner) -> None:
        self.inner = inner

    def saved_width(self, channels: int) -> int:
        return self.inner.saved_width(channels) + channels + 2

    def reference(self, a: Tensor, b: Tensor, *params: Tensor) -> Tensor:
        out = self.inner.reference(a, b, *params)
        return torch.nn.functional.layer_norm(out, out.shape[-1:], eps=LAYER_NORM_EPS)

    def pack(self, *params: Tensor):
        return self.inner.pack(*params)

    def packed_grad_buffers(self, packed):
        return self.inner.packed_grad_buffers(packed)

    def unpack_grads(self, packed_grads):
        return self.inner.unpack_grads(packed_grads)

    def _split(self, saved: Tensor, channels: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if not saved.is_contiguous():
            raise ValueError("LayerNormPairKernel needs a contiguous saved buffer")
        m, width = saved.shape[0], self.inner.saved_width(channels)
        inner, x, mean, rstd = saved.view(-1).split(
            [m * width, m * channels, m, m]
        )
        return inner.view(m, width), x.view(m, channels), mean.view(m, 1), rstd.view(m, 1)

    def forward(self, pair: Tensor, packed, saved: Tensor) -> Tensor:
        channels = pair.shape[-1]
        inner, x, mean, rstd = self._split(saved, channels)
        x.copy_(self.inner.forward(pair, packed, inner))
        out, mu, sigma = torch.native_layer_norm(x, (channels,), None, None, LAYER_NORM_EPS)
        mean.copy_(mu.view(-1, 1))
        rstd.copy_(sigma.view(-1, 1))
        return out

    def backward(
        self,
        grad: Tensor,
        pair: Tensor,
        saved: Tensor,
        packed,
        packed_grads,
        grad_pair: Tensor,
    ) -> None:
        channels = pair.shape[-1]
        inner, x, mean, rstd = self._split(saved, channels)
        grad_x = torch.ops.aten.native_layer_norm_backward(
            grad, x, [channels], mean, rstd, None, None, [True, False, False]
        )[0]
        self.inner.backward(grad_x, pair, inner, packed, packed_grads, grad_pair)


class _SymmetricGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, weight_ih, weight_hh, bias_ih, bias_hh):
        kernel = GRUPairKernel()
        packed = kernel.pack(weight_ih, weight_hh, bias_ih, bias_hh)
        pair = torch.stack([a, b], 1)
        saved = a.new_empty((a.shape[0], kernel.saved_width(a.shape[1])))
        out = kernel.finish(kernel.project_separately(a, b, packed), pair, saved)
        ctx.save_for_backward(a, b, weight_ih, weight_hh, bias_ih, bias_hh, pair, saved)
        return out

    @staticmethod
    def backward(ctx, grad):
        *inputs, pair, saved = ctx.saved_tensors
        kernel = GRUPairKernel()
        if torch.is_grad_enabled():
            # A second derivative was asked for: differentiate the plain formulation instead.
            with torch.enable_grad():
                out = kernel.reference(*inputs)
            return torch.autograd.grad(out, inputs, grad, create_graph=True, allow_unused=True)
        packed = kernel.pack(*inputs[2:])
        packed_grads = kernel.packed_grad_buffers(packed)
        grad_pair = torch.empty_like(pair)
        kernel.backward(grad.contiguous(), pair, saved, packed, packed_grads, grad_pair)
        return grad_pair[:, 0], grad_pair[:, 1], *kernel.unpack_grads(packed_grads)


# Run eagerly under torch.compile: the kernel writes into strided views, which its
# functionalization does not take.
@torch.compiler.disable
def symmetric_gru(a: Tensor, b: Tensor, cell: nn.GRUCell) -> Tensor:
    """½(GRUCell(a, b) + GRUCell(b, a)) for ``a``, ``b`` ``[..., C]`` with ``cell``'s weights.

    Equal to ``symmetric_gru_reference`` (``nn.GRUCell`` twice) up to rounding, and exactly
    commutative. First derivatives use the hand-derived backward; second derivatives
    (``create_graph=True``) differentiate the plain formulation.
    """
    check_tensor(a, "a")
    check_tensor(b, "b")
    if not isinstance(cell, nn.GRUCell):
        raise TypeError(f"cell must be an nn.GRUCell, got {type(cell).__name__}")
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    c = cell.hidden_size
    if a.dim() == 0 or a.shape[-1] != c:
        raise ValueError(
            f"a and b must end in {c} channels (the cell's size), got {tuple(a.shape)}"
        )
    if a.dtype != b.dtype or a.dtype != cell.weight_ih.dtype:
        raise TypeError(
            f"a, b and the cell must share a dtype, got {a.dtype}, {b.dtype} and "
            f"{cell.weight_ih.dtype}"
        )
    shape = a.shape
    a2, b2 = a.reshape(-1, c), b.reshape(-1, c)
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
