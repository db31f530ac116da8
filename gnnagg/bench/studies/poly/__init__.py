"""The polynomial-feature study (``gnnagg-bench poly``, the ``poly-zinc`` and ``poly-freesolv``
suites)."""

from .config import FEATURE_MODES, POLY_DATASETS, PolyConfig
from .section import PolynomialFeaturesSection

__all__ = ["FEATURE_MODES", "POLY_DATASETS", "PolyConfig", "PolynomialFeaturesSection"]
