"""The one timer and the one peak-memory probe behind every time and memory column of
``gnnagg-bench``.

* :func:`median_time_ms`: the median wall time of a call after warm-up, the device
  synchronised around each call; :func:`paired_times_ms` (and its medians,
  :func:`paired_median_times_ms`) times several calls in turns, so that their ratio is
  measured in one run under the same load.
* :func:`peak_extra_memory`: the peak memory a call adds. On CUDA, the peak allocation above
  what was allocated before. On the CPU (Linux), the kernel's own peak resident set size --
  reset just before the call by writing ``5`` to ``/proc/self/clear_refs`` and read back as
  ``VmHWM`` -- above the resident size before it: exact, and no sampling thread competes for
  the core. Where that reset is not possible (not Linux, or a kernel that refuses it), a
  thread samples the resident size every 0.5 ms, which can miss peaks shorter than that, so
  the figure is a lower bound; :data:`PEAK_METHOD` says which one this process uses.

Freed C-heap pages are handed back to the system before each measurement (glibc
``malloc_trim``), so a call measured after another one pays for its own memory.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "MIB",
    "median_time_ms",
    "paired_median_times_ms",
    "paired_times_ms",
    "peak_extra_memory",
    "peak_method",
    "significant",
    "synchronize",
]

MIB = 2**20


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures, without an exponent: ``1.23``, ``12.3``,
    ``1230``, ``0.000123`` (a bandwidth of 1.4 GB/s printed as ``1`` says nothing)."""
    if not math.isfinite(value) or value == 0:
        return f"{value:g}"
    rounded = float(f"{value:.{digits}g}")
    decimals = max(digits - 1 - math.floor(math.log10(abs(rounded))), 0)
    return f"{rounded:.{decimals}f}"


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def median_time_ms(
    fn: Callable[[], object], device: torch.device | str, repeats: int = 5, warmup: int = 1
) -> float:
    """Median wall time of ``fn()`` in milliseconds, synchronising the device around each call."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def paired_times_ms(
    fns: Sequence[Callable[[], object]],
    device: torch.device | str,
    repeats: int = 5,
    warmup: int = 1,
    clock: str = "wall",
) -> list[list[float]]:
    """Times in milliseconds of ``repeats`` calls of each of ``fns``, taken in turns: every
    round calls each once, so a change of load on a shared machine reaches all of them alike
    (round ``i`` of two functions is a pair measured under the same load).

    ``clock="wall"`` is :func:`median_time_ms`'s clock; ``clock="cpu"`` (CPU device only) is
    the process's CPU time, which on a machine shared with other jobs leaves out the waits for
    a core that wall time counts (meaningful for calls that run on one thread).
    """
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    if clock == "cpu" and torch.device(device).type != "cpu":
        raise ValueError(f"clock='cpu' times CPU work only; device is {device}")
    now = time.perf_counter if clock == "wall" else time.process_time
    for _ in range(warmup):
        for fn in fns:
            fn()
    synchronize(device)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times):
            start = now()
            fn()
            synchronize(device)
            spent.append((now() - start) * 1e3)
    return times


def paired_median_times_ms(
    fns: Sequence[Callable[[], object]],
    device: torch.device | str,
    repeats: int = 5,
    warmup: int = 1,
    clock: str = "wall",
) -> list[float]:
    """The median of each function's times from :func:`paired_times_ms`: the ratio of two
    medians is measured in one run under the same load."""
    return [statistics.median(t) for t in paired_times_ms(fns, device, repeats, warmup, clock)]


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sampled_peak(fn: Callable[[], Any], interval_s: float = 0.0005) -> tuple[Any, int]:
    base = peak = _resident_bytes()
    running = True

    def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, _resident_bytes())
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        running = False
        sampler.join()
    return result, max(max(peak, _resident_bytes()) - base, 0)


def peak_method(device: torch.device | str = "cpu") -> str:
    """How :func:`peak_extra_memory` measures on ``device`` in this process:
    ``"cuda-allocator"``, ``"vmhwm"`` (exact) or ``"sampled"`` (a lower bound)."""
    if torch.device(device).type == "cuda":
        return "cuda-allocator"
    if _proc_status_kib("VmHWM") is not None and _reset_peak_rss():
        return "vmhwm"
    return "sampled"


def peak_extra_memory(
    fn: Callable[[], Any], device: torch.device | str = "cpu"
) -> tuple[Any, int]:
    """Run ``fn()``; return ``(its result, the peak memory it added, in bytes)`` (see the module
    docstring for how each device is measured)."""
    device = torch.device(device)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, max(int(torch.cuda.max_memory_allocated(device)) - base, 0)
    _release_free_heap()
    base_kib = _proc_status_kib("VmRSS")
    if base_kib is not None and _reset_peak_rss():
        result = fn()
        peak_kib = _proc_status_kib("VmHWM")
        if peak_kib is not None:
            return result, max(peak_kib - base_kib, 0) * 1024
    return _sampled_peak(fn)
