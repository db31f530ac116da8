"""Heterogeneous GNNs with lazy gnnagg aggregators: ``to_hetero`` and ``HeteroConv``.

The setting of PyG's ``examples/hetero/to_hetero_mag.py``: classify the papers of a graph of
papers, authors and fields of study (OGB-MAG's shape), with a homogeneous GraphSAGE turned
heterogeneous by ``to_hetero``, which copies each layer once per edge type. The layers are
written lazily (``in_channels=-1``), as ``to_hetero`` models usually are, and so are their
aggregators: ``LCMAggregation(-1, ..., monoid="softmax")`` learns its input width per edge
type on the first forward. ``ToUndirected`` adds the reversed edges, whose targets are
unsorted. The same convolutions then go into a ``HeteroConv``. The graph is generated, the
papers' labels given by a rule on their features the model can learn.

Checks at the end: both models train (the loss falls), and every edge type got its own
aggregator, sized from its source node type.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import HeteroConv, Linear, SAGEConv, to_hetero

from gnnagg import LCMAggregation

NUM_CLASSES = 4
WIDTHS = {"paper": 16, "author": 8, "field_of_study": 8}


def mag_like() -> HeteroData:
    """Papers, authors and fields of study with random links; reversed edges added."""
    sizes = {"paper": 300, "author": 200, "field_of_study": 30}
    data = HeteroData()
    for node_type, count in sizes.items():
        data[node_type].x = torch.randn(count, WIDTHS[node_type])
    data["paper"].y = data["paper"].x[:, :NUM_CLASSES].argmax(dim=-1)
    for (src, rel, dst), per_source in [(("author", "writes", "paper"), 3),
                                        (("paper", "cites", "paper"), 4),
                                        (("paper", "has_topic", "field_of_study"), 2)]:
        sources = torch.arange(sizes[src]).repeat_interleave(per_source)
        targets = torch.randint(0, sizes[dst], (sources.numel(),))
        data[src, rel, dst].edge_index = torch.stack([sources, targets])
    return T.ToUndirected()(data)


def sage(hidden_channels: int) -> SAGEConv:
    aggr = LCMAggregation(-1, hidden_channels, monoid="softmax")
    return SAGEConv((-1, -1), hidden_channels, aggr=aggr)


class SAGE(nn.Module):
    def __init__(self, hidden_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = sage(hidden_channels), sage(hidden_channels)
        self.head = Linear(-1, out_channels)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        x = self.conv1(x, edge_index).relu()
        x = self.conv2(x, edge_index).relu()
        return self.head(x)


class HeteroSAGE(nn.Module):
    def __init__(self, edge_types: list, hidden_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = HeteroConv({edge_type: sage(hidden_channels) for edge_type in edge_types})
        self.head = Linear(-1, out_channels)

    def forward(self, x_dict: dict, edge_index_dict: dict) -> dict:
        x_dict = self.conv(x_dict, edge_index_dict)
        return {node_type: self.head(x.relu()) for node_type, x in x_dict.items()}


def train(model: nn.Module, data: HeteroData, steps: int) -> list[float]:
    model(data.x_dict, data.edge_index_dict)  # lazy shapes are learnt on a first forward
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        out = model(data.x_dict, data.edge_index_dict)["paper"]
        loss = F.cross_entropy(out, data["paper"].y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = mag_like()
    print(f"edge types: {data.edge_types}")

    models = {
        "to_hetero": to_hetero(SAGE(32, NUM_CLASSES), data.metadata(), aggr="sum"),
        "HeteroConv": HeteroSAGE(data.edge_types, 32, NUM_CLASSES),
    }
    for name, model in models.items():
        losses = train(model, data, steps=30)
        print(f"{name}: loss {losses[0]:.4f} -> {losses[-1]:.4f}")
        assert losses[-1] < 0.8 * losses[0], (name, losses)

    for name, model, layers in [("to_hetero", models["to_hetero"], 2),
                                ("HeteroConv", models["HeteroConv"], 1)]:
        aggregators = [m for m in model.modules() if isinstance(m, LCMAggregation)]
        assert len(aggregators) == layers * len(data.edge_types), name
        assert len({id(a) for a in aggregators}) == len(aggregators), name
    first_layer = [models["HeteroConv"].conv.convs[edge_type].aggr_module
                   for edge_type in data.edge_types]  # fmt: skip
    assert [a.in_channels for a in first_layer] == [WIDTHS[src] for src, _, _ in data.edge_types]


if __name__ == "__main__":
    main()
