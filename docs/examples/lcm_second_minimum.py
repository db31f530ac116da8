"""Learn the second smallest number of a multiset with :class:`gnnagg.LCMAggregation`.

The setting of PyG's ``examples/lcm_aggr_2nd_min.py`` (Ong and Velickovic 2022, "Learnable
Commutative Monoids for Graph Neural Networks"): each sample is a multiset of integers written
as bit vectors; the model embeds each element, folds the multiset with a learnable commutative
monoid (the GRU monoid, reduced as a balanced tree) and decodes the bits of the second smallest
element. Multisets are generated here, in batches, with the target computed by sorting.

Checks at the end: training lowers the loss, and multisets twice as large as any seen in
training go through the trained model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnagg import LCMAggregation

NUM_BITS = 6


def multisets(num_sets: int, min_size: int, max_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Random multisets: element bits ``[N, NUM_BITS]``, the set of each element ``[N]``
    (sorted) and the bits of each set's second smallest element ``[num_sets, NUM_BITS]``."""
    sizes = torch.randint(min_size, max_size + 1, (num_sets,))
    batch = torch.repeat_interleave(torch.arange(num_sets), sizes)
    values = torch.randint(0, 2**NUM_BITS, (batch.numel(),))
    # Sorting by (set, value) puts each set's second smallest at its start + 1.
    order = torch.argsort(batch * 2**NUM_BITS + values)
    second = values[order][torch.cumsum(sizes, 0) - sizes + 1]
    return bits(values), batch, bits(second).float()


def bits(values: Tensor) -> Tensor:
    return (values.unsqueeze(-1) >> torch.arange(NUM_BITS - 1, -1, -1)) & 1


class SecondMinimum(nn.Module):
    """Embed each element's bits, fold each set with the LCM aggregation, decode the bits."""

    def __init__(self, hidden_channels: int) -> None:
        super().__init__()
        self.bit_embeddings = nn.Parameter(torch.randn(NUM_BITS, 2, hidden_channels) * 0.1)
        self.encoder = nn.Sequential(nn.Linear(hidden_channels, hidden_channels), nn.GELU())
        self.aggr = LCMAggregation(hidden_channels, hidden_channels, project=False)
        self.decoder = nn.Sequential(
            nn.Linear(hidden_channels, hidden_channels), nn.GELU(),
            nn.Linear(hidden_channels, NUM_BITS),
        )  # fmt: skip

    def forward(self, x: Tensor, batch: Tensor, num_sets: int) -> Tensor:
        h = self.bit_embeddings[torch.arange(NUM_BITS), x].sum(dim=1)
        h = self.aggr(self.encoder(h), batch, dim_size=num_sets)
        return self.decoder(h)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = SecondMinimum(hidden_channels=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        x, batch, y = multisets(64, min_size=2, max_size=12)
        loss = F.binary_cross_entropy_with_logits(model(x, batch, 64), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 20 == 0:
            print(f"step {step:2d}  loss {losses[-1]:.4f}")

    model.eval()
    with torch.no_grad():
        x, batch, y = multisets(64, min_size=24, max_size=24)
        bit_accuracy = float(((model(x, batch, 64) > 0) == y.bool()).float().mean())
    print(f"bit accuracy on multisets of 24: {bit_accuracy:.3f}")

    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.9 * first, (first, last)
    assert 0.0 <= bit_accuracy <= 1.0


if __name__ == "__main__":
    main()
