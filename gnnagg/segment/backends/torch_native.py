"""The default backend: PyTorch's own ``segment_reduce`` (sorted rows) and ``scatter_reduce``."""

from __future__ import annotations

import torch
from torch import Tensor

from ..plan import SegmentPlan
from .base import SegmentBackend

_NATIVE_NAME = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin", "mul": "prod"}
_SEGMENT_NAME = {"sum": "sum", "mean": "mean", "max": "max", "min": "min", "mul": "prod"}


def zero_empty_groups(out: Tensor, degrees: Tensor) -> Tensor:
    """Set groups with no rows to 0 (the library-wide convention) without touching gradients."""
    mask = (degrees > 0).view(-1, *([1] * (out.dim() - 1)))
    return torch.where(mask, out, out.new_zeros(()))


class TorchBackend(SegmentBackend):
    """Sorted rows with known offsets go through ``torch.segment_reduce`` (no atomics, the
    fastest native path); anything else through ``scatter_reduce``, which needs no sort."""

    name = "torch"

    def reduce(self, src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
        if plan.known_sorted_csr:
            out = torch.segment_reduce(src, _SEGMENT_NAME[reduce], offsets=plan.ptr, axis=0)
            return out if reduce == "sum" else zero_empty_groups(out, plan.degrees)
        index = plan.index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
        out = src.new_zeros((plan.dim_size, *src.shape[1:]))
        if reduce in ("sum", "mean"):
            # On an H200 (10M x 128 rows) PyG's scatter_add path ran at 1.23 TB/s where
            # scatter_reduce(include_self=False) ran at 0.73; sums need no self-exclusion.
            out = out.scatter_add(0, index, src)
            if reduce == "mean":
                count = plan.degrees.clamp(min=1).to(out.dtype)
                out = out / count.view(-1, *([1] * (src.dim() - 1)))
            return out
        return out.scatter_reduce(0, index, src, _NATIVE_NAME[reduce], include_self=False)
