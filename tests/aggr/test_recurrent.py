"""GRU/LSTM aggregation without padding, and the permutation regulariser.

The reference is a per-node Python loop over nn.GRUCell/nn.LSTMCell in float64 that reads each
neighbourhood in edge order (or a given order).
"""

import gc
import itertools
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch_geometric.nn import GATConv, GCNConv, SAGEConv, to_hetero
from torch_geometric.nn.aggr import GRUAggregation as PyGGRUAggregation
from torch_geometric.nn.aggr import LSTMAggregation as PyGLSTMAggregation

from gnnagg.aggr.recurrent import GRUAggregation, LSTMAggregation, total_permutation_loss

from ..allocations import AllocationLog

CLASSES = [GRUAggregation, LSTMAggregation]
F_IN, F_OUT = 3, 4


def make(cls, in_channels=F_IN, out_channels=F_OUT, dtype=torch.float64, **kwargs):
    return cls(in_channels, out_channels, **kwargs).to(dtype)


def cell_like(aggr):
    rnn = aggr.rnn
    cell_cls = nn.GRUCell if isinstance(rnn, nn.GRU) else nn.LSTMCell
    cell = cell_cls(rnn.input_size, rnn.hidden_size, bias=rnn.bias).double()
    with torch.no_grad():
        cell.weight_ih.copy_(rnn.weight_ih_l0)
        cell.weight_hh.copy_(rnn.weight_hh_l0)
        if rnn.bias:
            cell.bias_ih.copy_(rnn.bias_ih_l0)
            cell.bias_hh.copy_(rnn.bias_hh_l0)
    return cell


def initial_states(aggr):
    if aggr.learn_initial_state:
        return [p.detach().double().unsqueeze(0) for p in aggr.initial_state]
    return [torch.zeros(1, aggr.out_channels, dtype=torch.float64)] * aggr.num_state_parts


def run_cell(aggr, cell, rows, initial=None):
    """States after each prefix of ``rows`` ([d + 1] states, the first the initial one)."""
    state = initial or initial_states(aggr)
    states = [state]
    for row in rows:
        out = cell(row.double().unsqueeze(0), tuple(state) if len(state) == 2 else state[0])
        state = list(out) if isinstance(out, tuple) else [out]
        states.append(state)
    return states


def reference(aggr, x, index, num_nodes, orders=None):
    """Per-node loop: the hidden state after each node's last message, [N, H] float64."""
    cell = cell_like(aggr)
    out = []
    for v in range(num_nodes):
        rows = (index == v).nonzero().flatten().tolist()
        if orders is not None:
            rows = [rows[i] for i in orders[v]]
        out.append(run_cell(aggr, cell, x[rows])[-1][0][0])
    return torch.stack(out)


def random_graph(num_nodes, num_edges, channels=F_IN, seed=0):
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, max(num_nodes, 1), (num_edges,), generator=gen)
    x = torch.randn(num_edges, channels, generator=gen, dtype=torch.float64)
    return x, index


