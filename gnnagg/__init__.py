"""gnnagg: aggregation operators for graph neural networks.

Layers, from the bottom up (nothing imports from a layer above it):

* :mod:`gnnagg.segment` -- reductions over groups of rows (CSR/COO), several backends.
* :mod:`gnnagg.monoids` -- learnable commutative monoids and their law checks.
* :mod:`gnnagg.aggr` -- PyG-compatible aggregation modules built on the two above.
* :mod:`gnnagg.poly` -- equivariant polynomial features (PyG transforms).
* :mod:`gnnagg.data` -- synthetic tasks and real data sets.
* :mod:`gnnagg.bench` -- the benchmark harness (``gnnagg-bench``).
"""

__version__ = "0.1.0"
