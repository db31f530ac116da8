r"""Masked multi-head attention over a :class:`MaskIndex`: one op, three backends.

.. math::

    \mathrm{out}_i = \sum_{j \in \mathcal{N}(i)} \operatorname{softmax}_j
        \big(s \, \langle q_i, k_j \rangle\big) \, v_j,
    \qquad s = 1/\sqrt{d} \text{ unless given}

over the keys :math:`\mathcal{N}(i)` the mask allows. Rows without keys give 0.

* ``"sparse"`` -- scores only on allowed pairs through sparse CSR kernels (SDDMM, row softmax,
  SpMM), all heads in one block-diagonal product, scores recomputed in backward
  (:class:`SparseAttention`); any device, float16/bfloat16/float32/float64, dropout.
* ``"flex"`` -- ``torch.nn.attention.flex_attention`` with the mask's ``BlockMask``, rows in a
  locality order (tokens first, then Morton or reverse Cuthill--McKee); training on CUDA, forward
  only on CPU (torch's CPU backward is not implemented).
* ``"dense"`` -- ``scaled_dot_product_attention`` with a boolean ``[R, R]`` mask; small graphs.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._checks import check_allocation
from .mask_index import DEFAULT_DENSE_LIMIT, MaskIndex

__all__ = [
    "BACKENDS", "DenseAttention", "HeadCSR", "SparseAttention", "graph_attention", "head_csr",
]

#: Values of ``backend=``: which implementation computes the attention.
BACKENDS = ("auto", "sparse", "flex", "dense")

#: ``"auto"`` uses the dense backend up to this many rows.
AUTO_DENSE_ROWS = 512
#: Eager FlexAttention materialises every score: beyond this many ``heads × R × R`` entries the
#: flex backend compiles the kernel instead.
EAGER_FLEX_LIMIT = 1 << 24


class HeadCSR:
    """The mask's CSR repeated block-diagonally once per head, and its transpose.

    Head ``h`` of row ``r`` is row ``h * R + r`` of an ``[H·R, H·R]`` sparse matrix, so one
    sampled dense-dense product (SDDMM) computes every head's scores on the allowed pairs and one
    sparse-dense product (SpMM) every head's weighted sum. Index memory O(H·nnz); built once per
    (mask, heads) and cached on the :class:`MaskIndex`.
    """

    def __init__(self, mask_index: MaskIndex, heads: int) -> None:
        rows, nnz, device = mask_index.num_rows, mask_index.nnz, mask_index.device
        head = torch.arange(heads, device=device)
        self.size = heads * rows
        self.nnz = heads * nnz
        self.rowptr = torch.cat(
            [(mask_index.rowptr[:-1].unsqueeze(0) + (head * nnz).unsqueeze(1)).reshape(-1),
             torch.tensor([heads * nnz], device=device)]
        )
        self.col = (mask_index.col.unsqueeze(0) + (head * rows).unsqueeze(1)).reshape(-1)
        self.row = (mask_index.row().unsqueeze(0) + (head * rows).unsqueeze(1)).reshape(-1)
        # The transpose: pairs sorted by key row; values are permuted with transpose_perm.
        self.transpose_perm = torch.sort(self.col, stable=True).indices
        self.transpose_col = self.row[self.transpose_perm]
        counts = torch.bincount(self.col, minlength=self.size)
        self.transpose_rowptr = torch.zeros(self.size + 1, dtype=torch.int64, device=device)
        torch.cumsum(counts, 0, out=self.transpose_rowptr[1:])

    def matrix(self, values: Tensor) -> Tensor:
        return _csr(self.rowptr, self.col, values, self.size)

    def transposed(self, values: Tensor) -> Tensor:
        return _csr(self.transpose_rowptr, self.transpose_col,
                    values.index_select(0, self.transpose_perm), self.size)

    def sddmm(self, left: Tensor, right: Tensor, scale: float = 1.0) -> Tensor:
        """``scale * <left[i], right[j]>`` on every stored pair, as a ``[H·nnz]`` vector."""
        pattern = self.matrix(torch.zeros(self.nnz, dtype=left.dtype, device=left.device))
        return torch.sparse.sampled_addmm(pattern, left, right.t(), beta=0.0,
                                          alpha=scale).values()


def _csr(rowptr: Tensor, col: Tensor, values: Tensor, size: int) -> Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        return torch.sparse_csr_tensor(rowptr, col, values, (size, size),
                                       check_invariants=False)


def head_csr(mask_index: MaskIndex, heads: int) -> HeadCSR:
    """The cached :class:`HeadCSR` of ``mask_index`` for ``heads`` heads."""
    key = ("head_csr", heads)
    if key not in mask_index._cache:
        mask_index._cache[key] = HeadCSR(mask_index, heads)
    return mask_index._cache[key]


def _dropout_keep(seed: int, size: int, p: float, device: torch.device) -> Tensor:
    """The same keep-mask in forward and in backward, from a generator seeded per call."""
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.rand(size, generator=generator, device=device) >= p


def _heads_first(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``[R, H, D]`` to a contiguous ``[H·R, D]`` in ``dtype``."""
    return x.transpose(0, 1).reshape(x.size(0) * x.size(1), x.size(-1)).to(dtype)


