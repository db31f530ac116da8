"""SegmentPlan: everything derived from one grouping of rows, computed once and reused.

A GNN layer stack reduces many message tensors over the same ``index``. Sorting that index,
counting degrees and building CSR offsets is the expensive, synchronising part, so a plan does it
once; every reduction in :mod:`gnnagg.segment` accepts a plan. Derived fields are computed lazily
and cached, so a plan built for one scatter costs nothing beyond what that scatter needs.

A plan is a snapshot: it owns a copy of the index (or offsets) it was built from, so changing
that tensor in place afterwards changes neither the plan nor its results. Everything a plan
holds is computed with inference mode off, so a plan first used under
``torch.inference_mode`` (evaluation) serves training on the same graph afterwards.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import torch
from torch import Tensor

from .._checks import check_allocation, check_bool, check_count, check_tensor

__all__ = [
    "SegmentPlan",
    "check_dim_size",
    "check_index",
    "check_ptr",
    "clear_plan_cache",
    "resolve_plan",
]

_INDEX_DTYPES = (torch.int64, torch.int32)
# What a plan keeps per group: degrees and offsets, int64 each.
_PLAN_BYTES_PER_GROUP = 16
_T = TypeVar("_T")


def check_dim_size(dim_size: object) -> int | None:
    """``dim_size`` as a non-negative Python int (``None`` stays ``None``); a float such as
    ``2.5`` is a ``TypeError`` rather than silently truncated. Under ``torch.compile`` a size
    is kept as it is: converting a symbolic size (``dynamic=True``) would fix its value."""
    if torch.compiler.is_compiling() and not isinstance(dim_size, (float, str, bool)):
        return dim_size
    return None if dim_size is None else check_count(dim_size, "dim_size")


def _check_integer_tensor(tensor: object, name: str) -> None:
    check_tensor(tensor, name)
    if tensor.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {tensor.layout}")
    if tensor.dtype not in _INDEX_DTYPES:
        raise TypeError(f"{name} must be an int64 or int32 tensor, got dtype {tensor.dtype}")


def _refuse_meta(tensor: Tensor, name: str) -> None:
    if tensor.is_meta:
        raise ValueError(
            f"{name} is on the meta device: it has no values to validate or group by (for "
            "shape inference, give dim_size and validate=False)"
        )


def check_index(
    index: Tensor, num_rows: int | None, dim_size: int | None, name: str = "index"
) -> int:
    """Validate a COO group index and return the number of groups.

    Raises ``TypeError`` for a non-integer or sparse tensor and ``ValueError`` for a wrong shape,
    a wrong length, a negative entry, an entry ``>= dim_size``, an index on the meta device
    (it has no values) or a number of groups whose offsets the device cannot hold. Needs one
    device-to-host sync.
    """
    _check_integer_tensor(index, name)
    if index.dim() != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(index.shape)}")
    if num_rows is not None and index.numel() != num_rows:
        raise ValueError(
            f"{name} has {index.numel()} entries but src has {num_rows} rows along the reduced dim"
        )
    dim_size = check_dim_size(dim_size)
    if index.numel() == 0:
        return 0 if dim_size is None else dim_size
    _refuse_meta(index, name)
    lo, hi = torch.aminmax(index)
    lo, hi = int(lo), int(hi)
    if lo < 0:
        raise ValueError(f"{name} contains a negative entry ({lo})")
    if dim_size is None:
        check_allocation(
            (hi + 2) * _PLAN_BYTES_PER_GROUP,
            f"{name} contains {hi}, so dim_size = {name}.max() + 1 = {hi + 1} groups, whose "
            "offsets and degrees",
            index.device,
        )
        return hi + 1
    if hi >= dim_size:
        raise ValueError(f"{name} contains {hi}, out of range for dim_size={dim_size}")
    return dim_size


def check_ptr(ptr: Tensor, num_rows: int | None, name: str = "ptr") -> None:
    """Validate CSR offsets: 1-D dense integer, starts at 0, non-decreasing, ends at
    ``num_rows``."""
    _check_integer_tensor(ptr, name)
    if ptr.dim() != 1 or ptr.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(ptr.shape)}")
    _refuse_meta(ptr, name)
    if int(ptr[0]) != 0:
        raise ValueError(f"{name} must start at 0, got {int(ptr[0])}")
    if ptr.numel() > 1 and bool((ptr[1:] < ptr[:-1]).any()):
        raise ValueError(f"{name} must be non-decreasing")
    if num_rows is not None and int(ptr[-1]) != num_rows:
        raise ValueError(
            f"{name} must end at the number of rows of src ({num_rows}), got {int(ptr[-1])}"
        )


def _check_groups_fit(dim_size: int, device: torch.device) -> None:
    check_allocation(
        (dim_size + 1) * _PLAN_BYTES_PER_GROUP,
        f"dim_size={dim_size} groups, whose offsets and degrees",
        device,
    )


def _outside_inference_mode() -> contextlib.AbstractContextManager:
    # Tensors made under inference mode cannot be saved for backward later; a plan outlives
    # the call that built it (the cache, aggregators' derived data), so it never holds one.
    # A plan built in a compiled graph lives in that graph only.
    if not torch.compiler.is_compiling() and torch.is_inference_mode_enabled():
        return torch.inference_mode(False)
    return contextlib.nullcontext()


def _size(value: int | torch.SymInt) -> int | torch.SymInt:
    return value if torch.compiler.is_compiling() else int(value)


def _own_copy(tensor: Tensor) -> Tensor:
    return tensor.to(torch.long, copy=True, memory_format=torch.contiguous_format)


class _Field:
    """A lazily computed plan field, stored in the instance on first access.

    Computed with inference mode off (see :func:`_outside_inference_mode`). Threads racing
    on a fresh field may compute it twice; all of them return the value stored first.
    """

    def __init__(self, compute: Callable[[SegmentPlan], Any]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, plan: SegmentPlan | None, owner: type | None = None) -> Any:
        if plan is None:
            return self
        with _outside_inference_mode():
            value = self.compute(plan)
        return plan.__dict__.setdefault(self.name, value)


_FIELDS = ("index", "ptr", "is_sorted", "perm", "sorted_index", "degrees", "max_degree")


class SegmentPlan:
    """One grouping of ``num_rows`` rows into ``dim_size`` groups.

    Build it with :meth:`from_index` (COO: a group id per row, any order) or :meth:`from_ptr`
    (CSR offsets over rows already sorted by group); both check their input (the constructor
    is private). Derived fields:

    * ``index`` -- group id of each row, in the rows' own order;
    * ``perm`` -- stable permutation that sorts the rows by group (``None`` when already sorted);
    * ``ptr`` -- CSR offsets of the sorted rows, length ``dim_size + 1``;
    * ``degrees`` -- rows per group; ``is_sorted``; ``max_degree``.

    What layers above derive from a plan (tree schedules, plans over regrouped rows) is kept
    with it through :meth:`derived`. A plan owns copies of the tensors it was built from: an
    in-place change of the caller's index afterwards does not reach it.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError(
            "build a SegmentPlan with SegmentPlan.from_index(index, dim_size) or "
            "SegmentPlan.from_ptr(ptr, dim_size), which check their input"
        )

    @classmethod
    def _trusted(
        cls,
        dim_size: int,
        num_rows: int,
        *,
        index: Tensor | None = None,
        ptr: Tensor | None = None,
        is_sorted: bool | None = None,
    ) -> SegmentPlan:
        # The factories' common end: inputs are checked and owned by the plan already.
        plan = object.__new__(cls)
        # Sizes stay symbolic in a graph compiled with dynamic shapes (int() would fix them).
        plan.dim_size, plan.num_rows = _size(dim_size), _size(num_rows)
        plan._derived = {}
        if index is not None:
            plan.__dict__["index"] = index
        if ptr is not None:
            plan.__dict__["ptr"] = ptr
        if is_sorted is not None:
            plan.__dict__["is_sorted"] = is_sorted
        return plan

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
        """Plan for a COO index (any order); the plan keeps its own copy of ``index``.

        ``dim_size`` defaults to ``index.max() + 1``. ``eager=True`` computes the sort, offsets
        and degrees now (what a model reusing the plan wants); ``eager=False`` defers each field
        until a reduction needs it. ``validate=False`` skips the checks that need a sync (range
        of the entries); the type, shape and size checks always run.
        """
        plan = resolve_plan(None, index=index, dim_size=dim_size, validate=validate)
        if check_bool(eager, "eager") and not plan.device.type == "meta":
            plan.materialize()
        return plan

    @classmethod
    def from_ptr(
        cls, ptr: Tensor, dim_size: int | None = None, *, validate: bool = True
    ) -> SegmentPlan:
        """Plan for CSR offsets ``ptr`` (rows already grouped); the plan keeps its own copy.
        ``dim_size`` may exceed ``len(ptr) - 1``: the extra groups are empty."""
        return resolve_plan(None, ptr=ptr, dim_size=dim_size, validate=validate)

    def materialize(self) -> SegmentPlan:
        """Compute every derived field now (one sync), so later reductions never sort."""
        for name in ("index", "ptr", "perm", "degrees", "max_degree"):
            getattr(self, name)
        return self

    # -- derived fields -----------------------------------------------------------------------
    @_Field
    def index(self) -> Tensor:
        """Group id of each row, in the rows' own order."""
        return torch.repeat_interleave(
            torch.arange(self.dim_size, device=self.device), self.degrees, output_size=self.num_rows
        )

    @_Field
    def is_sorted(self) -> bool:
        """Whether the rows are sorted by group already."""
        idx = self.index
        return idx.numel() < 2 or bool((idx[1:] >= idx[:-1]).all())

    @_Field
    def perm(self) -> Tensor | None:
        """Stable permutation sorting the rows by group; ``None`` when they are sorted."""
        if self.is_sorted:
            return None
        return torch.sort(self.index, stable=True).indices

    @_Field
    def sorted_index(self) -> Tensor:
        """Group id of each row after sorting (``index[perm]``)."""
        return self.index if self.perm is None else self.index[self.perm]

    @_Field
    def degrees(self) -> Tensor:
        """Rows per group."""
        if "ptr" in self.__dict__:
            return self.ptr.diff()
        if torch.compiler.is_compiling():
            # bincount's length depends on the values; a scatter into dim_size counts traces.
            counts = self.index.new_zeros(self.dim_size)
            return counts.scatter_add_(0, self.index, torch.ones_like(self.index))
        return torch.bincount(self.index, minlength=self.dim_size)

    @_Field
    def ptr(self) -> Tensor:
        """CSR offsets of the sorted rows, ``dim_size + 1`` of them."""
        ptr = self.degrees.new_zeros(self.dim_size + 1)
        torch.cumsum(self.degrees, 0, out=ptr[1:])
        return ptr

    @_Field
    def max_degree(self) -> int:
        """The largest number of rows in one group (0 without groups)."""
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

    # -- data derived by the layers above -----------------------------------------------------
    def derived(self, key: Hashable, build: Callable[[SegmentPlan], _T]) -> _T:
        """What a layer above derives from this plan alone, built once by ``build(self)``.

        Aggregators keep their per-grouping data here (a tree schedule, a plan over the
        regrouped rows) so that every layer and epoch sharing the plan shares it. ``key``
        names the data (use a dotted name of the module that builds it). ``build`` runs with
        inference mode off, so what it returns serves both evaluation and training; it must
        depend on the plan only (never on parameters or message values). :meth:`to` starts
        the moved plan without derived data: each entry is rebuilt on the new device when it
        is first asked for. Threads racing on a fresh key may build it twice; all of them
        get the value stored first.
        """
        try:
            return self._derived[key]
        except KeyError:
            pass
        with _outside_inference_mode():
            value = build(self)
        return self._derived.setdefault(key, value)

    def to(self, device: torch.device | str) -> SegmentPlan:
        """The plan on ``device``: ``self`` when it is there already, else a copy with every
        computed field moved and no derived data (rebuilt there on first use)."""
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"device: {error}") from None
        if device == self.device:
            return self
        new = SegmentPlan._trusted(self.dim_size, self.num_rows)
        with _outside_inference_mode():
            for name in _FIELDS:
                if name in self.__dict__:
                    value = self.__dict__[name]
                    new.__dict__[name] = value.to(device) if isinstance(value, Tensor) else value
        return new

    def __repr__(self) -> str:
        known = [k for k in ("index", "ptr", "perm", "degrees") if self.knows(k)]
        return f"SegmentPlan(dim_size={self.dim_size}, num_rows={self.num_rows}, computed={known})"


