"""Opt-in names for PyG's aggr= strings: SAGEConv, GraphSAGE, MultiAggregation, to_hetero."""

import torch
import torch_geometric.nn.aggr as pyg_aggr
from torch_geometric.nn import GraphSAGE, Linear, SAGEConv, to_hetero
from torch_geometric.nn.aggr import MultiAggregation
from torch_geometric.nn.resolver import aggregation_resolver

from gnnagg.aggr import GRUAggregation, LCMAggregation, LSTMAggregation, register_pyg_names

register_pyg_names()


def graph(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 8, generator=generator)
    return x, torch.randint(0, 12, (2, 40), generator=generator)


def test_names_resolve_to_ours_and_lcm_stays_pyg():
    names = register_pyg_names()  # idempotent
    assert set(names) == {"gnnagg_lcm", "gnnagg_gru", "gnnagg_lstm"}
    for name, cls in (("gnnagg_lcm", LCMAggregation), ("gnnagg_gru", GRUAggregation),
                      ("gnnagg_lstm", LSTMAggregation)):  # fmt: skip
        assert isinstance(aggregation_resolver(name, 8, 8), cls)
    # "lcm" is PyG's padded class, registered or not.
    assert type(aggregation_resolver("lcm", 8, 8)) is pyg_aggr.LCMAggregation


def test_sage_conv_by_name():
    x, edge_index = graph()
    conv = SAGEConv(8, 16, aggr="gnnagg_lcm", aggr_kwargs={"in_channels": 8, "out_channels": 8,
                                                            "monoid": "softmax"})  # fmt: skip
    assert isinstance(conv.aggr_module, LCMAggregation)
    assert conv.aggr_module.monoid.__class__.__name__ == "SoftmaxMonoid"
    assert conv(x, edge_index).shape == (12, 16)
    multi = SAGEConv(8, 16, aggr=["mean", "gnnagg_gru"],
                     aggr_kwargs={"aggrs_kwargs": [{}, {"in_channels": 8, "out_channels": 8}]})
    assert isinstance(multi.aggr_module, MultiAggregation)
    assert multi(x, edge_index).shape == (12, 16)


def test_graph_sage_by_name_gives_every_layer_its_own_aggregator():
    x, edge_index = graph()
    model = GraphSAGE(-1, 16, num_layers=3, out_channels=4, aggr="gnnagg_lcm",
                      aggr_kwargs={"in_channels": -1, "out_channels": 16})  # fmt: skip
    out = model(x, edge_index)
    assert out.shape == (12, 4)
    aggregators = [conv.aggr_module for conv in model.convs]
    assert len({id(a) for a in aggregators}) == 3
    assert [a.in_channels for a in aggregators] == [8, 16, 16]
    # The trap: an instance is one module, shared by every layer (one set of weights).
    shared = LCMAggregation(16, 16)
    trap = GraphSAGE(16, 16, num_layers=3, aggr=shared)
    assert all(conv.aggr_module is shared for conv in trap.convs)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = SAGEConv((-1, -1), 16, aggr="gnnagg_lstm",
                             aggr_kwargs={"in_channels": -1, "out_channels": 8})  # fmt: skip
        self.lin = Linear(-1, 3)

    def forward(self, x, edge_index):
        return self.lin(self.conv(x, edge_index).relu())


def test_to_hetero_by_name():
    metadata = (["paper", "author"], [("author", "writes", "paper"), ("paper", "rev", "author")])
    model = to_hetero(Net(), metadata, aggr="sum")
    x_dict = {"paper": torch.randn(5, 4), "author": torch.randn(7, 6)}
    edges = {
        ("author", "writes", "paper"): torch.stack([torch.arange(7), torch.arange(7) % 5]),
        ("paper", "rev", "author"): torch.stack([torch.arange(7) % 5, torch.arange(7)]),
    }
    out = model(x_dict, edges)
    assert out["paper"].shape == (5, 3) and out["author"].shape == (7, 3)
    assert all(isinstance(conv.aggr_module, LSTMAggregation) for conv in model.conv.values())
