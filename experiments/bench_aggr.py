"""Aggregator benchmark: forward + backward time and peak extra memory, gnnagg next to PyG.

Messages ``[E, 64]`` into N = 10,000 nodes, E ≈ 100,000, sorted index, three degree profiles:
``uniform`` (every node 10 ± 2), ``random`` (targets drawn uniformly: Poisson degrees), ``hub200``
and ``hub5000`` (one node of that degree, the rest ~10).
Only the aggregator runs (messages require grad). Every (case, method) pair runs in its own
subprocess so that one method's memory cannot leak into another's measurement:

* time: median of ``repeats`` forward+backward passes after one warm-up;
* memory: on CUDA, peak ``max_memory_allocated`` minus what was allocated before the pass; on
  the CPU, peak growth of the resident set over the first pass, sampled every 0.5 ms.
  The CPU worker's address space is capped (``--cpu-memory-cap-gb``), so a method that tries to
  allocate more reports "cannot allocate" instead of swapping the machine to death.

    python experiments/bench_aggr.py [--quick] [--device cuda] [--cases uniform hub200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from graphs import make_messages  # noqa: E402
from timing import (  # noqa: E402
    case_table,
    machine_description,
    median_time_ms,
    peak_cuda_extra_mb,
    peak_rss_extra_mb,
    write_result,
)

DEFAULT_OUT = HERE / "results" / "bench_aggr.json"
CASES = ("uniform", "random", "hub200", "hub5000")
CHANNELS = 64


class _WithBackend(torch.nn.Module):
    """Runs ``module``'s forward with segment backend ``backend`` selected."""

    def __init__(self, module: torch.nn.Module, backend: str) -> None:
        super().__init__()
        self.module, self.backend = module, backend

    def forward(self, *args, **kwargs):
        from gnnagg.segment import use_backend

        with use_backend(self.backend):
            return self.module(*args, **kwargs)


def _methods() -> dict:
    from torch_geometric.nn import aggr as pyg

    import gnnagg.aggr as ours

    methods = {
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
        methods["gnnagg LCM[gru] triton"] = lambda: _WithBackend(
            ours.LCMAggregation(CHANNELS, CHANNELS), "triton"
        )
    if hasattr(ours, "GRUAggregation"):
        methods["gnnagg GRU"] = lambda: ours.GRUAggregation(CHANNELS, CHANNELS)
        methods["gnnagg LSTM"] = lambda: ours.LSTMAggregation(CHANNELS, CHANNELS)
    return methods


def measure(case: str, method: str, device: str, repeats: int) -> dict:
    """Time and peak extra memory of one method on one case (run inside a worker process)."""
    torch.manual_seed(0)
    x, index, dim_size = make_messages(case, channels=CHANNELS, device=device)
    x.requires_grad_(True)
    module = _methods()[method]().to(device)

    def step() -> None:
        x.grad = None
        module(x, index, dim_size=dim_size).sum().backward()

    result = dict(
        case=case, method=method, edges=int(x.shape[0]), max_degree=int(torch.bincount(index).max())
    )
    try:
        if device == "cuda":
            extra = peak_cuda_extra_mb(step, device)
        else:
            extra = peak_rss_extra_mb(step)
        result["extra_mb"] = round(extra, 1)
        result["ms"] = round(median_time_ms(step, device, repeats, warmup=0), 2)
        result["status"] = "ok"
    except (RuntimeError, MemoryError) as error:
        message = str(error).splitlines()[0][:160]
        oom = "memory" in message.lower() or "allocate" in message.lower()
        result["status"] = "cannot allocate" if oom else f"error: {message}"
        result["error"] = message
    return result


def _run_worker(
    cases: list[str], method: str, device: str, repeats: int, cap_gb: float, timeout_s: float
) -> list[dict]:
    """Measure ``method`` on ``cases`` in a fresh process; a crash costs only what it killed."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        method,
        *cases,
        "--device",
        device,
        "--repeats",
        str(repeats),
        "--cpu-memory-cap-gb",
        str(cap_gb),
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
    methods=None,
    cap_gb: float = 16.0,
    timeout_s: float = 600.0,
    progress=None,
) -> dict:
    """Benchmark ``methods`` (default: all) on ``cases``.

    On the CPU every measurement gets its own process (peak RSS only grows); on CUDA one process
    per method runs all cases (peak memory is reset between them), and a method that corrupts
    the CUDA context only loses its own remaining cases.
    """
    methods = list(methods or _methods())
    repeats = 1 if quick else 3
    batches = (
        [([c], m) for c in cases for m in methods]
        if device == "cpu"
        else [(list(cases), m) for m in methods]
    )
    rows = []
    for batch_cases, method in batches:
        for row in _run_worker(batch_cases, method, device, repeats, cap_gb, timeout_s):
            rows.append(row)
            if progress is not None:
                progress(row)
    order = {c: i for i, c in enumerate(cases)}
    rows.sort(key=lambda r: order[r["case"]])
    return {
        "benchmark": "aggr",
        "machine": machine_description(device),
        "channels": CHANNELS,
        "rows": rows,
    }


def format_table(result: dict) -> str:
    """Markdown table: one row per method, time and extra memory per case."""
    return case_table(result["rows"], lambda r: f"{r['ms']:.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed pass per measurement")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--methods", nargs="+", default=None, help="subset of method names")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-memory-cap-gb", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", nargs="+", metavar="METHOD CASE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.device == "cpu":
            cap = int(args.cpu_memory_cap_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        method, *worker_cases = args.worker
        for case in worker_cases:
            print(json.dumps(measure(case, method, args.device, args.repeats)), flush=True)
            if args.device == "cuda":
                torch.cuda.empty_cache()
        return
    unknown = set(args.methods or []) - set(_methods())
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {sorted(_methods())}")
    result = run(
        args.quick,
        args.device,
        args.cases,
        args.methods,
        args.cpu_memory_cap_gb,
        args.timeout,
        progress=lambda r: print(json.dumps(r), flush=True),
    )
    print(f"\nAggregators, forward+backward, F={CHANNELS}, on {result['machine']}")
    print(format_table(result))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