def _rows_first(x: Tensor, heads: int) -> Tensor:
    return x.view(heads, x.size(0) // heads, x.size(-1)).transpose(0, 1)


class SparseAttention(torch.autograd.Function):
    """Attention computed on the stored pairs only, through sparse CSR kernels.

    Forward: scores by SDDMM, softmax over each CSR row, output by SpMM. It saves the
    ``[H·R]`` log-sum-exps, not the ``[H·nnz]`` weights; backward recomputes the scores (one
    SDDMM) and uses two more SDDMM/SpMM pairs. No ``[nnz, heads, dim]`` tensor and no dense
    score matrix ever exist: memory O(nnz·H + R·H·D). Half-precision inputs are computed in
    float32.
    """

    @staticmethod
    def forward(ctx, q, k, v, plan, scale, dropout, seed):
        rows, heads, _ = q.shape
        acc = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
        qh, kh, vh = (_heads_first(t, acc) for t in (q, k, v))
        scores = plan.sddmm(qh, kh, scale)
        row_max = torch.zeros(plan.size, dtype=acc, device=q.device)
        row_max.scatter_reduce_(0, plan.row, scores, "amax", include_self=False)
        weights = (scores - row_max.index_select(0, plan.row)).exp_()
        total = torch.zeros(plan.size, dtype=acc, device=q.device).index_add_(0, plan.row, weights)
        lse = row_max + total.log()
        weights.div_(total.index_select(0, plan.row))
        if dropout > 0:
            weights = weights * _dropout_keep(seed, plan.nnz, dropout, q.device) / (1 - dropout)
        out = plan.matrix(weights) @ vh
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan, ctx.scale, ctx.dropout, ctx.seed = plan, scale, dropout, seed
        return _rows_first(out, heads).to(v.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        plan, scale, dropout, seed = ctx.plan, ctx.scale, ctx.dropout, ctx.seed
        heads = q.size(1)
        acc = lse.dtype
        qh, kh, vh = (_heads_first(t, acc) for t in (q, k, v))
        grad_h = _heads_first(grad_out, acc)
        weights = (plan.sddmm(qh, kh, scale) - lse.index_select(0, plan.row)).exp_()
        grad_weights = plan.sddmm(grad_h, vh)
        if dropout > 0:
            kept = _dropout_keep(seed, plan.nnz, dropout, q.device).to(acc) / (1 - dropout)
            grad_weights = grad_weights * kept
            used = weights * kept
        else:
            used = weights
        grad_v = plan.transposed(used) @ grad_h
        # delta_i = sum_j p_ij dP_ij = <dout_i, out_i>: the softmax backward without weights.
        delta = torch.sum(grad_h * out, dim=-1)
        grad_scores = weights.mul_(grad_weights - delta.index_select(0, plan.row)).mul_(scale)
        grad_q = plan.matrix(grad_scores) @ kh
        grad_k = plan.transposed(grad_scores) @ qh
        return (
            _rows_first(grad_q, heads).to(q.dtype),
            _rows_first(grad_k, heads).to(k.dtype),
            _rows_first(grad_v, heads).to(v.dtype),
            None,
            None,
            None,
            None,
        )


def graph_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask_index: MaskIndex,
    scale: float | None = None,
    dropout: float = 0.0,
    backend: str = "auto",
) -> Tensor:
    r"""Multi-head attention of each row over the keys ``mask_index`` allows.

    Args:
        q, k: ``[R, heads, d]`` queries and keys, ``R = mask_index.num_rows`` (nodes and global
            tokens in the mask's row layout: ``x[mask_index.node_rows]`` for nodes).
        v: ``[R, heads, d_v]`` values.
        mask_index: the :class:`MaskIndex` from ``mask.build(...)``, on the same device.
        scale: score factor, default :math:`1/\sqrt{d}`.
        dropout: probability of zeroing an attention weight (training); the survivors are
            scaled by :math:`1/(1-p)`. Deterministic under ``torch.manual_seed``. Not with
            ``backend="flex"``.
        backend: which implementation computes it: ``"sparse"``, ``"flex"``, ``"dense"`` or
            ``"auto"``: dense up to ``AUTO_DENSE_ROWS`` rows, otherwise sparse; flex when asked
            for (or on CUDA, for inputs that need no gradient and no dropout).

    Returns:
        ``[R, heads, d_v]``; rows whose mask row is empty are 0.

    On every backend a pair the mask does not allow contributes nothing, forward and backward:
    a NaN or inf in a row of ``q``, ``k`` or ``v`` reaches only the rows that attend it (and
    their gradients), never another row or another graph of the batch. (The flex backend
    hands inputs holding non-finite values to the sparse kernels.)
    """
    _check_inputs(q, k, v, mask_index)
    dim = q.size(-1)
    if scale is None:
        scale = 1.0 / math.sqrt(dim) if dim else 1.0
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise TypeError(f"dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if backend == "auto":
        backend = _choose_backend(q, mask_index, dropout, needs_grad)
    if backend == "flex" and dropout > 0:
        raise ValueError("backend='flex' has no attention dropout; use backend='sparse' or 'dense'")
    if backend == "flex" and needs_grad and q.device.type == "cpu":
        raise ValueError(
            "backend='flex' cannot train on CPU: torch's FlexAttention has no CPU backward "
            "(it raises NotImplementedError); use backend='sparse', or run under "
            "torch.no_grad() / on detached inputs for inference"
        )
    if mask_index.nnz == 0 or min(q.size(0), q.size(1), v.size(-1)) == 0:
        # Nothing is attended: every row is 0 (a constant; its gradients are zero).
        return _NothingAttended.apply(q, k, v)
    if backend == "flex" and not all(bool(torch.isfinite(t).all()) for t in (q, k, v)):
        # FlexAttention multiplies whole tiles of weights by values, masked ones (exact zeros)
        # included, and 0 * NaN is NaN: the sparse kernels touch the allowed pairs only.
        backend = "sparse"
    if backend == "dense":
        return _dense_attention(q, k, v, mask_index, float(scale), float(dropout))
    if backend == "flex":
        return _flex_attention(q, k, v, mask_index, float(scale))
    seed = int(torch.randint(0, 2**62, (1,))) if dropout > 0 else 0
    return SparseAttention.apply(q, k, v, head_csr(mask_index, q.size(1)), float(scale),
                                 float(dropout), seed)


class _NothingAttended(torch.autograd.Function):
    """Zeros shaped like ``v``, with zero gradients (not ``None``) for ``q``, ``k`` and ``v``."""

    @staticmethod
    def forward(ctx, q, k, v):
        ctx.like = [(t.shape, t.dtype, t.device) for t in (q, k, v)]
        return torch.zeros_like(v)

    @staticmethod
    def backward(ctx, grad_out):
        return tuple(torch.zeros(shape, dtype=dtype, device=device)
                     for shape, dtype, device in ctx.like)


def _choose_backend(q: Tensor, mask_index: MaskIndex, dropout: float, needs_grad: bool) -> str:
    rows = mask_index.num_rows
    if rows <= AUTO_DENSE_ROWS and q.size(1) * rows * rows <= EAGER_FLEX_LIMIT:
        return "dense"
    if q.device.type == "cuda" and not needs_grad and dropout == 0:
        return "flex"
    return "sparse"


def _check_inputs(q: object, k: object, v: object, mask_index: object) -> None:
    if not isinstance(mask_index, MaskIndex):
        raise TypeError(
            f"mask_index must be a MaskIndex (from mask.build), got {type(mask_index).__name__}"
        )
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(tensor).__name__}")
        if tensor.layout != torch.strided:
            raise TypeError(f"{name} must be a dense tensor, got layout {tensor.layout}")
        if tensor.dim() != 3:
            raise ValueError(f"{name} must be [rows, heads, dim], got shape {tuple(tensor.shape)}")
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {tensor.dtype}")
        if tensor.size(0) != mask_index.num_rows:
            raise ValueError(
                f"{name} has {tensor.size(0)} rows but the mask has {mask_index.num_rows} "
                f"({mask_index.num_nodes} nodes + {mask_index.num_tokens} global tokens)"
            )
        if tensor.device != mask_index.device:
            raise ValueError(
                f"{name} is on {tensor.device} but mask_index on {mask_index.device}; use "
                "mask_index.to(device)"
            )
        if tensor.dtype != q.dtype:
            raise TypeError(f"{name} has dtype {tensor.dtype} but q has {q.dtype}")
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:2] != q.shape[:2]:
        raise ValueError(
            f"v must be [rows, heads, d_v] with rows, heads = {tuple(q.shape[:2])}, "
            f"got {tuple(v.shape)}"
        )


