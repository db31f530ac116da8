"""PyG's ``examples/lcm_aggr_2nd_min.py`` setting, with gnnagg's LCM and PyG's, to a plateau.

The example (the LCM paper's first task) trains on 65,536 multisets of 2-16 integers of 8
bits and validates on 1,024 multisets of 32; its header says "Final validation accuracy:
~95%". Its setting, rebuilt here on gnnagg's data (:func:`gnnagg.data.make_splits`, the same
distribution: bits i.i.d. uniform, the label the second-smallest element counting
multiplicity):

* encoder: one learned 2-row embedding per bit, summed; ``Linear(128, 128)``, ``Dropout(0.5)``,
  GELU;
* aggregator: ``LCMAggregation(128, 128, project=False)``, gnnagg's (``--aggr gnnagg``) or
  PyG's (``--aggr pyg``), no associativity regulariser;
* decoder: ``Linear(128, 128)``, ``Dropout(0.25)``, GELU, ``Linear(128, 8)``: the label's 8
  bits, binary cross-entropy; a prediction counts as correct only if all 8 bits are;
* Adam at lr 1e-4, batch 128, the elements of every training multiset in a fresh random order
  each epoch (what the example's ``RandomPermutation`` transform is meant to do: as shipped it
  reads ``torch.x`` and raises ``AttributeError``), validation at size 32 after every epoch.

The example trains 1,000 epochs (512,000 steps); this script stops at a plateau instead:
``--patience`` epochs without a better validation accuracy, at ``--epochs`` (the cap), or
when this run has used ``--cpu-hours`` of CPU (a rerun with the same ``OUT`` resumes from the
checkpoint). One torch thread.

    OMP_NUM_THREADS=1 python experiments/pyg_lcm_2nd_min.py OUT --aggr gnnagg \
        [--patience 30] [--epochs 1000] [--cpu-hours 3] [--seed 0]

Writes ``OUT/<aggr>-seed<seed>.json`` (the curve: epoch, CPU-s, loss, validation accuracy)
after every epoch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnagg.aggr import LCMAggregation
from gnnagg.bench.checkpoints import load_checkpoint, save_checkpoint
from gnnagg.bench.studies.sizegen.config import SizeGenConfig
from gnnagg.bench.studies.sizegen.data import build_splits
from gnnagg.data import int_to_bits

FORMAT = "gnnagg-pyg-lcm-2nd-min/1"
WIDTH, BITS = 128, 8


class BitEncoder(nn.Module):
    """A learned embedding of each bit's value, summed over the bits."""

    def __init__(self, width: int, bits: int = BITS) -> None:
        super().__init__()
        self.tables = nn.Parameter(torch.randn(bits, 2, width))

    def forward(self, bits: Tensor) -> Tensor:
        index = bits.long()  # [n, bits] of 0/1
        rows = self.tables[torch.arange(index.shape[1]), index]  # [n, bits, width]
        return rows.sum(1)


class BitwiseModel(nn.Module):
    def __init__(self, aggr: nn.Module, width: int = WIDTH) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            BitEncoder(width), nn.Linear(width, width), nn.Dropout(0.5), nn.GELU()
        )
        self.aggr = aggr
        self.decoder = nn.Sequential(
            nn.Linear(width, width), nn.Dropout(0.25), nn.GELU(), nn.Linear(width, BITS)
        )

    def forward(self, x: Tensor, index: Tensor, num_sets: int) -> Tensor:
        return self.decoder(self.aggr(self.encoder(x), index, dim_size=num_sets))


def build_aggr(which: str) -> nn.Module:
    if which == "gnnagg":
        return LCMAggregation(WIDTH, WIDTH, project=False)
    from torch_geometric.nn.aggr import LCMAggregation as PyGLCMAggregation

    return PyGLCMAggregation(WIDTH, WIDTH, project=False)


@torch.no_grad()
def exact_match(model: BitwiseModel, data) -> float:
    """Share of multisets whose 8 predicted bits are all right."""
    model.eval()
    correct = 0
    for chunk in torch.arange(len(data)).split(128):
        x, index, y, n = data.batch(chunk)
        bits = model(x, index, n).sigmoid().round()
        correct += int((bits == int_to_bits(y)).all(-1).sum())
    model.train()
    return correct / len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--aggr", choices=["gnnagg", "pyg"], required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--cpu-hours", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = SizeGenConfig(
        tasks=("second_minimum",), num_train=65536, num_val=1024, num_test=1,
        test_sizes=(32,), val_at_size=32,
    )  # fmt: skip
    splits = build_splits("second_minimum", args.seed, config)
    train, val = splits["train"], splits["val_at_32"]
    torch.manual_seed(args.seed)
    model = BitwiseModel(build_aggr(args.aggr))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{args.aggr}-seed{args.seed}"
    path = args.out / f"{name}.pt"
    result = {"aggr": args.aggr, "seed": args.seed, "curve": [], "best": 0.0, "best_epoch": 0}
    cpu_before = 0.0
    if path.exists():
        state = load_checkpoint(path, FORMAT)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        result, cpu_before = state["result"], state["cpu_s"]
        torch.set_rng_state(state["rng"])
    start = time.process_time()
    for epoch in range(len(result["curve"]) + 1, args.epochs + 1):
        if epoch - result["best_epoch"] > args.patience and result["best_epoch"]:
            result["stopped"] = "plateau"
            break
        if time.process_time() - start > 3600 * args.cpu_hours:
            result["stopped"] = "cpu budget of this run"
            break
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + epoch)
        data = train.shuffled(generator)
        total, t0 = 0.0, time.process_time()
        for chunk in torch.randperm(len(train), generator=generator).split(128):
            x, index, y, n = data.batch(chunk)
            loss = F.binary_cross_entropy_with_logits(
                model(x, index, n), int_to_bits(y).float()
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * n
        train_cpu = time.process_time() - t0
        acc = exact_match(model, val)
        if acc > result["best"]:
            result["best"], result["best_epoch"] = acc, epoch
        result["curve"].append([epoch, round(train_cpu, 2), total / len(train), acc])
        print(name, epoch, f"cpu {train_cpu:.1f} s", f"val@32 {acc:.4f}", flush=True)
        save_checkpoint(
            {
                "format": FORMAT,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "result": result,
                "cpu_s": cpu_before + time.process_time() - start,
                "rng": torch.get_rng_state(),
            },
            path,
        )
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    else:
        result["stopped"] = "cap"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
