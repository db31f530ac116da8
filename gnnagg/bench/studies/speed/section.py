"""The speed-and-memory study: time and memory of the aggregators and kernels next to PyG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, ClassVar

from ...fields import config_from_args
from ...section import ReportBlock, RunContext, Section
from . import report as _report
from .config import SPEED_PARTS, SpeedConfig
from .run import run_speed

__all__ = ["SpeedSection"]


class SpeedSection(Section):
    """Speed and memory benchmarks, part by part (:class:`SpeedConfig`)."""

    name: ClassVar[str] = "speed"
    title: ClassVar[str] = "Speed and memory"
    config_type: ClassVar[type] = SpeedConfig
    command: ClassVar[str | None] = "speed"
    command_help: ClassVar[str] = "speed and memory benchmarks"
    command_description: ClassVar[str] = (
        "Time and memory of the aggregators and kernels, next to PyG."
    )
    result_keys: ClassVar[str] = (
        "`speed` {part: {`status`, `title`, `result`, `table`, `wall_s`, `notes`}}"
    )

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> SpeedConfig | None:
        if suite == "quick":
            return SpeedConfig()
        if suite == "full":
            return SpeedConfig(
                parts=SPEED_PARTS, quick=False, aggr_methods=None,
                aggr_cases=("uniform", "hub200", "hub5000"), aggr_unpadded_cases=(),
                timeout_s=900.0, cap_gb=16.0,
            )  # fmt: skip
        if suite == "smoke":
            return SpeedConfig(
                parts=("aggr", "segment", "poly"), quick=True, smoke=True,
                aggr_methods=("pyg Sum",), aggr_cases=("uniform",), aggr_unpadded_cases=(),
                timeout_s=120.0,
            )  # fmt: skip
        return None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--full",
            action="store_true",
            help="start from the full suite's settings: more repeats and sizes, PyG's padded "
            "methods on every case",
        )

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        base = self.suite_config("full" if args.full else "quick", ())
        return {self.name: config_from_args(args, base)}

    def choices(self) -> dict[str, list[str]]:
        return {"speed_parts": list(SPEED_PARTS)}

    def run(self, config: SpeedConfig, context: RunContext) -> dict[str, Any]:
        return run_speed(config, context.device, context.progress)

    def check_result(self, result: Any) -> None:
        _report.check_result(result, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        return _report.report(result, config, out_dir)
