r"""Masked multi-head attention over a :class:`MaskIndex`: one op, three backends.

.. math::

    \mathrm{out}_i = \sum_{j \in \mathcal{N}(i)} \operatorname{softmax}_j
        \big(s \, \langle q_i, k_j \rangle\big) \, v_j,
    \qquad s = 1/\sqrt{d} \text{ unless given}

over the keys :math:`\mathcal{N}(i)` the mask allows. Rows without keys give 0.

* ``"sparse"`` -- scores only on allowed pairs through sparse CSR kernels (SDDMM, row softmax,
  SpMM), all heads in one product with heads interleaved, rows in the mask's locality order
  where that pays, weights recomputed in backward (:mod:`~gnnagg.attention.sparse`); any
  device, float16/bfloat16/float32/float64, ``torch.autocast``, dropout.
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
from .sparse import SparseAttention, _dropout_keep, compute_dtype, head_csr, locality_mask, spmm

__all__ = ["BACKENDS", "DenseAttention", "graph_attention"]

#: Values of ``backend=``: which implementation computes the attention.
BACKENDS = ("auto", "sparse", "flex", "dense")

#: ``"auto"`` uses the dense backend up to this many rows, and only for masks that allow at
#: least ``AUTO_DENSE_FILL`` of the ``R × R`` pairs: below that the sparse kernels are faster
#: at every size (forward + backward; ``experiments/attention_dense_crossover.py``).
AUTO_DENSE_ROWS = 512
AUTO_DENSE_FILL = 0.7
#: Eager FlexAttention materialises every score: beyond this many ``heads × R × R`` entries the
#: flex backend compiles the kernel instead.
EAGER_FLEX_LIMIT = 1 << 24


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
            ``"auto"``: dense for masks of at most ``AUTO_DENSE_ROWS`` rows that allow at least
            ``AUTO_DENSE_FILL`` of all pairs, otherwise sparse; flex when asked for (or on
            CUDA, for inputs that need no gradient and no dropout).

    Returns:
        ``[R, heads, d_v]``; rows whose mask row is empty are 0.

    **Mixed precision.** Under ``torch.autocast`` (CPU or CUDA) q, k and v are cast to the
    autocast dtype (bfloat16 or float16; float64 stays), as torch's own attention does, and
    the kernels run with autocast off. float16 and bfloat16 inputs are stored and returned in
    their dtype while the scores, the row max, the log-sum-exp and the weights are float32, so
    a row's softmax neither overflows nor loses its small weights; the output and the
    gradients of q, k, v are in the input dtype. The sparse backend's SDDMM and SpMM run on
    float32 copies of the half-precision operands, made for each product and freed after it.

    **Memory of the sparse backend** (``R`` rows, ``E = mask_index.nnz`` pairs, ``H`` heads,
    head widths ``D`` (q, k) and ``D_v`` (v), ``s`` bytes per input element, float32 work):

    * built once per (mask, heads) and cached on the mask: ``16·H`` bytes per pair (int32
      indices of the interleaved CSR, its transpose and the row of each pair; ``32·H`` beyond
      2³¹ pairs) and ``8·H`` per row; with the locality order also the renumbered mask, 16
      bytes per pair and 40 per row (with the permutation and its inverse);
    * forward: no ``[E·H, D]`` gather and no dense score matrix, only ``[E·H]`` vectors: at most
      ``8·H`` bytes per pair at a time (``9·H`` with dropout), none kept. Saved for backward:
      q, k, v as given (the permuted copies instead when the locality order is used, the
      inputs then being free to go), the output (``H·D_v·s`` bytes per row) and the float32
      log-sum-exp (``4·H`` per row), never the ``[E·H]`` weights;
    * backward: at most ``12·H`` bytes per pair at a time (``20·H`` with dropout: the
      recomputed weights, their gradient and one permuted copy for the transposed products),
      plus the gradients of q, k, v (``H·(2·D + D_v)·s`` bytes per row).

    On every backend a pair the mask does not allow contributes nothing, forward and backward:
    a NaN or inf in a row of ``q``, ``k`` or ``v`` reaches only the rows that attend it (and
    their gradients), never another row or another graph of the batch. (The flex backend
    hands inputs holding non-finite values to the sparse kernels.)
    """
    _check_inputs(q, k, v, mask_index)
    q, k, v = _autocast(q, k, v)
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


def _autocast(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Inside ``torch.autocast`` on q's device, q, k and v in the autocast dtype (float64
    stays), as torch's own attention does; the kernels then run with autocast off."""
    device = q.device.type
    if not torch.is_autocast_enabled(device) or q.dtype == torch.float64:
        return q, k, v
    dtype = torch.get_autocast_dtype(device)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def _choose_backend(q: Tensor, mask_index: MaskIndex, dropout: float, needs_grad: bool) -> str:
    rows = mask_index.num_rows
    small = rows <= AUTO_DENSE_ROWS and q.size(1) * rows * rows <= EAGER_FLEX_LIMIT
    if small and mask_index.nnz >= AUTO_DENSE_FILL * rows * rows:
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
    acc = compute_dtype(q.dtype)
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
    plan = head_csr(mask_index, heads, locality=False)
    row, col = plan.row.long(), plan.col.long()
    head = row % heads
    values = weights[head, row // heads, col // heads]
    matrix = plan.transposed(values) if transpose else plan.matrix(values)
    flat = x.transpose(0, 1).reshape(rows * heads, -1)
    return spmm(matrix, flat).view(rows, heads, -1).transpose(0, 1)


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
        with torch.autocast(q.device.type, enabled=False):
            out, weights = DenseAttention._forward(q, k, v, allowed, mask_index, scale, dropout,
                                                   seed)
        ctx.save_for_backward(q, k, v, allowed, weights)
        ctx.mask_index, ctx.scale, ctx.dropout, ctx.seed = mask_index, scale, dropout, seed
        return out

    @staticmethod
    def _forward(q, k, v, allowed, mask_index, scale, dropout, seed):
        acc = compute_dtype(q.dtype)
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
        return out.transpose(0, 1).to(v.dtype), weights

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        with torch.autocast(grad_out.device.type, enabled=False):
            return DenseAttention._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
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
    ordered = locality_mask(mask_index)
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
