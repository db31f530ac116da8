"""The sparse backend: the interleaved head CSR, the locality order, mixed precision."""

import pytest
import torch

from gnnagg.attention import GraphAttention, adjacency, global_tokens, graph_attention, khop, sparse
from gnnagg.attention.sparse import SparseAttention, head_csr

from .test_ops import inputs, reference


def grid(side=20, shuffle=False, seed=0):
    """A ``side x side`` grid graph (both directions) with positions, rows optionally shuffled."""
    ij = torch.cartesian_prod(torch.arange(side), torch.arange(side))
    node = ij[:, 0] * side + ij[:, 1]
    right = ij[:, 1] < side - 1
    up = ij[:, 0] < side - 1
    src = torch.cat([node[right], node[up]])
    dst = torch.cat([node[right] + 1, node[up] + side])
    edge_index = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
    pos = ij.float()
    if shuffle:
        perm = torch.randperm(side * side, generator=torch.Generator().manual_seed(seed))
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel())
        edge_index, pos = inverse[edge_index], pos[perm]
    return edge_index, pos


@pytest.mark.parametrize("locality", [False, True])
def test_head_csr_interleaves_heads_with_its_transpose(locality):
    mask_index = (khop(2) | global_tokens(1)).build(torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]),
                                                    pos=torch.rand(4, 2))
    plan = head_csr(mask_index, 3, locality=locality)
    assert head_csr(mask_index, 3, locality=locality) is plan
    assert plan.col.dtype == plan.rowptr.dtype == torch.int32
    if locality:
        order = mask_index.locality_order()
        assert torch.equal(plan.order, order) and torch.equal(order[plan.inverse], torch.arange(5))
        mask_index = mask_index.reorder(order)
    # Head h of row r is row r * 3 + h, attending the keys c * 3 + h.
    dense = torch.kron(mask_index.to_dense().double(), torch.eye(3, dtype=torch.float64))
    values = torch.arange(1.0, plan.nnz + 1, dtype=torch.float64)
    matrix = plan.matrix(values).to_dense()
    assert torch.equal(matrix != 0, dense != 0)
    assert torch.equal(plan.transposed(values).to_dense(), matrix.t())
    assert torch.equal(plan.row.long(), torch.repeat_interleave(torch.arange(plan.size),
                                                                plan.rowptr.long().diff()))


def test_locality_order_is_used_where_it_pays(monkeypatch):
    monkeypatch.setattr(sparse, "LOCALITY_MIN_ROWS", 0)
    monkeypatch.setattr(sparse, "LOCALITY_WINDOW", 24)
    ordered = adjacency().build(*grid()[:1], pos=grid()[1])
    edge_index, pos = grid(shuffle=True)
    shuffled = adjacency().build(edge_index, pos=pos)
    assert head_csr(ordered, 2).order is None
    assert torch.equal(head_csr(shuffled, 2).order, shuffled.locality_order())
    monkeypatch.setattr(sparse, "LOCALITY_MIN_ROWS", 401)
    assert head_csr(adjacency().build(edge_index, pos=pos), 2).order is None


@pytest.mark.parametrize("heads, different_v", [(1, False), (3, True)])
def test_locality_order_gives_the_float64_reference_and_its_gradients(heads, different_v):
    edge_index, pos = grid(side=9, shuffle=True)
    mask_index = (khop(2) | global_tokens(2)).build(edge_index, pos=pos)
    plan = head_csr(mask_index, heads, locality=True)
    assert plan.order is not None
    q, k, v = inputs(mask_index.num_rows, heads=heads, dim=4, dim_v=3 if different_v else None)
    out = SparseAttention.apply(q, k, v, plan, 0.5, 0.0, 0)
    expected = reference(q, k, v, mask_index.to_dense(), scale=0.5)
    torch.testing.assert_close(out.double(), expected, atol=2e-5, rtol=1e-4)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(expected, (q, k, v), grad.double())
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b.double(), atol=5e-5, rtol=1e-4)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_locality_order_gradcheck(dropout):
    edge_index, pos = grid(side=4, shuffle=True)
    mask_index = (adjacency(self_loops=False) | global_tokens(1)).build(edge_index, pos=pos)
    plan = head_csr(mask_index, 2, locality=True)
    q, k, v = inputs(mask_index.num_rows, heads=2, dim=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda q, k, v: SparseAttention.apply(q, k, v, plan, 0.7, dropout, 99), (q, k, v)
    )


