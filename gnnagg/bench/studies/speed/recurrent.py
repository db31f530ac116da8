"""Recurrent aggregators: gnnagg's GRU/LSTMAggregation (no padding) next to PyG's (padded).

Messages ``[E, 64]`` into N = 10,000 nodes, E = 100,000, sorted index, from
:func:`~gnnagg.bench.studies.speed.messages.make_messages`: ``uniform`` (degrees 10 ± 2), ``hub200``
and ``hub5000`` (one node of that degree, the rest about 10). Only the aggregator runs,
forward + backward of ``out.sum()`` with messages that require grad; the ``+reg`` rows add
``0.1 * permutation_loss()`` (256 samples) to the loss.

Measurements (``run``), each in fresh worker processes so no method's memory or crash touches
another's:

* extra memory: one process per (case, method); :func:`gnnagg.bench.measure.peak_extra_memory`
  over the first forward+backward on the CPU, over the second on CUDA (the first is the
  warm-up, so cuBLAS/cuDNN set-up is not counted). The CPU worker's address space is capped
  (``--cap-gb``): a method that asks for more reports "cannot allocate" instead of pushing a
  shared machine into the OOM killer;
* time: one process per case; after one warm-up pass each, the methods are timed in turn for
  ``repeats`` rounds, so that all of them run under the same background load; median (``ms``)
  and minimum (``min_ms``, the least disturbed on a shared machine) of the rounds. Methods whose
  memory pass failed are not timed.

The timing worker has no address-space cap: it runs only methods whose memory pass fitted under
the cap, one at a time, and trims glibc's heap (``malloc_trim``) after every pass, outside the
timed region, so that memory one method freed is not held while the next runs. A worker that
dies (a CUDA illegal memory access, the OOM killer) is reported as
"crashed" for that case; the remaining cases go on in a new process.

    python -m gnnagg.bench.studies.speed.recurrent [--device cuda] [--cases uniform hub200]
                                                    [--out F]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ...machine import describe_machine, machine_info
from ...measure import MIB, peak_extra_memory, synchronize
from .config import RECURRENT_CASES as CASES
from .config import RECURRENT_METHODS as METHODS
from .config import SpeedConfig
from .messages import make_messages
from .output import case_table, write_result

__all__ = [
    "TITLE",
    "CASES",
    "METHODS",
    "expected_rows",
    "format_table",
    "measure_memory",
    "measure_times",
    "run",
    "run_part",
]

# The heading of this part in report.md.
TITLE = "Recurrent aggregators (gnnagg without padding, PyG padded)"

DEFAULT_OUT = Path("bench_recurrent.json")
CHANNELS = 64
NUM_SAMPLES = 256


def _module(method: str) -> torch.nn.Module:
    from torch_geometric.nn import aggr as pyg

    from gnnagg.aggr.recurrent import GRUAggregation, LSTMAggregation

    library, name = method.split()
    cell = name.removesuffix("+reg")
    if library == "pyg":
        cls = pyg.GRUAggregation if cell == "GRU" else pyg.LSTMAggregation
    else:
        cls = GRUAggregation if cell == "GRU" else LSTMAggregation
    return cls(CHANNELS, CHANNELS)


def _release_freed_memory() -> None:
    # glibc keeps freed heap pages; a padded method's gigabytes would otherwise stay resident
    # while the next method runs.
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _inputs(case: str, device: str) -> tuple[torch.Tensor, torch.Tensor, int]:
    torch.manual_seed(0)
    x, index, dim_size = make_messages(case, channels=CHANNELS, device=device)
    return x.requires_grad_(True), index, dim_size


def _step(method: str, module: torch.nn.Module, x, index, dim_size: int) -> Callable[[], None]:
    regularised = method.endswith("+reg")

    def step() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        loss = module(x, index, dim_size=dim_size).sum()
        if regularised:
            loss = loss + 0.1 * module.permutation_loss(NUM_SAMPLES)
        loss.backward()

    return step


def _failure(error: BaseException) -> dict:
    message = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    lowered = message.lower()
    out_of_memory = ("memory" in lowered and "illegal" not in lowered) or "allocate" in lowered
    return dict(status="cannot allocate" if out_of_memory else f"error: {message}", error=message)


def measure_memory(case: str, method: str, device: str = "cpu") -> dict:
    """Extra memory of one forward+backward (meant to run in a fresh process; see above)."""
    x, index, dim_size = _inputs(case, device)
    module = _module(method).to(device)
    step = _step(method, module, x, index, dim_size)
    degrees = torch.bincount(index, minlength=dim_size)
    row = dict(
        case=case,
        method=method,
        device=device,
        nodes=dim_size,
        edges=int(x.shape[0]),
        max_degree=int(degrees.max()),
        padded_rows=dim_size * int(degrees.max()),
    )
    try:
        if torch.device(device).type == "cuda":
            step()
            torch.cuda.synchronize()
        _, extra = peak_extra_memory(step, device)
        row["extra_mb"] = round(extra / MIB, 1)
        row["status"] = "ok"
    except (RuntimeError, MemoryError) as error:
        row.update(_failure(error))
    return row


def measure_times(case: str, methods: list[str], device: str = "cpu", repeats: int = 3) -> dict:
    """``{method: {"ms": median, "min_ms": min}}``, the methods timed in turn, round by round.

    Interleaving puts every method under the same background load, which on a shared machine
    matters more than anything else. One warm-up pass per method first.
    """
    x, index, dim_size = _inputs(case, device)
    steps, times, failed = {}, {}, {}
    for method in methods:
        steps[method] = _step(method, _module(method).to(device), x, index, dim_size)
        times[method] = []
    for round_ in range(repeats + 1):
        for method, step in steps.items():
            if method in failed:
                continue
            try:
                synchronize(device)
                start = time.perf_counter()
                step()
                synchronize(device)
            except (RuntimeError, MemoryError) as error:
                failed[method] = _failure(error)
                continue
            if round_ > 0:  # round 0 is the warm-up
                times[method].append((time.perf_counter() - start) * 1e3)
            _release_freed_memory()
    return {
        method: failed.get(method)
        or dict(ms=round(statistics.median(t), 2), min_ms=round(min(t), 2))
        for method, t in times.items()
    }


def _worker(arguments: list[str], timeout_s: float) -> tuple[list[dict], str | None]:
    """Run this script as a worker; the JSON lines it printed, and why it died if it did."""
    module = __name__ if __name__ != "__main__" else "gnnagg.bench.studies.speed.recurrent"
    command = [sys.executable, "-m", module, *arguments]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout
        stderr, code = f"timed out after {timeout_s:.0f} s", None
    rows = [json.loads(line) for line in (stdout or "").splitlines() if line.startswith("{")]
    if code == 0:
        return rows, None
    tail = ((stderr or "").strip().splitlines() or ["no output"])[-1][:200]
    return rows, "killed (out of memory?)" if code in (-9, 137) else tail


def run(
    cases: Iterable[str] = CASES,
    device: str = "cpu",
    repeats: int = 3,
    methods: Iterable[str] = METHODS,
    cap_gb: float = 16.0,
    timeout_s: float = 900.0,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Benchmark ``methods`` on ``cases``; one row (a dict) per (case, method).

    Memory: on the CPU one process per (case, method) (the peak RSS only grows); on CUDA one
    process per method runs the cases in turn and stops at the first failure (a CUDA error can
    leave the context unusable), the remaining cases going on in a new process. Time: one
    process per case times the methods whose memory pass succeeded, interleaved.
    """
    cases, methods = list(cases), list(methods)
    unknown = set(cases) - set(CASES) | set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown cases/methods {sorted(unknown)}; cases: {CASES}, {METHODS}")
    common = ["--device", device, "--cap-gb", str(cap_gb)]
    rows: dict[tuple[str, str], dict] = {}
    for method in methods:
        pending = list(cases)
        while pending:
            batch = pending[:1] if device == "cpu" else pending
            got, died = _worker(
                ["--memory-worker", method, *batch, *common], timeout_s * len(batch)
            )
            if died is not None and len(got) < len(batch):
                failed = dict(case=batch[len(got)], method=method, device=device)
                got.append(dict(failed, status=f"crashed: {died}"))
            for row in got:
                rows[row["case"], method] = row
            pending = pending[len(got) :]
    for case in cases:
        timed = [m for m in methods if rows[case, m]["status"] == "ok"]
        if timed:
            arguments = ["--time-worker", case, *timed, *common, "--repeats", str(repeats)]
            got, died = _worker(arguments, timeout_s * len(timed))
            times = got[0] if got else {}
            for method in timed:
                if method in times:
                    rows[case, method].update(times[method])
                    if "ms" not in times[method]:
                        rows[case, method]["status"] = "timing: " + times[method]["status"]
                else:
                    rows[case, method]["status"] = f"timing crashed: {died}"
        for method in methods:
            if progress is not None:
                progress(rows[case, method])
    return [rows[c, m] for c in cases for m in methods]


