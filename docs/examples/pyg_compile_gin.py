"""PyG's ``examples/compile/gin.py`` with gnnagg's LCM aggregation (softmax monoid) in GINConv.

Adapted from PyTorch Geometric (MIT License, Copyright (c) 2023 PyG Team; see LICENSE-PyG in
this folder), ``examples/compile/gin.py`` at commit 5c6461b. Every change is marked
``# gnnagg:``: generated graphs instead of TUDataset('MUTAG') (7 features, 2 classes, as
MUTAG), one thread, 2 epochs instead of 100, the aggregator, and the checks at the end.
"""

import math  # gnnagg: for the checks
import os.path as osp
import time

import torch
import torch.nn.functional as F

import torch_geometric
from torch_geometric.datasets import FakeDataset  # gnnagg: generated instead of TUDataset
from torch_geometric.loader import DataLoader
from torch_geometric.nn import MLP, GINConv, global_add_pool

from gnnagg import LCMAggregation  # gnnagg

torch.set_num_threads(1)  # gnnagg: one thread
torch.manual_seed(0)  # gnnagg: reproducible

if not torch_geometric.typing.WITH_PT21:
    quit('Dynamic shape compilation requires PyTorch >= 2.1.0')

if torch.cuda.is_available():
    device = torch.device('cuda')
elif hasattr(torch.backends, 'mps') and torch.backends.mps.is_available():
    # MPS is currently slower than CPU due to missing int64 min/max ops
    device = torch.device('cpu')
else:
    device = torch.device('cpu')

path = osp.dirname(osp.realpath(__file__))
# gnnagg: 188 generated graphs shaped like MUTAG's (about 18 nodes, 7 features, 2 classes).
dataset = FakeDataset(num_graphs=188, avg_num_nodes=18, avg_degree=2, num_channels=7,
                      num_classes=2, task='graph').shuffle()

train_loader = DataLoader(dataset[:0.9], batch_size=128, shuffle=True)
test_loader = DataLoader(dataset[0.9:], batch_size=128)


class GIN(torch.nn.Module):
    def __init__(self, in_channels, hidden_channels, out_channels, num_layers):
        super().__init__()

        self.convs = torch.nn.ModuleList()
        for _ in range(num_layers):
            mlp = MLP([in_channels, hidden_channels, hidden_channels])
            # gnnagg: the softmax monoid's LCM aggregation instead of the default sum.
            aggr = LCMAggregation(in_channels, in_channels, monoid='softmax')
            self.convs.append(GINConv(nn=mlp, train_eps=False, aggr=aggr))
            in_channels = hidden_channels

        self.mlp = MLP([hidden_channels, hidden_channels, out_channels],
                       norm=None, dropout=0.5)

    def forward(self, x, edge_index, batch, batch_size):
        for conv in self.convs:
            x = conv(x, edge_index).relu()
        # Pass the batch size to avoid CPU communication/graph breaks:
        x = global_add_pool(x, batch, size=batch_size)
        return self.mlp(x)


model = GIN(
    in_channels=dataset.num_features,
    hidden_channels=32,
    out_channels=dataset.num_classes,
    num_layers=5,
).to(device)

# Compile the model into an optimized version:
model = torch.compile(model, dynamic=True)

optimizer = torch.optim.Adam(model.parameters(), lr=0.01)


def train():
    model.train()

    total_loss = 0
    for data in train_loader:
        data = data.to(device)
        optimizer.zero_grad()
        out = model(data.x, data.edge_index, data.batch, data.batch_size)
        loss = F.cross_entropy(out, data.y)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * data.num_graphs
    return total_loss / len(train_loader.dataset)


@torch.no_grad()
def test(loader):
    model.eval()

    total_correct = 0
    for data in loader:
        data = data.to(device)
        out = model(data.x, data.edge_index, data.batch, data.batch_size)
        pred = out.argmax(dim=-1)
        total_correct += int((pred == data.y).sum())
    return total_correct / len(loader.dataset)


times = []
losses = []  # gnnagg: for the checks
for epoch in range(1, 3):  # gnnagg: 2 epochs
    start = time.time()
    loss = train()
    train_acc = test(train_loader)
    test_acc = test(test_loader)
    times.append(time.time() - start)
    losses.append(loss)
    print(f'Epoch: {epoch:03d}, Loss: {loss:.4f}, Train: {train_acc:.4f}, '
          f'Test: {test_acc:.4f}')
print(f'Median time per epoch: {torch.tensor(times).median():.4f}s')

# gnnagg: the checks. The aggregation traced into the compiled graph: no graph break anywhere.
from torch._dynamo.utils import counters  # noqa: E402

assert sum(counters['graph_break'].values()) == 0, dict(counters['graph_break'])
assert all(0.0 <= acc <= 1.0 for acc in (train_acc, test_acc))
assert all(math.isfinite(loss) for loss in losses)
