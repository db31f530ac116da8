"""group_neighbourhoods regroups messages by node, gathering only when it has to; lazy
``in_channels=-1`` of every aggregator."""

import pytest
import torch
from torch_geometric.nn import Linear, SAGEConv, to_hetero

from gnnagg.aggr import GRUAggregation, LCMAggregation, LSTMAggregation
from gnnagg.aggr.base import group_neighbourhoods


def test_sorted_input_is_used_in_place_and_unsorted_is_gathered():
    x = torch.randn(6, 3)
    grouped = group_neighbourhoods(x, torch.tensor([0, 0, 1, 2, 2, 2]), dim_size=3)
    assert grouped.rows is None and grouped.messages.data_ptr() == x.data_ptr()
    index = torch.tensor([2, 0, 1, 0, 2, 2])
    grouped = group_neighbourhoods(x, index, dim_size=3)
    assert torch.equal(grouped.rows, torch.tensor([1, 3, 2, 0, 4, 5]))
    assert torch.equal(grouped.messages, x[grouped.rows])
    torch.testing.assert_close(grouped.ptr, torch.tensor([0, 2, 3, 6]))


def test_shuffle_keeps_groups_together():
    x = torch.arange(8.0).unsqueeze(1)
    index = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2])
    generator = torch.Generator().manual_seed(0)
    grouped = group_neighbourhoods(x, index, dim_size=3, shuffle=True, generator=generator)
    assert torch.equal(index[grouped.rows], index)
    assert sorted(grouped.rows.tolist()) == list(range(8))


LAZY_AGGREGATORS = {
    "lcm-gru": lambda: LCMAggregation(-1, 8),
    "lcm-softmax": lambda: LCMAggregation(-1, 8, monoid="softmax"),
    "lcm-unprojected": lambda: LCMAggregation(-1, 5, project=False),
    "gru": lambda: GRUAggregation(-1, 8),
    "lstm-stacked-bidirectional": lambda: LSTMAggregation(
        -1, 8, num_layers=2, bidirectional=True, learn_initial_state=True
    ),
}


def _graph(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(10, 5, generator=generator)
    return x, torch.randint(0, 10, (2, 30), generator=generator)


@pytest.mark.parametrize("name", sorted(LAZY_AGGREGATORS))
def test_lazy_in_channels_are_learnt_at_the_first_forward(name):
    """``in_channels=-1`` as PyG's lazy modules: sized at the first forward (after a .double()
    too), then an ordinary module whose checkpoints load into another lazy one."""
    torch.manual_seed(0)
    conv = SAGEConv((-1, -1), 16, aggr=LAZY_AGGREGATORS[name]())
    x, edge_index = _graph()
    out = conv(x, edge_index)
    assert out.shape == (10, 16) and conv.aggr_module.in_channels == 5
    assert "-1" not in repr(conv.aggr_module)
    optimiser = torch.optim.SGD(conv.parameters(), lr=0.1)  # after the dry run, as in PyG
    out.square().sum().backward()
    optimiser.step()
    fresh = SAGEConv((-1, -1), 16, aggr=LAZY_AGGREGATORS[name]())
    fresh.load_state_dict(conv.state_dict())
    assert fresh.aggr_module.in_channels == 5
    torch.testing.assert_close(fresh(x, edge_index), conv(x, edge_index))
    double = LAZY_AGGREGATORS[name]().double()
    messages = x.double()[edge_index[0]]
    assert double(messages, edge_index[1], dim_size=10).dtype == torch.float64
    assert all(p.dtype == torch.float64 for p in double.parameters())
    with pytest.raises(ValueError, match="in_channels"):
        type(double)(-2, 8)


class HeteroNet(torch.nn.Module):
    def __init__(self, make_aggr):
        super().__init__()
        self.conv = SAGEConv((-1, -1), 16, aggr=make_aggr())
        self.lin = Linear(-1, 3)

    def forward(self, x, edge_index):
        return self.lin(self.conv(x, edge_index).relu())


@pytest.mark.parametrize("name", ["lcm-softmax", "gru"])
def test_lazy_aggregators_under_to_hetero(name):
    metadata = (["paper", "author"], [("author", "writes", "paper"), ("paper", "rev", "author")])
    model = to_hetero(HeteroNet(LAZY_AGGREGATORS[name]), metadata, aggr="sum")
    x_dict = {"paper": torch.randn(5, 4), "author": torch.randn(7, 6)}
    edges = {
        ("author", "writes", "paper"): torch.stack([torch.arange(7), torch.arange(7) % 5]),
        ("paper", "rev", "author"): torch.stack([torch.arange(7) % 5, torch.arange(7)]),
    }
    out = model(x_dict, edges)
    assert out["paper"].shape == (5, 3) and out["author"].shape == (7, 3)
    widths = {key: conv.aggr_module.in_channels for key, conv in model.conv.items()}
    assert widths == {"author__writes__paper": 6, "paper__rev__author": 4}
