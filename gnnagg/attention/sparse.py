r"""The sparse backend of :func:`~gnnagg.attention.graph_attention`: scores on the allowed pairs
only, through torch's sparse CSR kernels.

Every head of every row is one row of a ``[R·H, R·H]`` sparse matrix, **heads interleaved**:
head ``h`` of row ``r`` is row ``r·H + h``, and it holds the keys ``c·H + h``. In that
numbering a ``[R, H, D]`` tensor already *is* the ``[R·H, D]`` dense operand, so q, k, v, the
output and their gradients are views, never copies; one sampled dense-dense product (SDDMM)
computes every head's scores and one sparse-dense product (SpMM) every head's weighted sum.

Rows in a random order (a Delaunay mesh's, say) make every kernel gather keys from all over
memory. When the mask's :meth:`~gnnagg.attention.MaskIndex.locality_order` (Morton order of
``pos``, or reverse Cuthill--McKee) puts markedly more pairs close together, the kernels run in
that order: q, k, v are permuted once on the way in and the output once on the way out, which
costs far less than the cache misses it saves.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .mask_index import MaskIndex

__all__ = ["HeadCSR", "SparseAttention", "head_csr", "kernel_order"]

#: The locality order is considered from this many rows on (smaller inputs stay in cache).
LOCALITY_MIN_ROWS = 4096
#: Pairs whose rows are at most this far apart count as close (about a core's cache of rows).
LOCALITY_WINDOW = 1024
#: The locality order is used when it puts this much larger a fraction of the pairs close.
LOCALITY_GAIN = 0.25
#: Pairs sampled to decide (evenly spread over the mask).
LOCALITY_SAMPLE = 1 << 20


class HeadCSR:
    """The mask's CSR with heads interleaved (``[R·H, R·H]``, row ``r·H + h``), its transpose,
    and the row order the kernels run in.

    ``order`` is ``None`` (rows in the mask's order) or the permutation from
    :meth:`MaskIndex.locality_order`, with ``inverse`` its inverse. Indices are int32 when they
    fit. Index memory: ``16·H`` bytes per mask entry (``32·H`` beyond 2³¹ entries) and
    ``8·H + 16`` per row. Built once per (mask, heads) and cached on the :class:`MaskIndex`
    (:func:`head_csr`).
    """

    def __init__(self, mask_index: MaskIndex, heads: int, locality: bool = False) -> None:
        self.order = self.inverse = None
        if locality:
            self.order = mask_index.locality_order()
            self.inverse = torch.empty_like(self.order)
            self.inverse[self.order] = torch.arange(self.order.numel(), device=self.order.device)
            mask_index = locality_mask(mask_index)
        rows, nnz = mask_index.num_rows, mask_index.nnz
        self.heads = heads
        self.size = heads * rows
        self.nnz = heads * nnz
        index = torch.int32 if max(self.nnz, self.size) < 2**31 else torch.int64
        rowptr, col = mask_index.rowptr, mask_index.col
        self.rowptr, self.col, self.row, base, step = _interleave(rowptr, col, heads, index)
        # The transpose: the mask's pairs sorted by key (stable), interleaved the same way;
        # transpose_perm[t] is the stored pair that transposed pair t is.
        by_key = torch.sort(col, stable=True).indices
        key_ptr = torch.zeros_like(rowptr)
        torch.cumsum(torch.bincount(col, minlength=rows), 0, out=key_ptr[1:])
        self.transpose_rowptr, self.transpose_col, _, t_base, t_step = _interleave(
            key_ptr, mask_index.row().index_select(0, by_key), heads, index
        )
        base, step = base.index_select(0, by_key), step.index_select(0, by_key)
        self.transpose_perm = torch.empty(self.nnz, dtype=index, device=col.device)
        for head in range(heads):  # one head at a time: [nnz]-sized temporaries only
            self.transpose_perm[t_base + head * t_step] = (base + head * step).to(index)

    def matrix(self, values: Tensor) -> Tensor:
        return _csr(self.rowptr, self.col, values, self.size)

    def transposed(self, values: Tensor) -> Tensor:
        return _csr(self.transpose_rowptr, self.transpose_col,
                    values.index_select(0, self.transpose_perm), self.size)

    def sddmm(self, left: Tensor, right: Tensor, scale: float = 1.0,
              shift: Tensor | None = None) -> Tensor:
        """``scale·<left[i], right[j]> - shift[i]`` on every stored pair, ``[H·nnz]``: the
        per-row ``shift`` (``[R·H]``) is subtracted inside the same kernel."""
        if shift is None:
            start = torch.zeros(self.nnz, dtype=left.dtype, device=left.device)
            beta = 0.0
        else:
            start = shift.index_select(0, self.row).neg_()
            beta = 1.0
        return torch.sparse.sampled_addmm(self.matrix(start), left, right.t(), beta=beta,
                                          alpha=scale).values()

    def to_plan(self, x: Tensor) -> Tensor:
        """``[R, H, D]`` rows into the kernels' order (a view when the order is the mask's)."""
        return x if self.order is None else x.index_select(0, self.order)

    def from_plan(self, x: Tensor) -> Tensor:
        return x if self.inverse is None else x.index_select(0, self.inverse)


def _interleave(rowptr: Tensor, col: Tensor, heads: int, index: torch.dtype):
    """A CSR ``(rowptr, col)`` over ``R`` rows as the heads-interleaved ``[R·H, R·H]`` CSR:
    its ``rowptr``, ``col`` and ``row`` in ``index`` dtype, and ``base``, ``step``: stored pair
    ``e`` of head ``h`` goes to ``base[e] + h·step[e]``."""
    rows, nnz = rowptr.numel() - 1, col.numel()
    device = col.device
    degree = rowptr.diff()
    row = torch.repeat_interleave(torch.arange(rows, device=device), degree, output_size=nnz)
    # Row r's pairs of head h start at H·rowptr[r] + h·degree[r].
    base = (heads - 1) * rowptr[:-1].index_select(0, row) + torch.arange(nnz, device=device)
    step = degree.index_select(0, row)
    new_col = torch.empty(heads * nnz, dtype=index, device=device)
    new_row = torch.empty(heads * nnz, dtype=index, device=device)
    for head in range(heads):  # one head at a time: [nnz]-sized temporaries only
        position = base + head * step
        new_col[position] = (col * heads + head).to(index)
        new_row[position] = (row * heads + head).to(index)
    new_rowptr = torch.empty(heads * rows + 1, dtype=index, device=device)
    offsets = torch.arange(heads, device=device) * degree.unsqueeze(1)
    starts = heads * rowptr[:-1].unsqueeze(1) + offsets
    new_rowptr[:-1] = starts.reshape(-1)
    new_rowptr[-1] = heads * nnz
    return new_rowptr, new_col, new_row, base, step


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, size: int) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        return torch.sparse_csr_tensor(rowptr, col, values, (size, size),
                                       check_invariants=False)


def spmm(matrix: Tensor, dense: Tensor) -> Tensor:
    """``matrix @ dense`` for a CSR ``matrix``: on the CPU torch's vectorised ``sum`` SpMM
    (faster than the general sparse matmul), elsewhere the vendor library's."""
    if dense.device.type == "cpu":
        return torch.sparse.mm(matrix, dense, "sum")
    return matrix @ dense


