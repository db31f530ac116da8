"""The polynomial-feature study: GNNs on molecules with and without equivariant polynomial
features (:class:`gnnagg.poly.AddEquivariantPolynomials`, Puny et al. 2023).

For each molecule regression data set (``zinc-plogp``, ``freesolv``, or an OGB molecule
regression set by name such as ``ogbg-molfreesolv`` or ``ogbg-molesol``) and each feature mode:

* ``none``: OGB atom and bond features only;
* ``beyond-2fwl``, ``within-2fwl``, ``all``: that subset of the basis up to ``max_degree``
  (``beyond-2fwl``: the polynomials a 2-FWL model cannot compute itself, the features of the
  paper's PPGN++; ``all``: every connected simple pattern),

the features ``poly_graph [1, C0]``, ``poly_x [N, C1]`` and ``poly_edge_attr [E, C2]`` are
computed once per data set and mode (timed, and cached hash-checked under
``<data root>/poly-features/``: :mod:`~gnnagg.bench.studies.poly.features`), with
``normalize="log1p"`` so that counts of very different sizes share one scale. Channels that
are constant on the training graphs carry nothing and are dropped; the others are
standardised with the training graphs' mean and standard deviation. Then every model of
``models`` (:class:`~gnnagg.bench.studies.poly.model.PolyGINE`: ``gine``, or ``gine_vn`` with a
virtual node) is trained per seed: ``poly_x`` joins the atom embedding, ``poly_edge_attr`` the bond
embedding and ``poly_graph`` the pooled readout, each followed by a linear layer, so models
with and without features differ only in the widths of those three inputs.

All variants of one seed see the same graphs in the same order (the same seeded loader),
standardised targets and MSE loss, Adam with the configured schedule; the model kept is the
best on the data set's validation metric (MAE for ``zinc-plogp``, RMSE for FreeSolv as in
OGB), and test MAE and RMSE are reported in the data set's units as mean ± sample std over
seeds, beside the predict-the-training-mean and -median baselines, the learning curves
(``poly_curves_<data set>.png``) and a paragraph on whether the features help.

Predefined configurations: the suites ``poly-zinc`` (the full ``zinc-plogp`` set) and
``poly-freesolv`` (``ogbg-molfreesolv``); the subcommand ``gnnagg-bench poly`` runs any
combination.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ...section import ReportBlock, RunContext, Section
from . import report as _report
from .config import FEATURE_MODES, POLY_DATASETS, PolyConfig
from .model import POLY_MODELS
from .train import run_poly

__all__ = ["PolynomialFeaturesSection"]


def _study(suite: str, seeds: tuple[int, ...]) -> PolyConfig | None:
    """The configurations of the suites ``poly-zinc`` and ``poly-freesolv``."""
    if suite == "poly-zinc":
        # Full zinc-plogp (10k/1k/1k). Measured at 1 thread on the 2-core CPU: 6.0 (GINE),
        # 7.6 (GINE + virtual node), 6.3/7.5 (beyond-2fwl) and 9.2/9.6 (all) CPU seconds per
        # epoch, so 60 epochs x 3 seeds x these 6 variants take about 2.3 CPU hours, plus about
        # 2 CPU minutes for the features once; cosine annealing to 1 % of lr by the last epoch.
        return PolyConfig(
            datasets=("zinc-plogp",),
            models=POLY_MODELS,
            features=("none", "beyond-2fwl", "all"),
            seeds=seeds,
            hidden_channels=64,
            num_layers=4,
            epochs=60,
            batch_size=128,
            lr=2e-3,
            schedule="cosine",
            download=True,
        )
    if suite == "poly-freesolv":
        # 642 molecules (513 train): well under a minute per model on an idle core.
        return PolyConfig(
            datasets=("ogbg-molfreesolv",),
            models=POLY_MODELS,
            features=("none", "beyond-2fwl", "all"),
            seeds=seeds,
            hidden_channels=64,
            num_layers=4,
            epochs=50,
            batch_size=32,
            lr=1e-3,
            schedule="cosine",
            download=True,
        )
    return None


class PolynomialFeaturesSection(Section):
    """GNNs with and without :class:`gnnagg.poly.AddEquivariantPolynomials` features
    (:class:`PolyConfig`)."""

    name: ClassVar[str] = "poly"
    title: ClassVar[str] = "Polynomial features"
    config_type: ClassVar[type] = PolyConfig
    command: ClassVar[str | None] = "poly"
    command_help: ClassVar[str] = "molecules with and without polynomial features"
    command_description: ClassVar[str] = (
        "GINE (and GINE with a virtual node) on molecule regression sets without and with "
        "equivariant polynomial features. Predefined studies: `gnnagg-bench run --suite "
        "poly-zinc` and `--suite poly-freesolv`."
    )
    result_keys: ClassVar[str] = "`poly` {`runs`, `summary`, `features`, `baselines`, `notes`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> PolyConfig | None:
        # Not in the quick suite: its 15-minute budget is spent on the other sections.
        if suite == "smoke":
            return PolyConfig(
                seeds=seeds,
                features=("none", "all"),
                hidden_channels=8,
                num_layers=1,
                epochs=1,
                batch_size=64,
                max_degree=3,
            )
        if suite == "full":
            return PolyConfig(
                datasets=POLY_DATASETS,
                seeds=seeds,
                hidden_channels=128,
                num_layers=4,
                epochs=100,
                download=True,
            )
        return _study(suite, seeds)

    def choices(self) -> dict[str, list[str]]:
        return {
            "poly_datasets": [*POLY_DATASETS, "ogbg-molfreesolv", "ogbg-mol<name>"],
            "poly_models": list(POLY_MODELS),
            "poly_features": list(FEATURE_MODES),
        }

    def run(self, config: PolyConfig, context: RunContext) -> dict[str, Any]:
        return run_poly(
            config, context.device, context.progress, context.threads, context.data_root
        )

    def check_result(self, result: Any) -> None:
        _report.check_result(result, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        return _report.report(result, config, out_dir)
