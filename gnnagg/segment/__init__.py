"""Reductions over groups of rows: the layer every other part of gnnagg reduces messages through.

* :func:`segment` -- ``sum, mean, max, min, mul, var, std, logsumexp`` over COO or CSR groups;
* :func:`segment_softmax` -- softmax within each group;
* :class:`SegmentPlan` -- a grouping computed once (sort, offsets, degrees) and reused;
* :func:`use_backend` / ``backend=`` -- ``torch`` (default), ``torch_scatter``, ``triton``.
"""

from .backends import SegmentBackend, available_backends, get_backend, register_backend, use_backend
from .ops import REDUCTIONS, broadcast_to_rows, resolve_plan, segment, segment_softmax
from .plan import (
    SegmentPlan,
    check_dim_size,
    check_index,
    check_ptr,
    clear_plan_cache,
    plan_for_index,
)

__all__ = [
    "REDUCTIONS",
    "SegmentBackend",
    "SegmentPlan",
    "available_backends",
    "broadcast_to_rows",
    "check_dim_size",
    "check_index",
    "check_ptr",
    "clear_plan_cache",
    "get_backend",
    "plan_for_index",
    "register_backend",
    "resolve_plan",
    "segment",
    "segment_softmax",
    "use_backend",
]
