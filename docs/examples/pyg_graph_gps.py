"""PyG's ``examples/graph_gps.py`` (GPS on ZINC) with gnnagg's equivariant polynomial features
beside the random-walk encodings and LCM aggregation (softmax monoid) in GINEConv.

Adapted from PyTorch Geometric (MIT License, Copyright (c) 2023 PyG Team; see LICENSE-PyG in
this folder), ``examples/graph_gps.py`` at commit 5c6461b. Every change is marked
``# gnnagg:``: generated molecule-like graphs shaped like ZINC's (28 atom types, 4 bond types,
one regression target) instead of the download, one thread, 2 epochs instead of 100, the
polynomial features concatenated to the encodings (float32, as PyG's), the aggregator, and the
checks at the end.
"""

import argparse
import math  # gnnagg: for the checks
import os.path as osp
from typing import Any, Dict, Optional

import torch
from torch.nn import (
    BatchNorm1d,
    Embedding,
    Linear,
    ModuleList,
    ReLU,
    Sequential,
)
from torch.optim.lr_scheduler import ReduceLROnPlateau

import torch_geometric.transforms as T
from torch_geometric.data import Data  # gnnagg: generated instead of ZINC
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GINEConv, GPSConv, global_add_pool
from torch_geometric.nn.attention import PerformerAttention
from torch_geometric.utils import to_undirected

from gnnagg import LCMAggregation  # gnnagg
from gnnagg.poly import AddEquivariantPolynomials  # gnnagg

torch.set_num_threads(1)  # gnnagg: one thread
torch.manual_seed(0)  # gnnagg: reproducible


