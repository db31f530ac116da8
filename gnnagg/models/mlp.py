"""The multi-layer perceptron every model here is built from, and their shared argument check."""

from __future__ import annotations

from torch import nn

from .._checks import check_allocation, check_count

__all__ = ["mlp"]


def mlp(
    sizes: list[int], activation: type[nn.Module] = nn.ReLU, layer_norm: bool = False
) -> nn.Sequential:
    """Linear layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ``activation`` between
    them (not after the last), and a ``LayerNorm`` on the output when ``layer_norm``."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    if layer_norm:
        layers.append(nn.LayerNorm(sizes[-1]))
    return nn.Sequential(*layers)


def _check_parameters(count: int, what: str) -> None:
    """Refuse, before any layer is made, ``count`` float32 parameters more than memory holds
    (a mistyped width or depth would otherwise fail deep in torch, or loop for ever)."""
    check_allocation(count * 4, f"{what}: about {count} parameters", "cpu")


def _check_positive(value: object, name: str) -> int:
    count = check_count(value, name)
    if count < 1:
        raise ValueError(f"{name} must be at least 1, got {count}")
    return count
