"""Why did polynomial features hurt GINE + virtual node on zinc-plogp while they helped GINE?

In the first full `poly-zinc` run the virtual-node model was worse than plain GINE, and worse
still with the features, with a higher training loss (an optimisation problem, not
over-fitting). Its virtual-node update was `v + MLP(sum_i h_i + v)` without normalisation (OGB's
GIN-VN has batch normalisation there), and the features enlarge `h`. This probe trains seed 0
of the study's configuration as:

* `no-norm`: the model as it was (the layer norm of the virtual-node MLPs removed);
* `no-norm-lr1e-3`: the same at half the learning rate;
* `layernorm`: the current `PolyGINE`, a LayerNorm at the input of each virtual-node MLP.

    OMP_NUM_THREADS=1 python experiments/poly_vn_probe.py --out DIR [--variants ...]

Uses the cached features of the study (computed once by `gnnagg-bench run --suite poly-zinc`).
Writes DIR/vn_probe.json with the test MAE per variant and feature mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from gnnagg.bench.config import suite_config
from gnnagg.bench.models import PolyGINE
from gnnagg.bench.sections import polynomial_features as poly


class NoNormVirtualNode(PolyGINE):
    """``PolyGINE`` as it was before its virtual-node MLPs got their layer norm."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.virtual_node:
            for i, mlp in enumerate(self.virtual_mlps):
                if not isinstance(mlp[0], nn.LayerNorm):
                    raise RuntimeError("PolyGINE's virtual-node MLP changed; update this probe")
                self.virtual_mlps[i] = nn.Sequential(*list(mlp)[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=["no-norm", "no-norm-lr1e-3", "layernorm"])
    parser.add_argument("--features", nargs="+", default=["none", "all"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = suite_config("poly-zinc").sections["poly"]
    plain, source, _, metric = poly._plain_splits("zinc-plogp", base)
    results = []
    args.out.mkdir(parents=True, exist_ok=True)
    for mode in args.features:
        if mode == "none":
            splits, channels = plain, {"graph": 0, "node": 0, "edge": 0}
        else:
            splits, record = poly.prepare_features(plain, mode, base, poly._feature_cache_dir(base))
            channels = record["kept_channels"]
        for variant in args.variants:
            config = base
            poly.PolyGINE = NoNormVirtualNode if variant.startswith("no-norm") else PolyGINE
            if variant == "no-norm-lr1e-3":
                config = dataclasses.replace(base, lr=1e-3)
            elif variant not in ("no-norm", "layernorm"):
                raise ValueError(f"--variants: unknown {variant!r}")
            run = poly.fit_poly(
                "zinc-plogp", splits, "gine_vn", mode, args.seed, config, channels, metric
            )
            row = {
                "variant": variant,
                "features": mode,
                "seed": args.seed,
                "test_mae": run["test"]["mae"],
                "val_mae": run["val"],
                "final_train_loss": run["curve"]["train_loss"][-1],
                "epoch_cpu_s": run["epoch_cpu_s"],
            }
            results.append(row)
            print(json.dumps(row), flush=True)
            (args.out / "vn_probe.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
