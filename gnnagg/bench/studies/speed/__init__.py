"""The speed-and-memory study (``gnnagg-bench speed``): one module per part (see
:mod:`~gnnagg.bench.studies.speed.parts`)."""

from .config import SPEED_PARTS, SpeedConfig
from .section import SpeedSection

__all__ = ["SPEED_PARTS", "SpeedConfig", "SpeedSection"]
