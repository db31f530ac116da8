"""Synthetic message sets for the aggregator benchmarks (the ``aggr`` and ``recurrent`` parts).

Every case has exactly ``num_nodes * avg_degree`` messages (E = 100,000 by default) into
``num_nodes`` nodes, with the index sorted (what PyG's padded aggregators require):

* ``"uniform"`` -- every node has a degree in ``avg_degree ± 2``;
* ``"random"`` -- every message picks its target uniformly at random (Poisson degrees, the
  largest about 2.5x the mean: what padding aggregators pay for on random graphs);
* ``"hub<k>"`` (``"hub200"``, ``"hub5000"``, any ``k``) -- node 0 has degree ``k``; the others
  start from ``avg_degree ± 2`` and then lose (or gain) one message each at random nodes until the
  total is back at ``num_nodes * avg_degree``. Padding costs ``num_nodes * k`` rows here.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

__all__ = ["make_degrees", "make_messages"]

_JITTER = 2


def make_degrees(case: str, num_nodes: int = 10_000, avg_degree: int = 10, seed: int = 0) -> Tensor:
    """Degree of every node for ``case`` (int64, on the CPU); sums to ``num_nodes * avg_degree``."""
    if num_nodes < 2:
        raise ValueError(f"num_nodes must be at least 2, got {num_nodes}")
    if avg_degree <= _JITTER:
        raise ValueError(f"avg_degree must exceed {_JITTER}, got {avg_degree}")
    gen = torch.Generator().manual_seed(seed)
    if case == "random":
        targets = torch.randint(0, num_nodes, (num_nodes * avg_degree,), generator=gen)
        return torch.bincount(targets, minlength=num_nodes)
    degrees = avg_degree + torch.randint(-_JITTER, _JITTER + 1, (num_nodes,), generator=gen)
    if case == "uniform":
        hub = None
    else:
        match = re.fullmatch(r"hub(\d+)", case)
        if match is None:
            raise ValueError(
                f"case must be 'uniform', 'random' or 'hub<k>' (e.g. 'hub200'), got {case!r}"
            )
        hub = int(match.group(1))
        total = num_nodes * avg_degree
        # The other nodes must be able to give up the hub's surplus and keep at least one message.
        if not 1 <= hub <= total - (num_nodes - 1):
            raise ValueError(f"hub degree {hub} does not fit in {total} messages")
        degrees[0] = hub
    surplus = int(degrees.sum()) - num_nodes * avg_degree
    others = torch.arange(1, num_nodes) if hub is not None else torch.arange(num_nodes)
    step = -1 if surplus > 0 else 1
    while surplus != 0:
        # Adjust one message at a time at distinct random nodes that stay at degree >= 1.
        allowed = others[degrees[others] > 1] if step < 0 else others
        count = min(abs(surplus), allowed.numel())
        chosen = allowed[torch.randperm(allowed.numel(), generator=gen)[:count]]
        degrees[chosen] += step
        surplus += step * count
    return degrees


def make_messages(
    case: str,
    num_nodes: int = 10_000,
    avg_degree: int = 10,
    channels: int = 64,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor, int]:
    """``(x [E, channels], index [E] sorted, dim_size)`` for ``case`` (see the module docstring).

    ``x`` is standard normal float32 and does not require grad; the same ``seed`` gives the same
    graph and messages on every device.
    """
    degrees = make_degrees(case, num_nodes, avg_degree, seed)
    index = torch.repeat_interleave(torch.arange(num_nodes), degrees)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(index.numel(), channels, generator=gen)
    return x.to(device), index.to(device), num_nodes