def test_backward_saves_inputs_output_and_log_sum_exp_only():
    mask_index = khop(2).build(grid(side=6)[0])
    q, k, v = inputs(mask_index.num_rows, heads=2, dim=4)
    out = graph_attention(q, k, v, mask_index, backend="sparse")
    saved = out.grad_fn.saved_tensors
    # q, k, v are saved as given (no copy), then the output and [R * H] log-sum-exps.
    assert all(s.data_ptr() == t.data_ptr() for s, t in zip(saved[:3], (q, k, v)))
    assert saved[3].data_ptr() == out.data_ptr() and saved[4].shape == (mask_index.num_rows * 2,)
    assert len(saved) == 5


@pytest.mark.parametrize("dtype, tol", [(torch.bfloat16, 3e-2), (torch.float16, 5e-3)])
def test_autocast_runs_in_half_with_float32_statistics(dtype, tol):
    edge_index = torch.randint(0, 300, (2, 1500), generator=torch.Generator().manual_seed(1))
    mask_index = (khop(2) | global_tokens(1)).build(edge_index, num_nodes=300)
    q, k, v = inputs(mask_index.num_rows, heads=2, dim=8)
    expected = graph_attention(q, k, v, mask_index, backend="sparse")
    with torch.autocast("cpu", dtype=dtype):
        out = graph_attention(q, k, v, mask_index, backend="sparse")
    assert out.dtype == dtype
    lse = out.grad_fn.saved_tensors[-1]
    assert lse.dtype == torch.float32
    torch.testing.assert_close(out.float(), expected, atol=tol, rtol=tol)
    grad = torch.randn_like(expected)
    want = torch.autograd.grad(expected, (q, k, v), grad)
    got = torch.autograd.grad(out, (q, k, v), grad.to(dtype))
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=4 * tol * float(b.abs().max()), rtol=0)


def test_half_inputs_with_large_scores_stay_finite():
    # Scores of about +-60: exp overflows float16 (and its sum would), the float32 row max and
    # log-sum-exp keep the softmax exact.
    mask_index = khop(2).build(grid(side=6)[0])
    q, k, v = (t.detach() for t in inputs(mask_index.num_rows, heads=2, dim=8))
    q = q * 8
    expected = reference(q, k, v, mask_index.to_dense())
    q, k, v = (t.half().requires_grad_() for t in (q, k, v))
    out = graph_attention(q, k, v, mask_index, backend="sparse")
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), expected, atol=3e-2, rtol=3e-2)
    out.sum().backward()
    assert all(t.grad.dtype == torch.float16 and torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("backend", ["sparse", "dense"])
def test_graph_attention_layer_trains_under_autocast(backend):
    edge_index = torch.randint(0, 50, (2, 200), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    layer = GraphAttention(16, heads=2, mask=khop(2) | global_tokens(1), backend=backend)
    feats = torch.randn(50, 16)
    expected = layer(feats, edge_index)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(feats, edge_index)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=3e-2, rtol=3e-2)
    out.float().square().mean().backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()
               for p in layer.parameters())


def test_layers_permute_rows_into_the_kernel_order_with_the_same_result(monkeypatch):
    from gnnagg.bench.studies.attention.run import AttentionLayer

    edge_index, pos = grid(side=12, shuffle=True)
    mask = khop(2) | global_tokens(1)
    torch.manual_seed(0)
    layer = GraphAttention(8, heads=2, mask=mask, backend="sparse").double()
    bench_layer = AttentionLayer(8, 4, 2, "sparse").double()
    feats = torch.randn(144, 8, dtype=torch.float64, requires_grad=True)
    rows = torch.randn(145, 8, dtype=torch.float64, requires_grad=True)
    monkeypatch.setattr(sparse, "LOCALITY_WINDOW", 12)
    results = []
    for min_rows in (10**9, 0):
        monkeypatch.setattr(sparse, "LOCALITY_MIN_ROWS", min_rows)
        mask_index = mask.build(edge_index, pos=pos)
        outs = (layer(feats, mask_index=mask_index), bench_layer(rows, mask_index))
        grads = torch.autograd.grad(sum(o.square().sum() for o in outs), (feats, rows))
        results.append(outs + grads)
        assert (sparse.kernel_order(mask_index) is None) == (min_rows > 0)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)
