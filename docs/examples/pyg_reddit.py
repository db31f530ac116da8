"""PyG's ``examples/reddit.py`` (GraphSAGE with sampled training and layer-wise inference) with
gnnagg's LCM aggregation (softmax monoid) in SAGEConv.

Adapted from PyTorch Geometric (MIT License, Copyright (c) 2023 PyG Team; see LICENSE-PyG in
this folder), ``examples/reddit.py`` at commit 5c6461b. Every change is marked ``# gnnagg:``:
a generated graph shaped like Reddit's (602 features, 41 classes; 2,000 nodes) with random
masks instead of the download, one thread, 2 epochs instead of 10, the aggregator, the checks
at the end, and ``NeighborLoader`` from ``sampling.py`` (PyG's own where pyg-lib or
torch-sparse is installed; neither installs here).
"""

import copy
import os.path as osp
import sys
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from torch_geometric.datasets import FakeDataset  # gnnagg: generated instead of Reddit
from torch_geometric.nn import SAGEConv

from gnnagg import LCMAggregation  # gnnagg

sys.path.insert(0, osp.dirname(osp.realpath(__file__)))  # gnnagg: the stand-in loader
from sampling import neighbor_loader as NeighborLoader  # noqa: E402  # gnnagg

torch.set_num_threads(1)  # gnnagg: one thread
torch.manual_seed(0)  # gnnagg: reproducible

device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

path = osp.join(osp.dirname(osp.realpath(__file__)), '..', 'data', 'Reddit')
# gnnagg: a generated graph, and masks as Reddit's (about 66 / 10 / 24 %).
dataset = FakeDataset(num_graphs=1, avg_num_nodes=2000, avg_degree=12, num_channels=602,
                      num_classes=41, task='node')

# Already send node features/labels to GPU for faster access during sampling:
data = dataset[0].to(device, 'x', 'y')
split = torch.rand(data.num_nodes)  # gnnagg: the masks
data.train_mask, data.val_mask = split < 0.66, (split >= 0.66) & (split < 0.76)
data.test_mask = split >= 0.76

kwargs = {'batch_size': 1024, 'num_workers': 6, 'persistent_workers': True}
train_loader = NeighborLoader(data, input_nodes=data.train_mask,
                              num_neighbors=[25, 10], shuffle=True, **kwargs)

subgraph_loader = NeighborLoader(copy.copy(data), input_nodes=None,
                                 num_neighbors=[-1], shuffle=False, **kwargs)

# No need to maintain these features during evaluation:
del subgraph_loader.data.x, subgraph_loader.data.y
# Add global node index information.
subgraph_loader.data.num_nodes = data.num_nodes
subgraph_loader.data.n_id = torch.arange(data.num_nodes)


class SAGE(torch.nn.Module):
    def __init__(self, in_channels, hidden_channels, out_channels):
        super().__init__()
        self.convs = torch.nn.ModuleList()
        # gnnagg: the softmax monoid's LCM aggregation instead of the default mean.
        self.convs.append(SAGEConv(in_channels, hidden_channels, aggr=LCMAggregation(
            in_channels, in_channels, monoid='softmax')))
        self.convs.append(SAGEConv(hidden_channels, out_channels, aggr=LCMAggregation(
            hidden_channels, hidden_channels, monoid='softmax')))

    def forward(self, x, edge_index):
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if i < len(self.convs) - 1:
                x = x.relu_()
                x = F.dropout(x, p=0.5, training=self.training)
        return x

    @torch.no_grad()
    def inference(self, x_all, subgraph_loader):
        pbar = tqdm(total=len(subgraph_loader.dataset) * len(self.convs))
        pbar.set_description('Evaluating')

        # Compute representations of nodes layer by layer, using *all*
        # available edges. This leads to faster computation in contrast to
        # immediately computing the final representations of each batch:
        for i, conv in enumerate(self.convs):
            xs = []
            for batch in subgraph_loader:
                x = x_all[batch.n_id.to(x_all.device)].to(device)
                x = conv(x, batch.edge_index.to(device))
                if i < len(self.convs) - 1:
                    x = x.relu_()
                xs.append(x[:batch.batch_size].cpu())
                pbar.update(batch.batch_size)
            x_all = torch.cat(xs, dim=0)
        pbar.close()
        return x_all


model = SAGE(dataset.num_features, 256, dataset.num_classes).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)


def train(epoch):
    model.train()

    pbar = tqdm(total=int(len(train_loader.dataset)))
    pbar.set_description(f'Epoch {epoch:02d}')

    total_loss = total_correct = total_examples = 0
    for batch in train_loader:
        optimizer.zero_grad()
        y = batch.y[:batch.batch_size]
        y_hat = model(batch.x, batch.edge_index.to(device))[:batch.batch_size]
        loss = F.cross_entropy(y_hat, y)
        loss.backward()
        optimizer.step()

        total_loss += float(loss) * batch.batch_size
        total_correct += int((y_hat.argmax(dim=-1) == y).sum())
        total_examples += batch.batch_size
        pbar.update(batch.batch_size)
    pbar.close()

    return total_loss / total_examples, total_correct / total_examples


@torch.no_grad()
def test():
    model.eval()
    y_hat = model.inference(data.x, subgraph_loader).argmax(dim=-1)
    y = data.y.to(y_hat.device)

    accs = []
    for mask in [data.train_mask, data.val_mask, data.test_mask]:
        accs.append(int((y_hat[mask] == y[mask]).sum()) / int(mask.sum()))
    return accs


times = []
for epoch in range(1, 3):  # gnnagg: 2 epochs (was 10)
    start = time.time()
    loss, acc = train(epoch)
    print(f'Epoch {epoch:02d}, Loss: {loss:.4f}, Approx. Train: {acc:.4f}')
    train_acc, val_acc, test_acc = test()
    print(f'Epoch: {epoch:02d}, Train: {train_acc:.4f}, Val: {val_acc:.4f}, '
          f'Test: {test_acc:.4f}')
    times.append(time.time() - start)
print(f"Median time per epoch: {torch.tensor(times).median():.4f}s")

# gnnagg: the checks. Layer-wise inference over all neighbours gives the full-graph forward.
model.eval()
with torch.no_grad():
    torch.testing.assert_close(model.inference(data.x, subgraph_loader),
                               model(data.x, data.edge_index), rtol=1e-4, atol=1e-4)
assert all(0.0 <= acc <= 1.0 for acc in (train_acc, val_acc, test_acc))
