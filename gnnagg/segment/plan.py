"""SegmentPlan: everything derived from one grouping of rows, computed once and reused.

A GNN layer stack reduces many message tensors over the same ``index``. Sorting that index,
counting degrees and building CSR offsets is the expensive, synchronising part, so a plan does it
once; every reduction in :mod:`gnnagg.segment` accepts a plan. Derived fields are computed lazily
and cached, so a plan built for one scatter costs nothing beyond what that scatter needs.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from functools import cached_property

import torch
from torch import Tensor

from .._checks import check_count

__all__ = [
    "SegmentPlan",
    "check_dim_size",
    "check_index",
    "check_ptr",
    "clear_plan_cache",
    "plan_for_index",
]

_INDEX_DTYPES = (torch.int64, torch.int32)


def check_dim_size(dim_size: object) -> int | None:
    """``dim_size`` as a non-negative Python int (``None`` stays ``None``); a float such as
    ``2.5`` is a ``TypeError`` rather than silently truncated."""
    return None if dim_size is None else check_count(dim_size, "dim_size")


def check_index(
    index: Tensor, num_rows: int | None, dim_size: int | None, name: str = "index"
) -> int:
    """Validate a COO group index and return the number of groups.

    Raises ``TypeError`` for a non-integer tensor and ``ValueError`` for a wrong shape, a wrong
    length, a negative entry or an entry ``>= dim_size``. Needs one device-to-host sync.
    """
    if not isinstance(index, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(index).__name__}")
    if index.dtype not in _INDEX_DTYPES:
        raise TypeError(f"{name} must be an int64 or int32 tensor, got dtype {index.dtype}")
    if index.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(index.shape)}")
    if num_rows is not None and index.numel() != num_rows:
        raise ValueError(
            f"{name} has {index.numel()} entries but src has {num_rows} rows along the reduced dim"
        )
    dim_size = check_dim_size(dim_size)
    if index.numel() == 0:
        return 0 if dim_size is None else dim_size
    lo, hi = torch.aminmax(index)
    lo, hi = int(lo), int(hi)
    if lo < 0:
        raise ValueError(f"{name} contains a negative entry ({lo})")
    if dim_size is None:
        return hi + 1
    if hi >= dim_size:
        raise ValueError(f"{name} contains {hi}, out of range for dim_size={dim_size}")
    return dim_size


def check_ptr(ptr: Tensor, num_rows: int | None, name: str = "ptr") -> None:
    """Validate CSR offsets: 1-D integer, starts at 0, non-decreasing, ends at ``num_rows``."""
    if not isinstance(ptr, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(ptr).__name__}")
    if ptr.dtype not in _INDEX_DTYPES:
        raise TypeError(f"{name} must be an int64 or int32 tensor, got dtype {ptr.dtype}")
    if ptr.dim() != 1 or ptr.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(ptr.shape)}")
    if int(ptr[0]) != 0:
        raise ValueError(f"{name} must start at 0, got {int(ptr[0])}")
    if ptr.numel() > 1 and bool((ptr[1:] < ptr[:-1]).any()):
        raise ValueError(f"{name} must be non-decreasing")
    if num_rows is not None and int(ptr[-1]) != num_rows:
        raise ValueError(
            f"{name} must end at the number of rows of src ({num_rows}), got {int(ptr[-1])}"
        )


class SegmentPlan:
    """One grouping of ``num_rows`` rows into ``dim_size`` groups.

    Build it with :meth:`from_index` (COO: a group id per row, any order) or :meth:`from_ptr`
    (CSR offsets over rows already sorted by group). Derived fields:

    * ``index`` -- group id of each row, in the rows' own order;
    * ``perm`` -- stable permutation that sorts the rows by group (``None`` when already sorted);
    * ``ptr`` -- CSR offsets of the sorted rows, length ``dim_size + 1``;
    * ``degrees`` -- rows per group; ``is_sorted``; ``max_degree``.
    """

    def __init__(
        self,
        dim_size: int,
        num_rows: int,
        *,
        index: Tensor | None = None,
        ptr: Tensor | None = None,
        is_sorted: bool | None = None,
    ) -> None:
        if index is None and ptr is None:
            raise ValueError("a SegmentPlan needs an index or a ptr")
        self.dim_size = int(dim_size)
        self.num_rows = int(num_rows)
        if index is not None:
            self.__dict__["index"] = index
        if ptr is not None:
            self.__dict__["ptr"] = ptr
        if is_sorted is not None:
            self.__dict__["is_sorted"] = is_sorted

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_index(
        cls,
        index: Tensor,
        dim_size: int | None = None,
        *,
        validate: bool = True,
        eager: bool = True,
    ) -> SegmentPlan:
        """Plan for a COO index (any order).

        ``dim_size`` defaults to ``index.max() + 1``. ``eager=True`` computes the sort, offsets
        and degrees now (what a model reusing the plan wants); ``eager=False`` defers each field
        until a reduction needs it.
        """
        if validate or dim_size is None:
            dim_size = check_index(index, None, dim_size)
        plan = cls(dim_size, index.numel(), index=index.long())
        if eager:
            plan.materialize()
        return plan

    @classmethod
    def from_ptr(
        cls, ptr: Tensor, dim_size: int | None = None, *, validate: bool = True
    ) -> SegmentPlan:
        """Plan for CSR offsets ``ptr`` (rows already grouped). ``dim_size`` may exceed
        ``len(ptr) - 1``: the extra groups are empty."""
        if validate:
            check_ptr(ptr, None)
        dim_size = check_dim_size(dim_size)
        ptr = ptr.long()
        groups = ptr.numel() - 1
        if dim_size is not None:
            if dim_size < groups:
                raise ValueError(
                    f"dim_size={dim_size} is smaller than the {groups} groups described by ptr"
                )
            if dim_size > groups:
                ptr = torch.cat([ptr, ptr[-1:].expand(dim_size - groups)])
        return cls(ptr.numel() - 1, int(ptr[-1]), ptr=ptr, is_sorted=True)

    def materialize(self) -> SegmentPlan:
        """Compute every derived field now (one sync), so later reductions never sort."""
        for name in ("index", "ptr", "perm", "degrees", "max_degree"):
            getattr(self, name)
        return self

    # -- derived fields -----------------------------------------------------------------------
    @cached_property
    def index(self) -> Tensor:
        return torch.repeat_interleave(
            torch.arange(self.dim_size, device=self.device), self.degrees, output_size=self.num_rows
        )

    @cached_property
    def is_sorted(self) -> bool:
        idx = self.index
        return idx.numel() < 2 or bool((idx[1:] >= idx[:-1]).all())

    @cached_property
    def perm(self) -> Tensor | None:
        if self.is_sorted:
            return None
        return torch.sort(self.index, stable=True).indices

    @cached_property
    def sorted_index(self) -> Tensor:
        """Group id of each row after sorting (``index[perm]``)."""
        return self.index if self.perm is None else self.index[self.perm]

    @cached_property
    def degrees(self) -> Tensor:
        if "ptr" in self.__dict__:
            return self.ptr.diff()
        return torch.bincount(self.index, minlength=self.dim_size)

    @cached_property
    def ptr(self) -> Tensor:
        ptr = self.degrees.new_zeros(self.dim_size + 1)
        torch.cumsum(self.degrees, 0, out=ptr[1:])
        return ptr

    @cached_property
    def max_degree(self) -> int:
        return int(self.degrees.max()) if self.dim_size > 0 else 0

    @property
    def device(self) -> torch.device:
        source = self.__dict__.get("index")
        return (source if source is not None else self.__dict__["ptr"]).device

    @property
    def known_sorted_csr(self) -> bool:
        """Whether the rows are known to be sorted and their offsets are computed, so a CSR
        reduction can run without any sort or host sync."""
        return self.knows("ptr") and self.knows("is_sorted") and self.is_sorted

    def knows(self, name: str) -> bool:
        """Whether a derived field is already computed (backends prefer paths that need no sync)."""
        return name in self.__dict__

    def to(self, device: torch.device | str) -> SegmentPlan:
        """A copy of the plan with every computed tensor moved to ``device``."""
        new = object.__new__(SegmentPlan)
        new.dim_size, new.num_rows = self.dim_size, self.num_rows
        for key, value in self.__dict__.items():
            if key in ("dim_size", "num_rows"):
                continue
            new.__dict__[key] = value.to(device) if isinstance(value, Tensor) else value
        return new

    def __repr__(self) -> str:
        known = [k for k in ("index", "ptr", "perm", "degrees") if self.knows(k)]
        return f"SegmentPlan(dim_size={self.dim_size}, num_rows={self.num_rows}, computed={known})"


# Plans of recently seen index tensors. A model calls its aggregators with the same edge index in
# every layer and every epoch; the plan (sort, offsets, and what aggregators derive from them,
# such as tree schedules) is then computed once. Entries hold the index alive, so the same live
# tensor with an unchanged version counter has unchanged contents -- unless it was written
# behind the counter's back (through ``.data`` or a NumPy array sharing its memory), which
# autograd does not notice either. Inference tensors have no version counter: never cached.
_PLAN_CACHE: OrderedDict[tuple, tuple[weakref.ref, int, SegmentPlan]] = OrderedDict()
PLAN_CACHE_SIZE = 4


def clear_plan_cache() -> None:
    """Forget every cached plan (and release the index tensors it keeps alive)."""
    _PLAN_CACHE.clear()


def plan_for_index(
    index: Tensor, dim_size: int | None, num_rows: int | None = None, validate: bool = True
) -> SegmentPlan:
    """A lazy :class:`SegmentPlan` for ``index``, shared by calls with the same index tensor.

    Views of one tensor (``edge_index[1]``, taken anew by every PyG layer) share their plan; an
    in-place change of the index bumps its version and invalidates the entry. A change that
    bypasses the version counter (writing through ``index.data`` or through a NumPy array that
    shares the index's memory) is not seen: call :func:`clear_plan_cache` after one, or set
    ``gnnagg.segment.plan.PLAN_CACHE_SIZE = 0`` to turn the cache off. Indices created under
    ``torch.inference_mode`` are never cached (they carry no version counter). ``num_rows``,
    when given, is checked against the index's length on every call (it needs no sync).
    """
    if num_rows is not None and isinstance(index, Tensor) and index.numel() != num_rows:
        raise ValueError(
            f"index has {index.numel()} entries but src has {num_rows} rows along the reduced dim"
        )
    dim_size = check_dim_size(dim_size)
    if not isinstance(index, Tensor) or index.is_inference() or PLAN_CACHE_SIZE <= 0:
        return resolve_index_plan(index, dim_size, num_rows, validate)
    base = index._base if index._base is not None else index
    key = (
        id(base),
        index.storage_offset(),
        tuple(index.stride()),
        tuple(index.shape),
        index.dtype,
        index.device,
        dim_size,
    )
    entry = _PLAN_CACHE.get(key)
    if entry is not None:
        ref, version, plan = entry
        if ref() is base and base._version == version:
            _PLAN_CACHE.move_to_end(key)
            return plan
    plan = resolve_index_plan(index, dim_size, num_rows, validate)
    _PLAN_CACHE[key] = (weakref.ref(base), base._version, plan)
    while len(_PLAN_CACHE) > PLAN_CACHE_SIZE:
        _PLAN_CACHE.popitem(last=False)
    return plan


def resolve_index_plan(
    index: Tensor, dim_size: int | None, num_rows: int | None = None, validate: bool = True
) -> SegmentPlan:
    """A lazy, uncached :class:`SegmentPlan` for a COO ``index`` (validated unless asked not
    to; ``dim_size`` defaults to ``index.max() + 1``)."""
    if validate or dim_size is None:
        dim_size = check_index(index, num_rows, dim_size)
    elif index.dim() != 1 or (num_rows is not None and index.numel() != num_rows):
        raise ValueError(f"index must be 1-D with {num_rows} entries, got {tuple(index.shape)}")
    return SegmentPlan(dim_size, index.numel(), index=index.long())
