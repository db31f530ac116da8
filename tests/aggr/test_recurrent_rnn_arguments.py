"""The nn.GRU/nn.LSTM arguments PyG forwards (num_layers, dropout, bidirectional, proj_size, ...).

The reference is PyG's own aggregation run on one node's messages at a time: with a single node
PyG pads nothing, so its output is the recurrence over exactly that node's messages.
"""

import pytest
import torch
from torch_geometric.nn.aggr import GRUAggregation as PyGGRUAggregation
from torch_geometric.nn.aggr import LSTMAggregation as PyGLSTMAggregation

from gnnagg.aggr import GRUAggregation, LSTMAggregation

PAIRS = [(GRUAggregation, PyGGRUAggregation), (LSTMAggregation, PyGLSTMAggregation)]
CONFIGS = [
    {"num_layers": 2},
    {"num_layers": 2, "bias": False},
    {"bidirectional": True},
    {"num_layers": 3, "bidirectional": True},
    {"num_layers": 2, "dropout": 0.5},
]
LSTM_CONFIGS = [{"proj_size": 2}, {"proj_size": 2, "num_layers": 2, "bidirectional": True}]
CASES = [(ours, theirs, kw) for ours, theirs in PAIRS for kw in CONFIGS] + [
    (LSTMAggregation, PyGLSTMAggregation, kw) for kw in LSTM_CONFIGS
]


def pair(ours, theirs, kwargs, backend="auto"):
    pyg = theirs(3, 4, **kwargs).double()
    aggr = ours(3, 4, backend=backend, **kwargs).double()
    aggr.load_state_dict(pyg.state_dict())
    return aggr, pyg


def per_node(pyg, x, index, num_nodes):
    """PyG's output node by node (one node: no padding), zeros for nodes without messages."""
    rows = []
    for v in range(num_nodes):
        mine = x[index == v]
        if mine.shape[0] == 0:
            rows.append(None)
            continue
        if mine.dim() == 2:
            rows.append(pyg(mine, torch.zeros(mine.shape[0], dtype=torch.long), dim_size=1)[0])
        else:  # one sequence per head
            heads = [
                pyg(mine[:, h], torch.zeros(mine.shape[0], dtype=torch.long), dim_size=1)[0]
                for h in range(mine.shape[1])
            ]
            rows.append(torch.stack(heads))
    width = next(r for r in rows if r is not None)
    return torch.stack([torch.zeros_like(width) if r is None else r for r in rows])


@pytest.mark.parametrize("backend", ["segments", "packed"])
@pytest.mark.parametrize("ours, theirs, kwargs", CASES)
def test_matches_pyg_node_by_node(ours, theirs, kwargs, backend):
    torch.manual_seed(0)
    aggr, pyg = pair(ours, theirs, kwargs, backend)
    aggr.eval(), pyg.eval()
    gen = torch.Generator().manual_seed(1)
    index = torch.tensor([0, 2, 2, 0, 3, 2, 0, 2, 3, 2, 5, 2])  # degrees 3, 0, 6, 2, 0, 1
    x = torch.randn(index.numel(), 3, dtype=torch.float64, generator=gen)
    out = aggr(x, index, dim_size=6)
    assert out.shape == (6, aggr.output_size)
    torch.testing.assert_close(out, per_node(pyg, x, index, 6))
    heads = torch.randn(index.numel(), 2, 3, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(
        aggr(heads, index, dim_size=6, dim=0), per_node(pyg, heads, index, 6)
    )


@pytest.mark.parametrize("ours, theirs, kwargs", CASES)
def test_backends_agree_with_gradients(ours, theirs, kwargs):
    kwargs = {k: v for k, v in kwargs.items() if k != "dropout"}
    segments, _ = pair(ours, theirs, kwargs, "segments")
    packed, _ = pair(ours, theirs, kwargs, "packed")
    packed.load_state_dict(segments.state_dict())
    gen = torch.Generator().manual_seed(2)
    index = torch.randint(0, 7, (40,), generator=gen)
    x = torch.randn(40, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    outs = [m(x, index, dim_size=8) for m in (segments, packed)]
    torch.testing.assert_close(*outs)
    grads = [
        torch.autograd.grad(o.square().sum(), [x, *m.parameters()])
        for o, m in zip(outs, (segments, packed))
    ]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls", [GRUAggregation, LSTMAggregation])
def test_dropout_between_layers_only_in_training(cls):
    aggr = cls(3, 4, num_layers=2, dropout=0.5).double()
    gen = torch.Generator().manual_seed(3)
    index = torch.randint(0, 4, (20,), generator=gen)
    x = torch.randn(20, 3, dtype=torch.float64, generator=gen)
    torch.manual_seed(0)
    first, second = aggr(x, index), aggr(x, index)
    assert not torch.equal(first, second)
    aggr.eval()
    torch.testing.assert_close(aggr(x, index), aggr(x, index), rtol=0, atol=0)


@pytest.mark.parametrize("cls", [GRUAggregation, LSTMAggregation])
def test_learnt_initial_state_per_layer_and_direction(cls):
    aggr = cls(3, 4, num_layers=2, bidirectional=True, learn_initial_state=True).double()
    assert all(p.shape == (4, 4) for p in aggr.initial_state)
    with torch.no_grad():
        for part in aggr.initial_state:
            part.normal_()
    x, index = torch.randn(3, 3, dtype=torch.float64), torch.tensor([0, 0, 2])
    out = aggr(x, index, dim_size=3)
    # A node without messages gets the top layer's initial h in both directions.
    torch.testing.assert_close(out[1], aggr.initial_state[0][2:].reshape(-1))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in aggr.initial_state)


@pytest.mark.parametrize("cls", [GRUAggregation, LSTMAggregation])
def test_device_and_dtype_arguments(cls):
    aggr = cls(3, 4, learn_initial_state=True, device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in aggr.parameters())
    out = aggr(torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 1]))
    assert out.dtype == torch.float64


