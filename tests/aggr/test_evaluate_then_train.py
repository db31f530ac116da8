"""The standard evaluate-then-train loop: a forward under ``torch.inference_mode`` and then
training on the same ``edge_index``. Plans (and what aggregators derive from them) are cached
per index tensor; nothing cached during evaluation may be an inference tensor, which autograd
cannot save."""

import pytest
import torch
from torch import nn
from torch_geometric.nn import GINConv, GraphConv, SAGEConv

from gnnagg import GRUAggregation, LCMAggregation, LSTMAggregation
from gnnagg.segment import clear_plan_cache

CHANNELS = 4
AGGREGATORS = {
    "lcm_gru": lambda: LCMAggregation(CHANNELS, CHANNELS, monoid="gru"),
    "lcm_conjugated_sum": lambda: LCMAggregation(CHANNELS, CHANNELS, monoid="conjugated_sum"),
    "lcm_softmax": lambda: LCMAggregation(CHANNELS, CHANNELS, monoid="softmax"),
    "lcm_softmax_tree": lambda: LCMAggregation(
        CHANNELS, CHANNELS, monoid="softmax", allow_direct_reduce=False
    ),
    "gru": lambda: GRUAggregation(CHANNELS, CHANNELS),
    "lstm": lambda: LSTMAggregation(CHANNELS, CHANNELS),
}
CONVS = {
    "sage": lambda aggr: SAGEConv(CHANNELS, CHANNELS, aggr=aggr),
    "gin": lambda aggr: GINConv(nn.Linear(CHANNELS, CHANNELS), aggr=aggr),
    "graph": lambda aggr: GraphConv(CHANNELS, CHANNELS, aggr=aggr),
}


def graph(sort: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(7, CHANNELS, generator=generator)
    edge_index = torch.randint(0, 7, (2, 20), generator=generator)
    edge_index[1, :3] = 4  # one node with several neighbours, so trees have several levels
    if sort:
        edge_index = edge_index[:, edge_index[1].argsort(stable=True)]
    return x, edge_index


@pytest.mark.parametrize("sort", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("aggregator", sorted(AGGREGATORS))
@pytest.mark.parametrize("conv", sorted(CONVS))
def test_evaluate_under_inference_mode_then_train(conv, aggregator, sort):
    torch.manual_seed(0)
    clear_plan_cache()
    model = CONVS[conv](AGGREGATORS[aggregator]())
    x, edge_index = graph(sort)
    model.eval()
    with torch.inference_mode():
        evaluated = model(x, edge_index)
    model.train()
    # Messages that require grad (as in every layer after the first): the regrouping of
    # unsorted rows is then saved for backward too.
    x_train = x.clone().requires_grad_()
    out = model(x_train, edge_index)
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad] + [x_train.grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # The same numbers as without any cache: the evaluation did not corrupt what is cached.
    clear_plan_cache()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x, edge_index), evaluated, rtol=1e-5, atol=1e-6)
