"""torch.compile over models with our aggregations: no more graph breaks than with PyG's own
aggregation in the same convolution, and the same outputs and gradients as eager mode."""

import pytest
import torch
import torch._dynamo as dynamo
import torch_geometric.nn.aggr as pyg
from torch_geometric.nn import SAGEConv

import gnnagg.aggr as ours

C = 4


class Model(torch.nn.Module):
    def __init__(self, make_aggr, num_layers=2):
        super().__init__()
        self.convs = torch.nn.ModuleList(
            SAGEConv(C, C, aggr=make_aggr()) for _ in range(num_layers)
        )

    def forward(self, x, edge_index):
        for conv in self.convs:
            x = conv(x, edge_index).relu()
        return x


def graph():
    generator = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 9, (2, 24), generator=generator)
    edge_index = edge_index[:, edge_index[1].argsort(stable=True)]  # PyG's need sorted input
    return torch.randn(9, C, generator=generator), edge_index


def graph_breaks(model, *inputs) -> int:
    dynamo.reset()
    try:
        return dynamo.explain(model)(*inputs).graph_break_count
    finally:
        dynamo.reset()


@pytest.mark.parametrize(
    "ours_aggr, pyg_aggr",
    [
        (lambda: ours.LCMAggregation(C, C), lambda: pyg.LCMAggregation(C, C)),
        (lambda: ours.GRUAggregation(C, C), lambda: pyg.GRUAggregation(C, C)),
    ],
    ids=["lcm", "gru"],
)
def test_no_more_graph_breaks_than_pyg(ours_aggr, pyg_aggr):
    x, edge_index = graph()
    # One layer keeps PyG's tracing short; ours break once per aggregation call, PyG's at each
    # data-dependent check (and before this was fixed ours broke about twenty times per call).
    theirs = graph_breaks(Model(pyg_aggr, num_layers=1), x, edge_index)
    mine = graph_breaks(Model(ours_aggr, num_layers=1), x, edge_index)
    assert mine <= theirs, (mine, theirs)
    assert mine <= 3


@pytest.mark.parametrize(
    "make_aggr",
    [
        lambda: ours.LCMAggregation(C, C),
        lambda: ours.LCMAggregation(C, C, monoid="softmax"),
        lambda: ours.LSTMAggregation(C, C),
    ],
    ids=["lcm-gru", "lcm-softmax", "lstm"],
)
def test_compiled_model_matches_eager(make_aggr):
    torch.manual_seed(0)
    model = Model(make_aggr)
    x, edge_index = graph()
    x.requires_grad_(True)
    eager = model(x, edge_index)
    (eager_grad,) = torch.autograd.grad(eager.square().sum(), x)
    dynamo.reset()
    try:
        compiled = torch.compile(model, backend="eager")(x, edge_index)
    finally:
        dynamo.reset()
    (compiled_grad,) = torch.autograd.grad(compiled.square().sum(), x)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(compiled_grad, eager_grad)
