"""LCMAggregation: locality, invariance, partial results, PyG drop-in, errors."""

import copy
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.nn import (
    EdgeConv,
    GATConv,
    GCNConv,
    GINConv,
    GraphConv,
    SAGEConv,
    to_hetero,
)
from torch_geometric.nn.aggr import MultiAggregation

from gnnagg.aggr import LCMAggregation
from gnnagg.monoids import MONOIDS, GRUMonoid
from gnnagg.segment import SegmentPlan

EXACT = ["conjugated_sum", "softmax"]


def make(monoid="gru", channels=8, seed=0, **kwargs):
    torch.manual_seed(seed)
    aggr = LCMAggregation(channels, channels, monoid=monoid, **kwargs).double()
    with torch.no_grad():
        for p in aggr.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return aggr.eval()


def random_messages(seed, num_rows=60, num_nodes=12, channels=8):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_rows, channels, generator=generator, dtype=torch.float64)
    index = torch.randint(0, num_nodes, (num_rows,), generator=generator)
    return x, index


@given(seed=st.integers(0, 1000))
@pytest.mark.parametrize("monoid", sorted(MONOIDS))
def test_locality(monoid, seed):
    """Changing other nodes' messages or adding nodes leaves a node's output unchanged."""
    aggr = make(monoid)
    x, index = random_messages(seed)
    out = aggr(x, index, dim_size=12)
    others = index != 0
    x2 = x.clone()
    x2[others] = torch.randn_like(x2[others]) * 5
    # A new hub node far away, with many messages.
    x2 = torch.cat([x2, torch.randn(300, 8, dtype=torch.float64)])
    index2 = torch.cat([index, torch.full((300,), 20)])
    out2 = aggr(x2, index2, dim_size=25)
    torch.testing.assert_close(out2[0], out[0], rtol=1e-12, atol=1e-12)
    assert out2.shape == (25, 8)


@given(seed=st.integers(0, 1000))
@pytest.mark.parametrize("monoid", EXACT)
@pytest.mark.parametrize("direct", [True, False])
def test_exact_monoids_are_permutation_invariant(monoid, direct, seed):
    aggr = make(monoid, allow_direct_reduce=direct)
    x, index = random_messages(seed)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(aggr(x[perm], index[perm], dim_size=12), aggr(x, index, dim_size=12))


@pytest.mark.parametrize("monoid", EXACT)
def test_direct_reduce_equals_tree(monoid):
    aggr = make(monoid)
    x, index = random_messages(3, num_rows=200)
    direct = aggr(x, index, dim_size=15)
    aggr.allow_direct_reduce = False
    torch.testing.assert_close(aggr(x, index, dim_size=15), direct)


def test_gru_tree_matches_pairwise_definition():
    aggr = make("gru", project=False)
    x = torch.randn(5, 8, dtype=torch.float64)
    out = aggr(x, torch.zeros(5, dtype=torch.long))
    op = aggr.monoid.combine
    expected = op(op(op(x[0:1], x[1:2]), op(x[2:3], x[3:4])), x[4:5])
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("monoid", sorted(MONOIDS))
def test_isolated_nodes_and_zero_edges_get_the_identity(monoid):
    aggr = make(monoid, project=False)
    out = aggr(torch.empty(0, 8, dtype=torch.float64), torch.empty(0, dtype=torch.long), dim_size=3)
    like = torch.zeros(1, aggr.monoid.state_channels, dtype=torch.float64)
    identity = aggr.monoid.lower(aggr.monoid.identity(like, 3))
    torch.testing.assert_close(out, identity)
    if monoid == "softmax":
        assert out.abs().sum() == 0


@pytest.mark.parametrize("monoid", EXACT)
def test_chunked_equals_single_pass(monoid):
    aggr = make(monoid)
    x, index = random_messages(5, num_rows=120)
    whole = aggr(x, index, dim_size=12)
    chunks = [
        aggr.reduce_partial(x[i : i + 40], index[i : i + 40], dim_size=12) for i in (0, 40, 80)
    ]
    merged = aggr.combine_partial(aggr.combine_partial(chunks[0], chunks[1]), chunks[2])
    torch.testing.assert_close(aggr.finalize(merged), whole)


