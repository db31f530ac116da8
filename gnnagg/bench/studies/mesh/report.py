"""The mesh study's block of ``report.md``: per ℓ an accuracy table and a cost table, the
paragraph on the paper's claims (judged from converged models only), the pictures
(:mod:`~gnnagg.bench.studies.mesh.plots`), and the shape of its result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...section import ReportBlock
from ...validation import NUMBER, STATS, check_shape, format_bytes
from .plots import BASELINE_LABELS, write_plots

__all__ = [
    "RESULT_SHAPE",
    "accuracy_table",
    "check_result",
    "claims_lines",
    "cost_table",
    "report",
]

_SUMMARY_ROW = {
    "name": str,
    "ell": NUMBER,
    "family": str,
    "positions": str,
    "num_params": int,
    "one_step_rmse": STATS,
    "rollout_rmse": STATS,
    "rollout_rmse_per_step": [NUMBER],
    "val_curve": [{"step": int, "val_rollout_rmse": STATS}],
    "converged": (bool, None),
    "plateau_moved": [(NUMBER, None)],
    "half_budget_moved?": [(NUMBER, None)],
    "half_budget_rollout_rmse?": (STATS, None),
    "capped": bool,
    "steps": STATS,
    "train_time_s": STATS,
    "time_per_step_s": (STATS, None),
    "inference_s_per_step": STATS,
    "train_peak_extra_bytes": NUMBER,
    "clock": str,
}
_BASELINE_ROW = {
    "name": str,
    "ell": NUMBER,
    "one_step_rmse": NUMBER,
    "rollout_rmse": NUMBER,
    "rollout_rmse_per_step": [NUMBER],
    "inference_s_per_step": NUMBER,
}
_FIELD = {
    "ell": NUMBER,
    "model": str,
    "trajectory": int,
    "step": int,
    "pos": [[NUMBER]],
    "cells": [[int]],
    "true": [NUMBER],
    "predicted": [NUMBER],
}
RESULT_SHAPE = {
    "data": [{"ell": NUMBER, "nodes": int, "edges": int}],
    "summary": [_SUMMARY_ROW],
    "baselines": [_BASELINE_ROW],
    "fields?": [_FIELD],
    "cpu_time_s": NUMBER,
    "cpu_time_all_runs_s?": NUMBER,
    "resumed_jobs?": int,
    "wall_time_s": NUMBER,
}
# Thresholds of the verdicts: "matches" is a rollout RMSE at most this factor of the
# reference's; "lower" is lower by more than the sum of the two spreads over seeds.
_MATCH = 1.1
_CAPPED = "†"


def check_result(result: Any, name: str = "mesh") -> None:
    """``ValueError`` naming the first place where ``result`` (read from a ``results.json``)
    is not what :func:`report` reads."""
    check_shape(result, RESULT_SHAPE, name)


def _stats(stats: dict[str, float], digits: int = 3) -> str:
    return f"{stats['mean']:.{digits}g} ± {stats['std']:.2g}"


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.3g}"


def _ms_stats(seconds: dict[str, float]) -> str:
    return f"{1000 * seconds['mean']:.3g} ± {1000 * seconds['std']:.2g}"


def _time_unit(rows: list[dict[str, Any]]) -> str:
    """``"CPU-s"`` when every row's training was timed by the process's CPU clock."""
    return "CPU-s" if rows and all(r.get("clock") == "cpu" for r in rows) else "s"


def _label(row: dict[str, Any]) -> str:
    return f"{row['name']}{_CAPPED if row['capped'] else ''}"


def _largest(values: list[Any] | None) -> str:
    values = [v for v in values or [] if v is not None]
    return f"{100 * max(values):.1f} %" if values else "-"


def _converged(row: dict[str, Any]) -> str:
    moved = _largest(row["plateau_moved"])
    if row.get("half_budget_moved"):
        moved += f" / {_largest(row['half_budget_moved'])}"
    verdict = {None: "n/a", True: "yes", False: "**no**"}[row["converged"]]
    return f"{verdict} ({moved})"


def _rows(result: dict[str, Any], ell: float) -> list[dict[str, Any]]:
    return [r for r in result["summary"] if r["ell"] == ell]


def _capped_note(rows: list[dict[str, Any]], train_steps: Any) -> list[str]:
    capped = [r for r in rows if r["capped"]]
    if not capped:
        return []
    steps = ", ".join(f"`{r['name']}` {r['steps']['mean']:.0f}" for r in capped)
    return [
        "",
        f"{_CAPPED} stopped by `--max-seconds` before its {train_steps} steps ({steps} steps, "
        "mean over seeds): these models did not train as long as the others.",
    ]


def accuracy_table(result: dict[str, Any], ell: float, train_steps: Any = "") -> str:
    """Markdown: the reference predictors, then every model at ``ell``: its inputs, both
    RMSEs (mean ± std over seeds) and the convergence checks (the largest relative movement
    over seeds of the validation rollout over the last 20 % of the steps and, where run,
    between the half-budget run's end and this run's)."""
    halves = any(r.get("half_budget_moved") for r in _rows(result, ell))
    moved = "val. moved: last 20 % / half budget" if halves else "val. moved"
    lines = [
        f"| model | inputs | 1-step RMSE | all-rollout RMSE | converged ({moved}) |",
        "|---|---|---:|---:|---|",
    ]
    for b in result["baselines"]:
        if b["ell"] == ell:
            lines.append(
                f"| *{BASELINE_LABELS.get(b['name'], b['name'])}* | - | "
                f"{b['one_step_rmse']:.3g} | {b['rollout_rmse']:.3g} | - |"
            )
    rows = _rows(result, ell)
    for r in rows:
        lines.append(
            f"| {_label(r)} | {r['positions']} | {_stats(r['one_step_rmse'])} | "
            f"{_stats(r['rollout_rmse'])} | {_converged(r)} |"
        )
    return "\n".join(lines + _capped_note(rows, train_steps))


def cost_table(result: dict[str, Any], ell: float, train_steps: Any = "") -> str:
    """Markdown: every model's cost at ``ell``: parameters, training steps, training time per
    step, inference time per step (one mesh, from batched rollouts) and the peak memory
    training added."""
    rows = _rows(result, ell)
    unit = _time_unit(rows)
    lines = [
        f"| model | parameters | train steps | train {unit[:-1]}ms/step | inference ms/step | "
        "train peak extra memory |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for b in result["baselines"]:
        if b["ell"] == ell:
            lines.append(
                f"| *{BASELINE_LABELS.get(b['name'], b['name'])}* | 0 | - | - | "
                f"{_ms(b['inference_s_per_step'])} | - |"
            )
    for r in rows:
        per_step = r["time_per_step_s"]
        lines.append(
            f"| {_label(r)} | {r['num_params']:,} | {r['steps']['mean']:.0f} | "
            f"{_ms_stats(per_step) if per_step else '-'} | "
            f"{_ms(r['inference_s_per_step']['mean'])} | "
            f"{format_bytes(r['train_peak_extra_bytes'])} |"
        )
    return "\n".join(lines + _capped_note(rows, train_steps))


def _verdict(supported: bool | None) -> str:
    return {True: "**supported**", False: "**not supported**", None: "**not resolved**"}[supported]


def _lower(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """Whether ``a``'s rollout RMSE is below ``b``'s beyond the spread over seeds (``None``:
    within it)."""
    gap = b["rollout_rmse"]["mean"] - a["rollout_rmse"]["mean"]
    noise = a["rollout_rmse"]["std"] + b["rollout_rmse"]["std"]
    if abs(gap) <= noise:
        return None
    return gap > 0


def _unfit(rows: list[dict[str, Any]]) -> list[str]:
    """Names of the rows a verdict cannot rest on: not converged, or cut short by a cap."""
    return [f"`{r['name']}`" for r in rows if r["converged"] is not True or r["capped"]]


def _reference_mgn(rows: list[dict[str, Any]], positions: str) -> dict[str, Any] | None:
    mgns = [
        r for r in rows if r["family"] == "mgn" and r["aggr"] in (None, "sum")
        and r["positions"] == positions
    ]  # fmt: skip
    return max(mgns, key=lambda r: r["num_params"]) if mgns else None


def _beats_references(mgn: dict[str, Any], refs: list[dict[str, Any]]) -> str:
    best = min(refs, key=lambda b: b["rollout_rmse"])
    label = f"{BASELINE_LABELS[best['name']]} ({best['rollout_rmse']:.3g})"
    value = mgn["rollout_rmse"]
    beats = value["mean"] + value["std"] < best["rollout_rmse"]
    unfit = _unfit([mgn])
    verdict = "beats" if beats else "does **not** beat"
    text = f"`{mgn['name']}` ({_stats(value)}) {verdict} the best reference predictor, {label}" + (
        " by more than its spread over seeds" if beats else ""
    )
    return text + (" — but it did not converge, so this is no verdict" if unfit else "")


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
    """``a``'s mean over ``b``'s (``None`` when either is missing)."""
    return a["mean"] / max(b["mean"], 1e-300) if a and b else None


def _claim_one(mgn: dict[str, Any], gts: list[dict[str, Any]]) -> str:
    # The smallest size (layers x width), with its best converged mask (global tokens add a
    # few parameters, but not a size); the best of all its masks when none converged.
    smallest = min(gts, key=lambda r: r["num_params"])
    size = (smallest["depth"], smallest["hidden"])
    masks = [r for r in gts if (r["depth"], r["hidden"]) == size]
    converged = [r for r in masks if r["converged"]]
    small = min(converged or masks, key=lambda r: r["rollout_rmse"]["mean"])
    which = "its best converged mask" if converged else "its best mask; none converged"
    ratio = small["rollout_rmse"]["mean"] / max(mgn["rollout_rmse"]["mean"], 1e-300)
    smaller = mgn["num_params"] / max(small["num_params"], 1)
    faster = _ratio(mgn["inference_s_per_step"], small["inference_s_per_step"])
    train_faster = _ratio(mgn["time_per_step_s"], small["time_per_step_s"])
    quick = faster is not None and faster > 1 and smaller > 1
    quick = quick and (train_faster is None or train_faster > 1)
    unfit = _unfit([mgn, small])
    verdict = None if unfit else (ratio <= _MATCH and quick)
    train_text = f", training step {train_faster:.2g}x" if train_faster else ""
    return (
        f"claim 1 (the smallest masked transformer matches MeshGraphNet with fewer parameters "
        f"and is faster per step) is {_verdict(verdict)}: `{small['name']}` (the smallest "
        f"transformer, {which}) has {ratio:.2g}x the all-rollout RMSE of "
        f"`{mgn['name']}`, {smaller:.2g}x fewer parameters (the paper's pairing is about 6x), "
        f"and MeshGraphNet's time over the transformer's is {faster:.2g}x per inference step"
        f"{train_text}"
        + (f"; not converged: {', '.join(unfit)}" if unfit else "")
    )


def _mask_chains(gts: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Transformer sizes run with the adjacency mask and at least one wider mask."""
    sizes: dict[str, dict[str, dict[str, Any]]] = {}
    for r in gts:
        sizes.setdefault(f"{r['depth']}x{r['hidden']}", {})[r["mask"]] = r
    return {k: v for k, v in sizes.items() if "adjacency" in v and len(v) > 1}


