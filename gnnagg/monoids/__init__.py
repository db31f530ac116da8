"""Learnable commutative monoids, their balanced-tree reduction and their law checks.

* :class:`GRUMonoid` -- the LCM paper's symmetrised GRU operator (commutative; associative only
  approximately);
* :class:`ConjugatedSumMonoid` -- g⁻¹(g(x) + g(y)) with a learnable bijection g (exact);
* :class:`SoftmaxMonoid` -- per-channel softmax aggregation with learnable temperature (exact);
* :func:`tree_reduce` -- reduce every group as a balanced binary tree, O(log d) depth;
* :func:`check_laws`, :func:`associativity_gap` -- diagnostics and the regulariser.
"""

from .base import Monoid
from .conjugated import ConjugatedSumMonoid, InvertibleMap
from .gru import GRUMonoid
from .laws import associativity_gap, check_laws, identity_gap, sample_rows
from .softmax import SoftmaxMonoid
from .tree import TreeLevel, TreeSchedule, tree_reduce, tree_schedule

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
    "SoftmaxMonoid",
    "TreeLevel",
    "TreeSchedule",
    "associativity_gap",
    "check_laws",
    "identity_gap",
    "sample_rows",
    "tree_reduce",
    "tree_schedule",
]
