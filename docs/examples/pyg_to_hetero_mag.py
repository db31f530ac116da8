"""PyG's ``examples/hetero/to_hetero_mag.py`` with gnnagg's LCM aggregation (softmax monoid,
lazy ``in_channels=-1``) in the SAGEConvs that ``to_hetero`` copies per edge type, and the same
convolutions in a ``HeteroConv``.

Adapted from PyTorch Geometric (MIT License, Copyright (c) 2023 PyG Team; see LICENSE-PyG in
this folder), ``examples/hetero/to_hetero_mag.py`` at commit 5c6461b. Every change is marked
``# gnnagg:``: a generated graph shaped like OGB_MAG's (papers, authors, institutions, fields
of study with 128 features; 20 classes instead of 349) instead of the download, one thread,
2 epochs instead of 20, the aggregator, the checks at the end (a ``HeteroConv`` among them),
and ``NeighborLoader`` from ``sampling.py`` (PyG's own where pyg-lib or torch-sparse is
installed; neither installs here). ``ToUndirected`` adds reversed edges whose targets are
unsorted, which PyG's own LCM aggregation refuses.
"""

import argparse
import os.path as osp
import sys

import torch
import torch.nn.functional as F
from torch.nn import ReLU
from tqdm import tqdm

import torch_geometric.transforms as T
from torch_geometric.data import HeteroData  # gnnagg: generated instead of OGB_MAG
from torch_geometric.nn import HeteroConv, Linear, SAGEConv, Sequential, to_hetero

from gnnagg import LCMAggregation  # gnnagg

sys.path.insert(0, osp.dirname(osp.realpath(__file__)))  # gnnagg: the stand-in loader
from sampling import neighbor_loader as NeighborLoader  # noqa: E402  # gnnagg

torch.set_num_threads(1)  # gnnagg: one thread
torch.manual_seed(0)  # gnnagg: reproducible

parser = argparse.ArgumentParser()
parser.add_argument('--use_hgt_loader', action='store_true')
args = parser.parse_args()

device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def mag_like() -> HeteroData:  # gnnagg: OGB_MAG-shaped random graph
    sizes = {'paper': 800, 'author': 500, 'institution': 40, 'field_of_study': 80}
    data = HeteroData()
    for node_type, count in sizes.items():
        data[node_type].x = torch.randn(count, 128)
    data['paper'].y = torch.randint(0, 20, (sizes['paper'], ))
    split = torch.rand(sizes['paper'])
    data['paper'].train_mask, data['paper'].val_mask = split < 0.7, split >= 0.85
    for (src, rel, dst), per_src in [(('author', 'affiliated_with', 'institution'), 1),
                                     (('author', 'writes', 'paper'), 3),
                                     (('paper', 'cites', 'paper'), 5),
                                     (('paper', 'has_topic', 'field_of_study'), 2)]:
        sources = torch.arange(sizes[src]).repeat_interleave(per_src)
        targets = torch.randint(0, sizes[dst], (sources.numel(), ))
        data[src, rel, dst].edge_index = torch.stack([sources, targets])
    return data


path = osp.join(osp.dirname(osp.realpath(__file__)), '../../data/OGB')
transform = T.ToUndirected(merge=True)
dataset = [transform(mag_like())]  # gnnagg

# Already send node features/labels to GPU for faster access during sampling:
data = dataset[0].to(device, 'x', 'y')

train_input_nodes = ('paper', data['paper'].train_mask)
val_input_nodes = ('paper', data['paper'].val_mask)
kwargs = {'batch_size': 1024, 'num_workers': 6, 'persistent_workers': True}

if not args.use_hgt_loader:
    train_loader = NeighborLoader(data, num_neighbors=[10] * 2, shuffle=True,
                                  input_nodes=train_input_nodes, **kwargs)
    val_loader = NeighborLoader(data, num_neighbors=[10] * 2,
                                input_nodes=val_input_nodes, **kwargs)
else:
    from torch_geometric.loader import HGTLoader  # gnnagg: needs torch-sparse
    train_loader = HGTLoader(data, num_samples=[1024] * 4, shuffle=True,
                             input_nodes=train_input_nodes, **kwargs)
    val_loader = HGTLoader(data, num_samples=[1024] * 4,
                           input_nodes=val_input_nodes, **kwargs)


def sage():  # gnnagg: SAGEConv with the softmax monoid's LCM aggregation, lazy widths
    return SAGEConv((-1, -1), 64, aggr=LCMAggregation(-1, 64, monoid='softmax'))


model = Sequential('x, edge_index', [
    (sage(), 'x, edge_index -> x'),  # gnnagg: was SAGEConv((-1, -1), 64)
    ReLU(inplace=True),
    (sage(), 'x, edge_index -> x'),  # gnnagg: was SAGEConv((-1, -1), 64)
    ReLU(inplace=True),
    (Linear(-1, 20), 'x -> x'),  # gnnagg: 20 classes
])
model = to_hetero(model, data.metadata(), aggr='sum').to(device)


@torch.no_grad()
def init_params():
    # Initialize lazy parameters via forwarding a single batch to the model:
    batch = next(iter(train_loader))
    batch = batch.to(device, 'edge_index')
    model(batch.x_dict, batch.edge_index_dict)


def train():
    model.train()

    total_examples = total_loss = 0
    for batch in tqdm(train_loader):
        optimizer.zero_grad()
        batch = batch.to(device, 'edge_index')
        batch_size = batch['paper'].batch_size
        out = model(batch.x_dict, batch.edge_index_dict)['paper'][:batch_size]
        loss = F.cross_entropy(out, batch['paper'].y[:batch_size])
        loss.backward()
        optimizer.step()

        total_examples += batch_size
        total_loss += float(loss) * batch_size

    return total_loss / total_examples


@torch.no_grad()
def test(loader):
    model.eval()

    total_examples = total_correct = 0
    for batch in tqdm(loader):
        batch = batch.to(device, 'edge_index')
        batch_size = batch['paper'].batch_size
        out = model(batch.x_dict, batch.edge_index_dict)['paper'][:batch_size]
        pred = out.argmax(dim=-1)

        total_examples += batch_size
        total_correct += int((pred == batch['paper'].y[:batch_size]).sum())

    return total_correct / total_examples


init_params()  # Initialize parameters.
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

losses = []  # gnnagg: for the checks
for epoch in range(1, 3):  # gnnagg: 2 epochs (was 20)
    loss = train()
    val_acc = test(val_loader)
    losses.append(loss)
    print(f'Epoch: {epoch:02d}, Loss: {loss:.4f}, Val: {val_acc:.4f}')

# gnnagg: the checks. Every edge type got its own aggregator, sized from its source type.
aggregators = [m for m in model.modules() if isinstance(m, LCMAggregation)]
assert len(aggregators) == 2 * len(data.edge_types)
assert len({id(a) for a in aggregators}) == len(aggregators)
assert all(a.in_channels in (64, 128) for a in aggregators)
assert all(loss == loss for loss in losses) and 0.0 <= val_acc <= 1.0
# The same convolutions in a HeteroConv, on the full graph.
conv = HeteroConv({edge_type: sage() for edge_type in data.edge_types}, aggr='sum')
out = conv(data.x_dict, data.edge_index_dict)
assert {key: value.shape for key, value in out.items()} == {
    node_type: (data[node_type].num_nodes, 64) for node_type in data.node_types}