def format_table(result: dict | list[dict]) -> str:
    """Markdown table: one row per method; per case, median (min) ms and extra MB.
    ``result``: what :func:`run_part` returns, or :func:`run`'s rows."""
    rows = result["rows"] if isinstance(result, dict) else result

    def ms_cell(r: dict) -> str:
        fastest = f" ({r['min_ms']:.0f})" if "min_ms" in r else ""
        return f"{r['ms']:.0f}{fastest}"

    return case_table(rows, ms_cell)


def expected_rows(config: SpeedConfig) -> int:
    """Rows :func:`run_part` will report for ``config``."""
    return len(config.recurrent_methods or METHODS) * len(config.recurrent_cases)


def run_part(
    config: SpeedConfig, device: str, progress: Callable[[dict], None] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The ``recurrent`` part of the speed section: ``config.recurrent_methods`` (default:
    all) on ``config.recurrent_cases`` (one timed round in quick mode, three otherwise)."""
    rows = run(
        config.recurrent_cases,
        device,
        repeats=1 if config.quick else 3,
        methods=config.recurrent_methods or METHODS,
        cap_gb=config.cap_gb,
        timeout_s=config.timeout_s,
        progress=progress,
    )
    result = dict(benchmark="recurrent", machine=machine_info(device), channels=CHANNELS)
    return {**result, "rows": rows}, []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cap-gb", type=float, default=16.0, help="CPU worker address space")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--memory-worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--time-worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        if torch.device(args.device).type == "cpu":
            cap = int(args.cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        method, *worker_cases = args.memory_worker
        for case in worker_cases:
            row = measure_memory(case, method, args.device)
            print(json.dumps(row), flush=True)
            if row["status"] != "ok" and torch.device(args.device).type == "cuda":
                break
        return
    if args.time_worker:  # no cap: it only runs methods whose memory pass fitted under it
        case, *methods = args.time_worker
        print(json.dumps(measure_times(case, methods, args.device, args.repeats)), flush=True)
        return
    rows = run(
        args.cases,
        args.device,
        args.repeats,
        args.methods,
        args.cap_gb,
        args.timeout,
        progress=lambda r: print(json.dumps(r), flush=True),
    )
    machine = machine_info(args.device)
    print(
        f"\nRecurrent aggregators, forward+backward, F={CHANNELS}, on {describe_machine(machine)}"
    )
    print(format_table(rows))
    result = dict(benchmark="recurrent", machine=machine, channels=CHANNELS, rows=rows)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
