"""The mesh-attention study: one masked attention layer per mask and backend next to PyG's
``TransformerConv``, the masks' build cost and block density, a large mask build
(:mod:`~gnnagg.bench.studies.attention.run` does the measuring, each row in a fresh process),
and one training step of a 2-layer ``GraphTransformer`` at 100k-300k nodes per memory option
(:mod:`~gnnagg.bench.studies.attention.step`).

The targets it reports against (Garnier et al. 2025 at our scale; CPU numbers with 1 thread,
side by side in one run): on the 30k-node mesh with the adjacency mask, H = 4, C = 64, the
sparse backend at least 5x faster than ``TransformerConv`` forward + backward with at least 5x
less peak extra memory; building ``khop(2) | dilated_window(4, 8) | global_tokens(4)`` on 300k-node
2-D and 3-D Delaunay meshes in under 5 CPU seconds and 1 GB of peak extra memory on one thread,
with BlockMask tables under 50 MB and a Morton block density of at most 1.5 %; a 2-layer
``GraphTransformer`` (F = 128, H = 8) training step on a 300k-node mesh within the 24 GB of
the CPU machine with checkpointing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ...section import ReportBlock, RunContext, Section
from . import report as _report
from .config import BACKENDS, MASKS, PARTS, AttentionConfig
from .run import run_attention
from .step import run_step

__all__ = ["AttentionSection"]


class AttentionSection(Section):
    """Mesh graph attention (:class:`AttentionConfig`)."""

    name: ClassVar[str] = "attention"
    title: ClassVar[str] = "Mesh graph attention"
    config_type: ClassVar[type] = AttentionConfig
    command: ClassVar[str | None] = "attention"
    command_help: ClassVar[str] = (
        "mesh attention: masks, backends, block density vs TransformerConv"
    )
    command_description: ClassVar[str] = (
        "One masked attention layer per mask and backend next to PyG's TransformerConv on a 3-D "
        "mesh; mask build cost and block density per node ordering; a large mask build."
    )
    result_keys: ClassVar[str] = (
        "`attention` {`layer`: [row], `masks`: [row], `big`: [row], `step`: [row]}"
    )

    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> AttentionConfig | None:
        if suite == "quick":
            return AttentionConfig(nodes=3_000, repeats=1, timeout_s=300.0)
        if suite == "full":
            return AttentionConfig(parts=PARTS, nodes=30_000, big_nodes=300_000)
        if suite == "smoke":
            return AttentionConfig(
                parts=PARTS, nodes=300, big_nodes=2_000, masks=("adjacency",),
                backends=("sparse", "TransformerConv"), repeats=1, timeout_s=120.0,
                step_nodes=(300,), step_hidden_channels=16, step_heads=2,
            )  # fmt: skip
        return None

    def command_defaults(self) -> AttentionConfig:
        return AttentionConfig(parts=PARTS, nodes=30_000)

    def choices(self) -> dict[str, list[str]]:
        return {"attention_masks": list(MASKS), "attention_backends": list(BACKENDS)}

    def run(self, config: AttentionConfig, context: RunContext) -> dict[str, Any]:
        from tqdm.auto import tqdm

        with tqdm(desc="attention", unit="row", disable=not context.progress) as bar:
            result = run_attention(
                config, context.device, context.out_dir, lambda row: bar.update(1)
            )
            if "step" in config.parts:
                result["step"] = run_step(
                    config, context.device, context.out_dir, lambda row: bar.update(1)
                )
            return result

    def check_result(self, result: Any) -> None:
        _report.check_result(result, self.name)

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        return _report.report(result, config, out_dir)
