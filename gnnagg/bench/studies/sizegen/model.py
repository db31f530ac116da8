"""The size-generalisation model of PyG's ``lcm_aggr_2nd_min`` example: element encoder, the
aggregator over each multiset, decoder MLP; its regulariser's schedule, and the per-level
associativity diagnostic of its LCM."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...._checks import check_positive
from ....aggr import LCMAggregation
from ...registry import AGGREGATORS, RegularisedModel, build_aggregator
from ...training import RegulariserSchedule
from .config import SizeGenConfig

__all__ = ["GAP_SIZE", "SetClassifier", "level_gaps", "regulariser_schedule"]

#: The multiset size whose reduction trees :func:`level_gaps` measures (levels 0-6), or the
#: largest test size below it.
GAP_SIZE = 64


class SetClassifier(RegularisedModel):
    """Classify multisets: ``decoder(aggr(encoder(x_i)))``.

    Args:
        aggregator: a registry name (see :data:`~gnnagg.bench.registry.AGGREGATORS`).
        num_classes: number of output logits.
        hidden_channels: width of the encoder, the aggregator's messages and the decoder.
        in_features: features per element (8 bits for the synthetic tasks).
        deg: set-size histogram of the training data (for ``pna``).
        regularise: add ``reg_weight *`` the aggregator's regulariser in training mode.
        reg_weight: weight of the regulariser (a training loop with a
            :class:`~gnnagg.bench.training.RegulariserSchedule` sets it before each step).
        reg_samples: samples the regulariser draws per forward.
        aggr_options: keyword options of the aggregator; those it does not take
            (:attr:`~gnnagg.bench.registry.AggregatorSpec.options`) are left out, so one set
            of LCM options can be given to every model of a study.
    """

    def __init__(
        self,
        aggregator: str,
        num_classes: int,
        hidden_channels: int = 64,
        in_features: int = 8,
        deg: Tensor | None = None,
        regularise: bool = False,
        reg_weight: float = 0.1,
        reg_samples: int = 256,
        aggr_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_classes", num_classes),
            ("hidden_channels", hidden_channels),
            ("in_features", in_features),
        ):
            check_positive(value, name)
        self.aggregator = aggregator
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden_channels), nn.ReLU())
        spec = AGGREGATORS.get(aggregator)
        options = {
            key: value
            for key, value in (aggr_options or {}).items()
            if spec is not None and key in spec.options
        }
        self.aggr = build_aggregator(aggregator, hidden_channels, deg, **options)
        width = AGGREGATORS[aggregator].width(hidden_channels)
        self.decoder = nn.Sequential(
            nn.Linear(width, hidden_channels), nn.ReLU(), nn.Linear(hidden_channels, num_classes)
        )
        self.regularise, self.reg_weight, self.reg_samples = regularise, reg_weight, reg_samples

    def forward(self, x: Tensor, index: Tensor, num_sets: int) -> tuple[Tensor, Tensor]:
        """Logits ``[num_sets, num_classes]`` for elements ``x`` of set ``index`` (sorted),
        and the weighted regulariser (a scalar)."""
        pooled = self.aggr(self.encoder(x), index, dim_size=num_sets)
        logits = self.decoder(pooled)
        return logits, self._regulariser(logits)


def regulariser_schedule(config: SizeGenConfig) -> RegulariserSchedule:
    """The regulariser's weight per step under ``config`` (zero when it is off)."""
    return RegulariserSchedule(
        weight=config.reg_weight if config.regularise else 0.0,
        every=config.reg_every,
        warmup=config.reg_warmup,
        until=config.reg_until,
    )


@torch.no_grad()
def level_gaps(model: SetClassifier, splits: dict[str, Any]) -> dict[str, Any] | None:
    """The associativity gap per tree level (:meth:`~gnnagg.aggr.LCMAggregation.
    associativity_by_level`) of ``model``'s LCM on the test multisets of :data:`GAP_SIZE`
    (or the largest test size below it, else the smallest), or ``None`` when the model's
    aggregator is not a gnnagg LCM with an approximately associative monoid.

    Returns ``{"size", "levels": [{"level", "states", "gap", "gap_max", "norm"}, ...]}``.
    """
    aggr = model.aggr
    if not isinstance(aggr, LCMAggregation) or aggr.monoid.exact:
        return None
    sizes = sorted(int(name.removeprefix("test_")) for name in splits if name.startswith("test_"))
    if not sizes:
        return None
    size = max((s for s in sizes if s <= GAP_SIZE), default=sizes[0])
    data = splits[f"test_{size}"]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x, index, _, n = data.batch(torch.arange(len(data)))
        messages = model.encoder(x.to(device))
        levels = aggr.associativity_by_level(messages, index.to(device), dim_size=n)
    finally:
        model.train(was_training)
    return {"size": size, "levels": levels}
