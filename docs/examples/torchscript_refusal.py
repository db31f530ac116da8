"""What happens when a model holding a gnnagg aggregator is given to ``torch.jit.script``.

The setting of PyG's ``examples/jit/gin.py``: a GIN graph classifier is scripted with
``torch.jit.script`` and trained. gnnagg's modules decide their work from the graph at run
time, in Python that TorchScript cannot compile, so every one of them refuses scripting with a
``NotImplementedError`` that names the module and the supported alternative,
``torch.compile``, also from deep inside a model. This script does what the message says. The
graphs are generated (PyG's ``FakeDataset``) and labelled by a rule the model can learn.

Checks at the end: the same GIN with PyG's sum aggregation scripts, with gnnagg's LCM
aggregation it is refused with a message naming ``torch.compile`` and ``LCMAggregation``, and
the compiled model equals the eager one and trains.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.datasets import FakeDataset
from torch_geometric.nn import GINConv, global_add_pool

from gnnagg import LCMAggregation


class GIN(nn.Module):
    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int, lcm: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        for _ in range(num_layers):
            aggr = LCMAggregation(in_channels, in_channels, monoid="softmax") if lcm else "sum"
            mlp = nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.ReLU(),
                                nn.Linear(hidden_channels, hidden_channels))
            self.convs.append(GINConv(mlp, train_eps=True, aggr=aggr))
            in_channels = hidden_channels
        self.head = nn.Linear(hidden_channels, out_channels)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        for conv in self.convs:
            x = conv(x, edge_index).relu()
        return self.head(global_add_pool(x, batch, size=num_graphs))


def graphs(num_graphs: int) -> Batch:
    """Random graphs labelled by whether their mean first feature is positive."""
    dataset = FakeDataset(num_graphs=num_graphs, avg_num_nodes=12, avg_degree=3,
                          num_channels=8, num_classes=2, task="graph")
    data = [dataset[i] for i in range(num_graphs)]
    for graph in data:
        graph.y = (graph.x[:, 0].mean() > 0).long().view(1)
    return Batch.from_data_list(data)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    random.seed(0)  # FakeDataset draws graph sizes with Python's random
    data = graphs(32)

    scripted = torch.jit.script(GIN(8, 32, 2, num_layers=2, lcm=False))
    print(f"PyG's sum aggregation scripts: {type(scripted).__name__}")

    model = GIN(8, 32, 2, num_layers=2, lcm=True)
    try:
        torch.jit.script(model)
    except NotImplementedError as error:
        message = str(error)
        print(f"refused: {message}")
    else:
        raise AssertionError("torch.jit.script of a gnnagg model was not refused")

    inputs = data.x, data.edge_index, data.batch, data.num_graphs
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(*inputs), model(*inputs), rtol=1e-4, atol=1e-4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(compiled(*inputs), data.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"compiled training: loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    assert isinstance(scripted, torch.jit.ScriptModule)
    assert "torch.compile" in message and "LCMAggregation" in message, message
    assert losses[-1] < 0.8 * losses[0], losses


if __name__ == "__main__":
    main()
