"""Measuring how far a monoid is from the laws it claims, and the associativity regulariser.

``check_laws`` reports worst-case gaps on sample elements (a diagnostic); ``associativity_gap``
is the differentiable mean squared gap the LCM paper adds to the training loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Monoid

__all__ = ["associativity_gap", "check_laws", "identity_gap", "sample_rows"]


def sample_rows(
    states: Tensor, num: int, count: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """``count`` tensors of ``num`` rows each, drawn with replacement from ``states``."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"the number of samples must be a positive int, got {num!r}")
    if states.shape[0] == 0:
        raise ValueError("cannot sample elements from an empty set of states")
    picks = torch.randint(0, states.shape[0], (count, num), generator=generator)
    picks = picks.to(states.device)
    return [states.index_select(0, p) for p in picks]


def _squared_distance(u: Tensor, v: Tensor) -> Tensor:
    # Identity states may hold ±inf in the same slots on both sides: those slots agree.
    diff = torch.where(u == v, 0.0, u - v)
    return diff.pow(2).flatten(1).sum(1)


def associativity_gap(monoid: Monoid, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Mean over rows of ‖(a⊕b)⊕c − a⊕(b⊕c)‖² (differentiable)."""
    left = monoid.combine(monoid.combine(a, b), c)
    right = monoid.combine(a, monoid.combine(b, c))
    return _squared_distance(left, right).mean()


def identity_gap(monoid: Monoid, a: Tensor) -> Tensor:
    """Mean over rows of ‖e⊕a − a‖² (differentiable)."""
    e = monoid.identity(a, a.shape[0])
    return _squared_distance(monoid.combine(e, a), a).mean()


@torch.no_grad()
def check_laws(
    monoid: Monoid, x: Tensor, num_samples: int = 256, seed: int = 0
) -> dict[str, float]:
    """Worst gaps, over ``num_samples`` elements lifted from messages ``x``, of the three laws.

    Returns ``{"commutativity", "associativity", "identity"}``: the largest Euclidean distance
    between the two sides of a⊕b = b⊕a, (a⊕b)⊕c = a⊕(b⊕c) and e⊕a = a, measured on states.
    Exact monoids give rounding-level numbers; the GRU monoid's associativity gap is what the
    regulariser shrinks.
    """
    if x.dim() < 2 or x.shape[-1] != monoid.channels:
        raise ValueError(
            f"x must be [num, ..., {monoid.channels}] messages, got shape {tuple(x.shape)}"
        )
    param = next(monoid.parameters(), None)
    if param is not None and x.dtype != param.dtype:
        raise TypeError(
            f"x has dtype {x.dtype} but the monoid's parameters are {param.dtype}; convert one "
            "of them"
        )
    generator = torch.Generator().manual_seed(seed)
    a, b, c = sample_rows(monoid.lift(x), num_samples, 3, generator)
    e = monoid.identity(a, a.shape[0])
    gaps = {
        "commutativity": _squared_distance(monoid.combine(a, b), monoid.combine(b, a)),
        "associativity": _squared_distance(
            monoid.combine(monoid.combine(a, b), c), monoid.combine(a, monoid.combine(b, c))
        ),
        "identity": _squared_distance(monoid.combine(e, a), a),
    }
    return {name: float(gap.max().sqrt()) for name, gap in gaps.items()}