def test_repr_names_the_rnn_arguments():
    text = repr(LSTMAggregation(3, 4, num_layers=2, bidirectional=True, proj_size=2))
    assert "num_layers=2" in text and "bidirectional=True" in text and "proj_size=2" in text
    assert "num_layers" not in repr(GRUAggregation(3, 4))


def test_pyg_attribute_names():
    gru, lstm = GRUAggregation(3, 4), LSTMAggregation(3, 4)
    assert gru.gru is gru.rnn and lstm.lstm is lstm.rnn


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_first": True}, TypeError, "batch_first cannot be set"),
        ({"input_size": 3}, TypeError, "input_size is given by in_channels"),
        ({"hidden_size": 4}, TypeError, "hidden_size is given by out_channels"),
        ({"num_layers": 2.5}, TypeError, "num_layers must be an int"),
        ({"num_layers": 0}, ValueError, "num_layers must be positive"),
        ({"bidirectional": "yes"}, TypeError, "bidirectional must be a bool"),
        ({"dropout": float("nan")}, ValueError, "dropout must be finite"),
        ({"dropout": 2}, ValueError, "dropout must be at most 1"),
        ({"dropout": "0.1"}, TypeError, "dropout must be a real number"),
        ({"proj_size": 2}, ValueError, "proj_size"),
        ({"not_an_argument": 1}, TypeError, "not_an_argument"),
    ],
)
def test_refused_rnn_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        GRUAggregation(3, 4, **kwargs)


@pytest.mark.parametrize("cls", [GRUAggregation, LSTMAggregation])
def test_permutation_loss_refuses_bidirectional(cls):
    aggr = cls(3, 4, bidirectional=True)
    aggr(torch.randn(6, 3), torch.tensor([0, 0, 0, 1, 1, 1]))
    with pytest.raises(ValueError, match="bidirectional=True"):
        aggr.permutation_loss()


STACKED = [
    (GRUAggregation, {"num_layers": 3}),
    (LSTMAggregation, {"num_layers": 2}),
    (LSTMAggregation, {"num_layers": 2, "proj_size": 2}),
]


