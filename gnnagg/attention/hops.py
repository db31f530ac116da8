"""k-hop reachability for :func:`~gnnagg.attention.khop`: the non-zeros of :math:`(I + A)^k` by
sparse CSR products, cached per ``edge_index`` tensor; never an ``N x N`` table."""

from __future__ import annotations

import warnings
import weakref
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor

from .._checks import check_allocation
from .mask_context import PAIR_BYTES, sorted_unique

__all__ = ["khop_pairs"]

_KHOP_CACHE_SIZE = 8

_khop_cache: OrderedDict[tuple, tuple[Any, tuple[Tensor, Tensor]]] = OrderedDict()


def khop_pairs(edge_index: Tensor, num_nodes: int, k: int) -> tuple[Tensor, Tensor]:
    """(query, key) node pairs of ``(I + A)^k``, cached per ``edge_index`` tensor and version."""
    cache_key = (id(edge_index), edge_index._version, edge_index.data_ptr(), num_nodes, k)
    hit = _khop_cache.get(cache_key)
    if hit is not None and hit[0]() is edge_index:
        _khop_cache.move_to_end(cache_key)
        return hit[1]
    pairs = _expand_khop(edge_index, num_nodes, k)
    try:
        ref = weakref.ref(edge_index)
    except TypeError:  # pragma: no cover - plain tensors support weak references
        return pairs
    _khop_cache[cache_key] = (ref, pairs)
    while len(_khop_cache) > _KHOP_CACHE_SIZE:
        _khop_cache.popitem(last=False)
    return pairs


def _product(a: Tensor, b: Tensor, num_nodes: int, what: str, device: torch.device) -> Tensor:
    """The pattern of ``a @ b`` (values 1), refused before it runs when it could exceed the
    memory: its nnz is at most sum_j (entries of column j of a) x (entries of row j of b), and
    at most N^2."""
    columns = torch.bincount(a.col_indices(), minlength=num_nodes)
    rows = b.crow_indices()[1:] - b.crow_indices()[:-1]
    bound = min(int((columns * rows).sum()), num_nodes * num_nodes)
    check_allocation(bound * PAIR_BYTES, f"{what} on {num_nodes} nodes (up to {bound} pairs)",
                     device)
    product = a @ b
    # The values are path counts; only the pattern matters, so keep them at 1.
    return torch.sparse_csr_tensor(product.crow_indices(), product.col_indices(),
                                   torch.ones(product.col_indices().numel(), device=device),
                                   product.shape, check_invariants=False)


def _power(step: Tensor, k: int, num_nodes: int, device: torch.device) -> Tensor:
    """The pattern of ``step^k`` by repeated squaring: O(log k) products, and none once a
    square equals its root (the reachable set stopped growing: every higher power is the
    same, since ``step`` holds the identity)."""
    what = f"khop({k})"
    result, power = None, step
    while True:
        if k & 1:
            result = power if result is None else _product(result, power, num_nodes, what, device)
        k >>= 1
        if k == 0:
            return result
        squared = _product(power, power, num_nodes, what, device)
        if squared.col_indices().numel() == power.col_indices().numel():
            return squared  # the closure; (I + A)^k for every larger k
        power = squared


def _expand_khop(edge_index: Tensor, num_nodes: int, k: int) -> tuple[Tensor, Tensor]:
    """Non-zeros of ``(I + A)^k`` (``A[i, j] = 1`` for the edge ``j -> i``) by sparse CSR
    products (:func:`_power`), each refused before it runs when its output could exceed the
    memory."""
    device = edge_index.device
    if num_nodes == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty
    loops = torch.arange(num_nodes, device=device)
    keys = sorted_unique(torch.cat([edge_index[1] * num_nodes + edge_index[0],
                                     loops * num_nodes + loops]))
    rows = torch.div(keys, num_nodes, rounding_mode="floor")
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.int64, device=device)
    torch.cumsum(torch.bincount(rows, minlength=num_nodes), 0, out=rowptr[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        step = torch.sparse_csr_tensor(rowptr, keys - rows * num_nodes,
                                       torch.ones(keys.numel(), device=device),
                                       (num_nodes, num_nodes), check_invariants=False)
        reach = _power(step, k, num_nodes, device)
    if k == 1:
        return rows, keys - rows * num_nodes
    crow, col = reach.crow_indices(), reach.col_indices()
    degree = crow[1:] - crow[:-1]
    query = torch.repeat_interleave(loops, degree, output_size=col.numel())
    # Columns come out unsorted within rows (the values are path counts, never 0): sort each
    # row, in a padded [N, max degree] table when that is small, else with one global sort.
    widest = int(degree.max())
    if widest * num_nodes <= 4 * col.numel():
        table = torch.full((num_nodes, widest), num_nodes, dtype=torch.int64, device=device)
        slot = torch.arange(col.numel(), device=device) - crow[:-1].repeat_interleave(
            degree, output_size=col.numel())
        table[query, slot] = col
        table = torch.sort(table, dim=1).values.view(-1)
        return query, table[table < num_nodes]
    keys = torch.sort(query * num_nodes + col).values
    query = torch.div(keys, num_nodes, rounding_mode="floor")
    return query, keys - query * num_nodes
