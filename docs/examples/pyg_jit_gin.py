"""PyG's ``examples/jit/gin.py`` with gnnagg's LCM aggregation (softmax monoid) in GINConv.

Adapted from PyTorch Geometric (MIT License, Copyright (c) 2023 PyG Team; see LICENSE-PyG in
this folder), ``examples/jit/gin.py`` at commit 5c6461b. Every change is marked ``# gnnagg:``:
generated graphs instead of TUDataset('IMDB-BINARY') (the same OneHotDegree(135) features),
one thread, 2 epochs instead of 100, the aggregator, and the checks at the end.

gnnagg's modules refuse TorchScript with an error that names the alternative; the script takes
it (``torch.compile``), as a user reading the message would.
"""

import math  # gnnagg: for the checks
import os.path as osp

import torch
import torch.nn.functional as F
from torch.nn import BatchNorm1d as BatchNorm
from torch.nn import Linear, ReLU, Sequential

from torch_geometric.datasets import FakeDataset  # gnnagg: generated instead of TUDataset
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GINConv, global_add_pool
from torch_geometric.transforms import OneHotDegree

from gnnagg import LCMAggregation  # gnnagg

torch.set_num_threads(1)  # gnnagg: one thread
torch.manual_seed(0)  # gnnagg: reproducible

path = osp.join(osp.dirname(osp.realpath(__file__)), '..', '..', 'data', 'TU')
# gnnagg: 200 generated graphs of about 20 nodes, 2 classes, degrees one-hot as IMDB-BINARY.
dataset = FakeDataset(num_graphs=200, avg_num_nodes=20, avg_degree=4, num_channels=0,
                      num_classes=2, task='graph', transform=OneHotDegree(135))
dataset = dataset.shuffle()
test_dataset = dataset[:len(dataset) // 10]
train_dataset = dataset[len(dataset) // 10:]
test_loader = DataLoader(test_dataset, batch_size=128)
train_loader = DataLoader(train_dataset, batch_size=128)


class GIN(torch.nn.Module):
    def __init__(self, in_channels, hidden_channels, out_channels, num_layers):
        super().__init__()

        self.convs = torch.nn.ModuleList()
        self.batch_norms = torch.nn.ModuleList()

        for _ in range(num_layers):
            mlp = Sequential(
                Linear(in_channels, 2 * hidden_channels),
                BatchNorm(2 * hidden_channels),
                ReLU(),
                Linear(2 * hidden_channels, hidden_channels),
            )
            # gnnagg: the softmax monoid's LCM aggregation instead of the default sum.
            aggr = LCMAggregation(in_channels, in_channels, monoid='softmax')
            conv = GINConv(mlp, train_eps=True, aggr=aggr)

            self.convs.append(conv)
            self.batch_norms.append(BatchNorm(hidden_channels))

            in_channels = hidden_channels

        self.lin1 = Linear(hidden_channels, hidden_channels)
        self.batch_norm1 = BatchNorm(hidden_channels)
        self.lin2 = Linear(hidden_channels, out_channels)

    def forward(self, x, edge_index, batch):
        for conv, batch_norm in zip(self.convs, self.batch_norms):
            x = F.relu(batch_norm(conv(x, edge_index)))
        x = global_add_pool(x, batch)
        x = F.relu(self.batch_norm1(self.lin1(x)))
        x = F.dropout(x, p=0.5, training=self.training)
        x = self.lin2(x)
        return F.log_softmax(x, dim=-1)


device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
model = GIN(dataset.num_features, 64, dataset.num_classes, num_layers=3)
model = model.to(device)
try:
    model = torch.jit.script(model)
except NotImplementedError as error:  # gnnagg: refused, naming the alternative: taken
    assert 'torch.compile' in str(error) and 'LCMAggregation' in str(error)
    model = torch.compile(model)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)


def train():
    model.train()

    total_loss = 0.
    for data in train_loader:
        data = data.to(device)
        optimizer.zero_grad()
        out = model(data.x, data.edge_index, data.batch)
        loss = F.nll_loss(out, data.y)
        loss.backward()
        total_loss += loss.item() * data.num_graphs
        optimizer.step()
    return total_loss / len(train_dataset)


@torch.no_grad()
def test(loader):
    model.eval()

    total_correct = 0
    for data in loader:
        data = data.to(device)
        out = model(data.x, data.edge_index, data.batch)
        pred = out.max(dim=1)[1]
        total_correct += pred.eq(data.y).sum().item()
    return total_correct / len(loader.dataset)


losses = []  # gnnagg: for the checks
for epoch in range(1, 3):  # gnnagg: 2 epochs
    loss = train()
    train_acc = test(train_loader)
    test_acc = test(test_loader)
    losses.append(loss)
    print(f'Epoch: {epoch:03d}, Loss: {loss:.4f}, '
          f'Train: {train_acc:.4f}, Test: {test_acc:.4f}')

# gnnagg: the checks.
assert not isinstance(model, torch.jit.ScriptModule)
assert all(0.0 <= acc <= 1.0 for acc in (train_acc, test_acc))
assert all(math.isfinite(loss) for loss in losses)
