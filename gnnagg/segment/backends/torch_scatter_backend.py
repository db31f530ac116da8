"""Backend on the ``torch_scatter`` extension (``pip install gnnagg[scatter]``), when installed."""

from __future__ import annotations

import importlib.util

from torch import Tensor

from ..plan import SegmentPlan
from .base import SegmentBackend
from .torch_native import SortedSegment, TorchBackend


def _segment_csr(src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
    import torch_scatter

    return torch_scatter.segment_csr(src, plan.ptr, reduce=reduce)


class TorchScatterBackend(SegmentBackend):
    """``segment_csr`` for sorted rows, ``scatter`` otherwise; products use torch's kernel.

    torch_scatter sends the gradient of a tied max/min to one row; the torch backend splits it
    evenly between the tied rows."""

    name = "torch_scatter"

    def available(self) -> bool:
        return importlib.util.find_spec("torch_scatter") is not None

    def unavailable_reason(self) -> str:
        return "torch_scatter is not installed (pip install 'gnnagg[scatter]')"

    def reduce(self, src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
        import torch_scatter

        if reduce == "mul":
            # torch_scatter's product gradient divides by the input (wrong where it is 0) and it
            # has no CSR product: torch's own product is used instead.
            return TorchBackend().reduce(src, plan, reduce)
        if plan.known_sorted_csr:
            if reduce in ("sum", "mean"):
                # torch_scatter's own backward here has a silently zero second derivative.
                return SortedSegment.apply(src, plan, reduce, _segment_csr)
            return torch_scatter.segment_csr(src, plan.ptr, reduce=reduce)
        return torch_scatter.scatter(src, plan.index, dim=0, dim_size=plan.dim_size, reduce=reduce)
