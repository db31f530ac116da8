"""The mesh-simulation study (``gnnagg-bench mesh``): learned simulators, MeshGraphNet next to
masked graph transformers."""

from .config import MeshConfig
from .section import MeshSection

__all__ = ["MeshConfig", "MeshSection"]
