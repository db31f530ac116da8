"""UniMP with gnnagg's ``GraphTransformerConv`` in place of PyG's ``TransformerConv``.

The setting of PyG's ``examples/unimp_arxiv.py`` (Shi et al. 2021, "Masked Label Prediction:
Unified Message Passing Model for Semi-Supervised Classification"): node classification where
part of the training labels are embedded into the inputs (``MaskLabel``) and propagated by
gated graph-transformer layers (``beta=True``), while the rest of the training nodes are
supervised. :class:`gnnagg.attention.GraphTransformerConv` takes ``TransformerConv``'s
arguments and parameter names, so it swaps in unchanged; its ``mask=`` can then widen each
neighbourhood (not used here). The graph is generated: a stochastic block model whose blocks
are the classes, with node features that carry a little of the class.

Checks at the end: training lowers the loss, and the same model built with PyG's
``TransformerConv`` loads the trained weights and computes the same output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MaskLabel, TransformerConv
from torch_geometric.utils import stochastic_blockmodel_graph

from gnnagg.attention import GraphTransformerConv

NUM_CLASSES, BLOCK = 4, 100


class UniMP(nn.Module):
    def __init__(self, conv: type, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int, heads: int) -> None:
        super().__init__()
        self.label_emb = MaskLabel(out_channels, in_channels)
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        for _ in range(num_layers - 1):
            self.convs.append(conv(in_channels, hidden_channels // heads, heads, beta=True))
            self.norms.append(nn.LayerNorm(hidden_channels))
            in_channels = hidden_channels
        self.convs.append(conv(in_channels, out_channels, heads, concat=False, beta=True))

    def forward(self, x: Tensor, y: Tensor, edge_index: Tensor, label_mask: Tensor) -> Tensor:
        x = self.label_emb(x, y, label_mask)
        for conv, norm in zip(self.convs[:-1], self.norms, strict=True):
            x = norm(conv(x, edge_index)).relu()
        return self.convs[-1](x, edge_index)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    y = torch.arange(NUM_CLASSES).repeat_interleave(BLOCK)
    probs = torch.full((NUM_CLASSES, NUM_CLASSES), 0.004).fill_diagonal_(0.05)
    edge_index = stochastic_blockmodel_graph([BLOCK] * NUM_CLASSES, probs)
    x = torch.randn(y.numel(), 16)
    x[:, :NUM_CLASSES] += 0.5 * F.one_hot(y, NUM_CLASSES)
    train_mask = torch.rand(y.numel()) < 0.6

    model = UniMP(GraphTransformerConv, 16, 32, NUM_CLASSES, num_layers=2, heads=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for epoch in range(40):
        model.train()
        shown = MaskLabel.ratio_mask(train_mask, ratio=0.6)  # labels given as inputs
        supervised = train_mask & ~shown  # labels to predict
        out = model(x, y, edge_index, shown)
        loss = F.cross_entropy(out[supervised], y[supervised])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if epoch % 10 == 0:
            print(f"epoch {epoch:2d}  loss {losses[-1]:.4f}")

    model.eval()
    with torch.no_grad():
        out = model(x, y, edge_index, train_mask)
    accuracy = float((out.argmax(-1) == y)[~train_mask].float().mean())
    print(f"held-out accuracy, training labels shown: {accuracy:.3f}")

    theirs = UniMP(TransformerConv, 16, 32, NUM_CLASSES, num_layers=2, heads=2).eval()
    theirs.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(theirs(x, y, edge_index, train_mask), out,
                                   rtol=1e-4, atol=1e-4)  # fmt: skip
    assert losses[-1] < 0.8 * losses[0], losses


if __name__ == "__main__":
    main()
