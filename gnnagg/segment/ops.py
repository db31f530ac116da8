"""The public reductions: ``segment`` and ``segment_softmax``.

One signature convention throughout (torch_scatter's): ``src``, then either a COO ``index`` (any
order) or CSR ``ptr`` offsets, ``dim_size``, ``dim``. A :class:`SegmentPlan` may replace
``index``/``ptr`` to reuse one grouping. Backends implement five basic reductions; ``var``, ``std``,
``logsumexp`` and the softmax are built here from those, so every backend gets them.

Conventions: empty groups give 0 for every reduction but ``mul``, whose empty product is 1 (its
identity, as in PyG and torch_scatter); ``reduce="add"`` and ``"prod"`` are accepted for ``sum``
and ``mul`` (PyG's, torch_scatter's and torch's names); float16/bfloat16 inputs accumulate in
float32 and return their own dtype; gradients of a tied max/min are split evenly between the tied
rows (the ``torch_scatter`` backend gives them to one row); ``var``/``std`` are the population
(biased) statistics, as PyG's ``VarAggregation``/``StdAggregation``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_allocation, check_bool, check_int, check_tensor
from .backends import BASIC_REDUCTIONS, get_backend
from .backends.torch_native import TorchBackend
from .plan import SegmentPlan, resolve_plan

__all__ = ["REDUCE_ALIASES", "REDUCTIONS", "broadcast_to_rows", "segment", "segment_softmax"]

REDUCTIONS = (*BASIC_REDUCTIONS, "var", "std", "logsumexp")
#: Other names for reductions, as PyG's and torch_scatter's ``reduce=`` (and torch's) accept.
REDUCE_ALIASES = {"add": "sum", "prod": "mul"}
_LOW_PRECISION = (torch.float16, torch.bfloat16)
_SRC_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TRACED = TorchBackend()


def _check_src(src: Tensor, dim: int) -> int:
    check_tensor(src, "src")
    if src.layout != torch.strided:
        raise TypeError(
            f"src must be a dense (strided) tensor, got layout {src.layout} (convert it with "
            ".to_dense(), or reduce a sparse matrix with torch.sparse ops)"
        )
    if not src.is_floating_point():
        raise TypeError(f"src must be a floating-point tensor, got dtype {src.dtype}")
    if src.dtype not in _SRC_DTYPES:
        # float8 formats are storage formats: no reduction kernel takes them.
        raise TypeError(
            f"src must be float16, bfloat16, float32 or float64, got dtype {src.dtype} "
            "(convert it, e.g. with .float())"
        )
    if src.dim() == 0:
        raise ValueError("src must have at least one dimension")
    dim = check_int(dim, "dim")
    if not -src.dim() <= dim < src.dim():
        raise ValueError(f"dim={dim} is out of range for src with {src.dim()} dimensions")
    return dim % src.dim()


def _plan_on_device(src, dim, index, ptr, dim_size, plan, validate) -> SegmentPlan:
    validate = check_bool(validate, "validate")
    plan = resolve_plan(src.shape[dim], index, ptr, dim_size, plan, validate=validate)
    if plan.device != src.device:
        raise ValueError(f"index/ptr/plan is on {plan.device} but src is on {src.device}")
    return plan


def _check_output_fits(src: Tensor, dim: int, plan: SegmentPlan) -> None:
    if torch.compiler.is_compiling():
        # Reading the free memory is no graph operation; the allocator reports a failure.
        return
    # The output has dim_size rows of src's other dimensions; low precision works in float32.
    row_values = math.prod(size for axis, size in enumerate(src.shape) if axis != dim)
    itemsize = 4 if src.dtype in _LOW_PRECISION else src.element_size()
    check_allocation(
        plan.dim_size * row_values * itemsize,
        f"the output of dim_size={plan.dim_size} groups of {row_values} {src.dtype} values",
        src.device,
    )


def broadcast_to_rows(values: Tensor, plan: SegmentPlan, dim: int = 0) -> Tensor:
    """Send each group's value back to every row of the group (the inverse of a reduction)."""
    return values.index_select(dim, plan.index)


def _basic(src0: Tensor, plan: SegmentPlan, reduce: str, backend: str | None) -> Tensor:
    """A basic reduction over dim 0, in a dtype the backends accumulate accurately."""
    # Under torch.compile the reduction is traced as torch ops, whose kernels Inductor writes
    # (fused with the arithmetic around them); a backend's own kernels cannot be traced.
    chosen = _TRACED if torch.compiler.is_compiling() else get_backend(backend)
    if src0.dtype in _LOW_PRECISION and not chosen.accumulates_low_precision:
        return chosen.reduce(src0.float(), plan, reduce).to(src0.dtype)
    return chosen.reduce(src0, plan, reduce)


def _variance(src0: Tensor, plan: SegmentPlan, backend: str | None) -> Tensor:
    # Two passes (mean, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2.
    work = src0.float() if src0.dtype in _LOW_PRECISION else src0
    mean = _basic(work, plan, "mean", backend)
    deviation = work - broadcast_to_rows(mean, plan)
    return _basic(deviation * deviation, plan, "mean", backend)


