"""Argument checks shared by every layer (it imports nothing from the package, and torch only
where a check needs it)."""

from __future__ import annotations

import operator
import os


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


_MEMORY_CHECK_THRESHOLD = 1 << 30


def format_bytes(num_bytes: int) -> str:
    """``num_bytes`` in binary units with three significant figures (``"4.00 TiB"``)."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:#.3g} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    raise AssertionError("unreachable")


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
