"""The Monoid interface: a learnable commutative monoid over a latent space.

Messages are *lifted* to monoid elements (states), combined pairwise by a commutative binary
operator with an identity element, and *lowered* back to features. For most monoids lift and lower
are the identity map; a monoid whose elements carry bookkeeping (e.g. a running softmax
normaliser) uses them to keep that bookkeeping out of the aggregator's output.

A monoid declares ``exact = True`` when its operator is associative by construction; then any
bracketing gives the same result up to rounding, so it may also offer
:meth:`Monoid.direct_reduce`, a reduction of whole groups that need not build a tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from torch import Tensor, nn

from .._checks import check_positive, check_tensor
from .._torchscript import NoTorchScript
from ..segment import SegmentPlan

if TYPE_CHECKING:
    from .tree import PairKernel

__all__ = ["Monoid"]


class Monoid(NoTorchScript, nn.Module):
    """Base class for learnable commutative monoids on ``channels``-wide features.

    Subclasses implement :meth:`combine` and :meth:`identity`, and set ``state_channels`` when
    the lifted states are wider than the features.
    """

    #: True when ``combine`` is associative by construction (not just approximately).
    exact: ClassVar[bool] = False

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_positive(channels, "channels")
        self.state_channels = self.channels

    def reset_parameters(self) -> None:
        """Re-initialise the learnable parameters as at construction (by default: every child
        module that has ``reset_parameters``; subclasses with parameters of their own extend
        it)."""
        for child in self.children():
            if hasattr(child, "reset_parameters"):
                child.reset_parameters()

    def lift(self, x: Tensor) -> Tensor:
        """Messages ``[..., channels]`` to states ``[..., state_channels]``."""
        return x

    def lower(self, state: Tensor) -> Tensor:
        """States ``[..., state_channels]`` to output features ``[..., channels]``."""
        return state

    def combine(self, a: Tensor, b: Tensor) -> Tensor:
        """The binary operator, element-wise over leading dimensions. Must be commutative."""
        raise NotImplementedError

    def identity(self, like: Tensor, num: int) -> Tensor:
        """``num`` copies of the identity element, with ``like``'s trailing shape, dtype, device.

        ``like`` is a state tensor ``[rows, *rest, state_channels]``; the result is
        ``[num, *rest, state_channels]``.
        """
        raise NotImplementedError

    def direct_reduce(self, states: Tensor, plan: SegmentPlan) -> Tensor | None:
        """Reduce each group of ``states`` (rows grouped as ``plan`` says) in one step, or return
        ``None`` when the monoid has no such shortcut and must be reduced as a tree."""
        return None

    def pair_kernel(self) -> tuple[PairKernel, tuple[Tensor, ...]] | None:
        """``(kernel, parameters)`` when the operator has a hand-derived backward that lets the
        tree run as one autograd node (:func:`~gnnagg.monoids.tree.fused_tree_reduce`), or
        ``None`` to reduce through :meth:`combine` and autograd."""
        return None

    def extra_repr(self) -> str:
        return f"channels={self.channels}, exact={self.exact}"

    def _check_operands(self, a: object, b: object) -> None:
        """``a`` and ``b`` as :meth:`combine` needs them: floating-point states of one shape,
        dtype and device, ending in ``state_channels``."""
        for name, value in (("a", a), ("b", b)):
            check_tensor(value, name)
            if not value.is_floating_point() or value.dim() == 0:
                raise TypeError(f"{name} must be floating-point states, got {value.dtype} "
                                f"of shape {tuple(value.shape)}")
            if value.shape[-1] != self.state_channels:
                raise ValueError(f"{name} must end in the {self.state_channels} state channels, "
                                 f"got shape {tuple(value.shape)}")
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            raise ValueError(
                f"a and b must share shape, dtype and device, got {tuple(a.shape)} {a.dtype} "
                f"{a.device} and {tuple(b.shape)} {b.dtype} {b.device}"
            )