def _claim_two(gts: list[dict[str, Any]]) -> str | None:
    chains = _mask_chains(gts)
    if not chains:
        return None
    texts, verdicts, unfit = [], [], []
    for size, by_mask in chains.items():
        adjacency = by_mask["adjacency"]
        wider = [m for m in by_mask if m != "adjacency"]
        outcome = [_lower(by_mask[m], adjacency) for m in wider]
        verdicts += outcome
        unfit += _unfit([adjacency] + [by_mask[m] for m in wider])
        words = {True: "lower", False: "higher", None: "within noise"}
        texts.append(
            f"at {size}, adjacency {adjacency['rollout_rmse']['mean']:.3g} vs "
            + ", ".join(
                f"{m} {by_mask[m]['rollout_rmse']['mean']:.3g} ({words[o]})"
                for m, o in zip(wider, outcome)
            )
        )
    if unfit:
        overall = None
    elif all(v is True for v in verdicts):
        overall = True
    else:
        overall = False if any(v is False for v in verdicts) else None
    return (
        f"claim 2 (K-hop, dilated windows and global attention lower the all-rollout error) is "
        f"{_verdict(overall)}: "
        + "; ".join(texts)
        + (f"; not converged: {', '.join(unfit)}" if unfit else "")
    )


def _extra_rows(rows: list[dict[str, Any]], mgn: dict[str, Any] | None, positions: str) -> str:
    """The aggregator rows and the positions ablation, each against its counterpart."""
    parts = []
    if mgn is not None:
        aggrs = [
            r for r in rows if r["family"] == "mgn" and r["aggr"] not in (None, "sum")
            and r["positions"] == positions
        ]  # fmt: skip
        for r in aggrs:
            parts.append(
                f"MeshGraphNet with `{r['aggr']}` {_stats(r['rollout_rmse'])} against the sum's "
                f"{_stats(mgn['rollout_rmse'])}"
            )
    by_base = {r["name"].split(":")[0]: r for r in rows if r["positions"] == positions}
    for r in rows:
        base = by_base.get(r["name"].split(":")[0])
        if r["positions"] != positions and base is not None:
            parts.append(
                f"`{base['name']}` with {r['positions']} coordinates "
                f"{_stats(r['rollout_rmse'])} against {_stats(base['rollout_rmse'])} "
                f"({positions})"
            )
    return "; ".join(parts)


