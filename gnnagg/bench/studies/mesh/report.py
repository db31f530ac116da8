"""The mesh study's block of ``report.md``: the table per ℓ, the paragraph on the paper's
claims, the pictures (:mod:`~gnnagg.bench.studies.mesh.plots`), and the shape of its result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...section import ReportBlock
from ...validation import NUMBER, STATS, check_shape, format_bytes
from .config import MESH_MASKS
from .plots import BASELINE_LABELS, write_plots

__all__ = ["RESULT_SHAPE", "check_result", "claims_lines", "mesh_table", "report"]

_SUMMARY_ROW = {
    "name": str,
    "ell": NUMBER,
    "family": str,
    "num_params": int,
    "one_step_rmse": STATS,
    "rollout_rmse": STATS,
    "rollout_rmse_per_step": [NUMBER],
    "train_time_s": STATS,
    "time_per_epoch_s": (STATS, None),
    "inference_s_per_step": STATS,
    "train_peak_extra_bytes": NUMBER,
    "steps": STATS,
    "clock?": str,
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


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.3g}"


def _stats(stats: dict[str, float], digits: int = 3) -> str:
    return f"{stats['mean']:.{digits}g} ± {stats['std']:.2g}"


def _time_unit(rows: list[dict[str, Any]]) -> str:
    """``"CPU-s"`` when every row's training was timed by the process's CPU clock."""
    return "CPU-s" if rows and all(r.get("clock") == "cpu" for r in rows) else "s"


def mesh_table(result: dict[str, Any], ell: float) -> str:
    """Markdown: the baselines, then every model at ``ell`` (parameters, training, inference,
    memory, both RMSEs as mean ± std over seeds)."""
    unit = _time_unit([r for r in result["summary"] if r["ell"] == ell])
    lines = [
        f"| model | parameters | train {unit}/epoch | train steps | train {unit} | "
        "inference ms/step | train peak extra memory | 1-step RMSE | rollout RMSE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in result["baselines"]:
        if b["ell"] != ell:
            continue
        lines.append(
            f"| *{BASELINE_LABELS.get(b['name'], b['name'])}* | 0 | - | - | - | "
            f"{_ms(b['inference_s_per_step'])} | - | {b['one_step_rmse']:.3g} | "
            f"{b['rollout_rmse']:.3g} |"
        )
    for r in result["summary"]:
        if r["ell"] != ell:
            continue
        epoch = r["time_per_epoch_s"]
        lines.append(
            f"| {r['name']} | {r['num_params']:,} | "
            f"{_stats(epoch) if epoch else '-'} | {r['steps']['mean']:.0f} | "
            f"{r['train_time_s']['mean']:.3g} | {_ms(r['inference_s_per_step']['mean'])} | "
            f"{format_bytes(r['train_peak_extra_bytes'])} | {_stats(r['one_step_rmse'])} | "
            f"{_stats(r['rollout_rmse'])} |"
        )
    return "\n".join(lines)


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


def claims_lines(result: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The paragraph that says which of the paper's claims this run supports, per ℓ, from the
    numbers (thresholds: *matches* = rollout RMSE within 10 % of MeshGraphNet's or lower;
    *several times* = at least 2x; *lower* = by more than the sum of the two spreads over
    seeds), with the run's budget."""
    budget = (
        f"{config['dim']}-D, {config['nodes']:,} nodes, {config['trajectories']} trajectories "
        f"of {config['steps']} steps, "
        + (f"{config['epochs']} epoch(s)" if config.get("epochs") else "")
        + (" or " if config.get("epochs") and config.get("max_seconds") else "")
        + (
            f"{config['max_seconds']:g} {_time_unit(result['summary'])} of training"
            if config.get("max_seconds")
            else ""
        )
        + f" per model and seed, {len(config['seeds'])} seed(s); the section took "
        f"{result['cpu_time_s'] / 60:.1f} CPU-minutes ({result['wall_time_s'] / 60:.1f} min "
        "wall)"
    )
    if result.get("resumed_jobs"):
        budget += (
            f", after {result['resumed_jobs']} job(s) kept from earlier runs into this folder: "
            f"{result['cpu_time_all_runs_s'] / 60:.1f} CPU-minutes over all runs"
        )
    lines = [f"**What this run says about the paper's claims** (budget: {budget}).", ""]
    for ell in [d["ell"] for d in result["data"]]:
        rows = [r for r in result["summary"] if r["ell"] == ell]
        base = {b["name"]: b for b in result["baselines"] if b["ell"] == ell}
        parts: list[str] = []
        trivial = [base[k] for k in ("persistence", "mean-delta") if k in base]
        best = min(trivial, key=lambda b: b["rollout_rmse"]) if trivial else None
        if best is not None and rows:
            label = f"the {BASELINE_LABELS[best['name']]} baseline ({best['rollout_rmse']:.3g})"
            beat = [r for r in rows if r["rollout_rmse"]["mean"] < best["rollout_rmse"]]
            if not beat:
                parts.append(
                    f"no model beats {label} over the rollout: at this budget the models have "
                    "not learned more of the dynamics than a trivial predictor, so the "
                    "comparisons below are between undertrained models"
                )
            else:
                parts.append(f"{len(beat)} of {len(rows)} models beat {label} over the rollout")
        mgns = [r for r in rows if r["family"] == "mgn"]
        gts = [r for r in rows if r["family"] == "gt"]
        if mgns and gts:
            mgn = max(mgns, key=lambda r: r["num_params"])
            small = min(gts, key=lambda r: (r["num_params"], r["rollout_rmse"]["mean"]))
            ratio_err = small["rollout_rmse"]["mean"] / max(mgn["rollout_rmse"]["mean"], 1e-300)
            faster = mgn["inference_s_per_step"]["mean"] / max(
                small["inference_s_per_step"]["mean"], 1e-300
            )
            epoch_m, epoch_s = mgn["time_per_epoch_s"], small["time_per_epoch_s"]
            train_faster = (
                epoch_m["mean"] / max(epoch_s["mean"], 1e-300) if epoch_m and epoch_s else None
            )
            smaller = mgn["num_params"] / max(small["num_params"], 1)
            matches = ratio_err <= 1.1
            quick = faster >= 2 and (train_faster is None or train_faster >= 2) and smaller >= 2
            # Matching a reference that has not learned more than a trivial predictor says
            # nothing about accuracy: the claim's accuracy side stays open.
            untrained = best is not None and mgn["rollout_rmse"]["mean"] >= best["rollout_rmse"]
            verdict = None if untrained and quick else matches and quick
            train_text = f", training epoch {train_faster:.2g}x" if train_faster else ""
            parts.append(
                f"claim 1 (the smallest masked transformer matches MeshGraphNet while several "
                f"times faster and smaller) is {_verdict(verdict)}: `{small['name']}` "
                f"(the smallest transformer, its best mask) has {ratio_err:.2g}x the rollout "
                f"RMSE of `{mgn['name']}` (the largest "
                f"MeshGraphNet here); speed-ups (MeshGraphNet's time over the transformer's): "
                f"inference step {faster:.2g}x{train_text}; {smaller:.2g}x fewer parameters"
                + (
                    f"; but `{mgn['name']}` does not beat {label} in this budget "
                    f"({mgn['steps']['mean']:.0f} training steps), so matching it says nothing "
                    "about accuracy"
                    if untrained
                    else ""
                )
            )
        chains = _mask_chains(gts)
        if chains:
            texts = []
            verdicts = []
            for size, by_mask in chains.items():
                adjacency = by_mask["adjacency"]
                wider = [m for m in MESH_MASKS[1:] if m in by_mask]
                outcome = [_lower(by_mask[m], adjacency) for m in wider]
                verdicts += outcome
                texts.append(
                    f"at {size}, adjacency {adjacency['rollout_rmse']['mean']:.3g} vs "
                    + ", ".join(
                        f"{m} {by_mask[m]['rollout_rmse']['mean']:.3g} "
                        f"({ {True: 'lower', False: 'higher', None: 'within noise'}[o] })"
                        for m, o in zip(wider, outcome)
                    )
                )
            overall = (
                True
                if all(v is True for v in verdicts)
                else (False if any(v is False for v in verdicts) else None)
            )
            parts.append(
                f"claim 2 (K-hop, dilated windows and global attention lower the rollout "
                f"error) is {_verdict(overall)}: " + "; ".join(texts)
            )
        elif gts:
            parts.append(
                "claim 2 is not tested: no transformer size was run with the adjacency "
                "mask and a wider one"
            )
        lines.append(f"* ℓ = {ell:g}: " + "; ".join(parts) + ".")
    lines += [
        "",
        "Thresholds: *matches* means a rollout RMSE at most 10 % above MeshGraphNet's; "
        "*several times* at least 2x; *lower* by more than the sum of the two spreads over "
        "seeds (else *not resolved*). A short budget favours small, fast models; the paper "
        "trains for days on GPUs, so a claim this run does not support is not refuted by it.",
        "",
    ]
    return lines


