"""One LCM[gru] forward + backward at N = 2,000 with a 200-hub: ATen ops and time per thread count.

On a busy machine every OpenMP parallel region waits for each of its threads to be scheduled,
so the time with several threads follows the number of ops more than the arithmetic. Prints one
JSON line with the thread settings and the load average beside the numbers:

    OMP_NUM_THREADS=2 python experiments/bench_lcm_threads.py --threads 2 [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from gnnagg.bench.studies.speed.messages import make_messages

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import count_launching_ops  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--case", default="hub200")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from gnnagg.aggr import LCMAggregation

    torch.manual_seed(0)
    x, index, num_nodes = make_messages(args.case, num_nodes=args.nodes, channels=64)
    x.requires_grad_(True)
    module = LCMAggregation(64, 64)

    def step() -> None:
        x.grad = None
        module(x, index, dim_size=num_nodes).sum().backward()

    for _ in range(3):
        step()
    ops = sum(count_launching_ops(step).values())
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    print(
        json.dumps(
            dict(
                case=args.case,
                nodes=args.nodes,
                threads=torch.get_num_threads(),
                omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                ops=ops,
                median_ms=round(statistics.median(times), 1),
                min_ms=round(min(times), 1),
                load_average=[round(v, 2) for v in os.getloadavg()],
                cpus=os.cpu_count(),
            )
        )
    )


if __name__ == "__main__":
    main()