def _plan_from_index(
    index: Tensor, dim_size: int | None, num_rows: int | None, validate: bool
) -> SegmentPlan:
    if validate or dim_size is None:
        dim_size = check_index(index, num_rows, dim_size)
    else:
        _check_integer_tensor(index, "index")
        if index.dim() != 1 or (num_rows is not None and index.numel() != num_rows):
            expected = "" if num_rows is None else f" with {num_rows} entries"
            raise ValueError(f"index must be 1-D{expected}, got shape {tuple(index.shape)}")
    _check_groups_fit(dim_size, index.device)
    with _outside_inference_mode():
        owned = _own_copy(index)
    return SegmentPlan._trusted(dim_size, owned.numel(), index=owned)


def _plan_from_ptr(
    ptr: Tensor, dim_size: int | None, num_rows: int | None, validate: bool
) -> SegmentPlan:
    if validate:
        check_ptr(ptr, num_rows)
    else:
        _check_integer_tensor(ptr, "ptr")
        if ptr.dim() != 1 or ptr.numel() == 0:
            raise ValueError(f"ptr must be a non-empty 1-D tensor, got shape {tuple(ptr.shape)}")
        _refuse_meta(ptr, "ptr")
    groups = ptr.numel() - 1
    if dim_size is not None and dim_size < groups:
        raise ValueError(
            f"dim_size={dim_size} is smaller than the {groups} groups described by ptr"
        )
    dim_size = groups if dim_size is None else dim_size
    _check_groups_fit(dim_size, ptr.device)
    rows = int(ptr[-1])
    if num_rows is not None and rows != num_rows:
        raise ValueError(f"ptr must end at the number of rows of src ({num_rows}), got {rows}")
    # The plan derives a group id per row from the offsets when asked (plan.index).
    check_allocation(rows * 8, f"ptr ends at {rows} rows, whose group ids", ptr.device)
    with _outside_inference_mode():
        owned = _own_copy(ptr)
        if dim_size > groups:
            owned = torch.cat([owned, owned[-1:].expand(dim_size - groups)])
    return SegmentPlan._trusted(dim_size, rows, ptr=owned, is_sorted=True)


