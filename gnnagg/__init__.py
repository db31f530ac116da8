"""gnnagg: aggregation operators for graph neural networks, drop-in for PyTorch Geometric.

Layers, from the bottom up (nothing imports from a layer above it):

* :mod:`gnnagg.segment` -- reductions over groups of rows (CSR/COO), several backends.
* :mod:`gnnagg.monoids` -- learnable commutative monoids, tree reduction, law checks.
* :mod:`gnnagg.aggr` -- PyG ``Aggregation`` modules built on the two above.
* :mod:`gnnagg.poly` -- equivariant polynomial features (PyG transforms), beside the above.
* :mod:`gnnagg.attention` -- masked graph attention: masks, ``graph_attention``, one layer,
  beside the above.
* :mod:`gnnagg.data` -- synthetic tasks, meshes and mesh simulations, real data sets, beside.
* :mod:`gnnagg.models` -- graph transformers, MeshGraphNet, learned mesh simulators, above
  ``attention`` and ``data``.
* :mod:`gnnagg.bench` -- the benchmark harness (``gnnagg-bench``), on top.

``gnnagg._checks`` holds argument checks shared by every layer and imports nothing;
``gnnagg._torchscript`` makes every module refuse ``torch.jit.script`` with a clear error.

Every subpackage is an attribute of its own name: ``gnnagg.segment`` is the subpackage (the
reduction itself is ``gnnagg.segment.segment``, or ``from gnnagg.segment import segment``); no
re-export at the top level shadows a subpackage.
"""

from . import segment
from .aggr import GRUAggregation, LCMAggregation, LSTMAggregation, total_permutation_loss
from .monoids import ConjugatedSumMonoid, GRUMonoid, Monoid, SoftmaxMonoid, check_laws
from .segment import SegmentPlan, segment_softmax, use_backend

__version__ = "0.1.0"

__all__ = [
    "ConjugatedSumMonoid",
    "GRUAggregation",
    "GRUMonoid",
    "LCMAggregation",
    "LSTMAggregation",
    "Monoid",
    "SegmentPlan",
    "SoftmaxMonoid",
    "check_laws",
    "segment",
    "segment_softmax",
    "total_permutation_loss",
    "use_backend",
]
