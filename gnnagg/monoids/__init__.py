"""Learnable commutative monoids, their balanced-tree reduction and their law checks.

* :class:`GRUMonoid` -- the LCM paper's symmetrised GRU operator (commutative; associative only
  approximately);
* :class:`ConjugatedSumMonoid` -- g⁻¹(g(x) + g(y)) with a learnable bijection g (exact);
* :class:`SoftmaxMonoid` -- per-channel softmax aggregation with learnable temperature (exact);
* :func:`tree_reduce` -- reduce every group as a balanced binary tree, O(log d) depth;
  :func:`fused_tree_reduce` -- the same tree as one autograd node, for an operator with a
  hand-derived backward (:class:`PairKernel`; the GRU monoid has one);
* :func:`check_laws`, :func:`associativity_by_level` -- diagnostics (the second per level of
  the reduction trees); :func:`associativity_gap` -- the regulariser.
"""

from .base import Monoid
from .conjugated import ConjugatedSumMonoid
from .gru import GRUMonoid
from .gru_kernel import symmetric_gru
from .laws import (
    associativity_by_level,
    associativity_gap,
    check_laws,
    identity_gap,
    relative_associativity_gap,
)
from .softmax import SoftmaxMonoid
from .tree import PairKernel, fused_tree_reduce, tree_levels, tree_reduce

MONOIDS = {
    "gru": GRUMonoid,
    "conjugated_sum": ConjugatedSumMonoid,
    "softmax": SoftmaxMonoid,
}

__all__ = [
    "MONOIDS",
    "ConjugatedSumMonoid",
    "GRUMonoid",
    "Monoid",
    "PairKernel",
    "SoftmaxMonoid",
    "associativity_by_level",
    "associativity_gap",
    "check_laws",
    "fused_tree_reduce",
    "identity_gap",
    "relative_associativity_gap",
    "symmetric_gru",
    "tree_levels",
    "tree_reduce",
]
