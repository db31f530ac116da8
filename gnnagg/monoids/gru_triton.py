"""Triton kernels for the gate arithmetic of the symmetrised GRU cell, forward and backward.

On a GPU a tree level is launch bound: the torch formulation (:class:`GRUPairKernel`) spends
about eight element-wise kernels forward and ten backward per level on the gates. Here each
direction is one kernel, and each operand is projected by one GEMM against ``[W_ih; W_hh]``
(the kernel reads the input and hidden gates of both orderings wherever they are), so a level
costs two GEMMs and one kernel forward, one kernel and four GEMMs backward.

Used for the tree when the ``triton`` segment backend is selected (``use_backend("triton")``)
and the states are float32, float16 or bfloat16 on a CUDA device (or on the CPU under
``TRITON_INTERPRET=1``, which is how the tests compare it with :class:`GRUPairKernel`).
Gates are computed in float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .._checks import check_positive
from .gru_kernel import GRUPairKernel

__all__ = ["TritonGRUPairKernel"]

# Elements per program, and warps per program. Each element streams about twenty values, and
# at 1,024 elements on 4 warps (8 per thread) the sm_90 cubins of both kernels need 180-200
# registers per thread, which fits two programs (8 warps) on an SM; 256 on 4 warps needs 48
# (``cuobjdump -res-usage``; tests/cuda_compile.py builds them). The one-off script
# bench_gru_kernel.py in experiments/ times the choices on a GPU.
BLOCK = 256
NUM_WARPS = 4


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _gates_forward(input_proj, hidden_proj, hidden, saved, channels, mask):
    """One ordering: gates from ``input_proj`` (its first 3C) and ``hidden_proj`` (its last
    3C); stores r, z, n and W_hn·h + b_hn; returns the new hidden state."""
    gi_r = tl.load(input_proj, mask=mask, other=0.0).to(tl.float32)
    gi_z = tl.load(input_proj + channels, mask=mask, other=0.0).to(tl.float32)
    gi_n = tl.load(input_proj + 2 * channels, mask=mask, other=0.0).to(tl.float32)
    gh_r = tl.load(hidden_proj + 3 * channels, mask=mask, other=0.0).to(tl.float32)
    gh_z = tl.load(hidden_proj + 4 * channels, mask=mask, other=0.0).to(tl.float32)
    gh_n = tl.load(hidden_proj + 5 * channels, mask=mask, other=0.0).to(tl.float32)
    r = _sigmoid(gi_r + gh_r)
    z = _sigmoid(gi_z + gh_z)
    n = 2.0 * _sigmoid(2.0 * (gi_n + r * gh_n)) - 1.0  # tanh
    kind = saved.dtype.element_ty
    tl.store(saved, r.to(kind), mask=mask)
    tl.store(saved + channels, z.to(kind), mask=mask)
    tl.store(saved + 2 * channels, n.to(kind), mask=mask)
    tl.store(saved + 3 * channels, gh_n.to(kind), mask=mask)
    return n + z * (hidden - n)


@triton.jit
def _pair_forward_kernel(
    proj_a_ptr,
    proj_b_ptr,
    a_ptr,
    b_ptr,
    out_ptr,
    saved_ptr,
    num_elements,
    channels,
    a_stride,
    b_stride,
    BLOCK: tl.constexpr,
):
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < num_elements
    row = idx // channels
    col = idx % channels
    proj_a = proj_a_ptr + row * (6 * channels) + col
    proj_b = proj_b_ptr + row * (6 * channels) + col
    saved = saved_ptr + row * (8 * channels) + col
    a = tl.load(a_ptr + row * a_stride + col, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + row * b_stride + col, mask=mask, other=0.0).to(tl.float32)
    # Ordering 0 takes a as the hidden state and b as the input; ordering 1 the reverse.
    new_0 = _gates_forward(proj_b, proj_a, a, saved, channels, mask)
    new_1 = _gates_forward(proj_a, proj_b, b, saved + 4 * channels, channels, mask)
    tl.store(out_ptr + idx, (0.5 * (new_0 + new_1)).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gates_backward(half, hidden, saved, input_grad, hidden_grad, channels, mask):
    """One ordering: stores the gradients of its input gates (into ``input_grad``) and hidden
    gates (into ``hidden_grad``, offset 3C); returns the hidden state's direct gradient."""
    r = tl.load(saved, mask=mask, other=0.0).to(tl.float32)
    z = tl.load(saved + channels, mask=mask, other=0.0).to(tl.float32)
    n = tl.load(saved + 2 * channels, mask=mask, other=0.0).to(tl.float32)
    gh_n = tl.load(saved + 3 * channels, mask=mask, other=0.0).to(tl.float32)
    direct = half * z
    grad_pre_n = (half - direct) * (1.0 - n * n)
    grad_pre_r = grad_pre_n * gh_n * r * (1.0 - r)
    grad_pre_z = half * (hidden - n) * z * (1.0 - z)
    kind = input_grad.dtype.element_ty
    tl.store(input_grad, grad_pre_r.to(kind), mask=mask)
    tl.store(input_grad + channels, grad_pre_z.to(kind), mask=mask)
    tl.store(input_grad + 2 * channels, grad_pre_n.to(kind), mask=mask)
    tl.store(hidden_grad + 3 * channels, grad_pre_r.to(kind), mask=mask)
    tl.store(hidden_grad + 4 * channels, grad_pre_z.to(kind), mask=mask)
    tl.store(hidden_grad + 5 * channels, (grad_pre_n * r).to(kind), mask=mask)
    return direct