def test_partial_reduction_rejects_bad_arguments():
    aggr = make("softmax")
    with pytest.raises(ValueError, match="exactly one of index, ptr or plan"):
        aggr.reduce_partial(torch.randn(3, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="partial states differ"):
        aggr.combine_partial(torch.zeros(3, 24), torch.zeros(4, 24))
    # Features where states are expected (the softmax monoid's states are 3x wider).
    with pytest.raises(ValueError, match="24 state channels"):
        aggr.combine_partial(torch.zeros(3, 8), torch.zeros(3, 8))
    with pytest.raises(ValueError, match="24 state channels"):
        aggr.finalize(torch.zeros(3, 8))


def test_partial_reduction_of_an_inexact_monoid_is_opt_in():
    """Merged GRU chunks differ from one pass, so reduce_partial refuses unless told."""
    aggr = make("gru")
    x, index = random_messages(5, num_rows=120)
    with pytest.raises(ValueError, match="not exactly associative"):
        aggr.reduce_partial(x, index, dim_size=12)
    halves = [
        aggr.reduce_partial(x[i : i + 60], index[i : i + 60], dim_size=12, allow_inexact=True)
        for i in (0, 60)
    ]
    merged = aggr.finalize(aggr.combine_partial(*halves))
    assert merged.shape == (12, 8) and not torch.allclose(merged, aggr(x, index, dim_size=12))


def test_ptr_dim_and_heads():
    aggr = make("gru")
    x, index = random_messages(1)
    order = index.argsort(stable=True)
    ptr = torch.cat(
        [torch.zeros(1, dtype=torch.long), torch.bincount(index, minlength=12).cumsum(0)]
    )
    expected = aggr(x, index, dim_size=12)
    torch.testing.assert_close(aggr(x[order], ptr=ptr), expected)
    # Batched leading dimension, aggregating along dim=1.
    batched = torch.stack([x, 2 * x])
    out = aggr(batched, index, dim_size=12, dim=1)
    torch.testing.assert_close(out[0], expected)
    # Heads: each head is reduced on its own.
    heads = torch.stack([x, -x], dim=1)  # [E, 2, C]
    out = aggr(heads, index, dim_size=12, dim=0)
    assert out.shape == (12, 2, 8)
    torch.testing.assert_close(out[:, 0], expected)
    torch.testing.assert_close(out[:, 1], aggr(-x, index, dim_size=12))


def test_plan_argument_reuses_grouping():
    aggr = make("gru")
    x, index = random_messages(2)
    plan = SegmentPlan.from_index(index, 12)
    torch.testing.assert_close(aggr(x, plan=plan), aggr(x, index, dim_size=12))
    # A plan is the whole grouping: an index or a different dim_size beside it is an error.
    with pytest.raises(ValueError, match="exactly one of index, ptr or plan"):
        aggr(x, index, plan=plan)
    with pytest.raises(ValueError, match="dim_size=13 disagrees"):
        aggr(x, plan=plan, dim_size=13)
    torch.testing.assert_close(aggr(x, plan=plan, dim_size=12), aggr(x, plan=plan))


def test_shuffle_only_in_training():
    aggr = make("gru", shuffle=True)
    x, index = random_messages(4, num_rows=100, num_nodes=4)
    eval_a, eval_b = aggr(x, index), aggr(x, index)
    torch.testing.assert_close(eval_a, eval_b)
    aggr.train()
    assert not torch.allclose(aggr(x, index), eval_a)


def test_associativity_loss():
    aggr = make("gru").train()
    x, index = random_messages(6)
    with pytest.raises(RuntimeError, match="needs a forward pass"):
        LCMAggregation(8, 8).associativity_loss()
    aggr(x, index)
    loss = aggr.associativity_loss(num_triples=256, seed=0)
    assert loss > 0
    loss.backward()
    assert aggr.monoid.cell.weight_hh.grad.abs().sum() > 0
    assert aggr.identity_loss(seed=0) > 0
    exact = make("conjugated_sum")
    exact(x, index)
    assert exact.associativity_loss(seed=0) < 1e-20


@pytest.mark.parametrize("monoid", sorted(MONOIDS))
def test_gradcheck(monoid):
    aggr = make(monoid, channels=3)
    x = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([2, 0, 2, 2, 1, 2, 0, 2, 2])
    assert torch.autograd.gradcheck(lambda t: aggr(t, index, dim_size=4), (x,))


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("monoid", sorted(MONOIDS))
def test_gradgradcheck(monoid, direct):
    aggr = make(monoid, channels=3, allow_direct_reduce=direct)
    x = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([2, 0, 2, 2, 1, 2, 0, 2, 2])
    assert torch.autograd.gradgradcheck(lambda t: aggr(t, index, dim_size=4), (x,))


@pytest.mark.parametrize("monoid", sorted(MONOIDS))
def test_reset_parameters_restores_the_initial_state(monoid):
    fresh = LCMAggregation(8, 8, monoid=monoid)
    trained = make(monoid).float()  # every parameter moved away from its initialisation
    trained.reset_parameters()
    # Parameters initialised to constants come back exactly; random ones are redrawn.
    for (name, p), q in zip(trained.named_parameters(), fresh.parameters()):
        if (q == q.flatten()[0]).all():
            torch.testing.assert_close(p, q, msg=name)
    if monoid == "conjugated_sum":
        # g restarts as the identity map, so the monoid is plain addition again.
        a, b = torch.randn(2, 5, 8)
        torch.testing.assert_close(trained.monoid.combine(a, b), a + b)
        conv = SAGEConv(8, 8, aggr=LCMAggregation(8, 8, monoid=monoid))
        torch.testing.assert_close(conv.aggr_module.monoid.combine(a, b), a + b)


def test_zero_edge_output_is_not_a_view_of_the_identity_parameter():
    aggr = LCMAggregation(4, 4, project=False).eval()
    with torch.no_grad():
        out = aggr(torch.empty(0, 4), torch.empty(0, dtype=torch.long), dim_size=2)
        out.fill_(7.0)
    assert aggr.monoid.identity_element.abs().sum() == 0


def test_state_dict_round_trip():
    aggr = make("conjugated_sum")
    clone = LCMAggregation(8, 8, monoid="conjugated_sum").double().eval()
    clone.load_state_dict(aggr.state_dict())
    x, index = random_messages(7)
    torch.testing.assert_close(clone(x, index), aggr(x, index))


def test_bad_arguments():
    with pytest.raises(ValueError, match="in_channels .* must equal out_channels"):
        LCMAggregation(4, 8, project=False)
    with pytest.raises(ValueError, match="monoid must be one of"):
        LCMAggregation(4, 4, monoid="median")
    with pytest.raises(ValueError, match="monoid has 5 channels"):
        LCMAggregation(4, 4, monoid=GRUMonoid(5))
    with pytest.raises(TypeError, match="monoid must be a name or a Monoid"):
        LCMAggregation(4, 4, monoid=torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="in_channels must be positive"):
        LCMAggregation(0, 4)
    aggr = LCMAggregation(4, 4)
    with pytest.raises(ValueError, match="x has 5 channels .* in_channels=4"):
        aggr(torch.randn(3, 5), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="index contains 7"):
        aggr(torch.randn(3, 4), torch.tensor([0, 7, 1]), dim_size=3)
    with pytest.raises(ValueError, match="index has 2 entries"):
        aggr(torch.randn(3, 4), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        aggr(torch.ones(3, 4, dtype=torch.long), torch.tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="index must be a torch.Tensor"):
        aggr(torch.randn(3, 4), [0, 1, 1])
    with pytest.raises(TypeError, match="dim_size must be an integer"):
        aggr(torch.randn(3, 4), torch.tensor([0, 1, 1]), dim_size=2.5)
    with pytest.raises(TypeError, match="dim must be an int"):
        aggr(torch.randn(3, 4), torch.tensor([0, 1, 1]), dim=0.0)
    with pytest.raises(TypeError, match="in_channels must be an integer, got a bool"):
        LCMAggregation(True, True)
    aggr(torch.randn(3, 4), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="num_triples must be positive"):
        aggr.associativity_loss(num_triples=0)


# -- drop-in with PyG convolutions -------------------------------------------------------------


def graph(seed=0, num_nodes=10, num_edges=40, channels=8):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_nodes, channels, generator=generator)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=generator)
    return x, edge_index


