"""PyTorch Geometric aggregation modules built on gnnagg.segment and gnnagg.monoids."""

from .base import NeighbourhoodAggregation, Neighbourhoods, group_neighbourhoods
from .lcm import LCMAggregation

__all__ = ["LCMAggregation", "NeighbourhoodAggregation", "Neighbourhoods", "group_neighbourhoods"]
