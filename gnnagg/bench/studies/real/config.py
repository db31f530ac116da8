"""The real-data config: every field declared once (check, option, override)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...fields import (
    StudyConfig,
    batch_size_setting,
    bool_check,
    download_setting,
    epochs_setting,
    finite,
    hidden_channels_setting,
    lr_setting,
    names,
    num_layers_setting,
    seeds_setting,
    setting,
)
from ...registry import AGGREGATORS, check_aggregators

__all__ = ["REAL_DATASETS", "RealConfig"]

REAL_DATASETS: tuple[str, ...] = ("zinc-plogp", "freesolv", "mutag")


def _aggregators(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)) and not all(isinstance(a, str) for a in value):
        raise ValueError(f"{name}: expected names, got {value!r}")
    return check_aggregators(value)


@dataclass
class RealConfig(StudyConfig):
    """Real data: a small GNN (``num_layers`` aggregation layers of width ``hidden_channels``)
    per data set and aggregator; regression targets report MAE (and RMSE), MUTAG accuracy.

    Without ``download`` the committed fixtures are used (no network); with it the real data set
    is fetched, falling back to its fixture, with a note, when it cannot be obtained.
    """

    datasets: tuple[str, ...] = setting(
        ("zinc-plogp",), names(REAL_DATASETS), "data sets", choices=lambda: REAL_DATASETS
    )
    aggregators: tuple[str, ...] = setting(
        ("sum", "pna", "lcm_conjugated_sum"), _aggregators, "aggregators",
        choices=lambda: list(AGGREGATORS),
    )  # fmt: skip
    seeds: tuple[int, ...] = seeds_setting((0, 1))
    hidden_channels: int = hidden_channels_setting(64)
    num_layers: int = num_layers_setting(3)
    epochs: int = epochs_setting(30)
    batch_size: int = batch_size_setting(32)
    lr: float = lr_setting(3e-3)
    download: bool = download_setting()
    regularise: bool = setting(
        True, bool_check, "the regulariser of gnnagg's LCM[gru], GRU and LSTM"
    )
    reg_weight: float = setting(0.1, finite(), "weight of the regulariser")