def claims_lines(result: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The paragraph that says, per ℓ, whether the reference MeshGraphNet beats every reference
    predictor and which of the paper's claims the run supports, from the numbers and from
    converged models only (a verdict on a model that did not pass the plateau check, or that
    a time cap stopped, is *not resolved*)."""
    positions = config.get("positions", "relative")
    lines = [
        f"**What this run says** ({config.get('train_steps')} optimiser steps for every model"
        + (
            f" (and {config['train_steps'] // 2} in its half-budget run)"
            if config.get("half_budget_check") and isinstance(config.get("train_steps"), int)
            else ""
        )
        + f", {positions} positions, {len(config.get('seeds', []))} seed(s); the section took "
        f"{result['cpu_time_s'] / 60:.1f} CPU-minutes, {result['wall_time_s'] / 60:.1f} min "
        "wall"
        + (
            f", after {result['resumed_jobs']} job(s) kept from earlier runs into this folder: "
            f"{result['cpu_time_all_runs_s'] / 60:.1f} CPU-minutes over all runs"
            if result.get("resumed_jobs")
            else ""
        )
        + ").",
        "",
    ]
    for ell in [d["ell"] for d in result["data"]]:
        rows = _rows(result, ell)
        refs = [
            b for b in result["baselines"]
            if b["ell"] == ell and b["name"] in ("persistence", "mean-delta")
        ]  # fmt: skip
        parts = []
        mgn = _reference_mgn(rows, positions)
        gts = [r for r in rows if r["family"] == "gt" and r["positions"] == positions]
        if mgn is not None and refs:
            parts.append(_beats_references(mgn, refs))
        if mgn is not None and gts:
            parts.append(_claim_one(mgn, gts))
        claim_two = _claim_two(gts)
        if claim_two:
            parts.append(claim_two)
        extra = _extra_rows(rows, mgn, positions)
        if extra:
            parts.append(extra)
        if parts:
            lines.append(f"* ℓ = {ell:g}: " + "; ".join(parts) + ".")
    lines += [
        "",
        f"Thresholds: *matches* is an all-rollout RMSE at most {_MATCH:g}x MeshGraphNet's; "
        "*beats* and *lower* are by more than the spread over seeds (else *within noise*); a "
        "model has *converged* when its validation rollout moved by at most 5 % over the last "
        "20 % of the steps"
        + (
            " and the same model trained with half the steps ends within 5 % of it"
            if config.get("half_budget_check", False)
            else ""
        )
        + ".",
        "",
    ]
    return lines


def report(result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
    """The study's block of ``report.md`` for ``result`` (run with ``config``, its ``asdict``
    form); the pictures go to ``out_dir``."""
    block = ReportBlock()
    lines = block.lines
    steps = config.get("train_steps")
    parts = config.get("partitions", 1)
    on = f" (each on one of {parts} sub-meshes, the loss on its core)" if parts > 1 else ""
    lines += [
        f"Protocol: every model trains {steps} optimiser steps of {config.get('batch_size')} "
        f"meshes{on} (AdamW {config.get('lr')}, betas 0.9/0.95, weight decay "
        f"{config.get('weight_decay')}, {config.get('warmup_steps')} warm-up steps, cosine "
        f"decay; input noise {config.get('noise')} × the data's Δu RMS; online normalisers) "
        f"with the same node features ({config.get('positions')} positions; rows marked "
        "otherwise are the ablation), on generated advection–diffusion data with "
        f"{config.get('geometry')} geometry; seeds {list(config.get('seeds', []))}. RMSEs over "
        "the free nodes of every test trajectory: 1-step from true states, all-rollout "
        "autoregressive over whole trajectories; mean ± sample std over seeds. Cost: training "
        "time per step (validation excluded), inference per step of one mesh from batched "
        "rollouts, the peak memory training added (CUDA: peak allocation).",
        "",
    ]
    for d in result["data"]:
        splits = d.get("trajectories", {})
        lines += [
            f"### ℓ = {d['ell']:g} ({d['nodes']:,} nodes, about {d['edges']:,} directed edges, "
            f"{d.get('meshes', 1)} mesh(es); trajectories train/val/test {splits.get('train')}/"
            f"{splits.get('val')}/{splits.get('test')} of {d.get('steps')} steps; Δu RMS "
            f"{d.get('delta_rms', float('nan')):.3g})",
            "",
            accuracy_table(result, d["ell"], steps),
            "",
            cost_table(result, d["ell"], steps),
            "",
        ]
    lines += claims_lines(result, config)
    files = write_plots(result, out_dir)
    block.files.update(files)
    lines += [f"![{key}]({path.name})" for key, path in files.items()] + [""]
    lines += [
        f"Section CPU time {result['cpu_time_s']:.0f} s, wall time "
        f"{result['wall_time_s']:.0f} s; load average at start and end: "
        f"{result.get('load_average_start')} / {result.get('load_average_end')}.",
        "",
    ]
    return block