# Plans of recently seen index tensors. A model calls its aggregators with the same edge index in
# every layer and every epoch; the plan (sort, offsets, and what aggregators derive from them,
# such as tree schedules) is then computed once. An entry is served only while the same live
# tensor has an unchanged version counter, so its contents are unchanged -- unless it was
# written behind the counter's back (through ``.data`` or a NumPy array sharing its memory),
# which autograd does not notice either. Inference tensors have no version counter: never
# cached. The lock makes lookups, insertions and evictions from several threads safe.
_PLAN_CACHE: OrderedDict[tuple, tuple[weakref.ref, int, SegmentPlan]] = OrderedDict()
_PLAN_CACHE_LOCK = threading.Lock()
PLAN_CACHE_SIZE = 4


def clear_plan_cache() -> None:
    """Forget every cached plan."""
    with _PLAN_CACHE_LOCK:
        _PLAN_CACHE.clear()


def _cached_plan_from_index(
    index: Tensor, dim_size: int | None, num_rows: int | None, validate: bool
) -> SegmentPlan:
    if index.is_inference() or PLAN_CACHE_SIZE <= 0:
        return _plan_from_index(index, dim_size, num_rows, validate)
    _check_integer_tensor(index, "index")
    if num_rows is not None and index.numel() != num_rows:
        raise ValueError(
            f"index has {index.numel()} entries but src has {num_rows} rows along the reduced dim"
        )
    base = index._base if index._base is not None else index
    key = (
        id(base),
        index.storage_offset(),
        tuple(index.stride()),
        tuple(index.shape),
        index.dtype,
        index.device,
        dim_size,
        validate,
    )
    with _PLAN_CACHE_LOCK:
        entry = _PLAN_CACHE.get(key)
        if entry is not None:
            ref, version, plan = entry
            if ref() is base and base._version == version:
                _PLAN_CACHE.move_to_end(key)
                return plan
    # Built outside the lock: validation syncs with the device, and other threads may go on.
    version = base._version
    plan = _plan_from_index(index, dim_size, num_rows, validate)
    with _PLAN_CACHE_LOCK:
        _PLAN_CACHE[key] = (weakref.ref(base), version, plan)
        _PLAN_CACHE.move_to_end(key)
        while len(_PLAN_CACHE) > PLAN_CACHE_SIZE:
            _PLAN_CACHE.popitem(last=False)
    return plan


