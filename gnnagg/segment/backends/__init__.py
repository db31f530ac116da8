"""Segment backends: ``torch`` (default), ``torch_scatter`` and ``triton``, behind one contract."""

from .base import (
    BASIC_REDUCTIONS,
    SegmentBackend,
    available_backends,
    get_backend,
    register_backend,
    use_backend,
)
from .torch_native import TorchBackend
from .torch_scatter_backend import TorchScatterBackend
from .triton_backend import TritonBackend

for _backend in (TorchBackend(), TorchScatterBackend(), TritonBackend()):
    register_backend(_backend)

__all__ = [
    "BASIC_REDUCTIONS",
    "SegmentBackend",
    "available_backends",
    "get_backend",
    "register_backend",
    "use_backend",
]