def locality_mask(mask_index: MaskIndex) -> MaskIndex:
    """``mask_index`` renumbered by its :meth:`~MaskIndex.locality_order` (cached)."""
    ordered = mask_index._cache.get("locality_mask")
    if ordered is None:
        ordered = mask_index._cache["locality_mask"] = mask_index.reorder(
            mask_index.locality_order()
        )
    return ordered


def _locality_pays(mask_index: MaskIndex) -> bool:
    """Whether the locality order puts :data:`LOCALITY_GAIN` more of the pairs within
    :data:`LOCALITY_WINDOW` rows of each other than the mask's own order."""
    if mask_index.num_rows < LOCALITY_MIN_ROWS or mask_index.nnz == 0:
        return False
    # An evenly spread sample of at most LOCALITY_SAMPLE pairs estimates both fractions.
    every = max(1, mask_index.nnz // LOCALITY_SAMPLE)
    row, col = mask_index.row()[::every], mask_index.col[::every]
    near = int(((row - col).abs() <= LOCALITY_WINDOW).sum()) / row.numel()
    order = mask_index.locality_order()
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    moved = (inverse.index_select(0, row) - inverse.index_select(0, col)).abs()
    return int((moved <= LOCALITY_WINDOW).sum()) / row.numel() >= near + LOCALITY_GAIN


def _cached_locality_pays(mask_index: MaskIndex) -> bool:
    key = ("locality_pays",)
    if key not in mask_index._cache:
        mask_index._cache[key] = _locality_pays(mask_index)
    return mask_index._cache[key]


def kernel_order(mask_index: MaskIndex) -> tuple[MaskIndex, Tensor, Tensor] | None:
    """``(mask, order, inverse)``: ``mask_index`` renumbered in the row order the sparse
    kernels run in, with the permutation (new row ``r`` is old row ``order[r]``) and its
    inverse; ``None`` when that is the mask's own order.

    A layer that permutes its input rows once (``x[order]``, attending with the returned mask)
    and its output back (``out[inverse]``) saves the sparse backend from permuting q, k, v,
    the output and their gradients; the result is the same. Cached.
    """
    if not _cached_locality_pays(mask_index):
        return None
    key = ("kernel_order",)
    if key not in mask_index._cache:
        order = mask_index.locality_order()
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        mask_index._cache[key] = (locality_mask(mask_index), order, inverse)
    return mask_index._cache[key]


def head_csr(mask_index: MaskIndex, heads: int, locality: bool | None = None) -> HeadCSR:
    """The cached :class:`HeadCSR` of ``mask_index`` for ``heads`` heads; ``locality``
    ``None`` uses the locality order where it pays (:func:`_locality_pays`)."""
    if locality is None:
        locality = _cached_locality_pays(mask_index)
    key = ("head_csr", heads, bool(locality))
    if key not in mask_index._cache:
        mask_index._cache[key] = HeadCSR(mask_index, heads, bool(locality))
    return mask_index._cache[key]


def _dropout_keep(seed: int, size: int, p: float, device: torch.device) -> Tensor:
    """The same keep-mask in forward and in backward, from a generator seeded per call."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.rand(size, generator=generator, device=device) >= p


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the kernels and the softmax statistics use: float32 for half inputs."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class SparseAttention(torch.autograd.Function):
    """Attention computed on the stored pairs only, through sparse CSR kernels.

    Forward: scores by SDDMM, a softmax over each CSR row (row max and sum by segment
    reductions), output by SpMM. It saves q, k, v and the output in the kernels' row order
    (the inputs themselves when that is the mask's order) and the ``[R·H]`` log-sum-exps,
    never the ``[H·nnz]`` weights: backward recomputes them with one SDDMM that subtracts the
    log-sum-exp in the kernel, as flash attention does, then uses one more SDDMM and three
    SpMMs. Half-precision inputs are stored in their dtype and computed in float32 (scores,
    row max, log-sum-exp, weights); the output and gradients are in the input dtype.
    """

    @staticmethod
    def forward(ctx, q, k, v, plan, scale, dropout, seed):
        rows, heads, _ = q.shape
        acc = compute_dtype(q.dtype)
        with torch.autocast(q.device.type, enabled=False):
            qp, kp, vp = (plan.to_plan(t) for t in (q, k, v))
            scores = plan.sddmm(_flat(qp, acc), _flat(kp, acc), scale)
            offsets = plan.rowptr
            row_max = torch.segment_reduce(scores, "max", offsets=offsets)
            weights = scores.sub_(row_max.index_select(0, plan.row)).exp_()
            total = torch.segment_reduce(weights, "sum", offsets=offsets)
            weights.div_(total.index_select(0, plan.row))
            lse = total.log_().add_(row_max)
            if dropout > 0:
                weights.mul_(_dropout_keep(seed, plan.nnz, dropout, q.device)).div_(1 - dropout)
            out = spmm(plan.matrix(weights), _flat(vp, acc)).to(v.dtype)
        ctx.save_for_backward(qp, kp, vp, out, lse)
        ctx.plan, ctx.scale, ctx.dropout, ctx.seed = plan, scale, dropout, seed
        return plan.from_plan(out.view(rows, heads, -1))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        qp, kp, vp, out, lse = ctx.saved_tensors
        plan, scale, dropout, seed = ctx.plan, ctx.scale, ctx.dropout, ctx.seed
        acc = lse.dtype
        with torch.autocast(grad_out.device.type, enabled=False):
            qh, kh, vh = (_flat(t, acc) for t in (qp, kp, vp))
            grad_h = _flat(plan.to_plan(grad_out), acc)
            weights = plan.sddmm(qh, kh, scale, shift=lse).exp_()
            # delta_i = sum_j p_ij dP_ij = <dout_i, out_i>: the softmax backward without weights.
            delta = torch.sum(grad_h * out, dim=-1)
            if dropout > 0:
                kept = _dropout_keep(seed, plan.nnz, dropout, qp.device).to(acc).div_(1 - dropout)
                shifted = plan.sddmm(grad_h, vh).mul_(kept).sub_(delta.index_select(0, plan.row))
                used = weights * kept
            else:
                shifted = plan.sddmm(grad_h, vh, shift=delta)
                used = weights
            # Each gradient leaves the kernels' order as soon as it is made.
            grad_v = _from_flat(spmm(plan.transposed(used), grad_h), vp, plan)
            del used
            grad_scores = weights.mul_(shifted).mul_(scale)
            del shifted
            grad_q = _from_flat(spmm(plan.matrix(grad_scores), kh), qp, plan)
            grad_k = _from_flat(spmm(plan.transposed(grad_scores), qh), kp, plan)
        return grad_q, grad_k, grad_v, None, None, None, None


def _flat(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``[R, H, D]`` as the kernels' ``[R·H, D]`` operand in ``dtype`` (a view if it can be)."""
    return x.reshape(x.size(0) * x.size(1), x.size(-1)).to(dtype)


def _from_flat(grad: Tensor, like: Tensor, plan: HeadCSR) -> Tensor:
    return plan.from_plan(grad.view(like.shape)).to(like.dtype)