# -- sequence semantics ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@settings(max_examples=12)
@given(
    num_nodes=st.integers(1, 8),
    num_edges=st.integers(0, 30),
    extra_nodes=st.integers(0, 3),
    seed=st.integers(0, 2**16),
    learn_initial_state=st.booleans(),
    bias=st.booleans(),
)
def test_matches_per_node_cell_loop(
    cls, num_nodes, num_edges, extra_nodes, seed, learn_initial_state, bias
):
    torch.manual_seed(seed)
    aggr = make(cls, learn_initial_state=learn_initial_state, bias=bias)
    if learn_initial_state:
        with torch.no_grad():
            for part in aggr.initial_state:
                part.normal_()
    x, index = random_graph(num_nodes, num_edges, seed=seed)
    dim_size = num_nodes + extra_nodes
    out = aggr(x, index, dim_size=dim_size)
    assert out.shape == (dim_size, F_OUT) and out.dtype == torch.float64
    torch.testing.assert_close(out, reference(aggr, x, index, dim_size), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_ptr_input_and_plan_match_index(cls):
    aggr = make(cls)
    x, index = random_graph(6, 25)
    index, perm = index.sort(stable=True)
    x = x[perm]
    ptr = torch.zeros(8, dtype=torch.long)
    ptr[1:] = torch.bincount(index, minlength=7).cumsum(0)
    expected = aggr(x, index, dim_size=7)
    torch.testing.assert_close(aggr(x, ptr=ptr), expected)
    from gnnagg.segment import SegmentPlan

    torch.testing.assert_close(aggr(x, plan=SegmentPlan.from_index(index, 7)), expected)


@pytest.mark.parametrize("cls", CLASSES)
def test_any_dim(cls):
    aggr = make(cls)
    x, index = random_graph(5, 20)
    batch = torch.stack([x, 2 * x, -x])  # [3, E, F], aggregated along dim 1
    out = aggr(batch, index, dim_size=5, dim=1)
    assert out.shape == (3, 5, F_OUT)
    for b in range(3):
        torch.testing.assert_close(out[b], reference(aggr, batch[b], index, 5))


@pytest.mark.parametrize("cls", CLASSES)
def test_extra_dims_run_one_sequence_per_head(cls):
    aggr = make(cls)
    gen = torch.Generator().manual_seed(1)
    index = torch.randint(0, 6, (24,), generator=gen)
    x = torch.randn(24, 2, 3, F_IN, generator=gen, dtype=torch.float64)
    out = aggr(x, index, dim_size=6, dim=0)
    assert out.shape == (6, 2, 3, F_OUT)
    for a, b in itertools.product(range(2), range(3)):
        torch.testing.assert_close(out[:, a, b], reference(aggr, x[:, a, b], index, 6))


@pytest.mark.parametrize("cls", CLASSES)
def test_locality_other_nodes_do_not_change_a_node(cls):
    aggr = make(cls)
    x, index = random_graph(5, 20)
    out = aggr(x, index, dim_size=8)
    # Change every message of the other nodes and give node 7 a degree of 100: PyG pads node 0
    # to 100 steps then, here its output is unchanged.
    others = index != 0
    x2 = torch.where(others.unsqueeze(-1), torch.randn_like(x), x)
    x2 = torch.cat([x2, torch.randn(100, F_IN, dtype=torch.float64)])
    index2 = torch.cat([index, torch.full((100,), 7)])
    out2 = aggr(x2, index2, dim_size=8)
    torch.testing.assert_close(out2[0], out[0], rtol=0, atol=0)


@pytest.mark.parametrize(
    "ours, theirs", [(GRUAggregation, PyGGRUAggregation), (LSTMAggregation, PyGLSTMAggregation)]
)
def test_equals_pyg_when_all_degrees_are_equal(ours, theirs):
    # With no padding needed PyG's sequence semantics and ours coincide.
    aggr = make(ours)
    pyg = theirs(F_IN, F_OUT).double()
    pyg_rnn = pyg.gru if hasattr(pyg, "gru") else pyg.lstm
    pyg_rnn.load_state_dict(aggr.rnn.state_dict())
    index = torch.arange(6).repeat_interleave(4)
    x = torch.randn(24, F_IN, dtype=torch.float64)
    torch.testing.assert_close(aggr(x, index), pyg(x, index))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("backend", ["segments", "packed"])
def test_output_is_the_same_with_and_without_grad(cls, backend):
    aggr = make(cls, backend=backend)
    x, index = random_graph(7, 50)
    with torch.no_grad():
        quiet = aggr(x, index)
    torch.testing.assert_close(aggr(x.requires_grad_(True), index), quiet, rtol=0, atol=0)


# -- shuffling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_shuffle_changes_output_in_train_mode_only(cls):
    aggr = make(cls, shuffle=True)
    index = torch.tensor([0, 1, 0, 0, 1, 2])
    x = torch.randn(6, F_IN, dtype=torch.float64)
    rows0 = [0, 2, 3]
    candidates = {
        perm: reference(aggr, x, index, 3, orders={0: perm, 1: [0, 1], 2: [0]})[0]
        for perm in itertools.permutations(range(3))
    }
    seen = set()
    for _ in range(20):
        out = aggr(x, index)
        match = [p for p, ref in candidates.items() if torch.allclose(out[0], ref)]
        assert len(match) == 1, "node 0's output must be its GRU/LSTM over some order of its rows"
        seen.add(match[0])
    assert len(seen) > 1
    aggr.eval()
    outs = [aggr(x, index) for _ in range(3)]
    # Eval mode reads in edge order: rows 0, 2, 3 as they appear in x.
    assert all(torch.equal(o, outs[0]) for o in outs)
    torch.testing.assert_close(outs[0][0], candidates[(0, 1, 2)])
    assert rows0 == (index == 0).nonzero().flatten().tolist()


# -- isolated nodes, zero edges, initial state ----------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("learn_initial_state", [False, True])
def test_zero_edges_and_isolated_nodes_get_the_initial_state(cls, learn_initial_state):
    aggr = make(cls, learn_initial_state=learn_initial_state)
    if learn_initial_state:
        with torch.no_grad():
            aggr.initial_state[0].fill_(0.5)
    expected_idle = 0.5 if learn_initial_state else 0.0
    x = torch.empty(0, F_IN, dtype=torch.float64, requires_grad=True)
    out = aggr(x, torch.empty(0, dtype=torch.long), dim_size=4)
    assert out.shape == (4, F_OUT)
    assert torch.all(out == expected_idle)
    out.sum().backward()
    # Isolated nodes next to nodes with messages.
    x = torch.randn(3, F_IN, dtype=torch.float64)
    out = aggr(x, torch.tensor([1, 1, 3]), dim_size=5)
    assert torch.all(out[[0, 2, 4]] == expected_idle)
    assert not torch.all(out[1] == expected_idle)
    if learn_initial_state:
        aggr.zero_grad()
        out.sum().backward()
        assert aggr.initial_state[0].grad.abs().sum() > 0
    # The aggregator returns a fresh tensor, safe to modify in place.
    out.add_(1.0)


@pytest.mark.parametrize("cls", CLASSES)
def test_no_nodes(cls):
    out = make(cls)(torch.empty(0, F_IN, dtype=torch.float64), torch.empty(0, dtype=torch.long))
    assert out.shape == (0, F_OUT)


# -- gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("backend", ["segments", "packed"])
def test_gradcheck(cls, backend):
    aggr = make(cls, 2, 3, learn_initial_state=True, backend=backend)
    index = torch.tensor([2, 0, 2, 2, 0, 3])
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    names = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_hh_l0", "initial_state.0"]
    params = dict(aggr.named_parameters())
    inputs = [params[n].detach().clone().requires_grad_(True) for n in names]

    def fn(x, *values):
        return torch.func.functional_call(
            aggr, dict(zip(names, values)), (x, index), {"dim_size": 5}
        )

    assert torch.autograd.gradcheck(fn, (x, *inputs))


@pytest.mark.parametrize("cls", CLASSES)
def test_backends_agree(cls):
    segments = make(cls, backend="segments", learn_initial_state=True)
    packed = make(cls, backend="packed", learn_initial_state=True)
    packed.load_state_dict(segments.state_dict())
    x, index = random_graph(7, 50)
    x.requires_grad_(True)
    out_segments, out_packed = segments(x, index, dim_size=9), packed(x, index, dim_size=9)
    torch.testing.assert_close(out_segments, out_packed)
    grads = [torch.autograd.grad(o.square().sum(), x)[0] for o in (out_segments, out_packed)]
    torch.testing.assert_close(*grads)
    gen = [torch.Generator().manual_seed(5) for _ in range(2)]
    torch.testing.assert_close(
        segments.permutation_loss(64, gen[0]), packed.permutation_loss(64, gen[1])
    )


# -- drop-in with PyG layers ----------------------------------------------------------------------
def _graph(num_nodes=12, num_edges=40, channels=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    x = torch.randn(num_nodes, channels, generator=gen)
    return x, edge_index


@pytest.mark.parametrize("cls", CLASSES)
def test_sage_conv(cls):
    x, edge_index = _graph()
    aggr = cls(8, 8)
    conv = SAGEConv(8, 5, aggr=aggr)
    out = conv(x, edge_index)
    assert out.shape == (12, 5)
    (out.square().mean() + 0.1 * aggr.permutation_loss()).backward()
    assert aggr.rnn.weight_ih_l0.grad is not None


@pytest.mark.parametrize("cls", CLASSES)
def test_gcn_conv_unsorted_edges(cls):
    x, edge_index = _graph()
    conv = GCNConv(8, 8, aggr=cls(8, 8)).eval()
    out = conv(x, edge_index)
    # A stable sort by target keeps each neighbourhood's reading order, so the output is equal.
    perm = edge_index[1].sort(stable=True).indices
    torch.testing.assert_close(conv(x, edge_index[:, perm]), out)
    assert not torch.equal(edge_index[1].sort().values, edge_index[1])


@pytest.mark.parametrize("cls", CLASSES)
def test_gat_conv_heads(cls):
    x, edge_index = _graph()
    conv = GATConv(8, 4, heads=3, aggr=cls(4, 4))
    out = conv(x, edge_index)
    assert out.shape == (12, 12)
    out.sum().backward()


def test_to_hetero():
    from torch_geometric.data import HeteroData

    data = HeteroData()
    data["paper"].x = torch.randn(10, 8)
    data["author"].x = torch.randn(6, 8)
    data["author", "writes", "paper"].edge_index = torch.stack(
        [torch.randint(0, 6, (20,)), torch.randint(0, 10, (20,))]
    )
    data["paper", "rev_writes", "author"].edge_index = data[
        "author", "writes", "paper"
    ].edge_index.flip(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = SAGEConv(8, 8, aggr=GRUAggregation(8, 8, shuffle=True))

        def forward(self, x, edge_index):
            return self.conv(x, edge_index)

    model = to_hetero(Net(), data.metadata())
    out = model(data.x_dict, data.edge_index_dict)
    assert out["paper"].shape == (10, 8) and out["author"].shape == (6, 8)
    loss = sum(o.square().mean() for o in out.values()) + 0.1 * total_permutation_loss(model)
    loss.backward()
    copies = [m for m in model.modules() if isinstance(m, GRUAggregation)]
    assert len(copies) == 2
    assert all(m.rnn.weight_hh_l0.grad is not None for m in copies)


# -- dtypes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_messages_compute_in_float32(cls, dtype):
    aggr = cls(F_IN, F_OUT)
    x, index = random_graph(5, 20)
    out = aggr(x.to(dtype), index)
    assert out.dtype == dtype
    expected = aggr(x.to(dtype).float(), index)
    torch.testing.assert_close(out, expected.to(dtype))
    aggr.permutation_loss()


@pytest.mark.parametrize("cls", CLASSES)
def test_more_precise_messages_than_parameters_is_an_error(cls):
    x, index = random_graph(5, 20)
    with pytest.raises(TypeError, match="x has dtype torch.float64"):
        cls(F_IN, F_OUT)(x, index)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, error, match",
    [
        ((0, 4), ValueError, "in_channels must be positive"),
        ((3, -1), ValueError, "out_channels must be positive"),
        ((3.0, 4), TypeError, "in_channels must be an int"),
        ((3, True), TypeError, "out_channels must be an int"),
        ((3, 4, False, False, True, "cudnn"), ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(args, error, match):
    with pytest.raises(error, match=match):
        GRUAggregation(*args)


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_forward_arguments(cls):
    aggr = make(cls)
    x, index = random_graph(5, 20)
    with pytest.raises(ValueError, match="x has 5 channels .* in_channels=3"):
        aggr(torch.randn(20, 5, dtype=torch.float64), index)
    with pytest.raises(ValueError, match="index contains"):
        aggr(x, index, dim_size=2)
    with pytest.raises(ValueError, match="channel dimension"):
        aggr(x, index, dim=-1)
    with pytest.raises(ValueError, match="invalid dimension|out of range"):
        aggr(x, index, dim=3)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        aggr(x.long(), index)
    with pytest.raises(ValueError, match="index has 19 entries"):
        aggr(x, index[:-1])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        aggr(x.tolist(), index)


@pytest.mark.parametrize(
    "ours, theirs", [(GRUAggregation, PyGGRUAggregation), (LSTMAggregation, PyGLSTMAggregation)]
)
def test_loads_a_pyg_checkpoint(ours, theirs):
    torch.manual_seed(0)
    pyg = theirs(F_IN, F_OUT)
    aggr = ours(F_IN, F_OUT)
    aggr.load_state_dict(pyg.state_dict())
    # Equal degrees: PyG pads nothing, so the two compute the same function.
    x, index = torch.randn(12, F_IN), torch.arange(4).repeat_interleave(3)
    torch.testing.assert_close(aggr(x, index), pyg(x, index))


# -- the regulariser ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_permutation_loss_zero_for_commuting_positive_otherwise(cls):
    aggr = make(cls)
    x, index = random_graph(6, 40)
    aggr(x, index)
    loss = aggr.permutation_loss()
    assert loss.item() > 1e-6
    # A transition that ignores its message commutes: f(f(s,a),b) = g(g(s)) = f(f(s,b),a).
    with torch.no_grad():
        aggr.rnn.weight_ih_l0.zero_()
    aggr(x, index)
    assert aggr.permutation_loss().item() == 0.0


@pytest.mark.parametrize("cls", CLASSES)
def test_permutation_loss_gradient_reaches_only_the_weights(cls):
    aggr = make(cls, learn_initial_state=True)
    x, index = random_graph(6, 40)
    x.requires_grad_(True)
    aggr(x, index)
    loss = aggr.permutation_loss(64)
    loss.backward()
    assert x.grad is None
    assert aggr.rnn.weight_ih_l0.grad.abs().sum() > 0
    assert aggr.rnn.weight_hh_l0.grad.abs().sum() > 0
    assert aggr.initial_state[0].grad is None


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("heads", [None, 2])
def test_sampled_states_are_the_states_reached(cls, heads):
    aggr = make(cls, learn_initial_state=True)
    with torch.no_grad():
        for part in aggr.initial_state:
            part.normal_()
    gen = torch.Generator().manual_seed(3)
    index = torch.cat([torch.randint(0, 8, (40,), generator=gen), torch.full((30,), 9)])
    shape = (70, F_IN) if heads is None else (70, heads, F_IN)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    aggr(x, index, dim=0)
    state, x_i, x_j, seq, step, other = aggr.sample_commutator_pairs(300, gen)
    assert torch.all(step != other)
    cell = cell_like(aggr)
    degrees = torch.bincount(index, minlength=10)
    order = torch.sort(degrees, descending=True, stable=True).indices
    sequences_per_node = 1 if heads is None else heads
    for k in range(0, 300, 7):
        node = int(order[int(seq[k]) // sequences_per_node])
        rows = (index == node).nonzero().flatten()
        xs = x[rows] if heads is None else x[rows, int(seq[k]) % sequences_per_node]
        assert len(rows) >= 2
        expected = run_cell(aggr, cell, xs)[int(step[k])]
        for part, ref in zip(state, expected):
            torch.testing.assert_close(part[k], ref[0])
        torch.testing.assert_close(x_i[k], xs[int(step[k])])
        torch.testing.assert_close(x_j[k], xs[int(other[k])])
    # Both ends of long sequences are reached by uniform sampling.
    assert int(step.max()) > 20 and int(step.min()) == 0


@pytest.mark.parametrize("cls", CLASSES)
def test_permutation_loss_needs_a_forward_with_gradients(cls):
    aggr = make(cls)
    with pytest.raises(RuntimeError, match="call the aggregation"):
        aggr.permutation_loss()
    x, index = random_graph(6, 40)
    aggr(x, index)
    aggr.permutation_loss()
    with torch.no_grad():
        aggr(x, index)
    with pytest.raises(RuntimeError, match="without gradients"):
        aggr.permutation_loss()
    with pytest.raises(RuntimeError, match="no recurrent aggregator"):
        total_permutation_loss(nn.Sequential(aggr))
    aggr.eval()
    aggr(x, index)
    with torch.no_grad():  # Usable as a metric once recorded.
        assert aggr.permutation_loss() > 0
    with pytest.raises(ValueError, match="num_samples must be positive"):
        aggr.permutation_loss(0)


@pytest.mark.parametrize("cls", CLASSES)
def test_permutation_loss_is_zero_without_pairs(cls):
    aggr = make(cls)
    aggr(torch.randn(3, F_IN, dtype=torch.float64), torch.tensor([0, 1, 2]))
    assert aggr.permutation_loss().item() == 0.0
    aggr(torch.empty(0, F_IN, dtype=torch.float64), torch.empty(0, dtype=torch.long), dim_size=2)
    assert aggr.permutation_loss().item() == 0.0


@pytest.mark.parametrize("cls", CLASSES)
def test_copies_and_conversions_forget_the_last_forward(cls):
    import copy
    import io

    aggr = make(cls)
    x, index = random_graph(6, 40)
    aggr(x, index)
    assert aggr._last_recorded is not None
    buffer = io.BytesIO()
    torch.save(aggr, buffer)
    for other in (
        copy.deepcopy(aggr),
        torch.load(io.BytesIO(buffer.getvalue()), weights_only=False),
    ):
        with pytest.raises(RuntimeError, match="call the aggregation"):
            other.permutation_loss()
    aggr.float()  # the recorded states are float64: gone rather than mismatched
    with pytest.raises(RuntimeError, match="call the aggregation"):
        aggr.permutation_loss()


@pytest.mark.parametrize("cls", CLASSES)
def test_only_the_last_forward_is_kept(cls):
    aggr = make(cls, shuffle=True)
    x, index = random_graph(6, 40)
    x.requires_grad_(True)
    out = aggr(x, index)
    first = weakref.ref(aggr._last_recorded.outputs)
    assert aggr._last_recorded.outputs.grad_fn is None
    del out
    aggr(x, index)
    gc.collect()
    assert first() is None


# -- memory and work ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("backend", ["segments", "packed"])
def test_no_buffer_of_nodes_times_max_degree_and_linear_work(cls, backend):
    # One hub of degree k among k degree-1 nodes: E = 2k, padding would need (k + 1) * k rows.
    channels = 8
    logs = {}
    for hub in (250, 1000):
        aggr = cls(channels, channels, backend=backend)
        index = torch.cat([torch.arange(1, hub + 1), torch.zeros(hub, dtype=torch.long)])
        x = torch.randn(2 * hub, channels, requires_grad=True)
        logs[hub] = log = AllocationLog()
        with log:
            aggr(x, index).sum().backward()
            aggr.permutation_loss().backward()
        padded_bytes = (hub + 1) * hub * channels * 4
        assert log.largest <= padded_bytes / 4
    # Quadrupling E (and D_max, and N) quadruples the largest tensor; padding would give 16x.
    assert logs[1000].largest <= 6 * logs[250].largest
    if backend == "segments":
        # ... and the total work. ATen's packed CPU backward is quadratic in D_max, hence
        # "segments" on the CPU.
        assert logs[1000].total <= 6 * logs[250].total


# -- CUDA (runs only where a GPU is present; CI has none) -----------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("backend", ["auto", "segments"])
def test_cuda_matches_the_cpu_reference(cls, backend, monkeypatch):
    # cuDNN's RNNs use TF32 by default on Ampere and later, ~1e-3 off over thousands of steps.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    aggr = cls(F_IN, F_OUT, learn_initial_state=True, backend=backend)
    with torch.no_grad():
        for part in aggr.initial_state:
            part.normal_()
    # Unsorted index, isolated nodes, a hub of degree 3000 next to degree-1 nodes, two heads.
    gen = torch.Generator().manual_seed(7)
    index = torch.cat([torch.randint(1, 50, (200,), generator=gen), torch.zeros(3000).long()])
    index = index[torch.randperm(index.numel(), generator=gen)]
    x = torch.randn(index.numel(), 2, F_IN, generator=gen, dtype=torch.float64)
    expected = [reference(aggr.double(), x[:, h], index, 60) for h in range(2)]
    aggr = aggr.float().cuda()
    x_cuda = x.float().cuda().requires_grad_(True)
    out = aggr(x_cuda, index.cuda(), dim_size=60, dim=0)
    for h in range(2):
        torch.testing.assert_close(out[:, h].double().cpu(), expected[h], rtol=1e-4, atol=1e-4)
    (out.square().sum() + aggr.permutation_loss()).backward()
    assert torch.isfinite(x_cuda.grad).all()
    half = aggr(x_cuda.detach().half(), index.cuda(), dim_size=60, dim=0)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), out.detach(), rtol=1e-2, atol=1e-2)
