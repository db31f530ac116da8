"""Argument checks shared by every layer (it imports nothing from the package)."""

from __future__ import annotations

import operator


def check_count(value: object, name: str) -> int:
    """``value`` as a non-negative Python int, for sizes such as ``dim_size`` or ``num_nodes``.

    Anything integral is accepted (Python and NumPy ints, 0-d integer tensors); a float such as
    ``2.5`` or a bool is a ``TypeError`` naming ``name`` rather than silently truncated, and a
    negative count a ``ValueError``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got a bool")
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer, got {value!r} ({type(value).__name__})"
        ) from None
    if count < 0:
        raise ValueError(f"{name} must be non-negative, got {count}")
    return count
