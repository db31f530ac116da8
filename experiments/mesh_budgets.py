"""The mesh study's models at several step budgets: the error against the steps trained.

Reads every job a run of ``gnnagg-bench mesh --checkpoints`` kept in ``CHECKPOINTS``
(``mesh-ell<ℓ>-<model>-seed<s>-steps<N>.pt``, hash-checked), from runs at several
``--train-steps`` into one folder, each budget its own run with its own cosine schedule. Per
(ℓ, model, budget), over the seeds the budget has: the test all-rollout RMSE and the last
validation rollout (mean ± std); per budget with a half budget on the same seeds, the
half-budget check of the study (|v_half − v| / v per seed; converged at most 5 % with the
plateau check passing). Writes ``OUT/budgets.json`` and ``OUT/budgets.png`` (one panel per ℓ,
test all-rollout RMSE against steps, the reference predictors of the ``--results`` files
as lines).

    python experiments/mesh_budgets.py CHECKPOINTS OUT [--results results.json ...]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from gnnagg._files import write_figure
from gnnagg.bench.checkpoints import load_checkpoint
from gnnagg.bench.stats import mean_std
from gnnagg.bench.studies.mesh.plots import BASELINE_LABELS
from gnnagg.bench.studies.mesh.run import (
    MESH_CHECKPOINT_FORMAT,
    pair_half_budget,
    run_converged,
)

JOB = re.compile(r"mesh-ell(?P<ell>[0-9.]+)-(?P<name>.+)-seed(?P<seed>\d+)-steps(?P<steps>\d+)\.pt")


def read_jobs(folder: Path) -> dict[tuple[float, str, int], dict[int, dict]]:
    """``{(ell, name, steps): {seed: record}}`` of every kept job in ``folder``."""
    jobs: dict[tuple[float, str, int], dict[int, dict]] = {}
    for path in sorted(folder.glob("mesh-ell*-steps*.pt")):
        match = JOB.fullmatch(path.name)
        if match is None:
            continue
        record = load_checkpoint(path, MESH_CHECKPOINT_FORMAT)["record"]
        key = (float(match["ell"]), match["name"], int(match["steps"]))
        jobs.setdefault(key, {})[int(match["seed"])] = record
    return jobs


def rows(jobs: dict[tuple[float, str, int], dict[int, dict]]) -> list[dict]:
    out = []
    for (ell, name, steps), by_seed in sorted(jobs.items()):
        seeds = sorted(by_seed)
        row = {
            "ell": ell, "name": name, "steps": steps, "seeds": seeds,
            "rollout_rmse": mean_std([by_seed[s]["rollout_rmse"] for s in seeds]),
            "val_rollout_rmse": mean_std(
                [by_seed[s]["curve"][-1]["val_rollout_rmse"] for s in seeds]
            ),
            "plateau_moved": [by_seed[s]["plateau"]["moved"] for s in seeds],
            "cpu_ms_per_step": mean_std([1e3 * by_seed[s]["time_per_step_s"] for s in seeds]),
        }  # fmt: skip
        half = jobs.get((ell, name, steps // 2), {})
        paired = [s for s in seeds if s in half]
        if paired:
            runs = [pair_half_budget(by_seed[s], half[s]) for s in paired]
            row["half_budget"] = {
                "steps": steps // 2,
                "seeds": paired,
                "moved": [run["half_budget"]["moved"] for run in runs],
                "converged": [run_converged(run) is True for run in runs],
            }
        out.append(row)
    return out


def plot(table: list[dict], baselines: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ells = sorted({r["ell"] for r in table})
    figure, axes = plt.subplots(1, len(ells), figsize=(5.5 * len(ells), 4), squeeze=False)
    for ax, ell in zip(axes[0], ells):
        for name in dict.fromkeys(r["name"] for r in table if r["ell"] == ell):
            mine = [r for r in table if r["ell"] == ell and r["name"] == name]
            ax.errorbar(
                [r["steps"] for r in mine], [r["rollout_rmse"]["mean"] for r in mine],
                yerr=[r["rollout_rmse"]["std"] for r in mine], marker="o", capsize=3, label=name,
            )  # fmt: skip
        for b in baselines:
            if b["ell"] == ell and b["name"] != "exact-solver":
                ax.axhline(b["rollout_rmse"], ls="--", lw=1, color="grey")
                ax.text(0.01, b["rollout_rmse"], BASELINE_LABELS[b["name"]], fontsize=7,
                        color="grey", va="bottom", transform=ax.get_yaxis_transform())  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_title(f"ℓ = {ell:g}: test all-rollout RMSE against the step budget")
        ax.set_xlabel("optimiser steps (each budget its own cosine schedule)")
        ax.set_ylabel("all-rollout RMSE (mean ± std over seeds)")
        ax.legend(fontsize=7)
    figure.tight_layout()
    write_figure(figure, path)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument(
        "--results", type=Path, nargs="+", default=[], help="results.json files with the baselines"
    )
    args = parser.parse_args()
    table = rows(read_jobs(args.checkpoints))
    if not table:
        raise SystemExit(f"checkpoints: no kept mesh jobs in {args.checkpoints}")
    baselines: dict[tuple[float, str], dict] = {}
    for path in args.results:
        result = json.loads(path.read_text())
        for b in result["mesh"]["baselines"] if "mesh" in result else result["baselines"]:
            baselines.setdefault((b["ell"], b["name"]), b)
    baselines = list(baselines.values())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "budgets.json").write_text(
        json.dumps({"rows": table, "baselines": baselines}, indent=1) + "\n"
    )
    plot(table, baselines, args.out / "budgets.png")
    for r in table:
        half = r.get("half_budget")
        check = (
            " half-budget moved " + " / ".join(f"{100 * m:.1f} %" for m in half["moved"])
            if half
            else ""
        )
        print(
            f"ℓ={r['ell']:g} {r['name']:<32} {r['steps']:>6} steps seeds {r['seeds']}: "
            f"test {r['rollout_rmse']['mean']:.4f} ± {r['rollout_rmse']['std']:.4f}, "
            f"val {r['val_rollout_rmse']['mean']:.4f}{check}"
        )


if __name__ == "__main__":
    main()
