"""graph_attention: the three backends against a float64 dense reference, gradients, dropout and
errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnagg.attention import (
    adjacency,
    dilated_window,
    global_tokens,
    graph_attention,
    khop,
    random_jumps,
)
from gnnagg.attention.sparse import SparseAttention

from .attention_graphs import batches

MASKS = st.sampled_from(
    [
        adjacency(),
        adjacency(self_loops=False),  # rows without keys
        khop(2) | global_tokens(2),
        dilated_window(2, 2, "morton") | random_jumps(0.3, seed=0),
        khop(2) & dilated_window(3, 1, "index") | global_tokens(1),
    ]
)


def reference(q, k, v, dense, scale=None):
    """Float64 masked softmax attention; empty rows give 0."""
    q, k, v = q.double(), k.double(), v.double()
    scale = q.size(-1) ** -0.5 if scale is None else scale
    scores = torch.einsum("ihd,jhd->hij", q, k) * scale
    scores = scores.masked_fill(~dense, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.einsum("hij,jhd->ihd", weights, v)


def inputs(rows, heads=2, dim=8, dim_v=None, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(rows, heads, dim), (rows, heads, dim), (rows, heads, dim_v or dim)]
    return [torch.randn(s, generator=generator, dtype=dtype).requires_grad_() for s in shapes]


@settings(max_examples=20)
@given(batches(), MASKS, st.sampled_from(["sparse", "dense"]), st.booleans())
def test_backends_match_float64_reference(graph, mask, backend, different_v):
    edge_index, batch, pos = graph
    mask_index = mask.build(edge_index, pos=pos.float(), batch=batch)
    q, k, v = inputs(mask_index.num_rows, dim_v=4 if different_v else None)
    expected = reference(q, k, v, mask_index.to_dense())
    out = graph_attention(q, k, v, mask_index, backend=backend)
    torch.testing.assert_close(out.double(), expected, atol=2e-5, rtol=1e-4)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(expected, (q, k, v), grad.double())
    for a, b in zip(got, want):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a.double(), b.double(), atol=5e-5, rtol=1e-4)


@pytest.mark.parametrize("seed", range(2))
def test_flex_forward_matches_float64_reference(seed):
    generator = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([40, 25, 70]))
    edge_index = torch.randint(0, 135, (2, 600), generator=generator)
    edge_index = edge_index[:, batch[edge_index[0]] == batch[edge_index[1]]]
    # With pos the flex backend orders rows by Morton code, without by reverse Cuthill-McKee.
    pos = torch.rand(135, 3, generator=generator) if seed == 0 else None
    mask = [khop(2) | dilated_window(2, 3, "morton") | global_tokens(2),
            adjacency(self_loops=False) | random_jumps(0.2, seed=0)][seed]
    mask_index = mask.build(edge_index, pos=pos, batch=batch)
    q, k, v = (t.detach() for t in inputs(mask_index.num_rows, heads=2, dim=16, seed=seed))
    out = graph_attention(q, k, v, mask_index, backend="flex")
    torch.testing.assert_close(out.double(), reference(q, k, v, mask_index.to_dense()), atol=2e-5,
                               rtol=1e-4)


def test_sparse_gradcheck_with_tokens_and_empty_rows():
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 4], [1, 2, 0, 4, 3, 5]])
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    mask_index = (adjacency(self_loops=False) | global_tokens(1)).build(edge_index, batch=batch)
    q, k, v = inputs(mask_index.num_rows, heads=2, dim=3, dtype=torch.float64)

    def run(q, k, v):
        return graph_attention(q, k, v, mask_index, scale=0.7, backend="sparse")

    assert torch.autograd.gradcheck(run, (q, k, v))


def test_sparse_dropout_gradcheck_and_determinism():
    mask_index = khop(2).build(torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]]))
    q, k, v = inputs(mask_index.num_rows, heads=2, dim=3, dtype=torch.float64)
    from gnnagg.attention.sparse import head_csr

    plan = head_csr(mask_index, 2)

    def run(q, k, v):
        return SparseAttention.apply(q, k, v, plan, 0.5, 0.4, 1234)

    assert torch.autograd.gradcheck(run, (q, k, v))
    torch.manual_seed(7)
    first = graph_attention(q, k, v, mask_index, dropout=0.4, backend="sparse")
    torch.manual_seed(7)
    again = graph_attention(q, k, v, mask_index, dropout=0.4, backend="sparse")
    other = graph_attention(q, k, v, mask_index, dropout=0.4, backend="sparse")
    assert torch.equal(first, again) and not torch.equal(first, other)
    plain = graph_attention(q, k, v, mask_index, backend="sparse")
    assert not torch.allclose(first, plain)


def test_dense_dropout_is_deterministic_under_a_seed():
    mask_index = khop(2).build(torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]]))
    q, k, v = inputs(mask_index.num_rows)
    torch.manual_seed(3)
    first = graph_attention(q, k, v, mask_index, dropout=0.5, backend="dense")
    torch.manual_seed(3)
    assert torch.equal(first, graph_attention(q, k, v, mask_index, dropout=0.5, backend="dense"))


def test_half_precision_accumulates_in_float32():
    edge_index = torch.randint(0, 40, (2, 120), generator=torch.Generator().manual_seed(0))
    mask_index = khop(2).build(edge_index, num_nodes=40)
    q, k, v = (t.detach() for t in inputs(mask_index.num_rows, dtype=torch.bfloat16))
    out = graph_attention(q, k, v, mask_index, backend="sparse")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), reference(q, k, v, mask_index.to_dense()), atol=2e-2,
                               rtol=2e-2)


def test_auto_backend_follows_size_fill_and_gradients(monkeypatch):
    from gnnagg.attention import ops

    chosen = []
    for name in ("_dense_attention", "_flex_attention"):
        original = getattr(ops, name)

        def spy(*args, _name=name, _original=original):
            chosen.append(_name)
            return _original(*args)

        monkeypatch.setattr(ops, name, spy)
    # Small and (nearly) every pair allowed: dense.
    small = adjacency().build(torch.tensor([[0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]]))
    q, k, v = inputs(small.num_rows)
    graph_attention(q, k, v, small)
    assert chosen == ["_dense_attention"]
    # Small but sparse (a path of 40 nodes): the sparse kernels are faster.
    path = torch.arange(39)
    sparse = adjacency().build(torch.stack([path, path + 1]))
    assert sparse.nnz < ops.AUTO_DENSE_FILL * sparse.num_rows**2
    graph_attention(*inputs(sparse.num_rows), sparse)
    assert chosen == ["_dense_attention"]
    monkeypatch.setattr(ops, "AUTO_DENSE_ROWS", 1)
    out = graph_attention(q, k, v, small)  # CPU, gradients: sparse
    assert chosen == ["_dense_attention"] and out.grad_fn is not None


def test_flex_refuses_training_on_cpu():
    mask_index = adjacency().build(torch.tensor([[0, 1], [1, 2]]))
    q, k, v = inputs(mask_index.num_rows)
    with pytest.raises(ValueError, match="cannot train on CPU"):
        graph_attention(q, k, v, mask_index, backend="flex")
    with pytest.raises(ValueError, match="no attention dropout"):
        graph_attention(q.detach(), k.detach(), v.detach(), mask_index, backend="flex", dropout=0.1)


def test_errors_name_the_argument():
    mask_index = (adjacency() | global_tokens(1)).build(torch.tensor([[0, 1], [1, 2]]))
    q, k, v = inputs(mask_index.num_rows)
    with pytest.raises(ValueError, match=r"q has 3 rows but the mask has 4 \(3 nodes \+ 1"):
        graph_attention(q[:3], k, v, mask_index)
    with pytest.raises(ValueError, match="k must have the shape of q"):
        graph_attention(q, k[:, :1], v, mask_index)
    with pytest.raises(ValueError, match="v must be"):
        graph_attention(q, k, v[:, :1], mask_index)
    with pytest.raises(ValueError, match=r"q must be \[rows, heads, dim\]"):
        graph_attention(q[:, 0], k, v, mask_index)
    with pytest.raises(TypeError, match="k has dtype torch.float64"):
        graph_attention(q, k.double(), v, mask_index)
    with pytest.raises(ValueError, match="q is on meta"):
        graph_attention(q.to("meta"), k, v, mask_index)
    with pytest.raises(TypeError, match="mask_index must be a MaskIndex"):
        graph_attention(q, k, v, adjacency())
    with pytest.raises(ValueError, match="backend must be one of"):
        graph_attention(q, k, v, mask_index, backend="fast")
    with pytest.raises(ValueError, match="dropout must be in"):
        graph_attention(q, k, v, mask_index, dropout=1.0)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        graph_attention(q, k, v, mask_index, scale=float("nan"))


# -- masked pairs contribute nothing, forward and backward, whatever they hold -----------------


def loop_reference(q, k, v, mask_index, scale=None):
    """Row by row over the allowed keys only, in float64: what a non-finite value may reach."""
    q, k, v = q.double(), k.double(), v.double()
    scale = q.size(-1) ** -0.5 if scale is None else scale
    out = torch.zeros(v.shape, dtype=torch.float64)
    for row in range(mask_index.num_rows):
        keys = mask_index.col[mask_index.rowptr[row]:mask_index.rowptr[row + 1]]
        if keys.numel():
            weights = torch.softmax((q[row] * k[keys]).sum(-1) * scale, dim=0)  # [keys, H]
            out[row] = (weights.unsqueeze(-1) * v[keys]).sum(0)
    return out


TWO_GRAPHS = dict(edge_index=torch.tensor([[0, 1, 3, 4], [1, 2, 4, 5]]),
                  batch=torch.tensor([0, 0, 0, 1, 1, 1]))


@pytest.mark.parametrize("backend", ["sparse", "dense", "flex"])
@pytest.mark.parametrize("poisoned", ["q", "k", "v"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_row_reaches_only_the_rows_that_attend_it(backend, poisoned, value):
    mask_index = adjacency().build(**TWO_GRAPHS)
    q, k, v = (t.detach() for t in inputs(mask_index.num_rows))
    dict(q=q, k=k, v=v)[poisoned][5] = value
    train = backend != "flex"
    q, k, v = (t.requires_grad_(train) for t in (q, k, v))
    out = graph_attention(q, k, v, mask_index, backend=backend)
    expected = loop_reference(q, k, v, mask_index)
    torch.testing.assert_close(out.double(), expected, atol=2e-5, rtol=1e-4, equal_nan=True)
    assert torch.isfinite(out[:5]).all()  # graph 0, and node 4 which does not attend node 5
    if train:
        got = torch.autograd.grad(out[:5].sum(), (q, k, v))
        want = torch.autograd.grad(expected[:5].sum(), (q, k, v))
        for a, b in zip(got, want):
            assert torch.isfinite(a[:3]).all()  # graph 0
            torch.testing.assert_close(a.double(), b.double(), atol=5e-5, rtol=1e-4, equal_nan=True)


@pytest.mark.parametrize("backend", ["sparse", "dense"])
def test_a_non_finite_output_gradient_stays_in_its_rows(backend):
    mask_index = adjacency().build(**TWO_GRAPHS)
    q, k, v = inputs(mask_index.num_rows)
    out = graph_attention(q, k, v, mask_index, backend=backend)
    grad = torch.ones_like(out)
    grad[5] = float("nan")
    out.backward(grad)
    for tensor in (q, k, v):
        assert torch.isfinite(tensor.grad[:3]).all()  # graph 0


@pytest.mark.parametrize("backend", ["sparse", "dense", "flex"])
def test_nan_nodes_without_keys_or_with_only_themselves(backend):
    # Node 2 has no keys; node 5 attends only itself; both hold NaN.
    edge_index = torch.tensor([[0, 1, 3, 5], [1, 0, 4, 5]])
    mask_index = adjacency(self_loops=False).build(edge_index, batch=TWO_GRAPHS["batch"])
    q, k, v = (t.detach() for t in inputs(mask_index.num_rows))
    for t in (q, k, v):
        t[2] = t[5] = float("nan")
    out = graph_attention(q, k, v, mask_index, backend=backend)
    assert (out[2] == 0).all() and out[5].isnan().all()
    assert torch.isfinite(out[[0, 1, 3, 4]]).all()
    torch.testing.assert_close(out.double(), loop_reference(q, k, v, mask_index), atol=2e-5,
                               rtol=1e-4, equal_nan=True)


def test_graph_transformer_keeps_a_nan_node_in_its_graph():
    from gnnagg.models import GraphTransformer

    model = GraphTransformer(3, 8, 2, heads=2, num_layers=2)  # the default (dense) path
    x = torch.randn(6, 3, requires_grad=True)
    poisoned = x.detach().clone()
    poisoned[5] = float("nan")
    poisoned.requires_grad_()
    out = model(poisoned, TWO_GRAPHS["edge_index"], batch=TWO_GRAPHS["batch"])
    clean = model(x, TWO_GRAPHS["edge_index"], batch=TWO_GRAPHS["batch"])
    torch.testing.assert_close(out[:3], clean[:3])
    out[:3].sum().backward()
    assert torch.isfinite(poisoned.grad[:3]).all()


@pytest.mark.parametrize("backend", ["sparse", "dense", "flex"])
def test_head_dimension_zero_is_a_uniform_average_on_every_backend(backend):
    mask_index = (adjacency() | global_tokens(1)).build(**TWO_GRAPHS)
    rows = mask_index.num_rows
    q = torch.zeros(rows, 2, 0)
    v = torch.randn(rows, 2, 3)
    out = graph_attention(q, q, v, mask_index, backend=backend)
    torch.testing.assert_close(out.double(), loop_reference(q, q, v, mask_index, scale=1.0))


@pytest.mark.parametrize("backend", ["sparse", "dense", "flex"])
def test_empty_graphs_and_zero_heads_give_empty_or_zero_outputs(backend):
    empty = adjacency().build(torch.zeros(2, 0, dtype=torch.int64), num_nodes=0)
    q = torch.zeros(0, 2, 4)
    assert graph_attention(q, q, q, empty, backend=backend).shape == (0, 2, 4)
    mask_index = adjacency().build(**TWO_GRAPHS)
    q = torch.zeros(6, 0, 4)
    assert graph_attention(q, q, q, mask_index, backend=backend).shape == (6, 0, 4)
    no_pairs = adjacency(self_loops=False).build(torch.zeros(2, 0, dtype=torch.int64),
                                                 num_nodes=3)
    q, k, v = inputs(3) if backend != "flex" else (torch.randn(3, 2, 4),) * 3
    out = graph_attention(q, k, v, no_pairs, backend=backend)
    assert (out == 0).all()
    if backend != "flex":
        out.sum().backward()
        assert (q.grad == 0).all() and (v.grad == 0).all()


def test_dense_backend_gradcheck_with_dropout_tokens_and_empty_rows():
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 4], [1, 2, 0, 4, 3, 5]])
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    mask_index = (adjacency(self_loops=False) | global_tokens(1)).build(edge_index, batch=batch)
    q, k, v = inputs(mask_index.num_rows, heads=2, dim=3, dtype=torch.float64)
    allowed = mask_index.to_dense()
    from gnnagg.attention.ops import DenseAttention

    for dropout in (0.0, 0.4):
        def run(q, k, v, dropout=dropout):
            return DenseAttention.apply(q, k, v, allowed, mask_index, 0.7, dropout, 1234)

        assert torch.autograd.gradcheck(run, (q, k, v))


def test_dense_scores_beyond_memory_are_refused_before_allocating(monkeypatch):
    from gnnagg import _checks

    monkeypatch.setattr(_checks, "available_memory", lambda device: 4 << 30)
    mask_index = adjacency().build(torch.zeros(2, 0, dtype=torch.int64), num_nodes=8000)
    q = torch.zeros(8000, 64, 1)
    with pytest.raises(ValueError, match=r"backend='dense' on 8000 rows x 64 heads.*GiB"):
        graph_attention(q, q, q, mask_index, backend="dense")
