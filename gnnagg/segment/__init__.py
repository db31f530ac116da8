"""Reductions over groups of rows: the layer every other part of gnnagg reduces messages through.

* :func:`segment` -- ``sum, mean, max, min, mul, var, std, logsumexp`` over COO or CSR groups;
* :func:`segment_softmax` -- softmax within each group;
* :class:`SegmentPlan` -- a grouping computed once (sort, offsets, degrees) and reused;
  :func:`resolve_plan` -- the plan for a reduction's ``index``/``ptr``/``plan`` arguments,
  optionally shared through a cache of recent index tensors;
* :func:`use_backend` / ``backend=`` -- ``torch`` (default), ``torch_scatter``, ``triton``.
"""

from .backends import SegmentBackend, available_backends, get_backend, register_backend, use_backend
from .ops import REDUCE_ALIASES, REDUCTIONS, broadcast_to_rows, segment, segment_softmax
from .plan import SegmentPlan, clear_plan_cache, resolve_plan

__all__ = [
    "REDUCE_ALIASES",
    "REDUCTIONS",
    "SegmentBackend",
    "SegmentPlan",
    "available_backends",
    "broadcast_to_rows",
    "clear_plan_cache",
    "get_backend",
    "register_backend",
    "resolve_plan",
    "segment",
    "segment_softmax",
    "use_backend",
]
