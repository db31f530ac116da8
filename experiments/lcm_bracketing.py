"""How much does a trained GRU-monoid LCM depend on the shape of its reduction tree?

The GRU monoid is exactly commutative but only approximately associative, so a model trained
with balanced trees of depth <= 4 (multisets of 2-16) may read a depth-6 tree (size 64) as
something it never saw. This script loads the kept weights of an ``lcm_gru`` job of a
size-generalisation run (its checkpoint) and evaluates the same model on the same test
multisets with three reductions: the balanced tree it was trained with, the balanced tree
over the elements in random orders, and a left fold ((x1 ⊕ x2) ⊕ x3) ⊕ ... (depth n - 1). It
also prints the associativity gap per level of the balanced trees
(:meth:`gnnagg.aggr.LCMAggregation.associativity_by_level`: leaves, then each level up to the
roots), the diagnostic the sizegen report keeps. Inference only, public API only: a few
CPU-seconds per size.

    OMP_NUM_THREADS=1 python experiments/lcm_bracketing.py RUN_DIR [--seed 0] [--paper]

RUN_DIR is the ``--out`` of a ``gnnagg-bench`` run that trained ``lcm_gru`` with checkpoints
on; its configuration is read from ``RUN_DIR/results.json`` (``--paper``: the ``paper``
suite's, for a run that has not finished), and its test multisets are rebuilt from the seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from gnnagg.bench.checkpoints import load_checkpoint
from gnnagg.bench.studies.sizegen.config import SizeGenConfig, paper_config
from gnnagg.bench.studies.sizegen.data import build_splits
from gnnagg.bench.studies.sizegen.jobs import checkpoint_path
from gnnagg.bench.studies.sizegen.model import SetClassifier
from gnnagg.bench.studies.sizegen.train import CHECKPOINT_FORMAT
from gnnagg.data import TASKS

TASK = "second_minimum"


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(-1) == y).float().mean())


@torch.no_grad()
def evaluate(model: SetClassifier, data, size: int, orders: int = 5) -> dict:
    """Accuracy with the balanced tree, shuffled balanced trees and a left fold, and the
    associativity gap per tree level, on a test split whose multisets all have ``size``
    elements."""
    x, index, y, n = data.batch(torch.arange(len(data)))
    if not bool((data.sizes == size).all()):
        raise ValueError(f"test split of size {size} has other sizes")
    aggr = model.aggr
    tree = _accuracy(model(x, index, n)[0], y)
    generator = torch.Generator().manual_seed(0)
    shuffled = []
    for _ in range(orders):
        perm = torch.cat([torch.randperm(size, generator=generator) + i * size for i in range(n)])
        shuffled.append(_accuracy(model(x[perm], index, n)[0], y))
    # Each element reduced alone is its leaf state; fold them left to right.
    messages = model.encoder(x)
    leaves = aggr.reduce_partial(messages, torch.arange(messages.shape[0]), allow_inexact=True)
    leaves = leaves.view(n, size, -1)
    folded = leaves[:, 0]
    for i in range(1, size):
        folded = aggr.combine_partial(folded, leaves[:, i])
    fold = _accuracy(model.decoder(aggr.finalize(folded)), y)
    levels = aggr.associativity_by_level(messages, index, dim_size=n)
    return {
        "balanced tree": tree,
        "balanced tree, shuffled (mean)": sum(shuffled) / len(shuffled),
        "balanced tree, shuffled (min)": min(shuffled),
        "left fold": fold,
        "gap per level": [round(level["gap"], 4) for level in levels],
        "state norm per level": [round(level["norm"], 3) for level in levels],
    }


def run_config(run_dir: Path, paper: bool, seed: int) -> SizeGenConfig:
    """The size-generalisation config the run in ``run_dir`` trained with."""
    if paper:
        return paper_config((seed,))
    stored = json.loads((run_dir / "results.json").read_text())["config"]
    stored = stored.get("sizegen", stored)
    fields = {f.name for f in dataclasses.fields(SizeGenConfig)}
    return SizeGenConfig(**{k: v for k, v in stored.items() if k in fields})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paper", action="store_true", help="the paper suite's config")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = run_config(args.run_dir, args.paper, args.seed)
    state = load_checkpoint(
        checkpoint_path(args.run_dir, TASK, "lcm_gru", args.seed), CHECKPOINT_FORMAT
    )
    splits = build_splits(TASK, args.seed, config)
    model = SetClassifier(
        "lcm_gru",
        TASKS[TASK].num_classes,
        hidden_channels=config.hidden_channels,
        aggr_options=config.lcm_options(),
    )
    model.load_state_dict(state["best_state"])
    model.eval()
    rows = {}
    for size in config.test_sizes:
        rows[size] = evaluate(model, splits[f"test_{size}"], size)
        print(size, json.dumps(rows[size]), flush=True)
    out = args.run_dir / f"bracketing-lcm_gru-seed{args.seed}.json"
    best_step = state["tracker"]["best_step"]
    out.write_text(json.dumps({"best_step": best_step, "sizes": rows}, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