def _dense_attention(q, k, v, mask_index, scale, dropout):
    heads, rows = q.size(1), mask_index.num_rows
    acc = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    itemsize = torch.empty((), dtype=acc).element_size()
    # Scores, weights and, in backward, their two gradients: four [heads, R, R] matrices.
    check_allocation(
        4 * heads * rows * rows * itemsize + rows * rows,
        f"backend='dense' on {rows} rows x {heads} heads ({heads} x {rows} x {rows} scores)",
        q.device,
    )
    allowed = mask_index.to_dense(max_entries=max(DEFAULT_DENSE_LIMIT, rows * rows))
    seed = int(torch.randint(0, 2**62, (1,))) if dropout > 0 else 0
    return DenseAttention.apply(q, k, v, allowed, mask_index, scale, dropout, seed)


def _masked_product(weights: Tensor, x: Tensor, mask_index: MaskIndex, transpose: bool) -> Tensor:
    """``weights @ x`` (``weights^T @ x`` with ``transpose``), ``[H, R, R]`` by ``[H, R, D]``,
    summed over the allowed pairs only. A masked weight is an exact 0, but ``0 * NaN`` is NaN:
    when ``x`` holds a non-finite value the product goes through the CSR of the allowed pairs,
    which never touches a masked one."""
    if bool(torch.isfinite(x).all()):
        return (weights.transpose(1, 2) if transpose else weights) @ x
    heads, rows, _ = weights.shape
    plan = head_csr(mask_index, heads)
    values = weights.reshape(heads * rows, rows)[plan.row, plan.col - plan.row // rows * rows]
    matrix = plan.transposed(values) if transpose else plan.matrix(values)
    return (matrix @ x.reshape(heads * rows, -1)).view(heads, rows, -1)


class DenseAttention(torch.autograd.Function):
    """Attention through dense ``[H, R, R]`` score matrices for small inputs.

    Masked pairs are excluded exactly, forward and backward: their scores are set to
    ``-inf`` and their weights and weight gradients to 0 by selection (never by a product), and
    a product with a non-finite operand sums over the allowed pairs only
    (:func:`_masked_product`), so a NaN or inf in one row reaches only the rows that attend it.
    Rows without keys give 0. Half-precision inputs are computed in float32.
    """

    @staticmethod
    def forward(ctx, q, k, v, allowed, mask_index, scale, dropout, seed):
        acc = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
        qh, kh, vh = (t.transpose(0, 1).to(acc) for t in (q, k, v))
        scores = (qh @ kh.transpose(1, 2)).mul_(scale).masked_fill_(~allowed, float("-inf"))
        # A row without keys is a softmax over nothing (NaN): the fill makes it 0.
        weights = torch.softmax(scores, dim=-1).masked_fill_(~allowed, 0.0)
        del scores
        used = weights
        if dropout > 0:
            keep = _dropout_keep(seed, weights.numel(), dropout, q.device).view_as(weights)
            used = weights * keep / (1 - dropout)
        out = _masked_product(used, vh, mask_index, transpose=False)
        ctx.save_for_backward(q, k, v, allowed, weights)
        ctx.mask_index, ctx.scale, ctx.dropout, ctx.seed = mask_index, scale, dropout, seed
        return out.transpose(0, 1).to(v.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, k, v, allowed, weights = ctx.saved_tensors
        mask_index, scale, dropout = ctx.mask_index, ctx.scale, ctx.dropout
        acc = weights.dtype
        qh, kh, vh = (t.transpose(0, 1).to(acc) for t in (q, k, v))
        grad_h = grad_out.transpose(0, 1).to(acc)
        used = weights
        grad_weights = (grad_h @ vh.transpose(1, 2)).masked_fill_(~allowed, 0.0)
        if dropout > 0:
            keep = _dropout_keep(ctx.seed, weights.numel(), dropout, q.device).view_as(weights)
            used = weights * keep / (1 - dropout)
            grad_weights = grad_weights * keep / (1 - dropout)
        grad_v = _masked_product(used, grad_h, mask_index, transpose=True)
        delta = (weights * grad_weights).sum(dim=-1, keepdim=True)
        grad_scores = grad_weights.sub_(delta).mul_(weights).mul_(scale)
        grad_scores.masked_fill_(~allowed, 0.0)
        grad_q = _masked_product(grad_scores, kh, mask_index, transpose=False)
        grad_k = _masked_product(grad_scores, qh, mask_index, transpose=True)
        return (
            grad_q.transpose(0, 1).to(q.dtype),
            grad_k.transpose(0, 1).to(k.dtype),
            grad_v.transpose(0, 1).to(v.dtype),
            None, None, None, None, None,
        )


def _flex_attention(q, k, v, mask_index, scale):
    from torch.nn.attention.flex_attention import flex_attention

    heads = q.size(1)
    rows = mask_index.num_rows
    # Eager FlexAttention materialises every score; beyond a small size compile it (on CPU a
    # C++ template, on CUDA Triton), which is also the only fast way on CUDA.
    use_compiled = q.device.type == "cuda" or heads * rows * rows > EAGER_FLEX_LIMIT
    order = mask_index.locality_order()
    ordered = mask_index._cache.get("locality_mask")
    if ordered is None:
        ordered = mask_index._cache["locality_mask"] = mask_index.reorder(order)
    block_mask = ordered.to_block_mask(_flex_block_size(q.device))
    if use_compiled and not torch.compiler.is_compiling():
        kernel = flex_attention_compiled()
    else:
        kernel = flex_attention
    with warnings.catch_warnings():
        # Eager flex is chosen on purpose for small inputs; torch warns that it is unfused.
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        out = kernel(
            q.index_select(0, order).transpose(0, 1).unsqueeze(0),
            k.index_select(0, order).transpose(0, 1).unsqueeze(0),
            v.index_select(0, order).transpose(0, 1).unsqueeze(0),
            block_mask=block_mask,
            scale=scale,
        )[0].transpose(0, 1)
    result = torch.empty_like(out)
    result[order] = out
    # FlexAttention leaves rows without keys at 0 already; keep the definition explicit.
    empty = (mask_index.degree() == 0).view(-1, 1, 1)
    return torch.where(empty, torch.zeros((), dtype=out.dtype, device=out.device), result)


def _flex_block_size(device: torch.device) -> int:
    return 128


_COMPILED_FLEX = None


def flex_attention_compiled():
    """``torch.compile(flex_attention)``, compiled once per process (CPU or CUDA)."""
    global _COMPILED_FLEX
    if _COMPILED_FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention

        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=False)
    return _COMPILED_FLEX
