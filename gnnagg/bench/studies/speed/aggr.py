"""Aggregator benchmark: forward + backward time and peak extra memory, gnnagg next to PyG.

Messages ``[E, 64]`` into N = 10,000 nodes, E ≈ 100,000, sorted index, three degree profiles:
``uniform`` (every node 10 ± 2), ``random`` (targets drawn uniformly: Poisson degrees), ``hub200``
and ``hub5000`` (one node of that degree, the rest ~10).
Only the aggregator runs (messages require grad). Every (case, method) pair runs in its own
subprocess so that one method's memory cannot leak into another's measurement:

* time: median of ``repeats`` forward+backward passes after one warm-up;
* memory: :func:`gnnagg.bench.measure.peak_extra_memory` over the first pass.
  The CPU worker's address space is capped (``--cpu-memory-cap-gb``), so a method that tries to
  allocate more reports "cannot allocate" instead of swapping the machine to death.

    python -m gnnagg.bench.studies.speed.aggr [--quick] [--device cuda] [--cases uniform hub200]

In ``gnnagg-bench`` (:func:`run_part`) PyG's padded methods (LCM, GRU, LSTM: an
``[N, max degree, F]`` buffer) run only on the cases
:class:`~gnnagg.bench.studies.speed.config.SpeedConfig` allows them; the cases they skip get a
row with status ``skipped`` and the buffer size instead of a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ...machine import describe_machine, machine_info
from ...measure import MIB, median_time_ms, peak_extra_memory
from .config import SpeedConfig
from .messages import make_messages
from .output import case_table, write_result

__all__ = [
    "TITLE",
    "CASES",
    "PADDED_METHODS",
    "aggregator_methods",
    "expected_rows",
    "format_table",
    "measure",
    "run",
    "run_part",
]

# The heading of this part in report.md.
TITLE = (
    "Aggregators, forward + backward, E = 100k messages into N = 10k nodes, "
    "F = 64 (one fresh process per measurement)"
)

DEFAULT_OUT = Path("bench_aggr.json")
CASES = ("uniform", "random", "hub200", "hub5000")
CHANNELS = 64
NUM_NODES = 10_000
# The smoke suite's graph: the worker process and the table are exercised in seconds.
SMOKE_NODES = 500
# The methods that pad every node to the largest degree.
PADDED_METHODS = ("pyg LCM", "pyg GRU", "pyg LSTM")


class _WithBackend(torch.nn.Module):
    """Runs ``module``'s forward with segment backend ``backend`` selected."""

    def __init__(self, module: torch.nn.Module, backend: str) -> None:
        super().__init__()
        self.module, self.backend = module, backend

    def forward(self, *args, **kwargs):
        from gnnagg.segment import use_backend

        with use_backend(self.backend):
            return self.module(*args, **kwargs)


def aggregator_methods() -> dict[str, Callable[[], torch.nn.Module]]:
    """Method name -> a function that builds the module (the Triton row only with CUDA)."""
    from torch_geometric.nn import aggr as pyg

    import gnnagg.aggr as ours

    builders = {
        "pyg Sum": lambda: pyg.SumAggregation(),
        "pyg LCM": lambda: pyg.LCMAggregation(CHANNELS, CHANNELS),
        "pyg GRU": lambda: pyg.GRUAggregation(CHANNELS, CHANNELS),
        "pyg LSTM": lambda: pyg.LSTMAggregation(CHANNELS, CHANNELS),
        "gnnagg LCM[gru]": lambda: ours.LCMAggregation(CHANNELS, CHANNELS),
        "gnnagg LCM[conjugated_sum]": lambda: ours.LCMAggregation(
            CHANNELS, CHANNELS, monoid="conjugated_sum"
        ),
        "gnnagg LCM[softmax]": lambda: ours.LCMAggregation(CHANNELS, CHANNELS, monoid="softmax"),
    }
    if torch.cuda.is_available():
        # The GRU monoid's tree with the Triton gate kernels (the triton backend picks them).
        builders["gnnagg LCM[gru] triton"] = lambda: _WithBackend(
            ours.LCMAggregation(CHANNELS, CHANNELS), "triton"
        )
    if hasattr(ours, "GRUAggregation"):
        builders["gnnagg GRU"] = lambda: ours.GRUAggregation(CHANNELS, CHANNELS)
        builders["gnnagg LSTM"] = lambda: ours.LSTMAggregation(CHANNELS, CHANNELS)
    return builders


