"""torch.compile over models with our aggregations.

The segment reductions and the exactly associative monoids' one-step reductions trace into the
graph: 0 graph breaks, counted next to PyG's own aggregations in the same convolutions, and
``fullgraph=True`` compiles. Tree reductions and the recurrent aggregators run eagerly behind
graph breaks, never more than PyG's padded aggregations take. Compiled outputs and gradients
equal eager ones.
"""

import pytest
import torch
import torch._dynamo as dynamo
import torch_geometric.nn.aggr as pyg
from torch._dynamo.testing import CompileCounter
from torch_geometric.nn import GINConv, SAGEConv

import gnnagg.aggr as ours
from gnnagg.segment import REDUCTIONS, segment, segment_softmax

C = 4
CONVS = {
    "sage": lambda aggr: SAGEConv(C, C, aggr=aggr),
    "gin": lambda aggr: GINConv(torch.nn.Linear(C, C), aggr=aggr),
}
TRACED = {
    "lcm-softmax": lambda: ours.LCMAggregation(C, C, monoid="softmax"),
    "lcm-conjugated_sum": lambda: ours.LCMAggregation(C, C, monoid="conjugated_sum"),
}


class Model(torch.nn.Module):
    def __init__(self, make_aggr, num_layers=2, conv="sage"):
        super().__init__()
        self.convs = torch.nn.ModuleList(CONVS[conv](make_aggr()) for _ in range(num_layers))

    def forward(self, x, edge_index):
        for conv in self.convs:
            x = conv(x, edge_index).relu()
        return x


def graph(num_nodes=9, num_edges=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=generator)
    edge_index = edge_index[:, edge_index[1].argsort(stable=True)]  # PyG's padded need sorted
    return torch.randn(num_nodes, C, generator=generator), edge_index


def graph_breaks(model, *inputs) -> int:
    dynamo.reset()
    try:
        return dynamo.explain(model)(*inputs).graph_break_count
    finally:
        dynamo.reset()


def assert_compiled_matches_eager(model, inputs, **compile_kwargs):
    """Forward and input gradient of ``torch.compile(model, **compile_kwargs)`` against eager."""
    x, *rest = inputs
    x = x.clone().requires_grad_(True)
    eager = model(x, *rest)
    (eager_grad,) = torch.autograd.grad(eager.square().sum(), x)
    dynamo.reset()
    try:
        compiled = torch.compile(model, **compile_kwargs)(x, *rest)
        (compiled_grad,) = torch.autograd.grad(compiled.square().sum(), x)
    finally:
        dynamo.reset()
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("conv", sorted(CONVS))
@pytest.mark.parametrize(
    "ours_aggr, pyg_aggr",
    [
        (TRACED["lcm-softmax"], lambda: pyg.SoftmaxAggregation(learn=True, channels=C)),
        (TRACED["lcm-conjugated_sum"], lambda: pyg.SumAggregation()),
    ],
    ids=["lcm-softmax", "lcm-conjugated_sum"],
)
def test_zero_graph_breaks_like_pyg(ours_aggr, pyg_aggr, conv):
    x, edge_index = graph()
    theirs = graph_breaks(Model(pyg_aggr, conv=conv), x, edge_index)
    mine = graph_breaks(Model(ours_aggr, conv=conv), x, edge_index)
    assert (mine, theirs) == (0, 0)


@pytest.mark.parametrize(
    "ours_aggr, pyg_aggr",
    [
        (lambda: ours.LCMAggregation(C, C), lambda: pyg.LCMAggregation(C, C)),
        (
            lambda: ours.LCMAggregation(C, C, monoid="softmax", allow_direct_reduce=False),
            lambda: pyg.LCMAggregation(C, C),
        ),
        (lambda: ours.GRUAggregation(C, C), lambda: pyg.GRUAggregation(C, C)),
    ],
    ids=["lcm-gru", "lcm-softmax-tree", "gru"],
)
def test_eager_paths_break_no_more_than_pyg(ours_aggr, pyg_aggr):
    """Trees and recurrences depend on the degrees: they run eagerly behind one break per call
    (counted once per enclosing frame), PyG's padded versions at each data-dependent check."""
    x, edge_index = graph()
    theirs = graph_breaks(Model(pyg_aggr, num_layers=1), x, edge_index)
    mine = graph_breaks(Model(ours_aggr, num_layers=1), x, edge_index)
    assert mine <= theirs, (mine, theirs)


