"""PyTorch Geometric aggregation modules built on :mod:`gnnagg.segment` and :mod:`gnnagg.monoids`."""

from .base import NeighbourhoodAggregation, Neighbourhoods, group_neighbourhoods

__all__ = ["NeighbourhoodAggregation", "Neighbourhoods", "group_neighbourhoods"]