def _traced_plan(
    num_rows: int | None, index: Tensor | None, ptr: Tensor | None, dim_size: int | None
) -> SegmentPlan:
    """The plan of a reduction traced by ``torch.compile``: only what traces into the graph.

    Nothing here reads values on the host: no range check, no sort, no ``is_sorted`` test, no
    cache (keyed by tensor identity, which a graph does not have). Offsets become a group id
    per row, so every reduction takes the scatter path, whose kernel Inductor writes and fuses
    with the arithmetic around it. Shapes and dtypes are still checked; a ``dim_size`` left out
    is ``index.max() + 1``, a value the graph must stop for.
    """
    if ptr is not None:
        _check_integer_tensor(ptr, "ptr")
        if ptr.dim() != 1 or ptr.numel() == 0:
            raise ValueError(f"ptr must be a non-empty 1-D tensor, got shape {tuple(ptr.shape)}")
        groups = ptr.numel() - 1
        rows = int(ptr[-1]) if num_rows is None else num_rows
        dim_size = groups if dim_size is None else dim_size
        group = torch.arange(groups, device=ptr.device)
        index = group.repeat_interleave(ptr.diff(), output_size=rows)
        return SegmentPlan._trusted(dim_size, rows, index=index, is_sorted=True)
    _check_integer_tensor(index, "index")
    if index.dim() != 1 or (num_rows is not None and index.numel() != num_rows):
        expected = "" if num_rows is None else f" with {num_rows} entries"
        raise ValueError(f"index must be 1-D{expected}, got shape {tuple(index.shape)}")
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() else 0
    return SegmentPlan._trusted(dim_size, index.numel(), index=index.long())


