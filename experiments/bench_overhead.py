"""Per-call overhead of the aggregators: launches and host time of one forward + backward.

At N = 10,000 nodes a GPU does the arithmetic of the LCM tree in well under a millisecond; what
the measured time is made of is the host-side cost of issuing every kernel (Python, dispatcher,
autograd bookkeeping, the launch itself), once per tree level. This benchmark measures the two
quantities behind that cost on any machine, without a GPU:

* ``ops``: kernel-launching ATen calls in one forward + backward (``torch.profiler``; calls
  made inside another ATen call and pure view/allocation ops are not counted), i.e. how many
  kernels a GPU would be sent;
* ``ms``: median host time of one forward + backward on a graph so small that arithmetic is
  negligible but with the same degree profile, hence the same tree depth.

gnnagg's tree runs in chunks on the CPU (to stay in cache); here it runs one chunk per level,
as it does on a GPU. Cases: ``uniform`` (16 nodes of degree 10 ± 2: 4 tree levels) and
``hub5000`` (one node of degree 5,000 among 600: 13 levels).

``gnnagg LCM[gru] triton`` is the GRU tree with the Triton gate kernels (``use_backend("triton")``).
Without a GPU those kernels would run on Triton's interpreter, which calls ATen itself, so for
this row the two kernels are replaced by counters: ``ops`` is ATen calls plus Triton launches,
and no time is reported.

    python experiments/bench_overhead.py [--repeats 51] [--out results/bench_overhead.json]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
from collections import Counter
from pathlib import Path

# The triton backend is only available on a GPU or on Triton's interpreter; this benchmark never
# runs a Triton kernel (see above), it only needs the backend to be selectable.
os.environ.setdefault("TRITON_INTERPRET", "1")

import torch  # noqa: E402

from gnnagg.bench.machine import machine_info  # noqa: E402
from gnnagg.bench.measure import median_time_ms
from gnnagg.bench.studies.speed.messages import make_messages  # noqa: E402
from gnnagg.bench.studies.speed.output import write_result  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_overhead.json"
CHANNELS = 64
CASES = {"uniform": 16, "hub5000": 600}  # case -> number of nodes
# Views, allocations and metadata: no kernel is launched for them.
NOT_LAUNCHING = {
    "aten::" + name
    for name in (
        "alias as_strided chunk contiguous detach empty empty_like empty_strided expand "
        "expand_as flatten lift_fresh movedim narrow new_empty new_empty_strided numpy_T "
        "permute reshape _reshape_alias resolve_conj resolve_neg result_type select slice "
        "split split_with_sizes squeeze t to transpose unbind unflatten unsafe_split "
        "unsqueeze _unsafe_view view view_as"
    ).split()
}


def _methods() -> dict:
    from torch_geometric.nn import aggr as pyg

    import gnnagg.aggr as ours

    methods = {
        "pyg Sum": lambda: pyg.SumAggregation(),
        "pyg LCM": lambda: pyg.LCMAggregation(CHANNELS, CHANNELS),
        "gnnagg LCM[gru]": lambda: ours.LCMAggregation(CHANNELS, CHANNELS),
        "gnnagg LCM[conjugated_sum]": lambda: ours.LCMAggregation(
            CHANNELS, CHANNELS, monoid="conjugated_sum"
        ),
        "gnnagg LCM[softmax]": lambda: ours.LCMAggregation(CHANNELS, CHANNELS, monoid="softmax"),
    }
    if importlib.util.find_spec("triton") is not None:
        methods[TRITON_METHOD] = methods["gnnagg LCM[gru]"]
    return methods


TRITON_METHOD = "gnnagg LCM[gru] triton"


class _CountingKernel:
    """Stands in for a Triton kernel: counts launches instead of running them."""

    def __init__(self, counter: Counter, name: str) -> None:
        self.counter, self.name = counter, name

    def __getitem__(self, grid):
        def launch(*args, **kwargs) -> None:
            self.counter[self.name] += 1

        return launch


@contextlib.contextmanager
def _triton_counted(counter: Counter):
    from gnnagg.monoids import gru_triton
    from gnnagg.segment import use_backend

    names = ("_pair_forward_kernel", "_pair_backward_kernel")
    kernels = {name: getattr(gru_triton, name) for name in names}
    try:
        for name in names:
            setattr(gru_triton, name, _CountingKernel(counter, "triton::" + name.strip("_")))
        with use_backend("triton"):
            yield
    finally:
        for name, kernel in kernels.items():
            setattr(gru_triton, name, kernel)


def count_launching_ops(fn) -> Counter:
    """ATen calls issued from outside ATen while ``fn()`` runs, views and allocations excepted."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    counts = Counter()
    for event in prof.events():
        parent = event.cpu_parent
        nested = parent is not None and parent.name.startswith("aten::")
        if event.name.startswith("aten::") and not nested and event.name not in NOT_LAUNCHING:
            counts[event.name] += 1
    return counts


def measure(case: str, method: str, repeats: int) -> dict:
    torch.manual_seed(0)
    x, index, dim_size = make_messages(case, num_nodes=CASES[case], channels=CHANNELS)
    x.requires_grad_(True)
    module = _methods()[method]()

    triton_launches = Counter()
    triton = method == TRITON_METHOD

    def counted():
        return _triton_counted(triton_launches) if triton else contextlib.nullcontext()

    def step() -> None:
        x.grad = None
        with counted():
            out = module(x, index, dim_size=dim_size)
            out.sum().backward()

    for _ in range(3):
        step()
    triton_launches.clear()
    ops = count_launching_ops(step) + triton_launches
    return dict(
        case=case,
        method=method,
        edges=int(x.shape[0]),
        max_degree=int(torch.bincount(index).max()),
        ops=sum(ops.values()),
        top_ops=dict(ops.most_common(8)),
        triton_launches=dict(triton_launches),
        ms=None if triton else round(median_time_ms(step, "cpu", repeats, warmup=0), 3),
    )


def format_table(rows: list[dict]) -> str:
    cases = list(dict.fromkeys(r["case"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by_key = {(r["case"], r["method"]): r for r in rows}
    lines = [
        "| method | " + " | ".join(f"{c} ops | {c} ms" for c in cases) + " |",
        "|---|" + "---:|---:|" * len(cases),
    ]
    for method in methods:
        cells = []
        for case in cases:
            r = by_key.get((case, method))
            if r is None:
                cells += ["-", "-"]
            else:
                cells += [str(r["ops"]), "-" if r["ms"] is None else f"{r['ms']:.2f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--methods", nargs="+", default=None, help="subset of method names")
    parser.add_argument("--repeats", type=int, default=51)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    import gnnagg.monoids.tree as tree

    torch.set_num_threads(1)
    tree.CPU_CHUNK_BYTES = 1 << 62  # one chunk per level, as on a GPU
    methods = args.methods or list(_methods())
    rows = []
    for case in args.cases:
        for method in methods:
            if method == "pyg LCM" and case != "uniform":
                continue  # padded to the hub's degree: arithmetic, not overhead, would dominate
            rows.append(measure(case, method, args.repeats))
            print(rows[-1], flush=True)
    result = {"benchmark": "overhead", "machine": machine_info("cpu"), "rows": rows}
    print(f"\nOne forward + backward, F={CHANNELS}, 1 thread, on {result['machine']}")
    print(format_table(rows))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
