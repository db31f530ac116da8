r"""Sorted CSR patterns, the form in which masks are built and combined.

A pattern is ``(rowptr, col)``: ``rowptr`` ``[R + 1]`` int64 offsets and ``col`` ``[nnz]`` key
rows, sorted and without duplicates inside each row (int32 while the rows fit in it, int64
otherwise; :func:`index_dtype`). Union and intersection work row by row on sorted lists, by a
vectorised merge: each entry of the smaller pattern is looked up in its row of the larger one by
binary search, and its place in the result is its own index plus the count of the larger's
entries before it. Nothing is ever sorted globally and no ``row * R + col`` key of the larger
pattern is ever made, so a union costs :math:`O(n_a + n_b \log d_a)` time and
:math:`O(n_a + n_b)` memory (:math:`d_a` the largest row of the larger pattern). On the CPU,
when scipy is installed, the same merge runs as scipy's compiled row-by-row merge of canonical
CSR matrices (``A + B`` and ``A.multiply(B)`` on booleans): :math:`O(n_a + n_b)`, one pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = [
    "csr_from_keys",
    "csr_from_sorted_pairs",
    "csr_intersection",
    "csr_rows",
    "csr_union",
    "index_dtype",
    "permute_rows",
    "ranges",
]

_INT32_MAX = 2**31 - 1
# Entries of the larger pattern handled at once by a merge: bounds its temporaries (about
# 20 bytes per entry) whatever the size of the result.
_CHUNK = 1 << 22


def index_dtype(num_rows: int) -> torch.dtype:
    """The compact dtype of column indices: int32 when every row index fits, else int64."""
    return torch.int32 if num_rows <= _INT32_MAX else torch.int64


def csr_rows(rowptr: Tensor) -> Tensor:
    """The row of every entry, ``[nnz]`` int64."""
    degree = rowptr[1:] - rowptr[:-1]
    rows = torch.arange(degree.numel(), device=rowptr.device)
    return torch.repeat_interleave(rows, degree, output_size=int(rowptr[-1]))


def _rowptr(counts: Tensor) -> Tensor:
    rowptr = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, 0, out=rowptr[1:])
    return rowptr


def csr_from_sorted_pairs(rows: Tensor, cols: Tensor, num_rows: int) -> tuple[Tensor, Tensor]:
    """The pattern of pairs already in row-major order without duplicates; O(nnz)."""
    counts = torch.bincount(rows, minlength=num_rows) if rows.numel() else rows.new_zeros(num_rows)
    return _rowptr(counts), cols.to(index_dtype(num_rows))


def csr_from_keys(keys: Tensor, num_rows: int) -> tuple[Tensor, Tensor]:
    """The pattern of sorted duplicate-free int64 keys ``row * num_rows + col``; O(nnz)."""
    rows = torch.div(keys, max(num_rows, 1), rounding_mode="floor")
    return csr_from_sorted_pairs(rows, keys - rows * num_rows, num_rows)


def ranges(starts: Tensor, lengths: Tensor) -> Tensor:
    """``cat([arange(s, s + l) for s, l in zip(starts, lengths)])`` as int64, in O(total)."""
    total = int(lengths.sum()) if lengths.numel() else 0
    offsets = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(offsets - starts, lengths, output_size=total)
    return torch.arange(total, device=starts.device) - shift


def permute_rows(rowptr: Tensor, col: Tensor, order: Tensor) -> tuple[Tensor, Tensor]:
    """The pattern whose row ``r`` is row ``order[r]`` of ``(rowptr, col)``; O(R + nnz)."""
    degree = (rowptr[1:] - rowptr[:-1])[order]
    new_rowptr = _rowptr(degree)
    source = ranges(rowptr[:-1][order], degree)
    return new_rowptr, col[source]


def _search(rowptr: Tensor, col: Tensor, rows: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """For each ``(rows[t], values[t])``: how many entries of row ``rows[t]`` of the pattern are
    smaller than ``values[t]``, and whether the value is in the row.

    A value outside its row's range (or in an empty row) is placed by comparing it with the
    row's first and last entries; only the others are binary-searched, ``ceil(log2(d))``
    vectorised steps for a row of ``d`` entries."""
    start = rowptr[rows]
    degree = rowptr[rows + 1] - start
    nnz = col.numel()
    if nnz == 0:
        return torch.zeros_like(start), torch.zeros_like(start, dtype=torch.bool)
    values = values.to(col.dtype)
    filled = degree > 0
    first = col[start.clamp(max=nnz - 1)]
    last = col[(start + degree - 1).clamp(min=0)]
    found = filled & ((values == first) | (values == last))
    after = torch.where(values > last, degree, degree - 1)
    rank = torch.where(~filled | (values <= first), 0, after)
    inside = (filled & (values > first) & (values < last)).nonzero().view(-1)
    if inside.numel() == 0:
        return rank, found
    # Rows of d entries need ceil(log2(d - 1)) steps: values are searched in groups of equal
    # step counts, so that a few long rows do not set the count for all.
    steps = torch.frexp((degree[inside] - 2).to(torch.float64))[1]
    counts = torch.unique(steps).tolist()
    position = index_dtype(nnz)
    for count in counts:
        group = inside if len(counts) == 1 else inside[steps == count]
        target = values[group]
        # Invariant: the answer lies in [low, high] and col[high] >= value (high starts on the
        # row's last entry, which is larger), so a converged search stays where it is.
        low = start[group].to(position) + 1
        high = (start[group] + degree[group] - 1).to(position)
        for _ in range(max(int(count), 1)):
            middle = (low + high) >> 1
            right = col[middle] < target
            low = torch.where(right, middle + 1, low)
            high = torch.where(right, high, middle)
        found[group] = col[low] == target
        rank[group] = low.to(rank.dtype) - start[group]
    return rank, found


def _scipy_sparse(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> Any:
    """scipy.sparse when both patterns are on the CPU, fit int32 and scipy is installed."""
    if a[1].device.type != "cpu" or b[1].device.type != "cpu":
        return None
    if a[1].numel() + b[1].numel() > _INT32_MAX or a[0].numel() > _INT32_MAX:
        return None
    try:
        from scipy import sparse
    except ImportError:
        return None
    return sparse


def _scipy_matrices(sparse: Any, a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> Any:
    """Both patterns as boolean scipy CSR matrices of one square shape (views of int32
    columns; no copy)."""
    import numpy as np

    width = a[0].numel() - 1
    for _, col in (a, b):
        if col.numel():
            width = max(width, int(col.max()) + 1)
    return [
        sparse.csr_matrix(
            (np.ones(col.numel(), dtype=np.bool_), col.to(torch.int32).numpy(),
             rowptr.to(torch.int32).numpy()),
            shape=(rowptr.numel() - 1, width),
        )
        for rowptr, col in (a, b)
    ]  # fmt: skip


def _from_scipy(matrix: Any, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    return torch.from_numpy(matrix.indptr).to(torch.int64), torch.from_numpy(matrix.indices).to(
        dtype
    )


def csr_union(
    a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor], dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    r"""The row-wise sorted union of two patterns with the same rows, its columns of ``dtype``
    (default: the wider of the two).

    The entries of the smaller pattern are merged into the larger one:
    :math:`O(n_a + n_b \log d)` time for :math:`n_a \ge n_b` entries and :math:`d` the largest
    row of the larger, and the result plus :math:`O(\min(n_a, 2^{22}))` temporaries of memory
    (the larger pattern is walked in chunks of rows).
    """
    dtype = dtype or torch.promote_types(a[1].dtype, b[1].dtype)
    if a[1].numel() < b[1].numel():
        a, b = b, a
    (rowptr_a, col_a), (rowptr_b, col_b) = a, b
    if col_b.numel() == 0:
        return rowptr_a, col_a.to(dtype)
    sparse = _scipy_sparse(a, b)
    if sparse is not None:
        first, second = _scipy_matrices(sparse, a, b)
        return _from_scipy(first + second, dtype)  # boolean: + is or
    # Keep the entries of b that a lacks; each goes after the entries of a that are smaller.
    rows_b = csr_rows(rowptr_b)
    before, found = _search(rowptr_a, col_a, rows_b, col_b)
    keep = ~found
    rows_b, col_b, before = rows_b[keep], col_b[keep], before[keep]
    rowptr_b = _rowptr(torch.bincount(rows_b, minlength=rowptr_a.numel() - 1))
    # Entry t of the kept b lands after rowptr_a[row] + before entries of a and t of b.
    place_b = rowptr_a[rows_b] + before + torch.arange(rows_b.numel(), device=rows_b.device)
    del rows_b, before
    rowptr = rowptr_a + rowptr_b
    col = torch.empty(int(rowptr[-1]), dtype=dtype, device=col_a.device)
    col[place_b] = col_b.to(dtype)
    from_b = torch.zeros(col.numel(), dtype=torch.bool, device=col.device)
    from_b[place_b] = True
    del place_b
    # The entries of a fill the other places in order, a chunk of rows of a at a time.
    num_rows = rowptr_a.numel() - 1
    start_row = 0
    while start_row < num_rows:
        limit = int(rowptr_a[start_row]) + _CHUNK
        end_row = int(torch.searchsorted(rowptr_a, limit, right=True)) - 1
        end_row = min(max(end_row, start_row + 1), num_rows)
        first, last = int(rowptr[start_row]), int(rowptr[end_row])
        source = col_a[int(rowptr_a[start_row]) : int(rowptr_a[end_row])].to(dtype)
        col[first:last].masked_scatter_(~from_b[first:last], source)
        start_row = end_row
    return rowptr, col


def csr_intersection(
    a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor], dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    r"""The row-wise intersection of two patterns with the same rows: the entries of the
    smaller found in the larger, :math:`O(n_b \log d_a)` time for :math:`n_b \le n_a`."""
    dtype = dtype or torch.promote_types(a[1].dtype, b[1].dtype)
    if a[1].numel() < b[1].numel():
        a, b = b, a
    sparse = _scipy_sparse(a, b)
    if sparse is not None:
        first, second = _scipy_matrices(sparse, a, b)
        return _from_scipy(first.multiply(second).tocsr(), dtype)  # boolean: * is and
    (rowptr_a, col_a), (rowptr_b, col_b) = a, b
    rows_b = csr_rows(rowptr_b)
    _, found = _search(rowptr_a, col_a, rows_b, col_b)
    counts = torch.bincount(rows_b[found], minlength=rowptr_b.numel() - 1)
    return _rowptr(counts), col_b[found].to(dtype)
