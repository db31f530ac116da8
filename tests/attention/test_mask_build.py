"""Building masks at scale, checked small: the composite ``khop | dilated_window |
global_tokens`` on random Delaunay meshes (2-D and 3-D, batched, nodes shuffled, with global
tokens) equals the brute-force definitions entry for entry, in sorted CSR order; the k-hop
engines (scipy's products in a Morton order, torch's products) agree with breadth-first search.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnagg.attention import dilated_window, global_tokens, hops, khop
from gnnagg.data.meshes import delaunay_mesh

from .attention_graphs import (
    batches,
    khop_reference,
    morton_reference,
    node_dense,
    positions_from_order,
    token_reference,
    window_reference,
)


@st.composite
def delaunay_batches(draw):
    """``(edge_index, batch, pos)`` of 1-3 Delaunay meshes of one dimension, nodes shuffled."""
    dim = draw(st.sampled_from([2, 3]))
    sizes = draw(st.lists(st.integers(dim + 2, 40), min_size=1, max_size=3))
    seed = draw(st.integers(0, 2**16))
    edges, positions, batch, start = [], [], [], 0
    for graph, size in enumerate(sizes):
        mesh = delaunay_mesh(size, seed=seed + graph, dim=dim)
        edges.append(mesh.edge_index + start)
        positions.append(mesh.pos.to(torch.float64))
        batch += [graph] * size
        start += size
    edge_index, pos, batch = torch.cat(edges, 1), torch.cat(positions), torch.tensor(batch)
    if draw(st.booleans()):
        perm = torch.randperm(start, generator=torch.Generator().manual_seed(seed))
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(start)
        edge_index, pos, batch = inverse[edge_index], pos[perm], batch[perm]
    return edge_index, batch, pos


def check_sorted_csr(mask_index):
    keys = mask_index.row() * mask_index.num_rows + mask_index.col
    assert mask_index.col.dtype == torch.int64 and mask_index.rowptr.dtype == torch.int64
    assert int(mask_index.rowptr[-1]) == mask_index.nnz
    assert bool((keys[1:] > keys[:-1]).all())


def morton_positions(pos, batch):
    codes = morton_reference(pos, batch)
    order = torch.tensor(sorted(range(batch.numel()), key=lambda i: (codes[i], i)))
    return positions_from_order(order, batch)


@given(delaunay_batches(), st.integers(1, 3), st.integers(0, 4), st.integers(1, 8),
       st.integers(0, 4))
def test_composite_on_delaunay_meshes_equals_the_definitions(graph, k, size, dilation, tokens):
    edge_index, batch, pos = graph
    hops._khop_cache.clear()
    mask = khop(k) | dilated_window(size, dilation) | global_tokens(tokens)
    mask_index = mask.build(edge_index, pos=pos, batch=batch)
    check_sorted_csr(mask_index)
    n = batch.numel()
    nodes = khop_reference(edge_index, n, k) | window_reference(
        morton_positions(pos, batch), batch, size, dilation)
    expected = node_dense(mask_index, nodes) | token_reference(mask_index, tokens)
    assert torch.equal(mask_index.to_dense(), expected)
    # The intersection merges the same sorted rows.
    both = (khop(k) & dilated_window(size, dilation)).build(edge_index, pos=pos, batch=batch)
    check_sorted_csr(both)
    window = window_reference(morton_positions(pos, batch), batch, size, dilation)
    assert torch.equal(both.to_dense(),
                       node_dense(both, khop_reference(edge_index, n, k) & window))


def reference_csr(edge_index, num_nodes, k):
    rows, cols = khop_reference(edge_index, num_nodes, k).nonzero(as_tuple=True)
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.int64)
    rowptr[1:] = torch.cumsum(torch.bincount(rows, minlength=num_nodes), 0)
    return rowptr, cols


@given(batches(max_nodes=12), st.integers(2, 5), st.booleans())
def test_khop_engines_agree_with_breadth_first_search(graph, k, ordered):
    pytest.importorskip("scipy")
    from scipy import sparse

    edge_index, batch, _ = graph
    n = batch.numel()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n)) if ordered else None
    rowptr, col = reference_csr(edge_index, n, k)
    for got in (hops._khop_scipy(sparse, edge_index, n, k, order),
                hops._khop_torch(edge_index, n, k)):
        assert torch.equal(got[0], rowptr)
        assert got[1].dtype == torch.int32 and torch.equal(got[1].long(), col)


def test_khop_without_scipy_uses_torch(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    monkeypatch.setattr(builtins, "__import__", no_scipy)
    got = hops._expand_khop(edge_index, 4, 2, None)
    assert torch.equal(got[0], reference_csr(edge_index, 4, 2)[0])
    assert torch.equal(got[1].long(), reference_csr(edge_index, 4, 2)[1])

