"""Online normalisation of features, as in MeshGraphNet's ``normalization.py``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_allocation, check_bool, check_finite, check_tensor
from .._torchscript import NoTorchScript

__all__ = ["OnlineNormalizer"]


class OnlineNormalizer(NoTorchScript, nn.Module):
    """Standardises features with a mean and standard deviation accumulated online, as
    MeshGraphNet's ``Normalizer``: while ``accumulate=True`` and fewer than
    ``max_accumulations`` batches have been seen, each batch's rows are added to running sums
    (float64); :math:`\\sigma = \\max(\\sqrt{E[x^2] - E[x]^2}, \\epsilon)`. Before any
    accumulation it is the identity. The sums are buffers, saved in ``state_dict``, and stay
    float64 whatever dtype the module is cast to.

    Args:
        size: number of features (the last dimension of the inputs).
        max_accumulations: batches added to the statistics at most; later ones only read them.
        std_epsilon: the smallest standard deviation used (features that never vary).
    """

    def __init__(self, size: int, max_accumulations: int = 10**6, std_epsilon: float = 1e-8):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size: expected a positive int, got {size!r}")
        check_allocation(size * 16, f"size={size}: the running sums", "cpu")
        if isinstance(max_accumulations, bool) or not isinstance(max_accumulations, int):
            raise TypeError("max_accumulations: expected an int")
        if max_accumulations < 0:
            raise ValueError(f"max_accumulations: expected >= 0, got {max_accumulations}")
        std_epsilon = check_finite(std_epsilon, "std_epsilon", positive=True)
        self.size = size
        self.max_accumulations = max_accumulations
        self.std_epsilon = float(std_epsilon)
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("accumulations", torch.zeros((), dtype=torch.int64))
        self.register_buffer("total", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("total_squared", torch.zeros(size, dtype=torch.float64))

    def _apply(self, fn, recurse=True):
        # The running sums stay float64 whatever dtype the model is cast to.
        result = super()._apply(fn, recurse)
        for name in ("count", "total", "total_squared"):
            setattr(self, name, getattr(self, name).to(torch.float64))
        return result

    def accumulate(self, x: Tensor) -> None:
        """Add the rows of ``x`` (``[..., size]``) to the running sums, until
        ``max_accumulations`` batches have been seen."""
        if int(self.accumulations) >= self.max_accumulations:
            return
        flat = x.detach().reshape(-1, self.size).to(torch.float64)
        self.count += flat.shape[0]
        self.total += flat.sum(dim=0)
        self.total_squared += (flat * flat).sum(dim=0)
        self.accumulations += 1

    def mean(self) -> Tensor:
        """The running mean ``[size]`` (float64; 0 before any accumulation)."""
        return self.total / self.count.clamp_min(1.0)

    def std(self) -> Tensor:
        """The running standard deviation ``[size]`` (float64; 1 before any accumulation)."""
        if float(self.count) == 0:
            return torch.ones_like(self.total)
        variance = (self.total_squared / self.count - self.mean() ** 2).clamp_min(0.0)
        return variance.sqrt().clamp_min(self.std_epsilon)

    def forward(self, x: Tensor, accumulate: bool = False) -> Tensor:
        """``(x - mean) / std``, after adding ``x`` to the sums when ``accumulate``."""
        check_tensor(x, "x")
        if x.dim() == 0 or x.shape[-1] != self.size:
            raise ValueError(f"x: expected {self.size} features in the last dim, got {x.shape}")
        if not x.is_floating_point():
            raise TypeError(f"x: expected floating-point features, got {x.dtype}")
        if check_bool(accumulate, "accumulate"):
            self.accumulate(x)
        return (x - self.mean().to(x.dtype)) / self.std().to(x.dtype)

    def inverse(self, x: Tensor) -> Tensor:
        """``x * std + mean``: normalised values back in the data's units."""
        return x * self.std().to(x.dtype) + self.mean().to(x.dtype)

    def extra_repr(self) -> str:
        return f"size={self.size}, accumulations={int(self.accumulations)}"
