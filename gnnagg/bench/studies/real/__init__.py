"""The real-data study (``gnnagg-bench real``)."""

from .config import REAL_DATASETS, RealConfig
from .section import RealSection

__all__ = ["REAL_DATASETS", "RealConfig", "RealSection"]
