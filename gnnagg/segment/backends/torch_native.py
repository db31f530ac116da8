"""The default backend: PyTorch's own ``segment_reduce`` (sorted rows) and ``scatter_reduce``."""

from __future__ import annotations

import torch
from torch import Tensor

from ..plan import SegmentPlan
from .base import SegmentBackend

_NATIVE_NAME = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin", "mul": "prod"}
_SEGMENT_NAME = {"sum": "sum", "mean": "mean", "max": "max", "min": "min", "mul": "prod"}


def zero_empty_groups(out: Tensor, degrees: Tensor) -> Tensor:
    """Set groups with no rows to 0 (the convention for every reduction but ``mul``) without
    touching gradients."""
    mask = (degrees > 0).view(-1, *([1] * (out.dim() - 1)))
    return torch.where(mask, out, out.new_zeros(()))


def _rows(values: Tensor, plan: SegmentPlan) -> Tensor:
    return values.index_select(0, plan.index)


def _native_sorted(src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
    out = torch.segment_reduce(src, _SEGMENT_NAME[reduce], offsets=plan.ptr, axis=0)
    return out if reduce == "sum" else zero_empty_groups(out, plan.degrees)


class SortedSegment(torch.autograd.Function):
    """A reduction of sorted rows by ``kernel(src, plan, reduce)`` (sum, mean, max or min) whose
    backward is differentiable, so that second derivatives work: the backward of
    ``torch.segment_reduce`` has no derivative, and that of ``torch_scatter.segment_csr``
    silently has a zero one. Sums and means scatter back by a gather; max/min use torch's own
    backward kernel for first derivatives and, when a second is asked for, the same rule in
    differentiable ops. Tied maxima/minima share the gradient evenly."""

    @staticmethod
    def forward(ctx, src: Tensor, plan: SegmentPlan, reduce: str, kernel) -> Tensor:
        out = kernel(src, plan, reduce)
        ctx.plan, ctx.reduce = plan, reduce
        if reduce in ("max", "min"):
            ctx.save_for_backward(src, out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        plan, reduce = ctx.plan, ctx.reduce
        if reduce in ("max", "min"):
            src, out = ctx.saved_tensors
            if not torch.is_grad_enabled():
                # First derivatives only: torch's own kernel finds and splits ties in one pass
                # (the formula below takes several).
                grad_src = torch.ops.aten._segment_reduce_backward(
                    grad.contiguous(), out, src, reduce, offsets=plan.ptr, axis=0
                )
                return grad_src, None, None, None
            hit = (src == _rows(out, plan)).to(grad.dtype)
            ties = torch.segment_reduce(hit, "sum", offsets=plan.ptr, axis=0).clamp(min=1)
            return _rows(grad, plan) * hit / _rows(ties, plan), None, None, None
        if reduce == "mean":
            trailing = [1] * (grad.dim() - 1)
            grad = grad / plan.degrees.clamp(min=1).to(grad.dtype).view(-1, *trailing)
        return _rows(grad, plan), None, None, None


# On a CPU, torch.segment_reduce is the faster sorted path only for narrow rows: its time grows
# faster than the row width, so scatter_add wins on wide rows (max/min alike). The threshold
# lies between the widths where side-by-side timings changed winner (the numbers:
# docs/benchmarks/cpu-epyc-2core.rst). On CUDA segment_reduce is the fastest path at every width.
_CPU_SEGMENT_REDUCE_MAX_ROW_VALUES = 48


def prefers_segment_reduce(src: Tensor) -> bool:
    """Whether ``torch.segment_reduce`` is the faster path for sorted ``src`` (``[rows, ...]``)
    on its device; otherwise the scatter path is."""
    if src.device.type != "cpu":
        return True
    row_values = src[0].numel() if src.shape[0] else 0
    return row_values <= _CPU_SEGMENT_REDUCE_MAX_ROW_VALUES


class TorchBackend(SegmentBackend):
    """Sorted rows with known offsets go through ``torch.segment_reduce`` (no atomics) where
    that is the faster path (every width on CUDA, narrow rows on a CPU); anything else through
    ``scatter_add``/``scatter_reduce``, which need no sort."""

    name = "torch"

    def reduce(self, src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
        # Products take scatter_reduce even for sorted rows: segment_reduce's product backward
        # has no derivative, scatter_reduce's has (and handles zeros).
        if plan.known_sorted_csr and reduce != "mul" and prefers_segment_reduce(src):
            return SortedSegment.apply(src, plan, reduce, _native_sorted)
        index = plan.index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
        out = src.new_zeros((plan.dim_size, *src.shape[1:]))
        if reduce in ("sum", "mean"):
            # scatter_add, not scatter_reduce(include_self=False): sums need no self-exclusion,
            # and on a GPU the former is the faster kernel (docs/benchmarks/gpu-h200.rst).
            # In place on the fresh zeros: out of place would copy the whole output once more.
            out = out.scatter_add_(0, index, src)
            if reduce == "mean":
                count = plan.degrees.clamp(min=1).to(out.dtype)
                out = out / count.view(-1, *([1] * (src.dim() - 1)))
            return out
        if reduce == "mul":
            # Groups without rows keep the initial value: the empty product, 1.
            out = src.new_ones(out.shape)
        return out.scatter_reduce(0, index, src, _NATIVE_NAME[reduce], include_self=False)
