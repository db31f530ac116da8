"""Argument checks shared by every layer, and the one byte formatter.

Each check is ``check_x(value, name, ...)``: the value first, then the name of the argument it
came from, then options by keyword. It returns the value as a plain Python object (``int``,
``float``, ``bool``, ...) or raises a ``TypeError`` (wrong kind) or ``ValueError`` (wrong value)
whose message starts with ``name``, instead of letting a bad value be coerced (``bool("no")``
is True, ``int(2.5)`` is 2) or fail later with an error about something else.

This module imports nothing from the package, and torch only where a check needs it.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "available_memory",
    "check_allocation",
    "check_bool",
    "check_choice",
    "check_count",
    "check_edge_index",
    "check_features",
    "check_finite",
    "check_int",
    "check_names",
    "check_positive",
    "check_seed",
    "check_tensor",
    "format_bytes",
]


def _type_name(value: object) -> str:
    return type(value).__name__


def _bound_words(minimum: float) -> str:
    return {0: "non-negative", 1: "positive"}.get(minimum, f"at least {minimum}")


def check_int(
    value: object, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as a Python int in ``[minimum, maximum]`` (either bound optional).

    Anything integral is accepted (Python and NumPy ints, 0-d integer tensors); a float such as
    ``2.5``, a string or a bool is a ``TypeError`` rather than silently truncated.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got a bool ({value!r})")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r} ({_type_name(value)})") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be {_bound_words(minimum)}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {number}")
    return number


def check_count(value: object, name: str) -> int:
    """``value`` as a non-negative Python int, for sizes such as ``dim_size`` or ``num_nodes``."""
    return check_int(value, name, minimum=0)


def check_positive(value: object, name: str) -> int:
    """``value`` as a positive Python int, for widths and numbers of things (``channels``)."""
    return check_int(value, name, minimum=1)


def check_seed(value: object, name: str = "seed") -> int | None:
    """``None`` or a non-negative int seed."""
    return None if value is None else check_count(value, name)


def check_finite(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> float:
    """``value`` as a finite Python float in ``[minimum, maximum]``, and ``> 0`` with
    ``positive``; NaN and ±inf are a ``ValueError``, a string or a bool a ``TypeError``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({_type_name(value)})")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if positive and not number > 0:
        raise ValueError(f"{name} must be positive, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be {_bound_words(minimum)}, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {number}")
    return number


def check_bool(value: object, name: str) -> bool:
    """``value`` as a bool; anything else (``"no"``, ``0``, ``0.5``, a tensor) is a
    ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({_type_name(value)})")
    return bool(value)


def check_choice(value: object, name: str, choices: Collection[str]) -> str:
    """``value`` if it is one of the strings ``choices`` (a ``ValueError`` listing them
    otherwise)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_names(values: object, name: str, valid: Collection[str]) -> tuple[str, ...]:
    """``values`` (a list or tuple) as a non-empty tuple of strings from ``valid``."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of names, got {values!r} ({_type_name(values)})")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must name at least one of {list(valid)}")
    unknown = [v for v in values if not isinstance(v, str) or v not in valid]
    if unknown:
        raise ValueError(f"{name} has unknown entries {unknown}; valid entries are {list(valid)}")
    return values


def check_tensor(value: object, name: str) -> Tensor:
    """``value`` itself when it is a tensor; a list or array is a ``TypeError`` naming it."""
    from torch import Tensor

    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_type_name(value)}")
    return value


def check_features(
    value: object, name: str, channels: int, *, like: Tensor | None = None
) -> Tensor:
    """``value`` as ``[rows, channels]`` floating-point features; with ``like`` (a module's
    parameter) also of its dtype and on its device, which a layer would otherwise reject deep
    inside with ``mat1 and mat2 ...``."""
    import torch

    value = check_tensor(value, name)
    if value.layout != torch.strided:
        raise TypeError(f"{name} must be a dense tensor, got layout {value.layout}")
    if value.dim() != 2 or value.size(1) != channels:
        raise ValueError(f"{name} must be [num_nodes, {channels}], got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {value.dtype}")
    if like is not None and value.dtype != like.dtype:
        raise TypeError(
            f"{name} has dtype {value.dtype} but the module's parameters are {like.dtype}; "
            "convert one of them (x.to(dtype) or module.to(dtype))"
        )
    if like is not None and value.device != like.device:
        raise ValueError(
            f"{name} is on {value.device} but the module's parameters on {like.device}"
        )
    return value


def check_edge_index(value: object, name: str, num_nodes: int) -> Tensor:
    """``value`` as a ``[2, E]`` int64/int32 edge index with ids in ``[0, num_nodes)`` (a
    negative id would silently index from the end)."""
    import torch

    value = check_tensor(value, name)
    if value.dim() != 2 or value.size(0) != 2:
        raise ValueError(f"{name} must be [2, num_edges], got shape {tuple(value.shape)}")
    if value.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{name} must be int64 or int32, got {value.dtype}")
    if value.numel() and (int(value.min()) < 0 or int(value.max()) >= num_nodes):
        raise ValueError(
            f"{name} has node ids in [{int(value.min())}, {int(value.max())}], outside "
            f"[0, num_nodes={num_nodes})"
        )
    return value


def format_bytes(num_bytes: float) -> str:
    """``num_bytes`` in binary units with three significant figures (``"4.00 TiB"``,
    ``"512 B"``)."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            # "#" keeps trailing zeros ("4.00"); a bare trailing point ("291.") is dropped.
            return f"{f'{value:#.3g}'.rstrip('.')} {unit}" if unit != "B" else f"{value:.0f} B"
        value /= 1024
    raise AssertionError("unreachable")


_MEMORY_CHECK_THRESHOLD = 1 << 30


def available_memory(device: object) -> int | None:
    """Bytes that a new allocation on ``device`` can still take, or ``None`` when unknown.

    The CPU figure is the kernel's ``MemAvailable`` (free memory plus reclaimable caches); on a
    CUDA device it is the driver's free memory plus what PyTorch's caching allocator holds
    unused. Other devices (and the meta device, which allocates nothing) report ``None``.
    """
    import torch

    device = torch.device(device)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached
    return None


def check_allocation(num_bytes: int, what: str, device: object) -> None:
    """Refuse, before allocating, ``num_bytes`` that ``device`` cannot hold.

    ``what`` names the argument responsible and how the size follows from it (``"dim_size=
    2147483649 groups of 128 float32 values"``). Sizes up to 1 GiB are never checked (the
    check reads the free memory, which costs microseconds); above that the request must fit in
    :func:`available_memory`, so legitimate large graphs run and a mistyped size gets a
    ``ValueError`` rather than an out-of-memory crash or minutes of swapping.
    """
    if num_bytes <= _MEMORY_CHECK_THRESHOLD:
        return
    available = available_memory(device)
    if available is not None and num_bytes > available:
        raise ValueError(
            f"{what} would need {format_bytes(num_bytes)} on {device}, more than the "
            f"{format_bytes(available)} available there"
        )
