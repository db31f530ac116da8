"""PyG's ``examples/unimp_arxiv.py`` (UniMP) with gnnagg's ``GraphTransformerConv`` in place of
``TransformerConv``.

Adapted from PyTorch Geometric (MIT License, Copyright (c) 2023 PyG Team; see LICENSE-PyG in
this folder), ``examples/unimp_arxiv.py`` at commit 5c6461b. Every change is marked
``# gnnagg:``: a generated graph shaped like ogbn-arxiv (128 features, 40 classes; 2,000 nodes)
with a random split instead of the download, one thread, 5 epochs instead of 500, the layer,
and the checks at the end.
"""

import math  # gnnagg: for the checks
import os.path as osp

import torch
import torch.nn.functional as F

import torch_geometric.transforms as T
from torch_geometric.datasets import FakeDataset  # gnnagg: generated instead of ogbn-arxiv
from torch_geometric.nn import MaskLabel
from torch_geometric.utils import index_to_mask

from gnnagg.attention import GraphTransformerConv as TransformerConv  # gnnagg

torch.set_num_threads(1)  # gnnagg: one thread
torch.manual_seed(0)  # gnnagg: reproducible

root = osp.join(osp.dirname(osp.realpath(__file__)), '..', 'data', 'OGB')
# gnnagg: a generated citation-like graph; its split stands in for get_idx_split().
dataset = FakeDataset(num_graphs=1, avg_num_nodes=2000, avg_degree=7, num_channels=128,
                      num_classes=40, task='node', is_undirected=False,
                      transform=T.ToUndirected())
perm = torch.randperm(dataset[0].num_nodes)
split_idx = dict(zip(('train', 'valid', 'test'), perm.tensor_split(
    [int(0.6 * perm.numel()), int(0.8 * perm.numel())])))


class UniMP(torch.nn.Module):
    def __init__(self, in_channels, num_classes, hidden_channels, num_layers,
                 heads, dropout=0.3):
        super().__init__()

        self.label_emb = MaskLabel(num_classes, in_channels)

        self.convs = torch.nn.ModuleList()
        self.norms = torch.nn.ModuleList()
        for i in range(1, num_layers + 1):
            if i < num_layers:
                out_channels = hidden_channels // heads
                concat = True
            else:
                out_channels = num_classes
                concat = False
            conv = TransformerConv(in_channels, out_channels, heads,
                                   concat=concat, beta=True, dropout=dropout)
            self.convs.append(conv)
            in_channels = hidden_channels

            if i < num_layers:
                self.norms.append(torch.nn.LayerNorm(hidden_channels))

    def forward(self, x, y, edge_index, label_mask):
        x = self.label_emb(x, y, label_mask)
        for conv, norm in zip(self.convs, self.norms):
            x = norm(conv(x, edge_index)).relu()
        return self.convs[-1](x, edge_index)


device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
data = dataset[0].to(device)
data.y = data.y.view(-1)
model = UniMP(dataset.num_features, dataset.num_classes, hidden_channels=64,
              num_layers=3, heads=2).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=0.001, weight_decay=0.0005)

train_mask = index_to_mask(split_idx['train'], size=data.num_nodes)
val_mask = index_to_mask(split_idx['valid'], size=data.num_nodes)
test_mask = index_to_mask(split_idx['test'], size=data.num_nodes)


def train(label_rate=0.65):  # How many labels to use for propagation.
    model.train()

    propagation_mask = MaskLabel.ratio_mask(train_mask, ratio=label_rate)
    supervision_mask = train_mask ^ propagation_mask

    optimizer.zero_grad()
    out = model(data.x, data.y, data.edge_index, propagation_mask)
    loss = F.cross_entropy(out[supervision_mask], data.y[supervision_mask])
    loss.backward()
    optimizer.step()

    return float(loss)


@torch.no_grad()
def test():
    model.eval()

    propagation_mask = train_mask
    out = model(data.x, data.y, data.edge_index, propagation_mask)
    pred = out[val_mask].argmax(dim=-1)
    val_acc = int((pred == data.y[val_mask]).sum()) / pred.size(0)

    propagation_mask = train_mask | val_mask
    out = model(data.x, data.y, data.edge_index, propagation_mask)
    pred = out[test_mask].argmax(dim=-1)
    test_acc = int((pred == data.y[test_mask]).sum()) / pred.size(0)

    return val_acc, test_acc


losses = []  # gnnagg: for the checks
for epoch in range(1, 6):  # gnnagg: 5 epochs (was 500)
    loss = train()
    val_acc, test_acc = test()
    losses.append(loss)
    print(f'Epoch: {epoch:03d}, Loss: {loss:.4f}, Val: {val_acc:.4f}, '
          f'Test: {test_acc:.4f}')

# gnnagg: the checks. Training runs (random labels: no accuracy to expect); the layer loads
# TransformerConv's weights and then computes what it computes.
assert all(math.isfinite(loss) for loss in losses)
assert all(0.0 <= acc <= 1.0 for acc in (val_acc, test_acc))
from torch_geometric.nn import TransformerConv as PyGTransformerConv  # noqa: E402

theirs = PyGTransformerConv(64, 40, 2, concat=False, beta=True).eval()
theirs.load_state_dict(model.convs[-1].state_dict())
x = torch.randn(data.num_nodes, 64)
torch.testing.assert_close(model.convs[-1].eval()(x, data.edge_index), theirs(x, data.edge_index))