def measure(case: str, method: str, device: str, repeats: int, num_nodes: int = NUM_NODES) -> dict:
    """Time and peak extra memory of one method on one case (run inside a worker process)."""
    torch.manual_seed(0)
    x, index, dim_size = make_messages(case, num_nodes, channels=CHANNELS, device=device)
    x.requires_grad_(True)
    module = aggregator_methods()[method]().to(device)

    def step() -> None:
        x.grad = None
        module(x, index, dim_size=dim_size).sum().backward()

    result = dict(
        case=case, method=method, edges=int(x.shape[0]), max_degree=int(torch.bincount(index).max())
    )
    try:
        _, extra = peak_extra_memory(step, device)
        result["extra_mb"] = round(extra / MIB, 1)
        result["ms"] = round(median_time_ms(step, device, repeats, warmup=0), 2)
        result["status"] = "ok"
    except (RuntimeError, MemoryError) as error:
        message = str(error).splitlines()[0][:160]
        oom = "memory" in message.lower() or "allocate" in message.lower()
        result["status"] = "cannot allocate" if oom else f"error: {message}"
        result["error"] = message
    return result


def _run_worker(
    cases: list[str],
    method: str,
    device: str,
    repeats: int,
    cap_gb: float,
    timeout_s: float,
    num_nodes: int = NUM_NODES,
) -> list[dict]:
    """Measure ``method`` on ``cases`` in a fresh process; a crash costs only what it killed."""
    command = [
        sys.executable,
        "-m",
        __name__ if __name__ != "__main__" else "gnnagg.bench.studies.speed.aggr",
        "--worker",
        method,
        *cases,
        "--device",
        device,
        "--repeats",
        str(repeats),
        "--cpu-memory-cap-gb",
        str(cap_gb),
        "--nodes",
        str(num_nodes),
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s * len(cases),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        stdout, stderr, returncode = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else expired.stdout
        stderr, returncode = f"timeout after {timeout_s * len(cases):.0f} s", None
    rows = [json.loads(line) for line in (stdout or "").splitlines() if line.startswith("{")]
    measured = {r["case"] for r in rows}
    tail = ((stderr or "").strip().splitlines() or ["no output"])[-1][:160]
    if returncode in (-9, 137):
        tail = "killed (out of memory)"
    for case in cases:
        if case not in measured:
            rows.append(dict(case=case, method=method, status=f"crashed: {tail}"))
    return rows


def run(
    quick: bool = False,
    device: str = "cpu",
    cases=CASES,
    methods: list[str] | None = None,
    cap_gb: float = 16.0,
    timeout_s: float = 600.0,
    progress: Callable[[dict], None] | None = None,
    num_nodes: int = NUM_NODES,
) -> dict:
    """Benchmark ``methods`` (default: all) on ``cases`` (``num_nodes`` nodes, ten messages
    each).

    On the CPU every measurement gets its own process (peak RSS only grows); on CUDA one process
    per method runs all cases (peak memory is reset between them), and a method that corrupts
    the CUDA context only loses its own remaining cases.
    """
    methods = list(methods or aggregator_methods())
    repeats = 1 if quick else 3
    batches = (
        [([c], m) for c in cases for m in methods]
        if device == "cpu"
        else [(list(cases), m) for m in methods]
    )
    rows = []
    for batch_cases, method in batches:
        for row in _run_worker(batch_cases, method, device, repeats, cap_gb, timeout_s, num_nodes):
            rows.append(row)
            if progress is not None:
                progress(row)
    order = {c: i for i, c in enumerate(cases)}
    rows.sort(key=lambda r: order[r["case"]])
    return {
        "benchmark": "aggr",
        "machine": machine_info(device),
        "channels": CHANNELS,
        "rows": rows,
    }


def format_table(result: dict) -> str:
    """Markdown table: one row per method, time and extra memory per case."""
    return case_table(result["rows"], lambda r: f"{r['ms']:.1f}")


def _max_degree(case: str, rows: list[dict[str, Any]]) -> int:
    for row in rows:
        if row.get("case") == case and "max_degree" in row:
            return int(row["max_degree"])
    digits = "".join(ch for ch in case if ch.isdigit())
    return int(digits) if digits else 0


def _selected(config: SpeedConfig) -> list[str]:
    known = list(aggregator_methods())
    if config.aggr_methods is None:
        return known
    unknown = sorted(set(config.aggr_methods) - set(known))
    if unknown:
        raise ValueError(f"aggr_methods: unknown {unknown}; the aggr part has {sorted(known)}")
    return list(config.aggr_methods)


def expected_rows(config: SpeedConfig) -> int:
    """Rows :func:`run_part` will report for ``config``."""
    selected = _selected(config)
    unpadded = [m for m in selected if m not in PADDED_METHODS]
    return len(selected) * len(config.aggr_cases) + len(unpadded) * len(config.aggr_unpadded_cases)


def run_part(
    config: SpeedConfig, device: str, progress: Callable[[dict], None] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The ``aggr`` part of the speed section: ``config.aggr_methods`` on ``config.aggr_cases``,
    and the methods that do not pad on ``config.aggr_unpadded_cases`` too (the padded ones get
    a ``skipped`` row there with the buffer they would allocate). Returns ``(result, notes)``."""
    selected = _selected(config)
    padded = [m for m in selected if m in PADDED_METHODS]
    unpadded = [m for m in selected if m not in PADDED_METHODS]
    notes: list[str] = []
    num_nodes = SMOKE_NODES if config.smoke else NUM_NODES
    if config.smoke:
        notes.append(f"smoke sizes: N = {num_nodes} nodes, not {NUM_NODES}")
    kwargs = dict(
        device=device, cap_gb=config.cap_gb, timeout_s=config.timeout_s, num_nodes=num_nodes
    )
    result = run(
        config.quick, cases=config.aggr_cases, methods=selected, progress=progress, **kwargs
    )
    rows = list(result["rows"])
    if config.aggr_unpadded_cases:
        if unpadded:
            extra = run(
                config.quick,
                cases=config.aggr_unpadded_cases,
                methods=unpadded,
                progress=progress,
                **kwargs,
            )
            rows += extra["rows"]
        for case in config.aggr_unpadded_cases:
            degree = _max_degree(case, rows)
            for method in padded:
                gigabytes = num_nodes * degree * CHANNELS * 4 / 1e9
                rows.append(
                    {
                        "case": case,
                        "method": method,
                        "status": "skipped",
                        "reason": f"padded buffer [N, {degree}, {CHANNELS}] = {gigabytes:.1f} GB",
                    }
                )
        if padded:
            notes.append(
                f"PyG's padded methods ({', '.join(padded)}) were not run on "
                f"{', '.join(config.aggr_unpadded_cases)} in this suite: each would allocate a "
                "[N, max degree, F] buffer (see the rows marked skipped); the full suite runs "
                "them and reports what happens."
            )
    order = {c: i for i, c in enumerate((*config.aggr_cases, *config.aggr_unpadded_cases))}
    method_order = {m: i for i, m in enumerate(selected)}
    rows.sort(key=lambda r: (order.get(r["case"], 99), method_order.get(r["method"], 99)))
    result["rows"] = rows
    return result, notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed pass per measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--methods", nargs="+", default=None, help="subset of method names")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-memory-cap-gb", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    parser.add_argument("--nodes", type=int, default=NUM_NODES, help="nodes (10 messages each)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", nargs="+", metavar="METHOD CASE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.device == "cpu":
            cap = int(args.cpu_memory_cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        method, *worker_cases = args.worker
        for case in worker_cases:
            row = measure(case, method, args.device, args.repeats, args.nodes)
            print(json.dumps(row), flush=True)
            if args.device == "cuda":
                torch.cuda.empty_cache()
        return
    unknown = set(args.methods or []) - set(aggregator_methods())
    if unknown:
        known = sorted(aggregator_methods())
        parser.error(f"unknown methods {sorted(unknown)}; choose from {known}")
    result = run(
        args.quick,
        args.device,
        args.cases,
        args.methods,
        args.cpu_memory_cap_gb,
        args.timeout,
        progress=lambda r: print(json.dumps(r), flush=True),
        num_nodes=args.nodes,
    )
    print(
        f"\nAggregators, forward+backward, F={CHANNELS}, on {describe_machine(result['machine'])}"
    )
    print(format_table(result))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
