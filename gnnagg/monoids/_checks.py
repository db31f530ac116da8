"""Argument checks for the public constructors and functions of ``monoids`` and ``aggr``.

Each raises a ``TypeError`` (wrong kind) or ``ValueError`` (wrong value) whose message names
the argument, instead of letting a bad value be coerced (``bool("no")`` is True, ``int(2.5)``
is 2) or fail later with an error about something else.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from torch import Tensor

from .._checks import check_count

__all__ = [
    "check_count",
    "check_finite",
    "check_flag",
    "check_positive",
    "check_seed",
    "check_tensor",
]


def check_positive(value: object, name: str) -> int:
    """``value`` as a positive Python int (a float, bool or string is a ``TypeError``)."""
    count = check_count(value, name)
    if count == 0:
        raise ValueError(f"{name} must be positive, got 0")
    return count


def check_flag(value: object, name: str) -> bool:
    """``value`` as a bool; anything else (``"no"``, ``0.5``, a tensor) is a ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_finite(value: object, name: str) -> float:
    """``value`` as a finite Python float (NaN and ±inf are a ``ValueError``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


def check_seed(value: object, name: str = "seed") -> int | None:
    """``None`` or a non-negative int seed."""
    return None if value is None else check_count(value, name)


def check_tensor(value: object, name: str) -> Tensor:
    """``value`` itself when it is a tensor; a list or array is a ``TypeError`` naming it."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value
