"""Segment-reduction benchmark: time and effective bandwidth per backend and reduction.

Bytes counted per call: ``src`` read once, ``index`` read once, output written once (for the
copy: ``src`` read and written once). Compared
side by side in one run with a device copy of ``src`` (the bandwidth limit), PyG's
``SumAggregation``, ``Tensor.index_add_`` and ``torch_scatter`` when installed.

    python -m gnnagg.bench.studies.speed.segment [--quick] [--device cuda] [--out FILE]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ....segment import SegmentPlan, available_backends, segment
from ...machine import describe_machine, machine_info
from ...measure import median_time_ms, significant
from .config import SpeedConfig
from .output import write_result

__all__ = ["format_table", "run", "run_part"]

# The heading of this part in report.md.
TITLE = "Segment reductions (time and effective bandwidth)"

DEFAULT_OUT = Path("bench_segment.json")
# The smoke suite's size: every backend and reduction runs, in well under a second each.
SMOKE_SIZES = [(20_000, 16)]


def _cases(quick: bool, device: str) -> list[tuple[int, int]]:
    if quick:
        return [(1_000_000, 32), (1_000_000, 128)]
    if device == "cpu":
        return [(1_000_000, 32), (1_000_000, 128), (10_000_000, 32)]
    return [(1_000_000, 32), (1_000_000, 128), (10_000_000, 32), (10_000_000, 128)]


def _bench_case(
    num_rows: int, channels: int, avg_degree: int, quick: bool, device: str, seed: int
) -> list[dict]:
    from torch_geometric.nn.aggr import SumAggregation

    generator = torch.Generator().manual_seed(seed)
    reductions = ("sum", "mean", "max") if quick else ("sum", "mean", "max", "min")
    repeats = 3 if quick else 10
    num_groups = num_rows // avg_degree
    index = torch.randint(0, num_groups, (num_rows,), generator=generator).to(device)
    src = torch.randn(num_rows, channels, generator=generator).to(device)
    indices = {"sorted": index.sort().values, "unsorted": index}
    element = src.element_size()
    nbytes = num_rows * channels * element + num_rows * 8 + num_groups * channels * element
    rows = []

    def record(name: str, order: str, reduce: str, fn, moved: int = nbytes) -> None:
        ms = median_time_ms(fn, device, repeats)
        rows.append(
            dict(
                rows=num_rows,
                channels=channels,
                groups=num_groups,
                method=name,
                order=order,
                reduce=reduce,
                ms=round(ms, 4),
                gb_per_s=float(f"{moved / ms / 1e6:.4g}"),
            )
        )

    # A copy reads and writes every byte of src once.
    record("copy (limit)", "-", "-", src.clone, moved=2 * num_rows * channels * element)
    pyg_sum = SumAggregation()
    out = src.new_zeros(num_groups, channels)
    for order, idx in indices.items():
        record(
            "pyg SumAggregation",
            order,
            "sum",
            lambda idx=idx: pyg_sum(src, idx, dim_size=num_groups),
        )
        record(
            "Tensor.index_add_", order, "sum", lambda idx=idx: out.zero_().index_add_(0, idx, src)
        )
    backends = [b for b in available_backends() if b != "triton" or device == "cuda"]
    for order, idx in indices.items():
        plan = SegmentPlan.from_index(idx, num_groups)
        for backend in backends:
            for reduce in reductions:
                record(
                    f"gnnagg[{backend}]",
                    order,
                    reduce,
                    lambda plan=plan, reduce=reduce, backend=backend: segment(
                        src, plan=plan, reduce=reduce, backend=backend
                    ),
                )
    return rows


def run(
    quick: bool = False,
    device: str = "cpu",
    avg_degree: int = 10,
    seed: int = 0,
    sizes: list[tuple[int, int]] | None = None,
) -> dict:
    """Benchmark every available backend; returns ``{"machine": ..., "rows": [...]}``.

    ``sizes`` (``[(rows, channels), ...]``) replaces the default cases of the suite.
    """
    rows = []
    for num_rows, channels in sizes or _cases(quick, device):
        rows += _bench_case(num_rows, channels, avg_degree, quick, device, seed)
        if device == "cuda":
            torch.cuda.empty_cache()
    return {"benchmark": "segment", "machine": machine_info(device), "rows": rows}


def format_table(result: dict) -> str:
    """A markdown table of the rows of :func:`run` (bandwidth to three significant figures)."""
    lines = [
        "| rows | F | method | order | reduce | ms | GB/s |",
        "|---:|---:|---|---|---|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['rows']:,} | {r['channels']} | {r['method']} | {r['order']} | {r['reduce']} "
            f"| {r['ms']:.3f} | {significant(r['gb_per_s'])} |"
        )
    return "\n".join(lines)


def run_part(
    config: SpeedConfig, device: str, progress: Callable[[dict], None] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The ``segment`` part of the speed section (smoke: :data:`SMOKE_SIZES`)."""
    result = run(config.quick, device, sizes=SMOKE_SIZES if config.smoke else None)
    if progress is not None:
        for row in result["rows"]:
            progress(row)
    return result, []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M rows only, fewer repeats")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output file")
    parser.add_argument(
        "--sizes", nargs="+", default=None, metavar="ROWSxF", help="e.g. 10000000x128 1000000x32"
    )
    args = parser.parse_args(argv)
    sizes = None
    if args.sizes:
        try:
            sizes = [tuple(int(part) for part in size.lower().split("x")) for size in args.sizes]
        except ValueError:
            parser.error(f"--sizes takes ROWSxF pairs such as 1000000x32, got {args.sizes}")
        if any(len(size) != 2 or min(size) <= 0 for size in sizes):
            parser.error(f"--sizes takes positive ROWSxF pairs, got {args.sizes}")
    result = run(quick=args.quick, device=args.device, sizes=sizes)
    print(f"Segment reductions on {describe_machine(result['machine'])}")
    print(format_table(result))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
