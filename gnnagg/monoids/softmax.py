"""Softmax aggregation as an exact monoid: Σᵢ softmax(β·x)ᵢ · xᵢ per channel, β learned.

Why this monoid: with a learnable inverse temperature β per channel it moves smoothly between
the mean (β → 0) and the max (β → ∞) -- the two aggregators that generalise best out of
distribution -- and it is the online-softmax recurrence of FlashAttention, which is exactly
associative and commutative once each element carries its running maximum m and normaliser l.

States are ``[m, l, acc]`` (three blocks of ``channels``): a message x lifts to
``(β·x, 1, x)``; two states combine as ``m = max(m₁, m₂)``, ``l = l₁e^{m₁-m} + l₂e^{m₂-m}``,
``acc = acc₁e^{m₁-m} + acc₂e^{m₂-m}``; lowering returns ``acc / l``. The identity is
``(-∞, 0, 0)`` and lowers to 0, so isolated nodes output zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_allocation, check_bool, check_count, check_finite
from ..segment import SegmentPlan, broadcast_to_rows, segment
from .base import Monoid

__all__ = ["SoftmaxMonoid"]


class SoftmaxMonoid(Monoid):
    """Per-channel softmax-weighted aggregation with learnable inverse temperature."""

    exact = True

    def __init__(self, channels: int, beta: float = 1.0, learn: bool = True) -> None:
        super().__init__(channels)
        check_allocation(self.channels * 4, f"channels={self.channels}: the parameters", "cpu")
        self.state_channels = 3 * channels
        # A NaN or infinite temperature makes every output NaN (inf·0 in the lift).
        self.initial_beta = check_finite(beta, "beta")
        self.beta = nn.Parameter(
            torch.full((channels,), self.initial_beta), requires_grad=check_bool(learn, "learn")
        )

    def reset_parameters(self) -> None:
        nn.init.constant_(self.beta, self.initial_beta)

    def _split(self, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return state.split(self.channels, dim=-1)

    def lift(self, x: Tensor) -> Tensor:
        return torch.cat([x * self.beta.to(x.dtype), torch.ones_like(x), x], dim=-1)

    def lower(self, state: Tensor) -> Tensor:
        _, normaliser, acc = self._split(state)
        # Only the identity has normaliser exactly 0; a NaN one (from a NaN or infinite
        # message) must propagate, not read as an empty neighbourhood.
        empty = normaliser == 0
        return torch.where(empty, 0.0, acc / torch.where(empty, 1.0, normaliser))

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        self._check_operands(a, b)
        m1, l1, acc1 = self._split(a)
        m2, l2, acc2 = self._split(b)
        m = torch.maximum(m1, m2)
        # Two identities meet with m = -inf; shifting by 0 there keeps exp() away from -inf - -inf.
        shift = torch.where(torch.isfinite(m), m, 0.0)
        w1, w2 = (m1 - shift).exp(), (m2 - shift).exp()
        return torch.cat([m, l1 * w1 + l2 * w2, acc1 * w1 + acc2 * w2], dim=-1)

    def identity(self, like: Tensor, num: int) -> Tensor:
        num = check_count(num, "num")
        element = like.new_zeros((1, *like.shape[1:]))
        element[..., : self.channels] = float("-inf")
        return element.expand(num, *like.shape[1:])

    def direct_reduce(self, states: Tensor, plan: SegmentPlan) -> Tensor:
        logits, _, x = self._split(states)
        # The shift cancels in what lower() returns (acc / l), so it is a constant to autograd,
        # as in every stable softmax: no backward through the maximum (ties, a scatter).
        peak = segment(logits.detach(), plan=plan, reduce="max")
        weights = (logits - broadcast_to_rows(peak, plan)).exp()
        normaliser = segment(weights, plan=plan, reduce="sum")
        acc = segment(weights * x, plan=plan, reduce="sum")
        nonempty = (plan.degrees > 0).view(-1, *([1] * (acc.dim() - 1)))
        return torch.cat([torch.where(nonempty, peak, float("-inf")), normaliser, acc], dim=-1)
