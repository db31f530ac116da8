"""The size-generalisation model of PyG's ``lcm_aggr_2nd_min`` example: element encoder, the
aggregator over each multiset, decoder MLP."""

from __future__ import annotations

from torch import Tensor, nn

from ...._checks import check_positive
from ...registry import AGGREGATORS, RegularisedModel, build_aggregator

__all__ = ["SetClassifier"]


class SetClassifier(RegularisedModel):
    """Classify multisets: ``decoder(aggr(encoder(x_i)))``.

    Args:
        aggregator: a registry name (see :data:`~gnnagg.bench.registry.AGGREGATORS`).
        num_classes: number of output logits.
        hidden_channels: width of the encoder, the aggregator's messages and the decoder.
        in_features: features per element (8 bits for the synthetic tasks).
        deg: set-size histogram of the training data (for ``pna``).
        regularise: add ``reg_weight *`` the aggregator's regulariser in training mode.
        reg_weight: weight of the regulariser.
        reg_samples: samples the regulariser draws per forward.
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
        self.aggr = build_aggregator(aggregator, hidden_channels, deg)
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
