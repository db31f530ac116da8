"""Backend running the Triton CSR kernel on CUDA tensors (or under ``TRITON_INTERPRET=1``).

Unsorted input is read through the plan's sort permutation inside the kernel, so there is no
atomic and no separate gather. Gradients are computed with the same kernel plus gathers;
products (``mul``) are delegated to the torch backend.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from torch import Tensor

from ..plan import SegmentPlan
from .base import SegmentBackend
from .torch_native import TorchBackend


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


class _TritonSegment(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
        from .triton_kernels import segment_csr

        flat = src.reshape(src.shape[0], -1).contiguous()
        out = segment_csr(flat, plan.ptr, plan.perm, reduce)
        ctx.plan, ctx.reduce, ctx.src_shape = plan, reduce, src.shape
        if reduce in ("max", "min"):
            ctx.save_for_backward(flat, out)
        return out.view(plan.dim_size, *src.shape[1:])

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        from .triton_kernels import segment_csr

        plan, reduce = ctx.plan, ctx.reduce
        grad = grad_out.reshape(plan.dim_size, -1)
        if reduce == "mean":
            grad = grad / plan.degrees.clamp(min=1).unsqueeze(1).to(grad.dtype)
        grad_src = grad.index_select(0, plan.index)
        if reduce in ("max", "min"):
            flat, out = ctx.saved_tensors
            # Tied rows share the gradient evenly, as in the torch backend.
            hit = (flat == out.index_select(0, plan.index)).to(grad.dtype)
            ties = segment_csr(hit, plan.ptr, plan.perm, "sum").clamp(min=1)
            grad_src = grad_src * hit / ties.index_select(0, plan.index)
        return grad_src.view(ctx.src_shape), None, None


class TritonBackend(SegmentBackend):
    name = "triton"
    # The kernel loads float16/bfloat16 and accumulates in float32 (float64 for float64).
    accumulates_low_precision = True
    uses_triton = True
    _fallback = TorchBackend()

    def available(self) -> bool:
        if importlib.util.find_spec("triton") is None:
            return False
        return torch.cuda.is_available() or _interpreting()

    def unavailable_reason(self) -> str:
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed (pip install 'gnnagg[triton]')"
        return "no CUDA device (set TRITON_INTERPRET=1 to run the kernels on the CPU interpreter)"

    def supports(self, src: Tensor) -> bool:
        return src.is_cuda or (_interpreting() and src.device.type == "cpu")

    def reduce(self, src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
        if not self.supports(src):
            raise ValueError(
                f"the triton backend needs CUDA tensors, got src on {src.device} "
                "(set TRITON_INTERPRET=1 to run on the CPU interpreter)"
            )
        if reduce == "mul" or plan.num_rows == 0:
            # The torch backend does not accumulate low precision in float32 by itself.
            if src.dtype in (torch.float16, torch.bfloat16):
                return self._fallback.reduce(src.float(), plan, reduce).to(src.dtype)
            return self._fallback.reduce(src, plan, reduce)
        return _TritonSegment.apply(src, plan, reduce)
