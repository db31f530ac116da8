"""Equivariant polynomial features (Puny et al. 2023, "Equivariant Polynomials for GNNs").

A basis element is a pattern multigraph H with 0, 1 or 2 output nodes; its polynomial sums, over
all maps of H's nodes into the graph with the outputs pinned, the product of A over H's edges
(homomorphism counts for a 0/1 adjacency).

* :func:`enumerate_basis` lists the elements up to isomorphism (``subset="beyond-2fwl"`` keeps
  the ones a 2-FWL / PPGN model cannot compute itself).
* :func:`evaluate` computes them on a graph or batch, with planned contractions: sparse tables on
  the block-diagonal batch by default, or padded dense blocks per graph.
* :class:`AddEquivariantPolynomials` is the PyG transform (``poly_graph``, ``poly_x``,
  ``poly_edge_attr``, and ``dense()`` for all node pairs).

Modules: ``canonical`` (isomorphism-invariant labelling), ``basis`` (elements, enumeration),
``fwl2`` (2-FWL reducibility test), ``plan`` (elimination orders), ``sparse`` and ``dense``
(evaluators), ``evaluation`` (input handling, :func:`evaluate`), ``transform`` (the
transform).
"""

from .basis import ENUMERATION_LIMITS, SUBSETS, Polynomial, enumerate_basis
from .evaluation import Int64OverflowError, evaluate
from .fwl2 import reduces_to_outputs
from .plan import ContractionPlan, plan_contraction
from .transform import AddEquivariantPolynomials

__all__ = [
    "ENUMERATION_LIMITS",
    "SUBSETS",
    "AddEquivariantPolynomials",
    "ContractionPlan",
    "Int64OverflowError",
    "Polynomial",
    "enumerate_basis",
    "evaluate",
    "plan_contraction",
    "reduces_to_outputs",
]
