"""gnnagg's aggregators by name in PyG's ``aggr=`` strings, opt-in.

PyG resolves ``aggr="..."`` (in ``MessagePassing``, ``MultiAggregation``, the ``BasicGNN``
models and ``to_hetero``) by scanning ``torch_geometric.nn.aggr`` for an ``Aggregation`` class
whose name matches; it has no plugin hook, so ``aggr="lcm"`` always means PyG's own, padded
``LCMAggregation``. :func:`register_pyg_names` adds gnnagg's aggregators there under names of
their own:

=================  ==============================
``aggr=``          gnnagg class (PyG's class name)
=================  ==============================
``"gnnagg_lcm"``   :class:`~gnnagg.aggr.LCMAggregation` (``GnnaggLCMAggregation``)
``"gnnagg_gru"``   :class:`~gnnagg.aggr.GRUAggregation` (``GnnaggGRUAggregation``)
``"gnnagg_lstm"``  :class:`~gnnagg.aggr.LSTMAggregation` (``GnnaggLSTMAggregation``)
=================  ==============================

``aggr_kwargs`` are their constructor arguments. A name gives every layer its own instance,
which ``aggr=<instance>`` in a ``BasicGNN`` model does not (it shares one). The registered
classes are subclasses that only rename, so ``isinstance(module, LCMAggregation)`` holds and
they pickle like any class.
"""

from __future__ import annotations

from .lcm import LCMAggregation
from .recurrent import GRUAggregation, LSTMAggregation

__all__ = [
    "PYG_NAMES",
    "GnnaggGRUAggregation",
    "GnnaggLCMAggregation",
    "GnnaggLSTMAggregation",
    "register_pyg_names",
]


class GnnaggLCMAggregation(LCMAggregation):
    """:class:`~gnnagg.aggr.LCMAggregation` as PyG's ``aggr="gnnagg_lcm"``."""


class GnnaggGRUAggregation(GRUAggregation):
    """:class:`~gnnagg.aggr.GRUAggregation` as PyG's ``aggr="gnnagg_gru"``."""


class GnnaggLSTMAggregation(LSTMAggregation):
    """:class:`~gnnagg.aggr.LSTMAggregation` as PyG's ``aggr="gnnagg_lstm"``."""


#: ``aggr=`` string -> the class it resolves to once registered.
PYG_NAMES: dict[str, type] = {
    "gnnagg_lcm": GnnaggLCMAggregation,
    "gnnagg_gru": GnnaggGRUAggregation,
    "gnnagg_lstm": GnnaggLSTMAggregation,
}


def register_pyg_names() -> dict[str, type]:
    """Make ``aggr="gnnagg_lcm"``, ``"gnnagg_gru"`` and ``"gnnagg_lstm"`` resolve to gnnagg's
    aggregators in PyG (idempotent; it adds three classes to ``torch_geometric.nn.aggr`` and
    changes nothing else). Returns the names and their classes."""
    import torch_geometric.nn.aggr as pyg_aggr

    for cls in PYG_NAMES.values():
        setattr(pyg_aggr, cls.__name__, cls)
    return dict(PYG_NAMES)