@triton.jit
def _pair_backward_kernel(
    grad_ptr,
    a_ptr,
    b_ptr,
    saved_ptr,
    grad_a_ptr,
    grad_b_ptr,
    proj_grad_a_ptr,
    proj_grad_b_ptr,
    num_elements,
    channels,
    a_stride,
    b_stride,
    grad_a_stride,
    grad_b_stride,
    BLOCK: tl.constexpr,
):
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < num_elements
    row = idx // channels
    col = idx % channels
    half = 0.5 * tl.load(grad_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    a = tl.load(a_ptr + row * a_stride + col, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + row * b_stride + col, mask=mask, other=0.0).to(tl.float32)
    saved = saved_ptr + row * (8 * channels) + col
    proj_grad_a = proj_grad_a_ptr + row * (6 * channels) + col
    proj_grad_b = proj_grad_b_ptr + row * (6 * channels) + col
    direct_a = _gates_backward(half, a, saved, proj_grad_b, proj_grad_a, channels, mask)
    direct_b = _gates_backward(
        half, b, saved + 4 * channels, proj_grad_a, proj_grad_b, channels, mask
    )
    tl.store(
        grad_a_ptr + row * grad_a_stride + col, direct_a.to(grad_a_ptr.dtype.element_ty), mask=mask
    )
    tl.store(
        grad_b_ptr + row * grad_b_stride + col, direct_b.to(grad_b_ptr.dtype.element_ty), mask=mask
    )


def _unit_channel_stride(x: Tensor) -> Tensor:
    # The kernels address rows by stride and channels as consecutive elements.
    return x if x.stride(1) == 1 else x.contiguous()


class TritonGRUPairKernel(GRUPairKernel):
    """:class:`GRUPairKernel` with the gate arithmetic in one Triton kernel per direction.

    Packs ``[W_ih; W_hh]`` (``[6C, C]``) and ``[b_ih; b_hh]``; each operand's projection is
    ``[input gates | hidden gates]``. ``saved`` has the same layout as the torch kernel's.
    ``block`` (elements per program) and ``num_warps`` set the launch shape; both are powers
    of two.
    """

    def __init__(self, block: int = BLOCK, num_warps: int = NUM_WARPS) -> None:
        block, num_warps = check_positive(block, "block"), check_positive(num_warps, "num_warps")
        for name, value in (("block", block), ("num_warps", num_warps)):
            if value & (value - 1):
                raise ValueError(f"{name} must be a power of two, got {value}")
        self.block, self.num_warps = block, num_warps

    def _launch(self, kernel, num_elements: int, *args) -> None:
        if num_elements:
            grid = (triton.cdiv(num_elements, self.block),)
            kernel[grid](*args, BLOCK=self.block, num_warps=self.num_warps)

    def forward_gates(
        self, proj_a: Tensor, proj_b: Tensor, a: Tensor, b: Tensor, out: Tensor, saved: Tensor
    ) -> None:
        """The forward kernel alone: ``out`` and ``saved`` from the operands ``[m, C]`` (unit
        channel stride) and their projections ``[m, 6C]``."""
        n, c = out.numel(), out.shape[1]
        args = (proj_a, proj_b, a, b, out, saved, n, c, a.stride(0), b.stride(0))
        self._launch(_pair_forward_kernel, n, *args)

    def backward_gates(
        self,
        grad: Tensor,
        a: Tensor,
        b: Tensor,
        saved: Tensor,
        grad_a: Tensor,
        grad_b: Tensor,
        proj_grads: Tensor,
    ) -> None:
        """The backward kernel alone: the operands' direct gradients into ``grad_a``/``grad_b``
        and the projections' gradients into ``proj_grads`` ``[2, m, 6C]``; ``grad``
        contiguous."""
        n, c = grad.numel(), grad.shape[1]
        args = (grad, a, b, saved, grad_a, grad_b, proj_grads[0], proj_grads[1], n, c)
        strides = (a.stride(0), b.stride(0), grad_a.stride(0), grad_b.stride(0))
        self._launch(_pair_backward_kernel, n, *args, *strides)

    def pack(self, weight_ih: Tensor, weight_hh: Tensor, bias_ih: Tensor, bias_hh: Tensor):
        return torch.cat([weight_ih, weight_hh]), torch.cat([bias_ih, bias_hh])

    def packed_grad_buffers(self, packed) -> tuple[Tensor, Tensor]:
        return tuple(torch.zeros_like(p) for p in packed)

    def unpack_grads(self, packed_grads) -> tuple[Tensor, ...]:
        grad_weight, grad_bias = packed_grads
        return (*grad_weight.chunk(2), *grad_bias.chunk(2))

    def forward(self, pair: Tensor, packed, saved: Tensor) -> Tensor:
        weight, bias = packed
        m, _, c = pair.shape
        a, b = _unit_channel_stride(pair[:, 0]), _unit_channel_stride(pair[:, 1])
        proj_a = torch.addmm(bias, a, weight.t())
        proj_b = torch.addmm(bias, b, weight.t())
        out = pair.new_empty((m, c))
        self.forward_gates(proj_a, proj_b, a, b, out, saved)
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
        weight, _ = packed
        grad_weight, grad_bias = packed_grads
        m, _, c = pair.shape
        a, b = _unit_channel_stride(pair[:, 0]), _unit_channel_stride(pair[:, 1])
        grad_a, grad_b = grad_pair[:, 0], grad_pair[:, 1]
        if grad_a.stride(1) != 1 or grad_b.stride(1) != 1 or not saved.is_contiguous():
            raise ValueError("grad_pair needs unit channel stride and saved must be contiguous")
        proj_grads = pair.new_empty((2, m, 6 * c))
        self.backward_gates(grad.contiguous(), a, b, saved, grad_a, grad_b, proj_grads)
        grad_a.addmm_(proj_grads[0], weight)
        grad_b.addmm_(proj_grads[1], weight)
        grad_weight.addmm_(proj_grads[0].t(), a).addmm_(proj_grads[1].t(), b)
        grad_bias.add_(proj_grads.sum((0, 1)))
