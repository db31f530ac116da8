"""CPU time of one training step of the size-generalisation model, LCM[gru] against the GRU.

The ``paper`` suite's step: width 128, batch 128 multisets of sizes 2-16 (about 1,150
elements), Adam, cross-entropy plus the aggregator's regulariser at the weight a
:class:`~gnnagg.bench.training.RegulariserSchedule` gives that step. Each variant trains the
same batches; variants are interleaved step by step, so all see the same machine load, and the
median CPU time per step (this process, 1 thread) is printed with its ratio to the first
variant, then one JSON line with the settings and the load average. ``--profile NAME`` also
prints where that variant's step goes (torch profiler, self CPU time by op).

    OMP_NUM_THREADS=1 python experiments/bench_lcm_step.py \
        [--variants gru gru+perm lcm lcm+assoc lcm+assoc/8x64] [--steps 60] [--profile lcm]

A variant is ``gru`` or ``lcm`` (gnnagg's GRUAggregation / LCMAggregation with the library's
defaults), ``+perm`` / ``+assoc`` adds the regulariser (weight 0.1, 256 samples, every step),
``/KxS`` runs it on every K-th step with S samples; ``lcm:leaf=tanh`` etc. set LCM options.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

from gnnagg.bench.studies.sizegen.config import SizeGenConfig
from gnnagg.bench.studies.sizegen.data import build_splits
from gnnagg.bench.studies.sizegen.model import SetClassifier
from gnnagg.bench.training import RegulariserSchedule
from gnnagg.data import TASKS

WIDTH, BATCH = 128, 128


def parse_variant(text: str) -> dict:
    """``"lcm+assoc/8x64:leaf=tanh"`` -> aggregator, regulariser schedule, samples, options."""
    head, _, opts = text.partition(":")
    head, _, every = head.partition("/")
    base, _, reg = head.partition("+")
    aggregator = {"gru": "gru", "lcm": "lcm_gru"}[base]
    k, samples = (int(v) for v in every.split("x")) if every else (1, 256)
    options = {}
    for item in filter(None, opts.split(",")):
        key, value = item.split("=")
        options[key] = {"true": True, "false": False}.get(value, value)
    return {
        "aggregator": aggregator,
        "schedule": RegulariserSchedule(0.1 if reg else 0.0, every=k),
        "samples": samples,
        "options": options,
    }


def make_model(variant: dict, seed: int = 0) -> tuple[SetClassifier, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = SetClassifier(
        variant["aggregator"],
        TASKS["second_minimum"].num_classes,
        hidden_channels=WIDTH,
        regularise=True,
        reg_samples=variant["samples"],
        aggr_options=variant["options"],
    )
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def step(model, optimiser, schedule, number: int, batch) -> float:
    """One training step; its CPU seconds."""
    x, index, y, n = batch
    start = time.process_time()
    model.reg_weight = schedule.weight_at(number)
    logits, reg = model(x, index, n)
    loss = F.cross_entropy(logits, y) + reg
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variants", nargs="+", default=["gru", "gru+perm", "lcm", "lcm+assoc", "lcm+assoc/8x64"]
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--profile", default=None, help="a variant to profile")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = SizeGenConfig(
        tasks=("second_minimum",), num_train=BATCH * (args.steps + args.warmup), num_val=1,
        num_test=1, test_sizes=(16,),
    )  # fmt: skip
    train = build_splits("second_minimum", 0, config)["train"]
    batches = list(train.batch(ids) for ids in torch.arange(len(train)).split(BATCH))
    variants = {name: parse_variant(name) for name in args.variants}
    models = {name: make_model(v) for name, v in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for number, batch in enumerate(batches):
        for name, variant in variants.items():
            spent = step(*models[name], variant["schedule"], number, batch)
            if number >= args.warmup:
                times[name].append(spent)
    first = times[args.variants[0]]
    first_median, first_mean = statistics.median(first), statistics.fmean(first)
    rows = {}
    for name, values in times.items():
        # The mean over whole regulariser periods: a K-step schedule pays on one step in K.
        median, mean = statistics.median(values), statistics.fmean(values)
        rows[name] = {"median_ms": 1000 * median, "mean_ms": 1000 * mean}
        print(
            f"{name:28s} median {1000 * median:6.2f} ms  mean {1000 * mean:6.2f} ms  "
            f"/ {args.variants[0]}: median {median / first_median:.2f}x, "
            f"mean {mean / first_mean:.2f}x"
        )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        model, optimiser = models[args.profile]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for number, batch in enumerate(batches[: args.warmup * 2]):
                step(model, optimiser, variants[args.profile]["schedule"], number, batch)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    print(
        json.dumps(
            {
                "width": WIDTH,
                "batch": BATCH,
                "steps": args.steps,
                "threads": torch.get_num_threads(),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "load_average": os.getloadavg(),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