@pytest.mark.parametrize(
    "make_conv",
    [
        lambda: SAGEConv(8, 16, aggr=LCMAggregation(8, 8)),
        lambda: GraphConv(8, 16, aggr=LCMAggregation(8, 8)),
        lambda: GCNConv(8, 16, aggr=LCMAggregation(16, 16)),
        lambda: GATConv(8, 16, heads=2, aggr=LCMAggregation(16, 16)),
        lambda: GINConv(torch.nn.Linear(8, 16), aggr=LCMAggregation(8, 8)),
        lambda: EdgeConv(torch.nn.Linear(16, 16), aggr=LCMAggregation(16, 16, monoid="softmax")),
        lambda: SAGEConv(
            8,
            16,
            aggr=MultiAggregation(["mean", LCMAggregation(8, 8, monoid="conjugated_sum")]),
        ),
    ],
    ids=["sage", "graphconv", "gcn", "gat", "gin", "edgeconv", "multi"],
)
def test_drop_in_convolutions(make_conv):
    torch.manual_seed(0)
    conv = make_conv()
    x, edge_index = graph()
    out = conv(x, edge_index)
    assert out.shape[0] == 10 and torch.isfinite(out).all()
    out.sum().backward()
    # Reordering the edge list so that each node's messages keep their relative order changes
    # nothing, even for the GRU monoid, which is not exactly associative.
    perm = torch.argsort(edge_index[1], stable=True)
    torch.testing.assert_close(conv(x, edge_index[:, perm]), out, rtol=1e-5, atol=1e-5)


