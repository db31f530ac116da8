"""Does a heavier associativity regulariser make the trained GRU-monoid LCM generalise?

The `paper` suite trains the GRU-monoid LCM with the regulariser at weight 0.1; after 50
epochs its associativity gap is about 0.07 at every size and a left fold of the same operator
scores 31 points below the balanced tree at size 32 (`lcm_bracketing.py`). This script starts
from that job's best weights and trains on for a few epochs at several regulariser weights
(the suite's data, batch, learning rate and element shuffling; a fresh Adam per weight, so the
weight 0.1 run is the control for "more epochs"). After every epoch it reports validation
accuracy, test accuracy at sizes 16 / 32 / 64 with the balanced tree and with a left fold, and
the associativity gap on lifted test elements.

    OMP_NUM_THREADS=1 python experiments/lcm_regulariser_weight.py RUN_DIR \
        [--weights 0.1 1 10] [--epochs 8] [--seed 0]

RUN_DIR is the `--out` of `gnnagg-bench run --suite paper`; results go to
RUN_DIR/regulariser-weight-lcm_gru-seed<seed>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from lcm_bracketing import measure, train_epoch

from gnnagg.bench.checkpoints import load_checkpoint
from gnnagg.bench.studies.sizegen.config import paper_config
from gnnagg.bench.studies.sizegen.jobs import checkpoint_path
from gnnagg.bench.studies.sizegen.model import SetClassifier
from gnnagg.bench.studies.sizegen.train import CHECKPOINT_FORMAT, build_splits
from gnnagg.data import TASKS

SIZES = (16, 32, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = paper_config((args.seed,))
    state = load_checkpoint(
        checkpoint_path(args.run_dir, "second_minimum", "lcm_gru", args.seed), CHECKPOINT_FORMAT
    )
    splits = build_splits("second_minimum", args.seed, config)
    train = splits["train"]
    results = {"start_epoch": state["best_epoch"], "runs": {}}
    out = args.run_dir / f"regulariser-weight-lcm_gru-seed{args.seed}.json"
    for weight in args.weights:
        torch.manual_seed(args.seed)
        model = SetClassifier(
            "lcm_gru",
            TASKS["second_minimum"].num_classes,
            hidden_channels=config.hidden_channels,
            regularise=True,
            reg_weight=weight,
            reg_samples=config.reg_samples,
        )
        model.load_state_dict(state["best_state"])
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        curve = [{"epoch": 0, **measure(model, splits, SIZES)}]
        print(weight, json.dumps({k: round(v, 4) for k, v in curve[-1].items()}), flush=True)
        for epoch in range(1, args.epochs + 1):
            start = time.process_time()
            gen = torch.Generator().manual_seed(args.seed * 1_000_003 + 1000 + epoch)
            train_epoch(model, optimiser, train, config.batch_size, gen)
            cpu = time.process_time() - start
            curve.append({"epoch": epoch, "train_cpu_s": cpu, **measure(model, splits, SIZES)})
            print(weight, json.dumps({k: round(v, 4) for k, v in curve[-1].items()}), flush=True)
        results["runs"][str(weight)] = curve
        out.write_text(json.dumps(results, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
