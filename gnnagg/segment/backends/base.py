"""The contract every segment backend fulfils, and the registry that picks one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from torch import Tensor

from ..plan import SegmentPlan

__all__ = [
    "BASIC_REDUCTIONS",
    "SegmentBackend",
    "available_backends",
    "get_backend",
    "register_backend",
    "use_backend",
]

#: The reductions a backend implements; the rest (var, std, logsumexp, softmax) are built on them.
BASIC_REDUCTIONS = ("sum", "mean", "max", "min", "mul")


class SegmentBackend:
    """A way of reducing rows over groups.

    :meth:`reduce` receives ``src`` with the reduced dimension first (``[num_rows, *rest]``), a
    :class:`SegmentPlan` and one of :data:`BASIC_REDUCTIONS`; it returns ``[dim_size, *rest]`` in
    ``src``'s dtype, and is differentiable with respect to ``src``. Empty groups give 0, except
    for ``mul``, whose empty product is 1. Inputs are already validated.

    What callers need to know about a backend is in its capability flags, never its name:

    * :attr:`accumulates_low_precision` -- it reduces float16/bfloat16 input accumulating in
      float32 itself; otherwise the caller converts such input to float32 first;
    * :attr:`uses_triton` -- it runs Triton kernels (on the tensors :meth:`supports`), so
      layers above may choose their own Triton kernels to go with it.
    """

    name: str = ""
    accumulates_low_precision: bool = False
    uses_triton: bool = False

    def available(self) -> bool:
        return True

    def unavailable_reason(self) -> str:
        return ""

    def supports(self, src: Tensor) -> bool:
        """Whether this backend can run on ``src``'s device and dtype."""
        return True

    def reduce(self, src: Tensor, plan: SegmentPlan, reduce: str) -> Tensor:
        raise NotImplementedError


_REGISTRY: dict[str, SegmentBackend] = {}
_CURRENT: ContextVar[str] = ContextVar("gnnagg_segment_backend", default="torch")


def register_backend(backend: SegmentBackend) -> None:
    """Make ``backend`` selectable by its ``name``."""
    if not isinstance(backend, SegmentBackend):
        raise TypeError(f"backend must be a SegmentBackend, got {type(backend).__name__}")
    _REGISTRY[backend.name] = backend


def available_backends() -> list[str]:
    """Names of the backends that can run in this environment."""
    return [name for name, backend in _REGISTRY.items() if backend.available()]


def get_backend(name: str | None = None) -> SegmentBackend:
    """The backend called ``name``, or the current one (see :func:`use_backend`)."""
    name = _CURRENT.get() if name is None else name
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"backend must be one of {sorted(_REGISTRY)}, got {name!r}")
    backend = _REGISTRY[name]
    if not backend.available():
        raise ValueError(f"backend {name!r} is not available: {backend.unavailable_reason()}")
    return backend


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[SegmentBackend]:
    """Run every reduction inside the ``with`` block on backend ``name``."""
    backend = get_backend(name)
    token = _CURRENT.set(name)
    try:
        yield backend
    finally:
        _CURRENT.reset(token)
