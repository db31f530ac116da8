"""Which sorted-row reduction path is fastest on this CPU, per row width (one-off study).

Times ``torch.segment_reduce`` against ``scatter_add_``/``scatter_reduce`` over sorted rows, and
gnnagg's default ``segment`` against PyG's ``scatter``, side by side in one run (rounds
interleaved, so that a change of load hits every path alike), with 1 thread. It prints the
thread setting and the load average before and after beside the medians. The torch backend's
``prefers_segment_reduce`` rule comes from these numbers.

    python experiments/cpu_segment_paths.py [--rows 1000000] [--degree 10] [--widths 8 32 64 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def _median_ms(paths: dict, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in paths}
    for fn in paths.values():
        fn()
    for _ in range(rounds):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--degree", type=int, default=10, help="mean rows per group")
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 32, 64, 128])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    from torch_geometric.utils import scatter as pyg_scatter

    from gnnagg.segment import SegmentPlan, segment

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    groups = max(args.rows // args.degree, 1)
    index = torch.randint(0, groups, (args.rows,), generator=generator).sort().values
    plan = SegmentPlan.from_index(index, groups)
    print(
        f"{args.rows:,} sorted rows, {groups:,} groups, threads={torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()}"
    )
    for width in args.widths:
        src = torch.randn(args.rows, width, generator=generator)
        expanded = index.view(-1, 1).expand_as(src)
        paths = {
            "sum segment_reduce": lambda: torch.segment_reduce(src, "sum", offsets=plan.ptr),
            "sum scatter_add_": lambda: src.new_zeros(groups, width).scatter_add_(0, expanded, src),
            "max segment_reduce": lambda: torch.segment_reduce(src, "max", offsets=plan.ptr),
            "max scatter_reduce": lambda: src.new_zeros(groups, width).scatter_reduce(
                0, expanded, src, "amax", include_self=False
            ),
            "sum gnnagg segment": lambda: segment(src, plan=plan),
            "sum PyG scatter": lambda: pyg_scatter(src, index, 0, dim_size=groups, reduce="sum"),
        }
        medians = _median_ms(paths, args.rounds)
        print(f"width {width}: " + "  ".join(f"{n} {ms:.0f} ms" for n, ms in medians.items()))
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
