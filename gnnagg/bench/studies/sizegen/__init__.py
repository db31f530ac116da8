"""The size-generalisation study (``gnnagg-bench sizegen``, the ``paper`` suite)."""

from .config import (
    PAPER_AGGREGATORS,
    QUICK_AGGREGATORS,
    SizeGenConfig,
    paper_config,
    paper_cpu_config,
)
from .section import SizeGenSection

__all__ = [
    "PAPER_AGGREGATORS",
    "QUICK_AGGREGATORS",
    "SizeGenConfig",
    "SizeGenSection",
    "paper_config",
    "paper_cpu_config",
]
