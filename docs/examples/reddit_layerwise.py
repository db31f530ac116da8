"""GraphSAGE with gnnagg's LCM aggregation: sampled training, layer-wise inference.

The setting of PyG's ``examples/reddit.py``: a two-layer GraphSAGE trained on mini-batches of
sampled neighbourhoods, then evaluated layer by layer: every node's first-layer output is
computed from all of its neighbours, batch by batch, before the second layer runs, which
costs one hop per layer instead of the whole receptive field per batch. Each ``SAGEConv``
here aggregates with ``LCMAggregation(..., monoid="softmax")``. The graph is generated (PyG's
``FakeDataset``), its labels given by a rule on the features the model can learn.

Neighbourhoods are loaded by ``sampling.neighbor_loader`` (beside this file): PyG's
``NeighborLoader`` where pyg-lib or torch-sparse is installed, a plain-torch stand-in that
samples the same way where neither is.

Checks at the end: sampled training lowers the loss, and layer-wise inference over all
neighbours equals the full-graph forward.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from sampling import neighbor_loader
from torch import Tensor, nn
from torch_geometric.datasets import FakeDataset
from torch_geometric.nn import SAGEConv

from gnnagg import LCMAggregation


class SAGE(nn.Module):
    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        for in_width, out_width in ((in_channels, hidden_channels),
                                    (hidden_channels, out_channels)):
            aggr = LCMAggregation(in_width, in_width, monoid="softmax")
            self.convs.append(SAGEConv(in_width, out_width, aggr=aggr))

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = F.dropout(x.relu(), p=0.5, training=self.training)
        return x

    @torch.no_grad()
    def inference(self, x: Tensor, loader) -> Tensor:
        """Every node's output, one layer at a time over all nodes; ``loader`` yields batches
        of seed nodes with their whole one-hop in-neighbourhood."""
        for i, conv in enumerate(self.convs):
            outputs = []
            for batch in loader:
                out = conv(x[batch.n_id], batch.edge_index)[: batch.batch_size]
                outputs.append(out.relu() if i < len(self.convs) - 1 else out)
            x = torch.cat(outputs)
        return x


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    random.seed(0)  # FakeDataset draws graph sizes with Python's random
    data = FakeDataset(num_graphs=1, avg_num_nodes=600, avg_degree=8, num_channels=16,
                       num_classes=4, task="node")[0]
    data.y = (data.x[:, :4] + 0.5 * data.x[:, 4:8]).argmax(dim=-1)
    train_mask = torch.rand(data.num_nodes) < 0.7

    train_loader = neighbor_loader(data, num_neighbors=[10, 5], input_nodes=train_mask,
                                   batch_size=128, shuffle=True)
    all_neighbours = neighbor_loader(data, num_neighbors=[-1], batch_size=256)

    model = SAGE(16, 32, 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for epoch in range(5):
        model.train()
        total = 0.0
        for batch in train_loader:
            out = model(batch.x, batch.edge_index)[: batch.batch_size]
            loss = F.cross_entropy(out, batch.y[: batch.batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.batch_size
        losses.append(total / int(train_mask.sum()))
        print(f"epoch {epoch}  loss {losses[-1]:.4f}")

    model.eval()
    layerwise = model.inference(data.x, all_neighbours)
    with torch.no_grad():
        full = model(data.x, data.edge_index)
    accuracy = float((layerwise.argmax(-1) == data.y)[~train_mask].float().mean())
    print(f"held-out accuracy: {accuracy:.3f}")

    assert losses[-1] < 0.8 * losses[0], losses
    torch.testing.assert_close(layerwise, full, rtol=1e-4, atol=1e-4)


if __name__ == "__main__":
    main()