def _mask_chains(gts: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Transformer sizes run with the adjacency mask and at least one wider mask."""
    sizes: dict[str, dict[str, dict[str, Any]]] = {}
    for r in gts:
        sizes.setdefault(f"{r['depth']}x{r['hidden']}", {})[r["mask"]] = r
    return {k: v for k, v in sizes.items() if "adjacency" in v and len(v) > 1}


def check_result(result: Any, name: str = "mesh") -> None:
    """``ValueError`` naming the first place where ``result`` (read from a ``results.json``)
    is not what :func:`report` reads."""
    check_shape(result, RESULT_SHAPE, name)


def _budget(config: dict[str, Any], result: dict[str, Any]) -> str:
    return " or ".join(
        ([f"{config['epochs']} epoch(s)"] if config.get("epochs") else [])
        + (
            [f"{config['max_seconds']:g} {_time_unit(result['summary'])}"]
            if config.get("max_seconds")
            else []
        )
    )


def report(result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
    """The study's block of ``report.md`` for ``result`` (run with ``config``, its ``asdict``
    form); the pictures go to ``out_dir``."""
    block = ReportBlock()
    lines = block.lines
    limit = config.get("eval_trajectories")
    lines += [
        f"MeshGraphNet-style next-step training (Δu targets, input noise "
        f"{config.get('noise_std')}, online normalisers, Adam {config.get('lr')} → "
        f"{config.get('lr_final')}, batch {config.get('batch_size')}, "
        f"{_budget(config, result)} of training per model and seed) on generated "
        f"advection–diffusion data; seeds {list(config.get('seeds', []))}. RMSEs over the "
        "non-obstacle nodes of the test trajectories"
        + (f" (the first {limit})" if limit else "")
        + ": 1-step from true states, rollout autoregressive over whole trajectories; "
        "mean ± sample std over seeds. Inference: one step of one mesh from batched rollouts. "
        "Memory: the peak resident memory training added above what the process held "
        "before (0 B: it fitted in memory already held; CUDA: peak allocation).",
        "",
    ]
    for d in result["data"]:
        splits = d.get("trajectories", {})
        lines += [
            f"### ℓ = {d['ell']:g} ({d['nodes']:,} nodes, {d['edges']:,} directed edges, "
            f"trajectories train/val/test {splits.get('train')}/{splits.get('val')}/"
            f"{splits.get('test')} of {d.get('steps')} steps)",
            "",
            mesh_table(result, d["ell"]),
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