def _sqrt_zero_safe(x: Tensor) -> Tensor:
    # sqrt'(0) is infinite; groups with zero variance get std 0 and gradient 0 instead of NaN.
    # Only exact zeros are special: a NaN variance (NaN or inf in the group) stays NaN.
    zero = x == 0
    return torch.where(zero, 0.0, torch.where(zero, 1.0, x).sqrt())


def _logsumexp(src0: Tensor, plan: SegmentPlan, backend: str | None) -> Tensor:
    work = src0.float() if src0.dtype in _LOW_PRECISION else src0
    shift = _basic(work.detach(), plan, "max", backend)
    shift = torch.where(torch.isfinite(shift), shift, 0.0)
    total = _basic((work - broadcast_to_rows(shift, plan)).exp(), plan, "sum", backend)
    nonempty = (plan.degrees > 0).view(-1, *([1] * (total.dim() - 1)))
    return torch.where(nonempty, torch.where(nonempty, total, 1.0).log() + shift, 0.0)


def segment(
    src: Tensor,
    index: Tensor | None = None,
    ptr: Tensor | None = None,
    dim_size: int | None = None,
    dim: int = 0,
    reduce: str = "sum",
    *,
    plan: SegmentPlan | None = None,
    backend: str | None = None,
    validate: bool = True,
) -> Tensor:
    """Reduce the slices of ``src`` along ``dim`` that share a group.

    Args:
        src: floating-point tensor; its size along ``dim`` is the number of rows.
        index: group id of each row (int64/int32, any order). Mutually exclusive with ``ptr`` and
            ``plan``.
        ptr: CSR offsets (length ``groups + 1``) over rows already sorted by group.
        dim_size: number of groups; defaults to ``index.max() + 1`` / ``len(ptr) - 1``. May be
            larger: the extra groups are empty. A size whose output (or offsets) the device's
            free memory cannot hold is a ``ValueError`` before anything is allocated.
        dim: the dimension holding the rows; every other dimension is carried along.
        reduce: one of ``sum, mean, max, min, mul, var, std, logsumexp``; ``add`` and ``prod``
            are aliases of ``sum`` and ``mul``.
        plan: a :class:`SegmentPlan` to reuse one grouping across calls.
        backend: ``"torch"``, ``"torch_scatter"`` or ``"triton"``; default: the one set by
            :func:`use_backend` (``"torch"`` unless changed).
        validate: check ``index``/``ptr`` (needs a device-to-host sync). Turn off only for
            inputs known to be valid.

    Returns:
        ``src`` with ``dim`` resized to ``dim_size``. An empty group gives 0, except for
        ``mul``, where it gives the empty product 1 (as PyG and torch_scatter).

    ``src`` must be a dense float16, bfloat16, float32 or float64 tensor (float8 formats and
    sparse layouts are a ``TypeError``).

    Under ``torch.compile`` (``fullgraph=True`` included) every reduction traces into the graph
    without a break when ``dim_size`` is given: as torch scatter ops whichever backend is
    selected, with ``index``/``ptr`` checked for shape and dtype but not for their values.
    """
    dim = _check_src(src, dim)
    reduce = REDUCE_ALIASES.get(reduce, reduce) if isinstance(reduce, str) else reduce
    if reduce not in REDUCTIONS:
        raise ValueError(
            f"reduce must be one of {REDUCTIONS} (or an alias: {sorted(REDUCE_ALIASES)}), "
            f"got {reduce!r}"
        )
    plan = _plan_on_device(src, dim, index, ptr, dim_size, plan, validate)
    _check_output_fits(src, dim, plan)
    src0 = src.movedim(dim, 0)
    if reduce in BASIC_REDUCTIONS:
        out = _basic(src0, plan, reduce, backend)
    elif reduce == "logsumexp":
        out = _logsumexp(src0, plan, backend)
    else:
        out = _variance(src0, plan, backend)
        if reduce == "std":
            out = _sqrt_zero_safe(out)
    return out.to(src.dtype).movedim(0, dim)


def segment_softmax(
    src: Tensor,
    index: Tensor | None = None,
    ptr: Tensor | None = None,
    dim_size: int | None = None,
    dim: int = 0,
    *,
    plan: SegmentPlan | None = None,
    backend: str | None = None,
    validate: bool = True,
) -> Tensor:
    """Softmax of ``src`` over the rows of each group (same arguments as :func:`segment`).

    Returns a tensor shaped like ``src`` whose rows in each group sum to 1.
    """
    dim = _check_src(src, dim)
    plan = _plan_on_device(src, dim, index, ptr, dim_size, plan, validate)
    _check_output_fits(src, dim, plan)
    src0 = src.movedim(dim, 0)
    work = src0.float() if src0.dtype in _LOW_PRECISION else src0
    shift = _basic(work.detach(), plan, "max", backend)
    exp = (work - broadcast_to_rows(shift, plan)).exp()
    total = _basic(exp, plan, "sum", backend)
    out = exp / broadcast_to_rows(total, plan)
    return out.to(src.dtype).movedim(0, dim)
