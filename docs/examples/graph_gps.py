"""GPS with gnnagg's LCM aggregation in the local convolution and polynomial positional features.

The setting of PyG's ``examples/graph_gps.py`` (Rampasek et al. 2022, "Recipe for a General,
Powerful, Scalable Graph Transformer"): molecule-like graphs regressed by ``GPSConv`` layers,
each a local message-passing convolution (``GINEConv`` over bond embeddings) beside global
multi-head attention, with random-walk positional encodings. Here the ``GINEConv`` aggregates
with ``LCMAggregation(..., monoid="softmax")``, and gnnagg's equivariant polynomial features
(:class:`gnnagg.poly.AddEquivariantPolynomials`, node-level, degree <= 3) are concatenated to
the random-walk encodings; both come in the default dtype. The graphs are generated (rings
with chords, atom and bond types), the target is their number of triangles.

Checks at the end: the polynomial features and the random-walk encodings share a dtype (so
they concatenate), and training lowers the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GINEConv, GPSConv, global_add_pool
from torch_geometric.utils import to_dense_adj, to_undirected

from gnnagg import LCMAggregation
from gnnagg.poly import AddEquivariantPolynomials

NUM_ATOM_TYPES, NUM_BOND_TYPES, WALK_LENGTH = 8, 3, 8


def molecule() -> Data:
    """A ring with random chords, random atom and bond types; ``y`` counts its triangles."""
    num_nodes = int(torch.randint(8, 17, ()))
    ring = torch.stack([torch.arange(num_nodes), (torch.arange(num_nodes) + 1) % num_nodes])
    chords = torch.randint(0, num_nodes, (2, num_nodes // 2))
    chords = chords[:, chords[0] != chords[1]]
    edge_index = to_undirected(torch.cat([ring, chords], dim=1), num_nodes=num_nodes)
    adjacency = to_dense_adj(edge_index, max_num_nodes=num_nodes)[0]
    triangles = torch.trace(adjacency @ adjacency @ adjacency) / 6
    return Data(x=torch.randint(0, NUM_ATOM_TYPES, (num_nodes,)), edge_index=edge_index,
                edge_attr=torch.randint(0, NUM_BOND_TYPES, (edge_index.size(1),)),
                y=triangles.view(1), num_nodes=num_nodes)


class GPS(nn.Module):
    def __init__(self, channels: int, pe_channels: int, pe_dim: int, num_layers: int) -> None:
        super().__init__()
        self.node_emb = nn.Embedding(NUM_ATOM_TYPES, channels - pe_dim)
        self.pe_norm = nn.BatchNorm1d(pe_channels)
        self.pe_lin = nn.Linear(pe_channels, pe_dim)
        self.edge_emb = nn.Embedding(NUM_BOND_TYPES, channels)
        self.convs = nn.ModuleList()
        for _ in range(num_layers):
            mlp = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(),
                                nn.Linear(channels, channels))
            local = GINEConv(mlp, aggr=LCMAggregation(channels, channels, monoid="softmax"))
            self.convs.append(GPSConv(channels, local, heads=2))
        self.head = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(),
                                  nn.Linear(channels, 1))

    def forward(self, data: Batch) -> Tensor:
        pe = self.pe_lin(self.pe_norm(torch.cat([data.pe, data.poly_x], dim=-1)))
        x = torch.cat([self.node_emb(data.x), pe], dim=-1)
        edge_attr = self.edge_emb(data.edge_attr)
        for conv in self.convs:
            x = conv(x, data.edge_index, data.batch, edge_attr=edge_attr)
        return self.head(global_add_pool(x, data.batch)).view(-1)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    polynomials = AddEquivariantPolynomials(max_degree=3, orders=(1,), normalize="log1p")
    transform = T.Compose([T.AddRandomWalkPE(walk_length=WALK_LENGTH, attr_name="pe"),
                           polynomials])
    graphs = [transform(molecule()) for _ in range(96)]
    loader = DataLoader(graphs, batch_size=32, shuffle=True)
    pe_channels = WALK_LENGTH + len(polynomials.basis[1])
    print(f"positional channels: {WALK_LENGTH} random-walk + {len(polynomials.basis[1])} "
          f"polynomial")

    model = GPS(channels=32, pe_channels=pe_channels, pe_dim=8, num_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for epoch in range(12):
        model.train()
        total = 0.0
        for batch in loader:
            loss = F.l1_loss(model(batch), batch.y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.num_graphs
        losses.append(total / len(graphs))
        if epoch % 4 == 0:
            print(f"epoch {epoch:2d}  mean absolute error {losses[-1]:.4f}")
    print(f"epoch {epoch:2d}  mean absolute error {losses[-1]:.4f}")

    assert graphs[0].poly_x.dtype == graphs[0].pe.dtype == torch.get_default_dtype()
    assert losses[-1] < 0.8 * losses[0], losses


if __name__ == "__main__":
    main()
