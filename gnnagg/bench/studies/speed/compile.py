"""torch.compile benchmark: each aggregator eager and compiled, gnnagg next to PyG.

Messages ``[E, 64]`` into N = 10,000 nodes (E = 100,000; the message sets of ``messages.py``,
sorted index), forward + backward of the aggregator alone, one torch thread. Each method runs
in a fresh process; there ``module`` and ``torch.compile(module)`` (Inductor) are timed in
turns (:func:`~gnnagg.bench.measure.paired_median_times_ms`), so the speed-up is measured in
one run under the same load. Times are the process's CPU time (on a machine shared with other
jobs, wall time also counts the waits for a core); the wall times are recorded beside them.
Also recorded: the compile time (the first compiled call), the graphs Dynamo made and its
graph-break count (one break counts once per enclosing frame, as ``torch._dynamo.explain``
counts).

    python -m gnnagg.bench.studies.speed.compile [--quick] [--methods ...] [--cases uniform]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ...machine import describe_machine, machine_info
from ...measure import paired_median_times_ms, paired_times_ms
from .config import SpeedConfig
from .messages import make_messages
from .output import write_result

__all__ = ["TITLE", "compile_methods", "expected_rows", "format_table", "run", "run_part"]

TITLE = (
    "torch.compile: eager vs compiled per aggregator, forward + backward, E = 100k messages "
    "into N = 10k nodes, F = 64, 1 thread"
)
DEFAULT_OUT = Path("bench_compile.json")
CHANNELS = 64
NUM_NODES = 10_000
SMOKE_NODES = 500


class SegmentReduction(torch.nn.Module):
    """``gnnagg.segment.segment(x, index, dim_size=..., reduce=reduce)`` as an aggregator."""

    def __init__(self, reduce: str) -> None:
        super().__init__()
        self.reduce = reduce

    def forward(self, x, index, dim_size):
        from ....segment import segment

        return segment(x, index, dim_size=dim_size, reduce=self.reduce)


def compile_methods() -> dict[str, Callable[[], torch.nn.Module]]:
    """Method name -> a function that builds the aggregator."""
    from torch_geometric.nn import aggr as pyg

    from .... import aggr as ours

    c = CHANNELS
    return {
        "pyg Sum": lambda: pyg.SumAggregation(),
        "pyg Mean": lambda: pyg.MeanAggregation(),
        "pyg Max": lambda: pyg.MaxAggregation(),
        "pyg Softmax(learn)": lambda: pyg.SoftmaxAggregation(learn=True, channels=c),
        "pyg LCM": lambda: pyg.LCMAggregation(c, c),
        "pyg GRU": lambda: pyg.GRUAggregation(c, c),
        "gnnagg segment[sum]": lambda: SegmentReduction("sum"),
        "gnnagg segment[mean]": lambda: SegmentReduction("mean"),
        "gnnagg segment[max]": lambda: SegmentReduction("max"),
        "gnnagg segment[std]": lambda: SegmentReduction("std"),
        "gnnagg LCM[softmax]": lambda: ours.LCMAggregation(c, c, monoid="softmax"),
        "gnnagg LCM[conjugated_sum]": lambda: ours.LCMAggregation(c, c, monoid="conjugated_sum"),
        "gnnagg LCM[gru]": lambda: ours.LCMAggregation(c, c),
        "gnnagg LCM[softmax] tree": lambda: ours.LCMAggregation(
            c, c, monoid="softmax", allow_direct_reduce=False
        ),
        "gnnagg GRU": lambda: ours.GRUAggregation(c, c),
        "gnnagg LSTM": lambda: ours.LSTMAggregation(c, c),
    }


def measure(case: str, method: str, repeats: int, num_nodes: int = NUM_NODES) -> dict[str, Any]:
    """Eager and compiled times of one method on one case (inside a worker process)."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    from torch._inductor.compile_fx import compile_fx

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, index, dim_size = make_messages(case, num_nodes, channels=CHANNELS)
    x.requires_grad_(True)
    module = compile_methods()[method]()
    graphs = 0

    def inductor(graph_module, example_inputs):
        nonlocal graphs
        graphs += 1
        return compile_fx(graph_module, example_inputs)

    compiled = torch.compile(module, backend=inductor)

    def step(fn) -> Callable[[], None]:
        def run() -> None:
            x.grad = None
            fn(x, index, dim_size=dim_size).sum().backward()

        return run

    row: dict[str, Any] = dict(case=case, method=method, edges=int(x.shape[0]), threads=1)
    try:
        torch._dynamo.reset()
        counters.clear()
        start = time.perf_counter()
        step(compiled)()
        row["compile_s"] = round(time.perf_counter() - start, 1)
        row["graphs"] = graphs
        row["graph_breaks"] = sum(counters["graph_break"].values())
        pair = [step(module), step(compiled)]
        eager_times, fast_times = paired_times_ms(pair, "cpu", repeats, warmup=2, clock="cpu")
        eager, fast = statistics.median(eager_times), statistics.median(fast_times)
        # The spread of the speed-up over the rounds (each a pair timed under one load).
        ratios = statistics.quantiles(
            [e / f for e, f in zip(eager_times, fast_times)], n=4, method="inclusive"
        )
        eager_wall, fast_wall = paired_median_times_ms(pair, "cpu", max(repeats // 2, 1))
        row.update(
            eager_ms=round(eager, 2),
            compiled_ms=round(fast, 2),
            speedup=round(eager / fast, 3),
            speedup_q1=round(ratios[0], 3),
            speedup_q3=round(ratios[2], 3),
            eager_wall_ms=round(eager_wall, 2),
            compiled_wall_ms=round(fast_wall, 2),
            status="ok",
        )
    except Exception as error:  # one method's failure is its row, not the part's end
        row["status"] = "error: " + str(error).splitlines()[0][:160]
    return row


def _run_worker(case: str, method: str, repeats: int, timeout_s: float, num_nodes: int) -> dict:
    command = [
        sys.executable, "-m", "gnnagg.bench.studies.speed.compile", "--worker", method,
        "--cases", case, "--repeats", str(repeats), "--nodes", str(num_nodes),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return dict(case=case, method=method, status=f"timeout after {timeout_s:.0f} s")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if rows:
        return rows[0]
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:160]
    return dict(case=case, method=method, status=f"crashed: {tail}")


def run(
    quick: bool = False,
    cases: tuple[str, ...] = ("uniform",),
    methods: list[str] | None = None,
    timeout_s: float = 600.0,
    progress: Callable[[dict], None] | None = None,
    num_nodes: int = NUM_NODES,
    repeats: int | None = None,
) -> dict[str, Any]:
    """Every method (default: all) on every case, each in a fresh process, on the CPU;
    ``repeats`` timed pairs per method (default 7 with ``quick``, else 15)."""
    methods = list(methods or compile_methods())
    repeats = repeats or (7 if quick else 15)
    rows = []
    for case in cases:
        for method in methods:
            row = _run_worker(case, method, repeats, timeout_s, num_nodes)
            rows.append(row)
            if progress is not None:
                progress(row)
    return {
        "benchmark": "compile",
        "machine": machine_info("cpu"),
        "channels": CHANNELS,
        "nodes": num_nodes,
        "repeats": repeats,
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """Markdown: one row per (case, method): CPU ms eager and compiled, the speed-up (eager /
    compiled medians) and the quartiles of the per-round speed-ups (the noise), compile time,
    graphs and graph breaks."""
    lines = [
        "| case | method | eager ms | compiled ms | speed-up | quartiles | compile s | graphs "
        "| breaks |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if r.get("status") != "ok":
            lines.append(f"| {r['case']} | {r['method']} | {r.get('status')} | | | | | | |")
            continue
        spread = f"{r['speedup_q1']:.2f}-{r['speedup_q3']:.2f}" if "speedup_q1" in r else "-"
        lines.append(
            f"| {r['case']} | {r['method']} | {r['eager_ms']:.1f} | {r['compiled_ms']:.1f} "
            f"| {r['speedup']:.2f}x | {spread} | {r['compile_s']:.1f} | {r['graphs']} "
            f"| {r['graph_breaks']} |"
        )
    return "\n".join(lines)


def _selected(config: SpeedConfig) -> list[str]:
    known = list(compile_methods())
    if config.compile_methods is None:
        return known
    unknown = sorted(set(config.compile_methods) - set(known))
    if unknown:
        raise ValueError(f"compile_methods: unknown {unknown}; the compile part has {known}")
    return list(config.compile_methods)


def expected_rows(config: SpeedConfig) -> int:
    return len(_selected(config)) * len(config.compile_cases)


def run_part(
    config: SpeedConfig, device: str, progress: Callable[[dict], None] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The ``compile`` part of the speed study (CPU; ``device`` is not used)."""
    notes = []
    if device != "cpu":
        notes.append(f"measured on the CPU (the study's device is {device})")
    num_nodes = SMOKE_NODES if config.smoke else NUM_NODES
    if config.smoke:
        notes.append(f"smoke sizes: N = {num_nodes} nodes, not {NUM_NODES}")
    result = run(
        config.quick, config.compile_cases, _selected(config), config.timeout_s, progress, num_nodes
    )
    return result, notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed pairs")
    parser.add_argument("--cases", nargs="+", default=["uniform"])
    parser.add_argument("--methods", nargs="+", default=None, help="subset of method names")
    parser.add_argument("--repeats", type=int, default=None, help="timed pairs (7 / 15)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per method")
    parser.add_argument("--nodes", type=int, default=NUM_NODES, help="nodes (10 messages each)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", metavar="METHOD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.cases[0], args.worker, args.repeats or 15, args.nodes)))
        return
    unknown = set(args.methods or []) - set(compile_methods())
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {sorted(compile_methods())}")
    result = run(
        args.quick, tuple(args.cases), args.methods, args.timeout,
        lambda r: print(json.dumps(r), flush=True), args.nodes, args.repeats,
    )  # fmt: skip
    print(f"\n{TITLE}, on {describe_machine(result['machine'])}")
    print(format_table(result))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