def test_inference_mode():
    """PyG layers that add self-loops build their index inside inference mode."""
    torch.manual_seed(0)
    x, edge_index = graph()
    for conv in (
        GCNConv(8, 16, aggr=LCMAggregation(16, 16)),
        GATConv(8, 16, heads=2, aggr=LCMAggregation(16, 16)),
    ):
        conv.eval()
        with torch.no_grad():
            expected = conv(x, edge_index)
        with torch.inference_mode():
            torch.testing.assert_close(conv(x, edge_index), expected)


@pytest.mark.filterwarnings("ignore:Sparse:UserWarning")
def test_edge_index_and_sparse_adjacency_input():
    """PyG passes both index and ptr for CSR-sorted input; ptr is the grouping then."""
    from torch_geometric import EdgeIndex
    from torch_geometric.utils import coalesce, to_torch_csr_tensor

    torch.manual_seed(0)
    x, edge_index = graph()
    edge_index = coalesce(edge_index)  # a sparse adjacency merges duplicate edges
    conv = SAGEConv(8, 16, aggr=LCMAggregation(8, 8, monoid="softmax")).eval()
    expected = conv(x, edge_index)
    by_edge_index = EdgeIndex(edge_index, sparse_size=(10, 10)).sort_by("col")[0]
    torch.testing.assert_close(conv(x, by_edge_index), expected)
    adjacency = to_torch_csr_tensor(edge_index.flip(0), size=(10, 10))
    torch.testing.assert_close(conv(x, adjacency), expected)


def test_to_hetero():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = SAGEConv((-1, -1), 16, aggr=LCMAggregation(8, 8))

        def forward(self, x, edge_index):
            return self.conv(x, edge_index)

    metadata = (
        ["paper", "author"],
        [("author", "writes", "paper"), ("paper", "rev_writes", "author")],
    )
    model = to_hetero(Net(), metadata, aggr="sum")
    x_dict = {"paper": torch.randn(6, 8), "author": torch.randn(4, 8)}
    edge_index_dict = {
        ("author", "writes", "paper"): torch.tensor([[0, 1, 2, 3, 3], [5, 0, 0, 2, 1]]),
        ("paper", "rev_writes", "author"): torch.tensor([[5, 0, 0, 2, 1], [0, 1, 2, 3, 3]]),
    }
    out = model(x_dict, edge_index_dict)
    assert out["paper"].shape == (6, 16) and out["author"].shape == (4, 16)


def test_torch_compile_runs():
    aggr = make("gru").float()
    x, index = random_messages(8)
    x = x.float()
    compiled = torch.compile(aggr, backend="aot_eager")
    torch.testing.assert_close(compiled(x, index, dim_size=12), aggr(x, index, dim_size=12))


