"""The mesh-attention study (``gnnagg-bench attention``)."""

from .config import AttentionConfig
from .section import AttentionSection

__all__ = ["AttentionConfig", "AttentionSection"]
