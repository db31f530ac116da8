"""The polynomial-feature block of ``report.md``: test MAE/RMSE per data set, model and
feature mode beside the constant baselines and the paper's numbers, the features' cost, the
learning curves (``poly_curves_<data set>.png``) and whether the features help."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ...._files import write_figure
from ...section import ReportBlock
from ...validation import NUMBER, STATS, check_shape

__all__ = [
    "PAPER_ZINC_12K",
    "RESULT_SHAPE",
    "check_result",
    "feature_table",
    "feature_verdicts",
    "paper_comparison",
    "plot_poly_curves",
    "poly_table",
    "report",
]

_WIDTHS = {"graph": int, "node": int, "edge": int}
# What report() reads of a result.
RESULT_SHAPE = {
    "runs": [
        {
            "dataset": str,
            "model": str,
            "features": str,
            "metric": str,
            "curve?": {"val": [NUMBER]},
        }
    ],
    "summary": [
        {
            "dataset": str,
            "model": str,
            "features": str,
            "metric": str,
            "val": STATS,
            "input_widths": _WIDTHS,
            "num_params": int,
            "test": {"mae": {**STATS, "n": int}, "rmse": {**STATS, "n": int}},
            "epoch_time_s": NUMBER,
        }
    ],
    "features?": [
        {
            "dataset": str,
            "features": str,
            "max_degree": int,
            "normalize": str,
            "channels": _WIDTHS,
            "kept_channels": _WIDTHS,
            "graphs": int,
            "time_s": (NUMBER, None),
            "load_s": NUMBER,
        }
    ],
    "baselines?": [{"dataset": str, "baseline": str, "test": {"mae": NUMBER, "rmse": NUMBER}}],
    "notes?": [str],
}
# Puny et al. 2023, "Equivariant Polynomials for Graph Neural Networks" (ICML), Table 2:
# test MAE on ZINC-12k.
PAPER_ZINC_12K: dict[str, float] = {
    "GIN": 0.526,
    "GSN": 0.101,
    "CIN": 0.079,
    "GPS": 0.070,
    "PPGN": 0.079,
    "PPGN++": 0.076,
    "PPGN++(6)": 0.071,
}
PAPER_URL = "https://arxiv.org/abs/2302.11556"


def check_result(result: Any, name: str = "poly") -> None:
    """``ValueError`` naming the key when ``result`` is not what :func:`report` reads."""
    check_shape(result, RESULT_SHAPE, name)
    for i, row in enumerate(result["summary"]):
        if row["metric"] not in row["test"]:
            raise ValueError(f"{name}.summary[{i}]: test has no {row['metric']!r}")


def report(result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
    """The block of ``report.md``: the table, feature costs, curves, verdicts."""
    lines = [
        f"{', '.join(MODEL_LABELS.get(m, m) for m in config['models'])} "
        f"({config['num_layers']} layers of width {config['hidden_channels']}, "
        f"{config['epochs']} epochs, "
        f"batch {config['batch_size']}, Adam lr {config['lr']} with a {config['schedule']} "
        f"schedule, seeds {list(config['seeds'])}) without and with "
        f"`AddEquivariantPolynomials(max_degree={config['max_degree']}, "
        f"normalize={config['normalize']!r})` features: `poly_x` joins the atom embedding, "
        "`poly_edge_attr` the bond embedding, `poly_graph` the pooled readout; channels "
        "constant on the training graphs are dropped, the others standardised. Mean ± "
        "sample std over seeds; the model kept is the best on the validation metric "
        "(`val`); s/epoch is the wall time of training plus validation, CPU s the CPU time "
        "this process spent on it (the wall time grows with the machine's load)."
    ]
    lines += ["", poly_table(result), ""]
    runs = result.get("runs", [])
    if runs and all("epoch_cpu_s" in r and "epochs" in r for r in runs):
        cpu_hours = sum(r["epoch_cpu_s"] * r["epochs"] for r in runs) / 3600
        wall_hours = sum(r.get("train_time_s", 0.0) for r in runs) / 3600
        lines += [
            f"Training took {cpu_hours:.2f} CPU hours ({wall_hours:.2f} h of wall time) "
            f"for {len(runs)} models.",
            "",
        ]
    if result.get("features"):
        lines += [feature_table(result["features"]), ""]
    files: dict[str, Path] = {}
    for name in dict.fromkeys(r["dataset"] for r in result["summary"]):
        path = plot_poly_curves(result["runs"], name, out_dir / f"poly_curves_{name}.png")
        if path is not None:
            files[f"poly_curves_{name}"] = path
            lines += [f"![learning curves, {name}]({path.name})", ""]
    verdicts = feature_verdicts(result["summary"])
    if verdicts:
        lines += ["**Do the features help?**", ""]
        lines += [f"* {v}" for v in verdicts]
        lines.append("")
    if any(r["dataset"] == "zinc-plogp" for r in result["summary"]):
        lines += [paper_comparison(result["summary"]), ""]
    if any(r.get("source") == "fixture" for r in result["summary"]):
        lines.append(
            "* `fixture` rows use the small committed fixtures: they check the pipeline; "
            "differences between the models there are mostly noise."
        )
    lines += [f"* {n}" for n in result.get("notes", [])]
    lines.append("")
    return ReportBlock(lines, files)


MODEL_LABELS = {"gine": "GINE", "gine_vn": "GINE + virtual node"}


def _cell(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def poly_table(poly: dict[str, Any]) -> str:
    """Markdown: per data set, the constant baselines, then one row per model and feature
    mode: the validation metric, test MAE and RMSE (mean ± std over seeds), the input widths,
    parameters, seconds per epoch and the best epochs."""
    lines = [
        "| data set | source | model | features | node/edge/readout input | params | val | "
        "test MAE | test RMSE | s/epoch (CPU s) | best epochs |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for b in poly.get("baselines", []):
        lines.append(
            f"| {b['dataset']} | {b.get('source')} | *{b['baseline']}* | - | - | - | - | "
            f"{b['test']['mae']:.3f} | {b['test']['rmse']:.3f} | - | - |"
        )
    for r in poly["summary"]:
        widths = r["input_widths"]
        lines.append(
            f"| {r['dataset']} | {r.get('source')} | {MODEL_LABELS.get(r['model'], r['model'])} "
            f"| {r['features']} | {widths['node']}/{widths['edge']}/{widths['graph']} | "
            f"{r['num_params']:,} | {r['metric'].upper()} {_cell(r['val'])} | "
            f"{_cell(r['test']['mae'])} | {_cell(r['test']['rmse'])} | "
            f"{r['epoch_time_s']:.1f} ({r.get('epoch_cpu_s', float('nan')):.1f}) | "
            f"{', '.join(map(str, r.get('best_epochs', [])))} |"
        )
    return "\n".join(lines)


def feature_table(features: list[dict[str, Any]]) -> str:
    """Markdown: per data set and feature mode, the channels of the basis and those kept, and
    the time the features took to compute (once; later runs read them from the cache)."""
    lines = [
        "| data set | features | graph/node/edge channels | kept (not constant on train) | "
        "computed in s (CPU s) | graphs (with a non-zero feature) | from cache |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for f in features:
        c, k = f["channels"], f["kept_channels"]
        cached = f"yes (read in {f['load_s']:.1f} s)" if f.get("cached") else "no"
        time_s = f"{f['time_s']:.1f}" if f.get("time_s") is not None else "?"
        if f.get("cpu_s") is not None:
            time_s += f" ({f['cpu_s']:.1f})"
        lines.append(
            f"| {f['dataset']} | {f['features']} (degree ≤ {f['max_degree']}, "
            f"{f['normalize']}) | {c['graph']}/{c['node']}/{c['edge']} | "
            f"{k['graph']}/{k['node']}/{k['edge']} | {time_s} | {f['graphs']} "
            f"({f.get('graphs_with_features', '?')}) | {cached} |"
        )
    return "\n".join(lines)


def feature_verdicts(summary: list[dict[str, Any]]) -> list[str]:
    """One sentence per (data set, model, feature mode other than ``none``): the change of the
    test metric against the same model without features, and whether it exceeds twice the
    standard error of the difference of the seed means (``sqrt(s1²/n1 + s2²/n2)``). A mode
    whose channels are all constant on the training graphs (same input widths as without
    features) is said to be the model without features."""
    out = []
    plain = {(r["dataset"], r["model"]): r for r in summary if r["features"] == "none"}
    for r in summary:
        base = plain.get((r["dataset"], r["model"]))
        if r["features"] == "none" or base is None:
            continue
        metric = r["metric"]
        a, b = base["test"][metric], r["test"][metric]
        diff = b["mean"] - a["mean"]
        relative = 100 * diff / a["mean"] if a["mean"] else float("nan")
        label = MODEL_LABELS.get(r["model"], r["model"])
        if r.get("input_widths") is not None and r["input_widths"] == base.get("input_widths"):
            out.append(
                f"{r['dataset']}, {label} + {r['features']}: no feature channel varies on the "
                "training graphs, so this is the model without features (same numbers)."
            )
            continue
        what = (
            f"{r['dataset']}, {label} + {r['features']}: test {metric.upper()} "
            f"{a['mean']:.3f} → {b['mean']:.3f} ({diff:+.3f}, {relative:+.1f} %)"
        )
        if min(a["n"], b["n"]) < 2:
            out.append(f"{what}; one seed: no estimate of the seed spread, no verdict.")
            continue
        se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
        if diff < -2 * se:
            verdict = "lower by more than twice the standard error: the features help here"
        elif diff > 2 * se:
            verdict = "higher by more than twice the standard error: the features hurt here"
        else:
            verdict = "within twice the standard error: no effect distinguishable from seeds"
        out.append(f"{what}; standard error of the difference {se:.3f} over seeds: {verdict}.")
    return out


def paper_comparison(summary: list[dict[str, Any]]) -> str:
    """The paragraph that sets this run's ``zinc-plogp`` numbers beside Puny et al.'s."""
    rows = [r for r in summary if r["dataset"] == "zinc-plogp"]
    best = min(rows, key=lambda r: r["test"]["mae"]["mean"])
    p = PAPER_ZINC_12K
    gain = 100 * (p["PPGN++(6)"] - p["PPGN"]) / p["PPGN"]
    return (
        f"**Against the paper.** [Puny et al. 2023]({PAPER_URL}) report test MAE on ZINC-12k "
        f"of {p['PPGN']:.3f} for PPGN and {p['PPGN++(6)']:.3f} for PPGN++(6), which adds the "
        f"degree-5 and -6 polynomials beyond 2-FWL ({gain:+.0f} %), beside GIN {p['GIN']:.3f}, "
        f"GSN {p['GSN']:.3f}, CIN {p['CIN']:.3f} and GPS {p['GPS']:.3f}. Those numbers are not "
        "comparable with this table: ZINC-12k is a fixed subset of ZINC with the labels its "
        "authors computed (constrained solubility, the same penalised-logP formula), while "
        "`zinc-plogp` is another 12,000 molecules of ZINC (the MOSES training set) labelled "
        "here by RDKit, and the models differ (2-FWL PPGN models there, message passing "
        f"here). The best row here is {MODEL_LABELS.get(best['model'], best['model'])} + "
        f"{best['features']} at {best['test']['mae']['mean']:.3f} MAE; what carries over is "
        "the relative change each model sees from the features (above), not the absolute "
        "values."
    )


def plot_poly_curves(runs: list[dict[str, Any]], dataset: str, path: Path) -> Path | None:
    """Validation metric against epoch for ``dataset``, one panel per model and one line per
    feature mode (mean over seeds, band from the lowest to the highest seed), to ``path``
    (PNG); ``None`` when the runs carry no curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [r for r in runs if r["dataset"] == dataset and r.get("curve", {}).get("val")]
    if not mine:
        return None
    models = list(dict.fromkeys(r["model"] for r in mine))
    modes = list(dict.fromkeys(r["features"] for r in mine))
    fig, axes = plt.subplots(
        1, len(models), figsize=(5.5 * len(models), 4.2), dpi=110, squeeze=False, sharey=True
    )
    colours = plt.get_cmap("tab10").colors
    for ax, model in zip(axes[0], models):
        for i, mode in enumerate(modes):
            curves = [
                r["curve"]["val"] for r in mine if r["model"] == model and r["features"] == mode
            ]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            stacked = torch.tensor([c[:length] for c in curves], dtype=torch.float64)
            epochs = range(1, length + 1)
            # Dashed black on top: a mode without varying channels repeats it exactly.
            colour = "black" if mode == "none" else colours[i % 10]
            style = {"ls": "--", "zorder": 3} if mode == "none" else {}
            ax.plot(epochs, stacked.mean(0).tolist(), color=colour, label=mode, **style)
            ax.fill_between(
                epochs, stacked.min(0).values.tolist(), stacked.max(0).values.tolist(),
                color=colour, alpha=0.2,
            )  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(MODEL_LABELS.get(model, model))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="features", fontsize=8)
    axes[0][0].set_ylabel(f"validation {mine[0]['metric'].upper()}")
    fig.suptitle(f"Learning curves: {dataset}")
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)
    return path
