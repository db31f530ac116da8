r"""Masked multi-head attention over a :class:`GraphMask`: one op, three paths.

.. math::

    \mathrm{out}_i = \sum_{j \in \mathcal{N}(i)} \operatorname{softmax}_j
        \big(s \, \langle q_i, k_j \rangle\big) \, v_j,
    \qquad s = 1/\sqrt{d} \text{ unless given}

over the keys :math:`\mathcal{N}(i)` the mask allows. Rows without keys give 0.

* ``"sparse"`` -- scores only on allowed pairs, chunked over the CSR with scores recomputed in
  backward (:class:`SparseAttention`); any device, any dtype, dropout.
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

from .graph_mask import DEFAULT_DENSE_LIMIT, GraphMask

__all__ = ["PATHS", "SparseAttention", "graph_attention", "sparse_chunk_elements"]

PATHS = ("auto", "sparse", "flex", "dense")

#: ``"auto"`` uses the dense path up to this many rows.
AUTO_DENSE_ROWS = 512
#: Gathered elements (pairs × heads × dim) per chunk of the sparse path: a few MB on CPU so the
#: gathers stay in cache, large on GPUs where each chunk costs kernel launches.
CPU_CHUNK_ELEMENTS = 1 << 18
GPU_CHUNK_ELEMENTS = 1 << 26
#: Eager FlexAttention materialises every score: beyond this many ``heads × R × R`` entries the
#: flex path compiles the kernel instead.
EAGER_FLEX_LIMIT = 1 << 24


def sparse_chunk_elements(device: torch.device) -> int:
    """Elements (pairs × heads × dim) one chunk of the sparse path gathers on ``device``."""
    return CPU_CHUNK_ELEMENTS if device.type == "cpu" else GPU_CHUNK_ELEMENTS


def _chunks(nnz: int, width: int, device: torch.device) -> list[tuple[int, int]]:
    step = max(1, sparse_chunk_elements(device) // max(width, 1))
    return [(start, min(start + step, nnz)) for start in range(0, nnz, step)]


def _dropout_keep(
    seed: int, chunk: int, shape: tuple[int, ...], p: float, device: torch.device
) -> Tensor:
    """The same keep-mask in forward and in backward: one generator seeded per chunk."""
    generator = torch.Generator(device=device).manual_seed(seed + 1_000_003 * chunk)
    return torch.rand(shape, generator=generator, device=device) >= p


class SparseAttention(torch.autograd.Function):
    """Attention on the CSR pairs only, chunked; saves ``[R, H]`` log-sum-exps, not the
    ``[nnz, H]`` weights, and recomputes the scores of each chunk in backward.

    Memory O(nnz·H + R·H·D): the only whole-graph per-pair tensor is the ``[nnz, H]`` score
    buffer of the forward; gathers of q/k/v rows exist one chunk at a time.
    """

    @staticmethod
    def forward(ctx, q, k, v, row, col, scale, dropout, seed):  # noqa: D401
        rows, heads, _ = q.shape
        nnz = col.numel()
        acc = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
        scores = torch.empty(nnz, heads, dtype=acc, device=q.device)
        chunks = _chunks(nnz, heads * max(q.size(-1), v.size(-1)), q.device)
        for lo, hi in chunks:
            qg = q.index_select(0, row[lo:hi])
            kg = k.index_select(0, col[lo:hi])
            torch.sum(qg * kg, dim=-1, dtype=acc, out=scores[lo:hi])
        scores.mul_(scale)
        row_max = torch.zeros(rows, heads, dtype=acc, device=q.device)
        row_max.scatter_reduce_(0, row.unsqueeze(1).expand(-1, heads), scores, "amax",
                                include_self=False)
        scores.sub_(row_max.index_select(0, row)).exp_()
        total = torch.zeros(rows, heads, dtype=acc, device=q.device)
        total.index_add_(0, row, scores)
        lse = row_max + total.log()
        scores.div_(total.index_select(0, row))
        out = torch.zeros(rows, heads, v.size(-1), dtype=acc, device=q.device)
        for index, (lo, hi) in enumerate(chunks):
            weights = scores[lo:hi]
            if dropout > 0:
                keep = _dropout_keep(seed, index, tuple(weights.shape), dropout, q.device)
                weights = weights * keep / (1 - dropout)
            vg = v.index_select(0, col[lo:hi]).to(acc)
            out.index_add_(0, row[lo:hi], weights.unsqueeze(-1) * vg)
        out = out.to(v.dtype)
        ctx.save_for_backward(q, k, v, row, col, out, lse)
        ctx.scale, ctx.dropout, ctx.seed = scale, dropout, seed
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q, k, v, row, col, out, lse = ctx.saved_tensors
        scale, dropout, seed = ctx.scale, ctx.dropout, ctx.seed
        acc = lse.dtype
        grad_out = grad_out.contiguous()
        # delta_i = sum_j p_ij dP_ij = <dout_i, out_i>: the softmax backward without weights.
        delta = torch.sum(grad_out.to(acc) * out.to(acc), dim=-1)
        grad_q = torch.zeros(q.shape, dtype=acc, device=q.device)
        grad_k = torch.zeros(k.shape, dtype=acc, device=q.device)
        grad_v = torch.zeros(v.shape, dtype=acc, device=q.device)
        chunks = _chunks(col.numel(), q.size(1) * max(q.size(-1), v.size(-1)), q.device)
        for index, (lo, hi) in enumerate(chunks):
            rows, cols = row[lo:hi], col[lo:hi]
            qg = q.index_select(0, rows).to(acc)
            kg = k.index_select(0, cols).to(acc)
            weights = torch.exp(torch.sum(qg * kg, dim=-1) * scale - lse.index_select(0, rows))
            dout = grad_out.index_select(0, rows).to(acc)
            vg = v.index_select(0, cols).to(acc)
            grad_weights = torch.sum(dout * vg, dim=-1)
            if dropout > 0:
                keep = _dropout_keep(seed, index, tuple(weights.shape), dropout, q.device)
                kept = keep / (1 - dropout)
                grad_weights = grad_weights * kept
                grad_v.index_add_(0, cols, (weights * kept).unsqueeze(-1) * dout)
            else:
                grad_v.index_add_(0, cols, weights.unsqueeze(-1) * dout)
            grad_scores = weights * (grad_weights - delta.index_select(0, rows)) * scale
            grad_q.index_add_(0, rows, grad_scores.unsqueeze(-1) * kg)
            grad_k.index_add_(0, cols, grad_scores.unsqueeze(-1) * qg)
        return (
            grad_q.to(q.dtype),
            grad_k.to(k.dtype),
            grad_v.to(v.dtype),
            None,
            None,
            None,
            None,
            None,
        )


def graph_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    gmask: GraphMask,
    scale: float | None = None,
    dropout: float = 0.0,
    path: str = "auto",
) -> Tensor:
    r"""Multi-head attention of each row over the keys ``gmask`` allows.

    Args:
        q, k: ``[R, heads, d]`` queries and keys, ``R = gmask.num_rows`` (nodes and global
            tokens in the mask's row layout: ``x[gmask.node_rows]`` for nodes).
        v: ``[R, heads, d_v]`` values.
        gmask: the :class:`GraphMask` from ``mask.build(...)``, on the same device.
        scale: score factor, default :math:`1/\sqrt{d}`.
        dropout: probability of zeroing an attention weight (training); the survivors are
            scaled by :math:`1/(1-p)`. Deterministic under ``torch.manual_seed``. Not on
            ``"flex"``.
        path: ``"sparse"``, ``"flex"``, ``"dense"`` or ``"auto"``: dense up to
            ``AUTO_DENSE_ROWS`` rows, otherwise sparse; flex when forced (or on CUDA, for
            inputs that need no gradient and no dropout).

    Returns:
        ``[R, heads, d_v]``; rows whose mask row is empty are 0.
    """
    _check_inputs(q, k, v, gmask)
    dim = q.size(-1)
    if scale is None:
        scale = 1.0 / math.sqrt(dim) if dim else 1.0
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise TypeError(f"dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    if path == "auto":
        path = _choose_path(q, gmask, dropout, needs_grad)
    if path == "dense":
        return _dense_attention(q, k, v, gmask, float(scale), float(dropout))
    if path == "flex":
        if dropout > 0:
            raise ValueError("path='flex' has no attention dropout; use path='sparse' or 'dense'")
        if needs_grad and q.device.type == "cpu":
            raise ValueError(
                "path='flex' cannot train on CPU: torch's FlexAttention has no CPU backward "
                "(it raises NotImplementedError); use path='sparse', or run under "
                "torch.no_grad() / on detached inputs for inference"
            )
        return _flex_attention(q, k, v, gmask, float(scale))
    seed = int(torch.randint(0, 2**62, (1,))) if dropout > 0 else 0
    return SparseAttention.apply(q, k, v, gmask.row(), gmask.col, float(scale), float(dropout),
                                 seed)


def _choose_path(q: Tensor, gmask: GraphMask, dropout: float, needs_grad: bool) -> str:
    if gmask.num_rows <= AUTO_DENSE_ROWS:
        return "dense"
    if q.device.type == "cuda" and not needs_grad and dropout == 0:
        return "flex"
    return "sparse"


def _check_inputs(q: object, k: object, v: object, gmask: object) -> None:
    if not isinstance(gmask, GraphMask):
        raise TypeError(f"gmask must be a GraphMask (from mask.build), got {type(gmask).__name__}")
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(tensor).__name__}")
        if tensor.dim() != 3:
            raise ValueError(f"{name} must be [rows, heads, dim], got shape {tuple(tensor.shape)}")
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {tensor.dtype}")
        if tensor.size(0) != gmask.num_rows:
            raise ValueError(
                f"{name} has {tensor.size(0)} rows but the mask has {gmask.num_rows} "
                f"({gmask.num_nodes} nodes + {gmask.num_tokens} global tokens)"
            )
        if tensor.device != gmask.device:
            raise ValueError(
                f"{name} is on {tensor.device} but gmask on {gmask.device}; use gmask.to(device)"
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


def _dense_attention(q, k, v, gmask, scale, dropout):
    allowed = gmask.to_dense(max_entries=DEFAULT_DENSE_LIMIT)
    empty = gmask.degree() == 0
    # A row without keys would be a softmax over nothing (NaN, and NaN gradients into every
    # key): let it see itself, then zero its output, which also zeroes its gradients.
    allowed[empty, empty.nonzero().view(-1)] = True
    out = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), attn_mask=allowed,
        dropout_p=dropout, scale=scale,
    ).transpose(0, 1)
    return torch.where(empty.view(-1, 1, 1), torch.zeros((), dtype=out.dtype, device=out.device),
                       out)


def _flex_attention(q, k, v, gmask, scale):
    from torch.nn.attention.flex_attention import flex_attention

    heads = q.size(1)
    rows = gmask.num_rows
    # Eager FlexAttention materialises every score; beyond a small size compile it (on CPU a
    # C++ template, on CUDA Triton), which is also the only fast way on CUDA.
    use_compiled = q.device.type == "cuda" or heads * rows * rows > EAGER_FLEX_LIMIT
    order = gmask.locality_order()
    ordered = gmask._cache.get("locality_mask")
    if ordered is None:
        ordered = gmask._cache["locality_mask"] = gmask.reorder(order)
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
    empty = (gmask.degree() == 0).view(-1, 1, 1)
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
