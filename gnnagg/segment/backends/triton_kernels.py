"""Triton kernel for CSR segment reductions, one program per (group, feature block).

Imported lazily by the Triton backend: importing it needs ``triton``. On a machine without a GPU
the same kernel runs under Triton's interpreter (``TRITON_INTERPRET=1``), which is how CI tests
it. The plain-torch reference it is tested against is the ``torch`` backend.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

REDUCE_CODES = {"sum": 0, "mean": 1, "max": 2, "min": 3}


@triton.jit
def _segment_csr_kernel(
    src_ptr,
    perm_ptr,
    offsets_ptr,
    out_ptr,
    num_features,
    HAS_PERM: tl.constexpr,
    REDUCE: tl.constexpr,
    ACC_DTYPE: tl.constexpr,
    BLOCK_ROWS: tl.constexpr,
    BLOCK_FEATURES: tl.constexpr,
):
    group = tl.program_id(0)
    feature_block = tl.program_id(1)
    start = tl.load(offsets_ptr + group)
    end = tl.load(offsets_ptr + group + 1)
    cols = feature_block * BLOCK_FEATURES + tl.arange(0, BLOCK_FEATURES)
    col_mask = cols < num_features

    # The neutral element fills masked lanes, so one tile reduction at the end is exact.
    if REDUCE == 2:
        neutral = float("-inf")
    elif REDUCE == 3:
        neutral = float("inf")
    else:
        neutral = 0.0
    acc = tl.full((BLOCK_ROWS, BLOCK_FEATURES), neutral, dtype=ACC_DTYPE)
    # Hardware max/min return the non-NaN operand; NaN is counted separately so that it
    # propagates, as in torch.amax/amin.
    nans = tl.zeros((BLOCK_ROWS, BLOCK_FEATURES), dtype=tl.int32)
    for row0 in range(start, end, BLOCK_ROWS):
        rows = row0 + tl.arange(0, BLOCK_ROWS)
        row_mask = rows < end
        if HAS_PERM:
            # Reading through the sort permutation fuses the gather: unsorted input costs one pass.
            src_rows = tl.load(perm_ptr + rows, mask=row_mask, other=0)
        else:
            src_rows = rows
        offsets = src_rows.to(tl.int64)[:, None] * num_features + cols[None, :]
        mask = row_mask[:, None] & col_mask[None, :]
        x = tl.load(src_ptr + offsets, mask=mask, other=neutral).to(ACC_DTYPE)
        if REDUCE == 2:
            acc = tl.maximum(acc, x)
            nans += (x != x).to(tl.int32)
        elif REDUCE == 3:
            acc = tl.minimum(acc, x)
            nans += (x != x).to(tl.int32)
        else:
            acc += x

    count = end - start
    if REDUCE == 2:
        result = tl.max(acc, axis=0)
    elif REDUCE == 3:
        result = tl.min(acc, axis=0)
    else:
        result = tl.sum(acc, axis=0)
    if REDUCE == 1:
        result = result / tl.maximum(count, 1).to(ACC_DTYPE)
    if REDUCE >= 2:
        result = tl.where(tl.sum(nans, axis=0) > 0, float("nan"), result)
        result = tl.where(count > 0, result, 0.0)
    out_offsets = group.to(tl.int64) * num_features + cols
    tl.store(out_ptr + out_offsets, result.to(out_ptr.dtype.element_ty), mask=col_mask)


def segment_csr(src: Tensor, offsets: Tensor, perm: Tensor | None, reduce: str) -> Tensor:
    """Reduce rows of a 2-D ``src`` over CSR ``offsets`` (through ``perm`` when not sorted).

    Accumulates in float64 for float64 input and in float32 otherwise; empty groups give 0.
    """
    num_rows, num_features = src.shape
    num_groups = offsets.numel() - 1
    out = torch.empty((num_groups, num_features), dtype=src.dtype, device=src.device)
    if num_groups == 0 or num_features == 0:
        return out
    block_features = min(triton.next_power_of_2(num_features), 128)
    # Rows per step: enough for a full tile on long groups, but no more than the mean degree
    # needs, since every masked row of a short group costs issue slots for nothing.
    mean_degree = max(num_rows // max(num_groups, 1), 1)
    block_rows = max(min(4096 // block_features, triton.next_power_of_2(mean_degree)), 8)
    grid = (num_groups, triton.cdiv(num_features, block_features))
    _segment_csr_kernel[grid](
        src,
        perm if perm is not None else offsets,
        offsets,
        out,
        num_features,
        HAS_PERM=perm is not None,
        REDUCE=REDUCE_CODES[reduce],
        ACC_DTYPE=tl.float64 if src.dtype == torch.float64 else tl.float32,
        BLOCK_ROWS=block_rows,
        BLOCK_FEATURES=block_features,
    )
    return out
