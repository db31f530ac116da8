"""The size-generalisation study: train on multisets of sizes 2-16, test on larger ones.

The ``paper`` suite (:func:`~gnnagg.bench.studies.sizegen.config.paper_config`,
``gnnagg-bench run --suite paper``) is the LCM paper's second-minimum setting at full size:
hours of CPU, so its jobs checkpoint into the output folder and a rerun with the same ``--out``
continues them; ``--jobs`` runs several at once in worker processes, ``--job-minutes`` and
``--epochs`` cut it short. The ``paper-cpu`` suite
(:func:`~gnnagg.bench.studies.sizegen.config.paper_cpu_config`) is the same study cut to
finish in under three hours on a 2-core CPU with ``--jobs 2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ....data import TASKS
from ...registry import AGGREGATORS
from ...section import ReportBlock, RunContext, Section
from . import report as _report
from .config import SizeGenConfig, paper_config, paper_cpu_config
from .run import run_sizegen

__all__ = ["SizeGenSection"]


class SizeGenSection(Section):
    """Size generalisation per task, aggregator and seed (:class:`SizeGenConfig`)."""

    name: ClassVar[str] = "sizegen"
    title: ClassVar[str] = "Size generalisation"
    config_type: ClassVar[type] = SizeGenConfig
    command: ClassVar[str | None] = "sizegen"
    command_help: ClassVar[str] = "size generalisation only"
    command_description: ClassVar[str] = (
        "Train on multisets of sizes 2-16, test on larger ones, per aggregator."
    )
    result_keys: ClassVar[str] = "`sizegen` {`runs`, `summary`, `baselines`}"

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> SizeGenConfig | None:
        if suite == "quick":
            # 1,024 test multisets per size: about +-1.5 points (256 gave +-3).
            return SizeGenConfig(seeds=seeds, num_test=1024)
        if suite == "smoke":
            return SizeGenConfig(
                tasks=("maximum",), aggregators=("sum", "lcm_softmax"), seeds=seeds,
                hidden_channels=8, num_train=32, num_val=8, num_test=8, test_sizes=(20,),
                epochs=1, batch_size=16,
            )  # fmt: skip
        if suite == "paper":
            return paper_config(seeds)
        if suite == "paper-cpu":
            return paper_cpu_config(seeds)
        if suite == "full":
            return SizeGenConfig(
                tasks=tuple(sorted(TASKS)), aggregators=tuple(AGGREGATORS), seeds=seeds,
                hidden_channels=128, num_train=16384, num_val=512, num_test=512,
                test_sizes=(16, 32, 64, 128, 256), epochs=100, batch_size=512, lr=5e-3,
            )  # fmt: skip
        return None

    def run(self, config: SizeGenConfig, context: RunContext) -> dict[str, Any]:
        return run_sizegen(
            config, context.device, context.progress, context.out_dir, context.threads
        )

    def check_result(self, result: Any) -> None:
        _report.check_result(result, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        return _report.report(result, config, out_dir)
