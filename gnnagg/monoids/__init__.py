"""Learnable commutative monoids, their balanced-tree reduction and their law checks.

* :class:`GRUMonoid` -- the LCM paper's symmetrised GRU operator (commutative; associative only
  approximately);
* :class:`ConjugatedSumMonoid` -- g⁻¹(g(x) + g(y)) with a learnable bijection g (exact);
* :class:`SoftmaxMonoid` -- per-channel softmax aggregation with learnable temperature (exact);
* :func:`tree_reduce` -- reduce every group as a balanced binary tree, O(log d) depth;
  :func:`fused_tree_reduce` -- the same tree as one autograd node, for an operator with a
  hand-derived backward (:class:`PairKernel`; the GRU monoid has one);
* :func:`check_laws`, :func:`associativity_gap` -- diagnostics and the regulariser.
"""

from .base import Monoid
from .conjugated import ConjugatedSumMonoid, InvertibleMap
from .gru import GRUMonoid
from .gru_kernel import symmetric_gru, symmetric_gru_reference
from .laws import associativity_gap, check_laws, identity_gap, sample_rows
from .softmax import SoftmaxMonoid
from .tree import (
    PairKernel,
    TreeLevel,
    TreeSchedule,
    fused_tree_reduce,
    tree_reduce,
    tree_schedule,
)

MONOIDS = {
    "gru": GRUMonoid,
    "conjugated_sum": ConjugatedSumMonoid,
    "softmax": SoftmaxMonoid,
}

__all__ = [
    "MONOIDS",
    "ConjugatedSumMonoid",
    "GRUMonoid",
    "InvertibleMap",
    "Monoid",
    "PairKernel",
    "SoftmaxMonoid",
    "TreeLevel",
    "TreeSchedule",
    "associativity_gap",
    "check_laws",
    "fused_tree_reduce",
    "identity_gap",
    "sample_rows",
    "symmetric_gru",
    "symmetric_gru_reference",
    "tree_reduce",
    "tree_schedule",
]