@pytest.mark.parametrize("conv", sorted(CONVS))
@pytest.mark.parametrize("aggr", sorted(TRACED))
def test_fullgraph_compiles_and_matches_eager(aggr, conv):
    torch.manual_seed(0)
    model = Model(TRACED[aggr], conv=conv)
    assert_compiled_matches_eager(
        model, graph(), fullgraph=True, dynamic=True, backend="aot_eager"
    )


@pytest.mark.parametrize("aggr", sorted(TRACED))
def test_one_graph_for_every_graph_size(aggr):
    """``dynamic=True``: graphs of other sizes reuse the compiled graph (no recompilation)."""
    torch.manual_seed(0)
    model = Model(TRACED[aggr])
    counter = CompileCounter()
    dynamo.reset()
    try:
        compiled = torch.compile(model, backend=counter, fullgraph=True, dynamic=True)
        for num_nodes, num_edges in ((9, 24), (15, 50), (30, 41)):
            x, edge_index = graph(num_nodes, num_edges, seed=num_nodes)
            torch.testing.assert_close(compiled(x, edge_index), model(x, edge_index))
    finally:
        dynamo.reset()
    assert counter.frame_count == 1


def test_inductor_compiles_an_lcm_model():
    """The real compiler once (Inductor, C++ on the CPU): a few seconds."""
    torch.manual_seed(0)
    model = Model(TRACED["lcm-softmax"], num_layers=1)
    assert_compiled_matches_eager(model, graph(), fullgraph=True)


@pytest.mark.parametrize("reduce", REDUCTIONS)
@pytest.mark.parametrize("grouping", ["index", "ptr"])
def test_every_segment_reduction_compiles_fullgraph(reduce, grouping):
    generator = torch.Generator().manual_seed(1)
    src = torch.randn(40, 3, generator=generator)
    index = torch.randint(0, 10, (40,), generator=generator)
    if grouping == "index":
        inputs = (src, index)

        def reduction(src, index):
            return segment(src, index, dim_size=12, reduce=reduce)
    else:
        inputs = (src, torch.tensor([0, 5, 5, 20, 40]))

        def reduction(src, ptr):
            return segment(src, ptr=ptr, reduce=reduce)

    assert_compiled_matches_eager(
        reduction, inputs, fullgraph=True, dynamic=True, backend="aot_eager"
    )


def test_segment_softmax_compiles_fullgraph():
    generator = torch.Generator().manual_seed(2)
    src = torch.randn(30, 2, generator=generator)
    index = torch.randint(0, 7, (30,), generator=generator)
    assert_compiled_matches_eager(
        lambda src, index: segment_softmax(src, index, dim_size=7),
        (src, index),
        fullgraph=True,
        backend="aot_eager",
    )


@pytest.mark.parametrize(
    "make_aggr",
    [
        lambda: ours.LCMAggregation(C, C),
        lambda: ours.LCMAggregation(C, C, monoid="softmax", allow_direct_reduce=False),
        lambda: ours.LSTMAggregation(C, C),
    ],
    ids=["lcm-gru", "lcm-softmax-tree", "lstm"],
)
def test_eager_paths_compile_and_match(make_aggr):
    torch.manual_seed(0)
    unsorted = graph()[0], graph()[1].flip(1)
    assert_compiled_matches_eager(Model(make_aggr), unsorted, backend="eager")


def test_compiled_training_step_with_the_regulariser():
    """The regulariser sees the compiled forward's states, as an eager forward's."""
    torch.manual_seed(0)
    model = Model(lambda: ours.LCMAggregation(C, C), num_layers=1)
    aggr = model.convs[0].aggr_module
    x, edge_index = graph()

    def loss():
        return model(x, edge_index).square().sum() + aggr.associativity_loss(16, seed=0)

    want = torch.autograd.grad(loss(), list(model.parameters()))
    dynamo.reset()
    try:
        got = torch.autograd.grad(
            torch.compile(loss, backend="aot_eager")(), list(model.parameters())
        )
    finally:
        dynamo.reset()
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
