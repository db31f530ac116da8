"""Measuring how far a monoid is from the laws it claims, and the associativity regulariser.

``check_laws`` reports worst-case gaps on sample elements (a diagnostic);
``associativity_by_level`` reports the gap on the states each level of a reduction tree
actually holds; ``associativity_gap`` is the differentiable mean squared gap the LCM paper adds
to the training loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import check_positive, check_seed, check_tensor
from ..segment import SegmentPlan
from .base import Monoid
from .tree import tree_levels

__all__ = [
    "associativity_by_level",
    "associativity_gap",
    "check_laws",
    "identity_gap",
    "relative_associativity_gap",
    "sample_rows",
]


def sample_rows(
    states: Tensor, num: int, count: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """``count`` tensors of ``num`` rows each, drawn with replacement from ``states``."""
    check_tensor(states, "states")
    num = check_positive(num, "num (the number of samples)")
    count = check_positive(count, "count")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if states.dim() == 0 or states.shape[0] == 0:
        raise ValueError("cannot sample elements from an empty set of states")
    picks = torch.randint(0, states.shape[0], (count * num,), generator=generator)
    # One gather for all of them (its backward is one scatter), then views.
    return list(states.index_select(0, picks.to(states.device)).split(num))


def _squared_distance(u: Tensor, v: Tensor) -> Tensor:
    # Identity states may hold ±inf in the same slots on both sides: those slots agree.
    diff = torch.where(u == v, 0.0, u - v)
    return diff.pow(2).flatten(1).sum(1)


def _check_monoid(monoid: object) -> Monoid:
    if not isinstance(monoid, Monoid):
        raise TypeError(
            f"monoid must be a gnnagg.monoids.Monoid, got {type(monoid).__name__} (a module "
            "with combine() is not enough: the laws need its identity and lift too)"
        )
    return monoid


def _check_operands(monoid: Monoid, **operands: object) -> None:
    shape = None
    for name, value in operands.items():
        check_tensor(value, name)
        if value.dim() < 2 or value.shape[-1] != monoid.state_channels:
            raise ValueError(
                f"{name} must be [num, ..., {monoid.state_channels}] states, got shape "
                f"{tuple(value.shape)}"
            )
        if shape is not None and value.shape != shape:
            raise ValueError(
                f"the operands differ in shape: {tuple(shape)} vs {name} {tuple(value.shape)}"
            )
        shape = value.shape


def associativity_gap(monoid: Monoid, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Mean over rows of ‖(a⊕b)⊕c − a⊕(b⊕c)‖² (differentiable).

    The four products are computed as two batched ``combine`` calls, ``[a; b] ⊕ [b; c]`` and
    then ``[a⊕b; a] ⊕ [c; b⊕c]``: half the ops of four calls (each GRU combine is about a dozen
    kernels forward and as many backward), which is what small samples cost.
    """
    _check_operands(_check_monoid(monoid), a=a, b=b, c=c)
    n = a.shape[0]
    inner = monoid.combine(torch.cat([a, b]), torch.cat([b, c]))
    outer = monoid.combine(torch.cat([inner[:n], a]), torch.cat([c, inner[n:]]))
    return _squared_distance(outer[:n], outer[n:]).mean()


def identity_gap(monoid: Monoid, a: Tensor) -> Tensor:
    """Mean over rows of ‖e⊕a − a‖² (differentiable)."""
    _check_operands(_check_monoid(monoid), a=a)
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
    _check_monoid(monoid)
    check_tensor(x, "x")
    num_samples = check_positive(num_samples, "num_samples")
    seed = check_seed(seed)
    if seed is None:
        raise TypeError("seed must be an int (check_laws is a deterministic diagnostic)")
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


def relative_associativity_gap(monoid: Monoid, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Per row, ‖(a⊕b)⊕c − a⊕(b⊕c)‖ / ‖a⊕(b⊕c)‖: the bracketing's effect relative to the
    result's size (so comparable across levels whose states differ in scale)."""
    _check_operands(_check_monoid(monoid), a=a, b=b, c=c)
    n = a.shape[0]
    inner = monoid.combine(torch.cat([a, b]), torch.cat([b, c]))
    outer = monoid.combine(torch.cat([inner[:n], a]), torch.cat([c, inner[n:]]))
    left, right = outer[:n], outer[n:]
    return _squared_distance(left, right).sqrt() / right.flatten(1).norm(dim=1).clamp_min(1e-30)


@torch.no_grad()
def associativity_by_level(
    monoid: Monoid, states: Tensor, plan: SegmentPlan, num_samples: int = 1024, seed: int = 0
) -> list[dict[str, float]]:
    """The associativity gap on the states each level of the reduction trees holds.

    ``states`` are lifted messages grouped as ``plan`` says (as the LCM reduces them). For
    every level ``k`` of :func:`~gnnagg.monoids.tree.tree_levels` (0: the leaves; the last:
    the roots) it draws ``num_samples`` triples ``(a, b, c)`` of that level's states (with
    replacement, seeded) and reports ``{"level", "states", "gap", "gap_max", "norm"}``: the
    number of states there, the mean and largest :func:`relative_associativity_gap`, and
    the mean state norm. A gap measured on leaves only says nothing about the deep levels,
    whose states are what the operator meets at sizes never trained on.
    """
    _check_monoid(monoid)
    check_tensor(states, "states")
    num_samples = check_positive(num_samples, "num_samples")
    seed = check_seed(seed)
    if seed is None:
        raise TypeError("seed must be an int (associativity_by_level is a deterministic probe)")
    if states.dim() < 2 or states.shape[-1] != monoid.state_channels:
        raise ValueError(
            f"states must be [rows, ..., {monoid.state_channels}] lifted messages, got shape "
            f"{tuple(states.shape)}"
        )
    generator = torch.Generator().manual_seed(seed)
    out = []
    for k, level in enumerate(tree_levels(states, plan, monoid.combine)):
        a, b, c = sample_rows(level, num_samples, 3, generator)
        gaps = relative_associativity_gap(monoid, a, b, c)
        out.append(
            {
                "level": k,
                "states": int(level.shape[0]),
                "gap": float(gaps.mean()),
                "gap_max": float(gaps.max()),
                "norm": float(level.flatten(1).norm(dim=1).mean()),
            }
        )
    return out
