"""The real-data study: small GNNs with a few aggregators on molecules and MUTAG."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ...section import ReportBlock, RunContext, Section
from . import report as _report
from .config import REAL_DATASETS, RealConfig
from .run import run_real

__all__ = ["RealSection"]


class RealSection(Section):
    """Real data sets per aggregator and seed (:class:`RealConfig`)."""

    name: ClassVar[str] = "real"
    title: ClassVar[str] = "Real data"
    config_type: ClassVar[type] = RealConfig
    command: ClassVar[str | None] = "real"
    command_help: ClassVar[str] = "real data sets"
    command_description: ClassVar[str] = "Small GNNs with a few aggregators on molecules and MUTAG."
    result_keys: ClassVar[str] = "`real` {`runs`, `summary`, `baselines`, `notes`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> RealConfig | None:
        if suite == "quick":
            return RealConfig(seeds=seeds)
        if suite == "smoke":
            return RealConfig(
                aggregators=("sum",), seeds=seeds, hidden_channels=8, num_layers=1, epochs=1,
                batch_size=64,
            )  # fmt: skip
        if suite == "full":
            return RealConfig(
                datasets=REAL_DATASETS,
                aggregators=("sum", "mean", "max", "pna", "lcm_gru", "lcm_conjugated_sum", "gru"),
                seeds=seeds, hidden_channels=128, num_layers=4, epochs=100, download=True,
            )  # fmt: skip
        return None

    def choices(self) -> dict[str, list[str]]:
        return {"real_benchmark_datasets": list(REAL_DATASETS)}

    def run(self, config: RealConfig, context: RunContext) -> dict[str, Any]:
        return run_real(config, context.device, context.progress, context.data_root)

    def check_result(self, result: Any) -> None:
        _report.check_result(result, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        return _report.report(result, config, out_dir)
