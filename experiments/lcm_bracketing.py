"""How much does a trained GRU-monoid LCM depend on the shape of its reduction tree?

The GRU monoid is commutative exactly but associative only approximately, so a model trained
with balanced trees of depth <= 4 (multisets of 2-16) may read a depth-6 tree (size 64) as
something it never saw. This script takes the best weights of an `lcm_gru` job of the
`paper` suite (its checkpoint) and evaluates the same model on the same test multisets with
three reductions: the balanced tree it was trained with, the balanced tree over elements in a
random order (5 orders), and a left fold ((x1 + x2) + x3) + ... (depth n - 1). It also
reports the associativity gap |(a+b)+c - a+(b+c)| / |a+(b+c)| of the trained monoid on
triples of lifted test elements. Inference only: a few CPU-seconds per size.

    OMP_NUM_THREADS=1 python experiments/lcm_bracketing.py RUN_DIR [--seed 0]

RUN_DIR is the `--out` of `gnnagg-bench run --suite paper`; the suite's test multisets are
rebuilt from the seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from gnnagg.bench.checkpoints import load_checkpoint
from gnnagg.bench.studies.sizegen.config import paper_config
from gnnagg.bench.studies.sizegen.jobs import checkpoint_path
from gnnagg.bench.studies.sizegen.model import SetClassifier
from gnnagg.bench.studies.sizegen.train import CHECKPOINT_FORMAT, build_splits
from gnnagg.data import TASKS


def _lifted(model: SetClassifier, x: torch.Tensor) -> torch.Tensor:
    aggr = model.aggr
    h = model.encoder(x)
    if aggr.lin is not None:
        h = torch.relu(aggr.lin(h))
    return aggr.monoid.lift(h)


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(-1) == y).float().mean())


@torch.no_grad()
def evaluate(model: SetClassifier, data, size: int, orders: int = 5) -> dict[str, float]:
    x, index, y, n = data.batch(torch.arange(len(data)))
    if not bool((data.sizes == size).all()):
        raise ValueError(f"test split of size {size} has other sizes")
    tree = _accuracy(model(x, index, n)[0], y)
    gen = torch.Generator().manual_seed(0)
    shuffled = []
    for _ in range(orders):
        perm = torch.cat([torch.randperm(size, generator=gen) + i * size for i in range(n)])
        shuffled.append(_accuracy(model(x[perm], index, n)[0], y))
    states = _lifted(model, x).view(n, size, -1)
    monoid = model.aggr.monoid
    acc = states[:, 0]
    for i in range(1, size):
        acc = monoid.combine(acc, states[:, i])
    fold = _accuracy(model.decoder(monoid.lower(acc)), y)
    a, b, c = states[:, 0], states[:, 1], states[:, 2]
    left, right = monoid.combine(monoid.combine(a, b), c), monoid.combine(a, monoid.combine(b, c))
    gap = float(((left - right).norm(dim=-1) / right.norm(dim=-1).clamp_min(1e-12)).mean())
    return {
        "balanced tree": tree,
        "balanced tree, shuffled (mean)": sum(shuffled) / len(shuffled),
        "balanced tree, shuffled (min)": min(shuffled),
        "left fold": fold,
        "associativity gap": gap,
    }


@torch.no_grad()
def split_accuracy(model: SetClassifier, data) -> float:
    """Accuracy of ``model`` (put in eval mode) on a whole split."""
    model.eval()
    x, index, y, n = data.batch(torch.arange(len(data)))
    return _accuracy(model(x, index, n)[0], y)


def measure(model: SetClassifier, splits, sizes=(16, 32, 64)) -> dict[str, float]:
    """Validation accuracy (sizes 2-16 and 32), and per test size the balanced tree, the left
    fold and the associativity gap."""
    row = {
        "val": split_accuracy(model, splits["val"]),
        "val_at_32": split_accuracy(model, splits["val_at_32"]),
    }
    for size in sizes:
        scores = evaluate(model, splits[f"test_{size}"], size, orders=1)
        row[f"tree_{size}"] = scores["balanced tree"]
        row[f"fold_{size}"] = scores["left fold"]
        row[f"gap_{size}"] = scores["associativity gap"]
    return row


def train_epoch(model: SetClassifier, optimiser, train, batch_size: int, gen, extra_loss=None):
    """One epoch of the suite's training: elements reshuffled and multisets in a random order
    drawn from ``gen``; ``extra_loss(model)`` (if given) is added to every step's loss."""
    data = train.shuffled(gen)
    model.train()
    for chunk in torch.randperm(len(train), generator=gen).split(batch_size):
        x, index, y, n = data.batch(chunk)
        logits, reg = model(x, index, n)
        loss = F.cross_entropy(logits, y) + reg
        if extra_loss is not None:
            loss = loss + extra_loss(model)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aggregator", default="lcm_gru")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = paper_config((args.seed,))
    state = load_checkpoint(
        checkpoint_path(args.run_dir, "second_minimum", args.aggregator, args.seed),
        CHECKPOINT_FORMAT,
    )
    splits = build_splits("second_minimum", args.seed, config)
    model = SetClassifier(
        args.aggregator,
        TASKS["second_minimum"].num_classes,
        hidden_channels=config.hidden_channels,
    )
    model.load_state_dict(state["best_state"])
    model.eval()
    rows = {}
    for size in config.test_sizes:
        rows[size] = evaluate(model, splits[f"test_{size}"], size)
        print(size, json.dumps({k: round(v, 4) for k, v in rows[size].items()}), flush=True)
    out = args.run_dir / f"bracketing-{args.aggregator}-seed{args.seed}.json"
    out.write_text(json.dumps({"epoch": state["best_epoch"], "sizes": rows}, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