def test_copies_drop_the_remembered_states():
    aggr = make("gru").train()
    x, index = random_messages(9)
    aggr(x.requires_grad_(), index)
    for clone in (copy.deepcopy(aggr), pickle.loads(pickle.dumps(aggr))):
        with pytest.raises(RuntimeError, match="needs a forward pass"):
            clone.associativity_loss()
        torch.testing.assert_close(clone(x, index), aggr(x, index))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_messages_are_reduced_in_the_modules_precision(dtype):
    aggr = make("gru").float()
    x, index = random_messages(10)
    out = aggr(x.to(dtype), index, dim_size=12)
    assert out.dtype == dtype
    expected = aggr(x.to(dtype).float(), index, dim_size=12)
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)
    with pytest.raises(TypeError, match="parameters are torch.float32"):
        aggr(x, index)  # float64 messages into a float32 module


def test_torch_compile_trains_with_the_regulariser():
    aggr = make("gru").float()
    x, index = random_messages(8)
    x = x.float().requires_grad_(True)

    def loss(x):
        return aggr(x, index, dim_size=12).square().sum() + aggr.associativity_loss(64, seed=0)

    compiled = torch.compile(loss, backend="aot_eager")
    (got,) = torch.autograd.grad(compiled(x), x)
    (want,) = torch.autograd.grad(loss(x), x)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("monoid", sorted(MONOIDS))
def test_locality_in_float32_within_the_promised_tolerance(monoid, monkeypatch):
    """A node's output does not depend on the rest of the batch beyond float32 rounding
    (≤ 1e-5 relative), also when the tree runs in chunks: batches of different composition
    must give a node the same answer."""
    from gnnagg.monoids import tree

    monkeypatch.setattr(tree, "CPU_CHUNK_BYTES", 256)
    aggr = make(monoid).float()
    x, index = random_messages(7, num_rows=400, num_nodes=40)
    x = x.float()
    out = aggr(x, index, dim_size=40)
    mine = index < 20
    x2 = torch.where(mine.unsqueeze(1), x, 3 * torch.randn_like(x))
    x2 = torch.cat([x2, torch.randn(1000, 8)])
    index2 = torch.cat([index, torch.full((1000,), 45)])
    out2 = aggr(x2, index2, dim_size=50)
    torch.testing.assert_close(out2[:20], out[:20], rtol=1e-5, atol=1e-5 * out.abs().max().item())


# -- PyG checkpoints and attribute names ----------------------------------------------------------
@pytest.mark.parametrize("degree", [1, 4, 6, 8])
@pytest.mark.parametrize("project", [True, False])
def test_loads_a_pyg_checkpoint(degree, project):
    from torch_geometric.nn.aggr import LCMAggregation as PyGLCMAggregation

    torch.manual_seed(0)

    class Model(torch.nn.Module):
        def __init__(self, aggr):
            super().__init__()
            self.aggr = aggr

    pyg = Model(PyGLCMAggregation(4, 4, project=project)).double()
    # PyG's operator: ReLU leaves after its projection.
    ours = Model(LCMAggregation(4, 4, project=project, leaf="relu" if project else None)).double()
    ours.load_state_dict(pyg.state_dict())  # strict: every key is matched
    assert ours.aggr.gru_cell is ours.aggr.monoid.cell
    # Equal degrees: PyG pads nothing, so the two compute the same function.
    generator = torch.Generator().manual_seed(degree)
    x = torch.randn(3 * degree, 4, dtype=torch.float64, generator=generator)
    index = torch.arange(3).repeat_interleave(degree)
    torch.testing.assert_close(ours.aggr(x, index), pyg.aggr(x, index))


def test_pyg_checkpoint_needs_the_gru_monoid():
    from torch_geometric.nn.aggr import LCMAggregation as PyGLCMAggregation

    with pytest.raises(RuntimeError, match="gru_cell"):
        LCMAggregation(4, 4, monoid="softmax").load_state_dict(PyGLCMAggregation(4, 4).state_dict())
    with pytest.raises(AttributeError, match="gru_cell"):
        _ = LCMAggregation(4, 4, monoid="softmax").gru_cell