@pytest.mark.parametrize("backend", ["segments", "packed"])
@pytest.mark.parametrize("cls, kwargs", STACKED)
def test_stacked_states_before_are_the_states_reached(cls, kwargs, backend):
    torch.manual_seed(0)
    aggr = cls(3, 4, learn_initial_state=True, backend=backend, **kwargs).double()
    with torch.no_grad():
        for part in aggr.initial_state:
            part.normal_()
    gen = torch.Generator().manual_seed(3)
    index = torch.cat([torch.randint(0, 6, (30,), generator=gen), torch.full((12,), 7)])
    x = torch.randn(index.numel(), 3, dtype=torch.float64, generator=gen)
    aggr(x, index)
    state, x_i, x_j, seq, step, _ = aggr.sample_commutator_pairs(120, gen)
    layers = aggr.rnn.num_layers
    assert len(state) == aggr.num_state_parts * layers
    degrees = torch.bincount(index, minlength=8)
    order = torch.sort(degrees, descending=True, stable=True).indices
    initial = [p.detach().reshape(layers, -1) for p in aggr.initial_state]
    for k in range(0, 120, 5):
        rows = (index == int(order[int(seq[k])])).nonzero().flatten()
        prefix = x[rows[: int(step[k])]]
        with torch.no_grad():
            if int(step[k]) == 0:
                expected = initial
            else:
                hx = tuple(part.unsqueeze(1) for part in initial)
                _, final = aggr.rnn(prefix.unsqueeze(1), hx[0] if len(hx) == 1 else hx)
                expected = [final] if len(hx) == 1 else list(final)
        want = [part[layer].reshape(-1) for part in expected for layer in range(layers)]
        for got, ref in zip(state, want):
            torch.testing.assert_close(got[k], ref)
        torch.testing.assert_close(x_i[k], x[rows[int(step[k])]])
    # The transition is one step of the stacked RNN.
    hx = tuple(torch.stack(state[p * layers : (p + 1) * layers]) for p in range(len(initial)))
    with torch.no_grad():
        _, final = aggr.rnn(x_i.unsqueeze(0), hx[0] if len(hx) == 1 else hx)
    final = (final,) if len(hx) == 1 else final
    after = aggr.transition(state, x_i)
    for p, part in enumerate(final):
        for layer in range(layers):
            torch.testing.assert_close(after[p * layers + layer], part[layer])


@pytest.mark.parametrize("cls, kwargs", STACKED)
def test_stacked_permutation_loss_reaches_every_layer(cls, kwargs):
    torch.manual_seed(0)
    aggr = cls(3, 4, **kwargs)
    gen = torch.Generator().manual_seed(1)
    aggr(torch.randn(30, 3, generator=gen), torch.randint(0, 5, (30,), generator=gen))
    aggr.permutation_loss(64, torch.Generator().manual_seed(0)).backward()
    for layer in range(aggr.rnn.num_layers):
        assert getattr(aggr.rnn, f"weight_hh_l{layer}").grad.abs().sum() > 0


def test_lstm_projection_transition_is_one_lstm_step():
    aggr = LSTMAggregation(3, 4, proj_size=2).double()
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    h = torch.randn(5, 2, dtype=torch.float64, generator=gen)
    c = torch.randn(5, 4, dtype=torch.float64, generator=gen)
    _, (h_ref, c_ref) = aggr.rnn(x.unsqueeze(0), (h.unsqueeze(0), c.unsqueeze(0)))
    h_new, c_new = aggr.transition((h, c), x)
    torch.testing.assert_close(h_new, h_ref[0])
    torch.testing.assert_close(c_new, c_ref[0])
    aggr(x, torch.tensor([0, 0, 1, 1, 1]))
    assert aggr.permutation_loss(16, torch.Generator().manual_seed(0)) > 0


# -- CUDA (runs only where a GPU is present; CI has none) -----------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("ours, theirs, kwargs", CASES)
def test_cuda_packed_matches_cpu_segments(ours, theirs, kwargs, train, monkeypatch):
    # cuDNN's RNNs use TF32 by default on Ampere and later.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    cpu, _ = pair(ours, theirs, kwargs, "segments")
    gpu = ours(3, 4, **kwargs).double().cuda()  # "auto": one cuDNN call on the packed batch
    gpu.load_state_dict(cpu.state_dict())
    # In training mode dropout draws differ between devices: compare without it there; in eval
    # mode with gradients cuDNN runs in training mode with dropout off.
    if train and kwargs.get("dropout"):
        for module in (cpu, gpu):
            module.rnn.dropout = 0.0
    cpu.train(train), gpu.train(train)
    gen = torch.Generator().manual_seed(5)
    index = torch.cat([torch.randint(1, 30, (150,), generator=gen), torch.zeros(400).long()])
    index = index[torch.randperm(index.numel(), generator=gen)]
    x = torch.randn(index.numel(), 3, dtype=torch.float64, generator=gen, requires_grad=True)
    x_gpu = x.detach().cuda().requires_grad_(True)
    out_cpu, out_gpu = cpu(x, index, dim_size=32), gpu(x_gpu, index.cuda(), dim_size=32)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu)
    out_cpu.square().sum().backward()
    out_gpu.square().sum().backward()
    torch.testing.assert_close(x_gpu.grad.cpu(), x.grad)
    for p_cpu, p_gpu in zip(cpu.parameters(), gpu.parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad)
