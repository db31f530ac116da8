"""A cheap screen of the LCM's training levers: steps and CPU-seconds to validation thresholds.

One seed, one model, the ``paper`` suite's data (65,536 multisets of sizes 2-16, validation
on 1,024 of them, 1,024 test multisets at sizes 32 and 64), batch 128, Adam, elements
reshuffled every epoch; validated every ``--eval-every`` steps, stopped at ``--cap`` steps or
once validation reaches ``--stop``. At the first validation reaching each threshold it also
tests the model at sizes 32 and 64, so the levers can be compared at matched validation
accuracy. The harness's ``sizegen`` study does the same with seeds, plateaus and reports
(``gnnagg-bench sizegen --lcm-leaf ... --reg-every ...``); this script is the quick look that
chose what to run there.

    OMP_NUM_THREADS=1 python experiments/lcm_screen.py OUT NAME [--aggregator lcm_gru] \
        [--width 64] [--lr 1e-3] [--cap 6144] [--stop 2] [--reg 0] [--reg-every 1] \
        [--reg-samples 256] [--leaf layer_norm] [--init average] [--layer-norm] [--no-project]

Writes ``OUT/NAME.json``: the arguments, the curve (step, training CPU-s, validation accuracy)
and the crossings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gnnagg.aggr import LCMAggregation
from gnnagg.bench.studies.sizegen.config import paper_config
from gnnagg.bench.studies.sizegen.data import accuracy, build_splits
from gnnagg.bench.studies.sizegen.model import SetClassifier
from gnnagg.bench.training import FitTracker, RegulariserSchedule, seed_everything
from gnnagg.data import TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("name")
    parser.add_argument("--aggregator", default="lcm_gru")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--cap", type=int, default=6144)
    parser.add_argument("--stop", type=float, default=2.0)
    parser.add_argument("--eval-every", type=int, default=256)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.45, 0.6, 0.75, 0.9])
    parser.add_argument("--reg", type=float, default=0.0)
    parser.add_argument("--reg-every", type=int, default=1)
    parser.add_argument("--reg-samples", type=int, default=256)
    parser.add_argument("--leaf", default=None)
    parser.add_argument("--init", default=None)
    parser.add_argument("--layer-norm", action="store_true")
    parser.add_argument("--no-project", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = dataclasses.replace(
        paper_config((args.seed,)), num_test=1024, test_sizes=(32, 64), val_at_size=None
    )
    splits = build_splits("second_minimum", args.seed, config)
    train = splits["train"]
    seed_everything(args.seed)
    model = SetClassifier(
        args.aggregator,
        TASKS["second_minimum"].num_classes,
        hidden_channels=args.width,
        regularise=args.reg > 0,
        reg_samples=args.reg_samples,
    )
    if args.aggregator == "lcm_gru":
        options = {"leaf": args.leaf, "init": args.init}
        model.aggr = LCMAggregation(
            args.width,
            args.width,
            project=not args.no_project,
            layer_norm=args.layer_norm,
            **{k: v for k, v in options.items() if v is not None},
        )
    schedule = RegulariserSchedule(args.reg, every=args.reg_every)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    tracker = FitTracker(thresholds=tuple(args.thresholds))
    tests = {}
    step, cpu, epoch, done = 0, 0.0, 0, False
    while not done:
        epoch += 1
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + epoch)
        data = train.shuffled(generator)
        for chunk in torch.randperm(len(train), generator=generator).split(128):
            start = time.process_time()
            x, index, y, n = data.batch(chunk)
            model.reg_weight = schedule.weight_at(step)
            logits, reg = model(x, index, n)
            loss = F.cross_entropy(logits, y) + reg
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            cpu += time.process_time() - start
            step += 1
            if step % args.eval_every:
                continue
            val = accuracy(model, splits["val"], 1024)
            for threshold in tracker.update(step, cpu, val)[1]:
                tests[tracker.key(threshold)] = {
                    size: accuracy(model, splits[f"test_{size}"], 1024) for size in (32, 64)
                }
            print(args.name, step, round(cpu, 1), round(val, 4), flush=True)
            if step >= args.cap or val >= args.stop:
                done = True
                break
    crossings = {k: {**v, "test_acc": tests[k]} for k, v in tracker.crossings.items()}
    result = {
        "args": vars(args) | {"out": str(args.out)},
        "curve": tracker.curve,
        "crossings": crossings,
        "ms_per_step": 1000 * cpu / step,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
