"""Cost of the LCM associativity regulariser next to the tree it regularises (CPU, 1 thread).

A quick-suite-like batch (512 multisets of sizes 2-16, GRU monoid): the median time of the
tree's forward + backward, and of the same step with ``associativity_loss(num_triples)`` added,
for the batched gap (two ``combine`` calls, one gather) and for the plain formulation (four
``combine`` calls, three gathers), interleaved so that both see the same machine load. Prints
one JSON line with the thread settings and the load average:

    OMP_NUM_THREADS=1 python experiments/bench_regulariser.py [--channels 128] [--triples 256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch


def plain_gap(monoid, states: torch.Tensor, num: int, generator: torch.Generator):
    """The regulariser as four combines on three separate gathers."""
    picks = torch.randint(0, states.shape[0], (3, num), generator=generator)
    a, b, c = (states.index_select(0, p) for p in picks)
    left = monoid.combine(monoid.combine(a, b), c)
    right = monoid.combine(a, monoid.combine(b, c))
    return (left - right).pow(2).sum(-1).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--triples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from gnnagg.aggr import LCMAggregation

    torch.manual_seed(0)
    sizes = torch.randint(2, 17, (512,))
    index = torch.repeat_interleave(torch.arange(512), sizes)
    x = torch.randn(index.numel(), args.channels)
    aggr = LCMAggregation(args.channels, args.channels)

    def tree() -> None:
        aggr.zero_grad()
        aggr(x, index, dim_size=512).sum().backward()

    def batched() -> None:
        aggr.zero_grad()
        out = aggr(x, index, dim_size=512)
        (out.sum() + aggr.associativity_loss(args.triples, seed=0)).backward()

    def plain() -> None:
        aggr.zero_grad()
        out = aggr(x, index, dim_size=512)
        states = aggr._last_forward.get()
        gap = plain_gap(aggr.monoid, states, args.triples, torch.Generator().manual_seed(0))
        (out.sum() + gap).backward()

    steps = {"tree": tree, "tree+batched": batched, "tree+plain": plain}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(2):
        for step in steps.values():
            step()
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1e3)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        json.dumps(
            dict(
                edges=int(index.numel()),
                channels=args.channels,
                triples=args.triples,
                median_ms={name: round(value, 1) for name, value in median.items()},
                regulariser_vs_tree={
                    name: round((median[name] - median["tree"]) / median["tree"], 3)
                    for name in ("tree+batched", "tree+plain")
                },
                threads=torch.get_num_threads(),
                omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                load_average=[round(v, 2) for v in os.getloadavg()],
                cpus=os.cpu_count(),
            )
        )
    )


if __name__ == "__main__":
    main()
