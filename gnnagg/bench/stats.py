"""Summary statistics of repeated runs, as the studies' tables print them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["mean_std", "percent"]


def mean_std(values: Sequence[float]) -> dict[str, float | int]:
    """``{"mean", "std", "n"}``: the sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values: needs at least one value")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def percent(stats: dict[str, float]) -> str:
    """``"mean ± std"`` of a fraction's statistics, in percent with one decimal."""
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"
