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
    """Sums and means through ``segment_csr`` for sorted rows and ``scatter`` otherwise; the
    other reductions use the torch backend.

    torch_scatter marks empty groups of a max/min with the dtype's extreme value and then
    writes 0 there, so a group whose true maximum is -inf or ``finfo.min`` came out as 0; it
    also skips NaN. Its products divide by the input in the backward (wrong at 0)."""

    name = "torch_scatter"

    def available(self) -> bool:
        return importlib.util.find_spec("torch_scatter") is not None

    def unavailable_reason(self) -> str:
        return "torch_scatter is not installed (pip install 'gnnagg[scatter]')"

    def reduce(self, src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
        import torch_scatter

        if reduce not in ("sum", "mean"):
            return TorchBackend().reduce(src, plan, reduce)
        if plan.known_sorted_csr:
            # torch_scatter's own backward here has a silently zero second derivative.
            return SortedSegment.apply(src, plan, reduce, _segment_csr)
        return torch_scatter.scatter(src, plan.index, dim=0, dim_size=plan.dim_size, reduce=reduce)
