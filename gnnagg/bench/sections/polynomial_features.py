"""The polynomial-feature section: GINE without and with equivariant polynomial features.

Training is :mod:`gnnagg.bench.polyexp`'s; here are its suites, table and notes. It has no
subcommand of its own: ``gnnagg-bench real --poly with|only`` runs it (see
:class:`~gnnagg.bench.sections.real.RealSection`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..config import POLY_DATASETS, PolyConfig
from .base import ReportBlock, RunContext, Section

__all__ = ["PolynomialFeaturesSection", "poly_table"]


class PolynomialFeaturesSection(Section):
    """GINE with and without :class:`gnnagg.poly.AddEquivariantPolynomials` features
    (:class:`~gnnagg.bench.config.PolyConfig`)."""

    name: ClassVar[str] = "poly"
    title: ClassVar[str] = "Polynomial features"
    config_type: ClassVar[type] = PolyConfig
    result_keys: ClassVar[str] = "`poly` {`runs`, `summary`, `features`, `baselines`, `notes`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> PolyConfig | None:
        # Not in the quick suite: its 15-minute budget is spent on the other sections.
        if suite == "smoke":
            return PolyConfig(
                seeds=seeds, hidden=8, layers=1, epochs=1, batch_size=64, max_degree=3
            )
        if suite == "full":
            return PolyConfig(
                datasets=POLY_DATASETS,
                seeds=seeds,
                hidden=128,
                layers=4,
                epochs=100,
                fixture=False,
            )
        return None

    def run(self, config: PolyConfig, context: RunContext) -> dict[str, Any]:
        from ..polyexp import run_poly

        return run_poly(config, context.device, context.progress)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        lines = [
            f"GINE ({config['layers']} layers of width {config['hidden']}, {config['epochs']} "
            f"epochs, batch {config['batch_size']}, Adam lr {config['lr']}, seeds "
            f"{list(config['seeds'])}) without and with `AddEquivariantPolynomials(max_degree="
            f"{config['max_degree']}, subset={config['subset']!r}, "
            f"normalize={config['normalize']!r})` features: `poly_x` joins the atom embedding, "
            "`poly_edge_attr` the bond embedding, `poly_graph` the pooled readout. Mean ± sample "
            "std; the model kept is the best on validation MAE; the feature time covers every "
            "graph of the three splits."
        ]
        lines += ["", poly_table(result), ""]
        for f in result.get("features", []):
            channels, nonzero = f["channels"], f["nonzero_channels"]
            lines.append(
                f"* {f['dataset']}: {channels['graph']}/{channels['node']}/{channels['edge']} "
                "graph/node/edge channels, of which "
                f"{nonzero['graph']}/{nonzero['node']}/{nonzero['edge']} are not identically "
                f"zero on these {f['graphs']} graphs (patterns that never occur carry nothing)."
            )
        if any(r.get("source") == "fixture" for r in result["summary"]):
            lines.append(
                "* `fixture` rows use the small committed fixtures: they check the pipeline; "
                "the difference between the two models there is mostly noise."
            )
        lines += [f"* {n}" for n in result.get("notes", [])]
        lines.append("")
        return ReportBlock(lines)


def poly_table(poly: dict[str, Any]) -> str:
    """Markdown: per data set, the trivial baseline, then test MAE / RMSE (mean ± std over
    seeds) of GINE without and with polynomial features, with the input widths and the time
    spent computing the features."""
    lines = [
        "| data set | source | model | node/edge/readout input | test MAE | test RMSE | "
        "features (s) | s/model |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    features = {f["dataset"]: f for f in poly.get("features", [])}
    for b in poly.get("baselines", []):
        lines.append(
            f"| {b['dataset']} | {b.get('source')} | *{b['baseline']}* | - | "
            f"{b['test']['mae']:.3f} | {b['test']['rmse']:.3f} | - | - |"
        )
    labels = {"plain": "GINE", "poly": "GINE + polynomial features"}
    for r in poly["summary"]:
        widths = r["input_widths"]
        mae, rmse = r["test"]["mae"], r["test"]["rmse"]
        info = features.get(r["dataset"], {})
        feature_time = f"{info['time_s']:.2f}" if r["variant"] == "poly" and info else "-"
        lines.append(
            f"| {r['dataset']} | {r.get('source')} | {labels.get(r['variant'], r['variant'])} | "
            f"{widths['node']}/{widths['edge']}/{widths['graph']} | "
            f"{mae['mean']:.3f} ± {mae['std']:.3f} | {rmse['mean']:.3f} ± {rmse['std']:.3f} | "
            f"{feature_time} | {r['train_time_s']:.0f} |"
        )
    return "\n".join(lines)
