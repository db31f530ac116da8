"""Compile a GIN whose layers aggregate with gnnagg's LCM (softmax monoid).

The setting of PyG's ``examples/compile/gin.py``: a graph classifier of ``GINConv`` layers,
``torch.compile(model, dynamic=True)`` and training through the compiled model. Here each
``GINConv`` gets ``aggr=LCMAggregation(..., monoid="softmax")``, whose one-step reduction
traces into the graph: no graph break, one compiled graph for batches of every size. The
graphs are generated (PyG's ``FakeDataset``) and labelled by a rule the model can learn.

Checks at the end: the model has no graph break, the compiled model equals the eager one
(outputs and gradients) on batches of two sizes, and training the compiled model lowers the
loss.
"""

from __future__ import annotations

import random

import torch
import torch._dynamo
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.datasets import FakeDataset
from torch_geometric.nn import MLP, GINConv, global_add_pool

from gnnagg import LCMAggregation


class GIN(nn.Module):
    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        for _ in range(num_layers):
            aggr = LCMAggregation(in_channels, in_channels, monoid="softmax")
            mlp = MLP([in_channels, hidden_channels, hidden_channels], norm=None)
            self.convs.append(GINConv(mlp, aggr=aggr))
            in_channels = hidden_channels
        self.head = nn.Linear(hidden_channels, out_channels)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        for conv in self.convs:
            x = conv(x, edge_index).relu()
        # The number of graphs is passed in: reading it from ``batch`` would sync and break.
        return self.head(global_add_pool(x, batch, size=num_graphs))


def graphs(num_graphs: int) -> Batch:
    """Random graphs labelled by whether their mean first feature is positive."""
    dataset = FakeDataset(num_graphs=num_graphs, avg_num_nodes=12, avg_degree=3,
                          num_channels=7, num_classes=2, task="graph")
    data = [dataset[i] for i in range(num_graphs)]
    for graph in data:
        graph.y = (graph.x[:, 0].mean() > 0).long().view(1)
    return Batch.from_data_list(data)


def inputs(batch: Batch) -> tuple:
    return batch.x, batch.edge_index, batch.batch, batch.num_graphs


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    random.seed(0)  # FakeDataset draws graph sizes with Python's random
    model = GIN(in_channels=7, hidden_channels=32, out_channels=2, num_layers=2)
    small, large = graphs(16), graphs(48)

    explanation = torch._dynamo.explain(model)(*inputs(small))
    print(f"graph breaks: {explanation.graph_break_count}")
    compiled = torch.compile(model, dynamic=True)
    for batch in (small, large):
        eager_out = model(*inputs(batch))
        eager_grads = torch.autograd.grad(eager_out.square().sum(), list(model.parameters()))
        compiled_out = compiled(*inputs(batch))
        compiled_grads = torch.autograd.grad(compiled_out.square().sum(),
                                             list(model.parameters()))
        torch.testing.assert_close(compiled_out, eager_out, rtol=1e-4, atol=1e-4)
        for compiled_grad, eager_grad in zip(compiled_grads, eager_grads, strict=True):
            torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-4)

    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for epoch in range(30):
        loss = F.cross_entropy(compiled(*inputs(large)), large.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if epoch % 10 == 0:
            print(f"epoch {epoch:2d}  loss {losses[-1]:.4f}")

    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert losses[-1] < 0.8 * losses[0], losses


if __name__ == "__main__":
    main()