def zinc_like(num_graphs: int) -> list:  # gnnagg: ZINC-shaped random molecules
    graphs = []
    for _ in range(num_graphs):
        num_nodes = int(torch.randint(9, 30, ()))
        ring = torch.stack([torch.arange(num_nodes), torch.arange(1, num_nodes + 1) % num_nodes])
        chords = torch.randint(0, num_nodes, (2, num_nodes // 4))
        edge_index = to_undirected(torch.cat([ring, chords], dim=1), num_nodes=num_nodes)
        graphs.append(Data(x=torch.randint(0, 28, (num_nodes, 1)), edge_index=edge_index,
                           edge_attr=torch.randint(0, 4, (edge_index.size(1), )),
                           y=torch.randn(1)))
    return graphs


path = osp.join(osp.dirname(osp.realpath(__file__)), '..', 'data', 'ZINC-PE')
transform = T.AddRandomWalkPE(walk_length=20, attr_name='pe')
# gnnagg: polynomial features of degree <= 3 at every node (9 channels, the default dtype).
polynomials = AddEquivariantPolynomials(max_degree=3, orders=(1, ), normalize='log1p')
transform = T.Compose([transform, polynomials])
train_dataset = [transform(data) for data in zinc_like(160)]
val_dataset = [transform(data) for data in zinc_like(32)]
test_dataset = [transform(data) for data in zinc_like(32)]

train_loader = DataLoader(train_dataset, batch_size=32, shuffle=True)
val_loader = DataLoader(val_dataset, batch_size=64)
test_loader = DataLoader(test_dataset, batch_size=64)

parser = argparse.ArgumentParser()
parser.add_argument(
    '--attn_type', default='multihead',
    help="Global attention type such as 'multihead' or 'performer'.")
args = parser.parse_args()
POLY = len(polynomials.basis[1])  # gnnagg


class GPS(torch.nn.Module):
    def __init__(self, channels: int, pe_dim: int, num_layers: int,
                 attn_type: str, attn_kwargs: Dict[str, Any]):
        super().__init__()

        self.node_emb = Embedding(28, channels - pe_dim)
        self.pe_lin = Linear(20 + POLY, pe_dim)  # gnnagg: + polynomial channels
        self.pe_norm = BatchNorm1d(20 + POLY)  # gnnagg: + polynomial channels
        self.edge_emb = Embedding(4, channels)

        self.convs = ModuleList()
        for _ in range(num_layers):
            nn = Sequential(
                Linear(channels, channels),
                ReLU(),
                Linear(channels, channels),
            )
            # gnnagg: the softmax monoid's LCM aggregation instead of the default sum.
            aggr = LCMAggregation(channels, channels, monoid='softmax')
            conv = GPSConv(channels, GINEConv(nn, aggr=aggr), heads=4,
                           attn_type=attn_type, attn_kwargs=attn_kwargs)
            self.convs.append(conv)

        self.mlp = Sequential(
            Linear(channels, channels // 2),
            ReLU(),
            Linear(channels // 2, channels // 4),
            ReLU(),
            Linear(channels // 4, 1),
        )
        self.redraw_projection = RedrawProjection(
            self.convs,
            redraw_interval=1000 if attn_type == 'performer' else None)

    def forward(self, x, pe, edge_index, edge_attr, batch, poly_x):  # gnnagg: poly_x
        x_pe = self.pe_norm(torch.cat([pe, poly_x], dim=-1))  # gnnagg: float32 both
        x = torch.cat((self.node_emb(x.squeeze(-1)), self.pe_lin(x_pe)), 1)
        edge_attr = self.edge_emb(edge_attr)

        for conv in self.convs:
            x = conv(x, edge_index, batch, edge_attr=edge_attr)
        x = global_add_pool(x, batch)
        return self.mlp(x)


class RedrawProjection:
    def __init__(self, model: torch.nn.Module,
                 redraw_interval: Optional[int] = None):
        self.model = model
        self.redraw_interval = redraw_interval
        self.num_last_redraw = 0

    def redraw_projections(self):
        if not self.model.training or self.redraw_interval is None:
            return
        if self.num_last_redraw >= self.redraw_interval:
            fast_attentions = [
                module for module in self.model.modules()
                if isinstance(module, PerformerAttention)
            ]
            for fast_attention in fast_attentions:
                fast_attention.redraw_projection_matrix()
            self.num_last_redraw = 0
            return
        self.num_last_redraw += 1


device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
attn_kwargs = {'dropout': 0.5}
model = GPS(channels=64, pe_dim=8, num_layers=10, attn_type=args.attn_type,
            attn_kwargs=attn_kwargs).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=0.001, weight_decay=1e-5)
scheduler = ReduceLROnPlateau(optimizer, mode='min', factor=0.5, patience=20,
                              min_lr=0.00001)


def train():
    model.train()

    total_loss = 0
    for data in train_loader:
        data = data.to(device)
        optimizer.zero_grad()
        model.redraw_projection.redraw_projections()
        out = model(data.x, data.pe, data.edge_index, data.edge_attr,
                    data.batch, data.poly_x)  # gnnagg: poly_x
        loss = (out.squeeze() - data.y).abs().mean()
        loss.backward()
        total_loss += loss.item() * data.num_graphs
        optimizer.step()
    return total_loss / len(train_loader.dataset)


@torch.no_grad()
def test(loader):
    model.eval()

    total_error = 0
    for data in loader:
        data = data.to(device)
        out = model(data.x, data.pe, data.edge_index, data.edge_attr,
                    data.batch, data.poly_x)  # gnnagg: poly_x
        total_error += (out.squeeze() - data.y).abs().sum().item()
    return total_error / len(loader.dataset)


maes = []  # gnnagg: for the checks
for epoch in range(1, 3):  # gnnagg: 2 epochs (was 100)
    loss = train()
    val_mae = test(val_loader)
    test_mae = test(test_loader)
    scheduler.step(val_mae)
    maes.append(val_mae)
    print(f'Epoch: {epoch:02d}, Loss: {loss:.4f}, Val: {val_mae:.4f}, '
          f'Test: {test_mae:.4f}')

# gnnagg: the checks. The features come in the default dtype, so the concatenation works.
assert train_dataset[0].poly_x.dtype == train_dataset[0].pe.dtype == torch.float32
assert all(math.isfinite(mae) for mae in maes)