def resolve_plan(
    num_rows: int | None,
    index: Tensor | None = None,
    ptr: Tensor | None = None,
    dim_size: int | None = None,
    plan: SegmentPlan | None = None,
    *,
    validate: bool = True,
    cache: bool = False,
) -> SegmentPlan:
    """Turn the ``index``/``ptr``/``plan`` arguments of a reduction into one plan.

    Exactly one of the three must be given; ``num_rows`` (the rows of ``src``, ``None`` when
    there is no ``src`` yet) is checked against it. A plan built here is lazy: it sorts nothing
    unless a reduction asks for it. ``validate=False`` skips the checks that need a
    device-to-host sync (the range of ``index``, the order of ``ptr``); shapes and sizes are
    always checked.

    With ``cache=True`` an ``index`` is looked up in a small cache of recent index tensors, so
    that the layers and epochs of a model over one graph share one plan (and what aggregators
    derive from it). Views of one tensor (``edge_index[1]``, taken anew by every PyG layer)
    share their plan; an in-place change of the index bumps its version and invalidates the
    entry. A change that bypasses the version counter (writing through ``index.data`` or a
    NumPy array sharing the index's memory) is not seen: call :func:`clear_plan_cache` after
    one, or set ``gnnagg.segment.plan.PLAN_CACHE_SIZE = 0`` to turn the cache off. Indices
    created under ``torch.inference_mode`` are never cached (they carry no version counter).

    Under ``torch.compile`` an ``index`` or ``ptr`` gives a plan that traces into the graph
    (no validation of values, no cache, no sort); a ``plan`` built outside the compiled region
    is used as it is.
    """
    dim_size = check_dim_size(dim_size)
    given = [name for name, v in (("index", index), ("ptr", ptr), ("plan", plan)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of index, ptr or plan (got {given or 'none'})")
    if plan is None and torch.compiler.is_compiling():
        return _traced_plan(num_rows, index, ptr, dim_size)
    if plan is not None:
        if not isinstance(plan, SegmentPlan):
            raise TypeError(f"plan must be a SegmentPlan, got {type(plan).__name__}")
        if num_rows is not None and plan.num_rows != num_rows:
            raise ValueError(f"plan covers {plan.num_rows} rows but src has {num_rows}")
        if dim_size is not None and dim_size != plan.dim_size:
            raise ValueError(f"dim_size={dim_size} disagrees with plan.dim_size={plan.dim_size}")
        return plan
    if ptr is not None:
        return _plan_from_ptr(ptr, dim_size, num_rows, validate)
    if cache and isinstance(index, Tensor):
        return _cached_plan_from_index(index, dim_size, num_rows, validate)
    return _plan_from_index(index, dim_size, num_rows, validate)
