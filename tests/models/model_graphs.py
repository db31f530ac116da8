"""Small random graphs for the model tests, and node renumbering."""

import torch


def random_graph(n=24, edges=70, seed=0):
    generator = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, edges), generator=generator)
    x = torch.randn(n, 5, generator=generator, dtype=torch.float64)
    pos = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    return x, edge_index, pos


def permuted(x, edge_index, pos, perm, batch=None):
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel())
    return x[perm], inverse[edge_index], pos[perm], None if batch is None else batch[perm]
