"""Helpers shared by the speed benchmarks: timing (median after warm-up), memory, output,
and the markdown tables and numbers they print."""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = [
    "case_table",
    "median_time_ms",
    "peak_cuda_extra_mb",
    "peak_rss_extra_mb",
    "significant",
    "synchronize",
    "write_result",
]


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


def peak_cuda_extra_mb(fn: Callable[[], object], device: torch.device | str) -> float | None:
    """Peak CUDA memory allocated by ``fn()`` beyond what was held before, in MiB."""
    if torch.device(device).type != "cuda":
        return None
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_extra_mb(fn: Callable[[], object], interval_s: float = 0.0005) -> float:
    """Peak growth of this process's resident memory while ``fn()`` runs, in MiB (Linux).

    A sampling thread reads ``/proc/self/statm``; torch releases the GIL inside its kernels, so
    the sampler keeps running during long operations. Allocations shorter than the interval can
    be missed, so this is a lower bound on the true peak.
    """
    gc.collect()
    base = _resident_bytes()
    peak = base
    running = True

    def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, _resident_bytes())
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        running = False
        sampler.join()
    peak = max(peak, _resident_bytes())
    return (peak - base) / 2**20


def write_result(result: object, path: Path) -> None:
    """Write a benchmark's result as indented JSON, creating the folder, and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


def case_table(rows: list[dict], ms_cell: Callable[[dict], str]) -> str:
    """Markdown table with one row per method and, per case, time and extra memory.

    ``rows`` carry ``case``, ``method``, ``status`` and, when ``status == "ok"``, ``extra_mb``
    and whatever ``ms_cell`` formats as the time.
    """
    cases = list(dict.fromkeys(r["case"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by_key = {(r["case"], r["method"]): r for r in rows}
    header = "| method | " + " | ".join(f"{c} ms | {c} extra MB" for c in cases) + " |"
    lines = [header, "|---|" + "---:|---:|" * len(cases)]
    for method in methods:
        cells = []
        for case in cases:
            r = by_key.get((case, method), {})
            if r.get("status") == "ok":
                cells += [ms_cell(r), f"{r['extra_mb']:.0f}"]
            else:
                cells += [r.get("status", "-"), "-"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
