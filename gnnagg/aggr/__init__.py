"""PyTorch Geometric aggregation modules built on gnnagg.segment and gnnagg.monoids.

* :class:`LCMAggregation` -- learnable commutative monoid, reduced as balanced trees;
* :class:`GRUAggregation`, :class:`LSTMAggregation` -- recurrent aggregators with a
  permutation-invariance regulariser;
* :class:`NeighbourhoodAggregation` -- the base class: messages regrouped by node, no padding;
* :func:`register_pyg_names` -- opt-in names for PyG's ``aggr=`` strings (``"gnnagg_lcm"``).
"""

from .base import NeighbourhoodAggregation, Neighbourhoods, group_neighbourhoods
from .lcm import LCMAggregation
from .pyg_names import register_pyg_names
from .recurrent import (
    GRUAggregation,
    LSTMAggregation,
    RecurrentAggregation,
    total_permutation_loss,
)

__all__ = [
    "GRUAggregation",
    "LCMAggregation",
    "LSTMAggregation",
    "NeighbourhoodAggregation",
    "Neighbourhoods",
    "RecurrentAggregation",
    "group_neighbourhoods",
    "register_pyg_names",
    "total_permutation_loss",
]
