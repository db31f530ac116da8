"""Conjugated sum: x ⊕ y = g⁻¹(g(x) + g(y)) for a learnable invertible map g.

Why this monoid: conjugating vector addition by a bijection gives an operator that is exactly
commutative and associative (it *is* addition, seen through g), with identity g⁻¹(0), while g
lets the model learn which "coordinates" to add in -- sums of squares, of log-magnitudes, of
saturated activations, ... Because it is exactly associative, reducing a whole neighbourhood
needs no tree: g⁻¹(Σ g(xᵢ)) is one segment sum (:meth:`ConjugatedSumMonoid.direct_reduce`).

g is a stack of affine coupling layers (RealNVP-style): half of the channels are scaled and
shifted by functions of the other half, with the halves swapping between layers. Every layer
is invertible in closed form whatever its weights, so g⁻¹ is exact (up to rounding) throughout
training. Scales are ``exp(tanh(·))``-bounded, so g and g⁻¹ stay well conditioned.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_allocation, check_bool, check_count, check_positive
from .._torchscript import NoTorchScript
from ..segment import SegmentPlan, segment
from .base import Monoid

__all__ = ["AffineCoupling", "ConjugatedSumMonoid", "InvertibleMap"]


class AffineCoupling(NoTorchScript, nn.Module):
    """y_b = x_b · exp(s(x_a)) + t(x_a), y_a = x_a, with (a, b) one of the two channel halves."""

    def __init__(self, channels: int, hidden_channels: int, flip: bool) -> None:
        super().__init__()
        channels = check_positive(channels, "channels")
        hidden_channels = check_positive(hidden_channels, "hidden_channels")
        if channels < 2:
            raise ValueError(f"channels must be at least 2 for a coupling layer, got {channels}")
        flip = check_bool(flip, "flip")
        self.split = channels // 2
        self.flip = flip
        conditioning = channels - self.split if flip else self.split
        transformed = channels - conditioning
        self.net = nn.Sequential(
            nn.Linear(conditioning, hidden_channels),
            nn.Tanh(),
            nn.Linear(hidden_channels, 2 * transformed),
        )
        self._start_at_identity()

    def _start_at_identity(self) -> None:
        # Zero scale and shift: the layer starts as the identity map, so g begins as plain
        # addition.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def reset_parameters(self) -> None:
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        self._start_at_identity()

    def _halves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        first, second = x[..., : self.split], x[..., self.split :]
        return (second, first) if self.flip else (first, second)

    def _join(self, conditioning: Tensor, transformed: Tensor) -> Tensor:
        parts = (transformed, conditioning) if self.flip else (conditioning, transformed)
        return torch.cat(parts, dim=-1)

    def _scale_shift(self, conditioning: Tensor) -> tuple[Tensor, Tensor]:
        log_scale, shift = self.net(conditioning).chunk(2, dim=-1)
        return torch.tanh(log_scale), shift

    def forward(self, x: Tensor) -> Tensor:
        conditioning, transformed = self._halves(x)
        log_scale, shift = self._scale_shift(conditioning)
        return self._join(conditioning, transformed * log_scale.exp() + shift)

    def inverse(self, y: Tensor) -> Tensor:
        conditioning, transformed = self._halves(y)
        log_scale, shift = self._scale_shift(conditioning)
        return self._join(conditioning, (transformed - shift) * (-log_scale).exp())


class InvertibleMap(NoTorchScript, nn.Module):
    """A learnable bijection of R^channels: an element-wise affine map and coupling layers."""

    def __init__(self, channels: int, hidden_channels: int, num_layers: int) -> None:
        super().__init__()
        channels = check_positive(channels, "channels")
        hidden_channels = check_positive(hidden_channels, "hidden_channels")
        num_layers = check_count(num_layers, "num_layers")
        if channels < 2:
            raise ValueError(f"channels must be at least 2 for coupling layers, got {channels}")
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self.layers = nn.ModuleList(
            AffineCoupling(channels, hidden_channels, flip=i % 2 == 1) for i in range(num_layers)
        )

    def reset_parameters(self) -> None:
        """Back to the identity map with fresh conditioning networks."""
        nn.init.zeros_(self.log_scale)
        nn.init.zeros_(self.shift)
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.log_scale.exp() + self.shift
        for layer in self.layers:
            x = layer(x)
        return x

    def inverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return (y - self.shift) * (-self.log_scale).exp()


class ConjugatedSumMonoid(Monoid):
    """x ⊕ y = g⁻¹(g(x) + g(y)) with g an :class:`InvertibleMap`; exactly associative.

    Args:
        channels: size of the features and states (at least 2).
        hidden_channels: width of the coupling layers' conditioning networks (default:
            ``channels``).
        num_layers: number of affine coupling layers in g.
    """

    exact = True

    def __init__(
        self, channels: int, hidden_channels: int | None = None, num_layers: int = 2
    ) -> None:
        super().__init__(channels)
        num_layers = check_count(num_layers, "num_layers")
        if hidden_channels is None:
            hidden_channels = self.channels
        hidden_channels = check_positive(hidden_channels, "hidden_channels")
        check_allocation((2 * num_layers * hidden_channels + 2) * self.channels * 4,
                         f"channels={self.channels}, hidden_channels={hidden_channels}: the "
                         "parameters", "cpu")
        self.g = InvertibleMap(self.channels, hidden_channels, num_layers)

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        self._check_operands(a, b)
        return self.g.inverse(self.g(a) + self.g(b))

    def identity(self, like: Tensor, num: int) -> Tensor:
        num = check_count(num, "num")
        zero = like.new_zeros((1, *like.shape[1:]))
        return self.g.inverse(zero).expand(num, *like.shape[1:])

    def direct_reduce(self, states: Tensor, plan: SegmentPlan) -> Tensor:
        summed = segment(self.g(states), plan=plan, reduce="sum")
        return self.g.inverse(summed)
