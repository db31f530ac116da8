"""``AddEquivariantPolynomials``: a PyG transform that attaches polynomial features.

For each requested order it writes one attribute: ``poly_graph [B, C0]`` (``B = 1`` for a single
``Data``), ``poly_x [N, C1]`` and ``poly_edge_attr [E, C2]`` (edge-level values on the existing
edges, in ``edge_index`` order). ``T.dense(data)`` gives edge-level values for all node pairs,
``[N, N, C2]`` for a ``Data`` and ``[B, n_max, n_max, C2]`` (zero-padded, like ``to_dense_adj``)
for a batch.

A ``Batch`` (or any ``Data`` with a ``batch`` vector) is treated as separate graphs: the sparse
evaluator works on the block-diagonal graph, dense blocks are per graph. On a ``Batch`` the slice
bookkeeping is extended so that ``to_data_list()`` carries the new attributes too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.transforms import BaseTransform

from .._checks import check_choice
from .basis import Polynomial, check_order, enumerate_basis
from .evaluation import GraphBatch, evaluate_on
from .plan import BACKENDS

NORMALIZATIONS = (None, "density", "log1p")
ATTRIBUTES = {0: "poly_graph", 1: "poly_x", 2: "poly_edge_attr"}
#: What ``dtype=`` may ask for.
OUTPUT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64)


class AddEquivariantPolynomials(BaseTransform):
    """Add equivariant polynomial features (Puny et al. 2023) to graphs.

    Args:
        max_degree: largest pattern degree (number of edges), >= 0 and at most
            :data:`~gnnagg.poly.basis.ENUMERATION_LIMITS` for the options (7 or 8 by default).
        orders: which outputs to add: 0 (``poly_graph``), 1 (``poly_x``), 2 (``poly_edge_attr``).
        subset: ``None``/``"all"``, ``"beyond-2fwl"`` or ``"within-2fwl"``
            (see :func:`~gnnagg.poly.enumerate_basis`).
        connected: only connected patterns (default).
        simple: only simple patterns (default); ``False`` adds multigraph patterns.
        edge_weight: name of a data attribute with one scalar weight per edge (``[E]`` or
            ``[E, 1]``) to use as the entries of A; default ``None`` uses a 0/1 adjacency.
        backend: ``"sparse"`` (default; scales to large sparse graphs) or ``"dense"``
            (padded per-graph blocks; can be faster for small dense graphs).
        normalize: ``None`` (default, raw counts), ``"density"`` (each channel divided by
            ``n ** (number of non-output pattern nodes)``, n the graph's node count: a
            homomorphism density, comparable across graph sizes) or ``"log1p"``
            (``sign(x) * log(1 + |x|)``).
        dtype: the features' dtype; default ``None``: ``torch.get_default_dtype()`` when the
            transform runs (float32 unless changed), so they concatenate with the rest of a
            model's inputs. Values are computed exactly (in float64: exact integer counts
            below 2^53; in int64 for ``dtype=torch.int64``) and rounded once, to ``dtype``:
            ``torch.float64``, ``torch.float32``, ``torch.float16``, ``torch.bfloat16`` or
            ``torch.int64``.

    Attributes:
        basis: ``{order: [Polynomial, ...]}``, the channels in output order.
    """

    def __init__(
        self,
        max_degree: int = 6,
        orders: Sequence[int] = (0, 1, 2),
        subset: str | None = None,
        *,
        connected: bool = True,
        simple: bool = True,
        edge_weight: str | None = None,
        backend: str = "sparse",
        normalize: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        orders = _check_orders(orders)
        basis = {
            order: enumerate_basis(
                max_degree, order, connected=connected, subset=subset, simple=simple
            )
            for order in orders
        }
        self._setup(basis, edge_weight, backend, normalize, dtype)
        self.max_degree = max_degree
        self.subset = subset
        self.connected, self.simple = connected, simple

    @classmethod
    def from_polynomials(
        cls,
        polynomials: Sequence[Polynomial],
        orders: Sequence[int] | None = None,
        *,
        edge_weight: str | None = None,
        backend: str = "sparse",
        normalize: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> AddEquivariantPolynomials:
        """A transform with an explicit list of polynomials (grouped by their order).

        ``orders`` defaults to the orders present; listing an order without polynomials gives
        an attribute with zero channels.
        """
        polynomials = list(polynomials)
        for poly in polynomials:
            if not isinstance(poly, Polynomial):
                raise TypeError(
                    f"polynomials must hold Polynomial objects, got {type(poly).__name__}"
                )
        if orders is None:
            orders = sorted({p.order for p in polynomials})
        orders = _check_orders(orders)
        extra = sorted({p.order for p in polynomials} - set(orders))
        if extra:
            raise ValueError(f"polynomials have orders {extra} that are not in orders={orders}")
        basis = {order: [p for p in polynomials if p.order == order] for order in orders}
        transform = cls.__new__(cls)
        transform._setup(basis, edge_weight, backend, normalize, dtype)
        transform.max_degree = max((p.degree for p in polynomials), default=0)
        transform.subset = None
        transform.connected = transform.simple = None
        return transform

    def _setup(
        self,
        basis: dict[int, list[Polynomial]],
        edge_weight: str | None,
        backend: str,
        normalize: str | None,
        dtype: torch.dtype | None,
    ) -> None:
        if edge_weight is not None and not isinstance(edge_weight, str):
            raise TypeError(
                f"edge_weight must be an attribute name (str) or None, got "
                f"{type(edge_weight).__name__}"
            )
        backend = check_choice(backend, "backend", BACKENDS)
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if dtype is not None and dtype not in OUTPUT_DTYPES:
            raise ValueError(f"dtype must be None or one of {OUTPUT_DTYPES}, got {dtype}")
        if normalize is not None and dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"normalize={normalize!r} needs a floating dtype, got {dtype}")
        self.basis = basis
        self.orders = tuple(basis)
        self.edge_weight = edge_weight
        self.backend = backend
        self.normalize = normalize
        #: The dtype asked for (``None``: the default dtype when the transform runs).
        self.dtype = dtype
        # Counts are computed exactly, then rounded once to the output dtype.
        self._exact_dtype = torch.int64 if dtype == torch.int64 else torch.float64

    @property
    def output_dtype(self) -> torch.dtype:
        """The dtype of the features: ``dtype``, or ``torch.get_default_dtype()`` now."""
        return self.dtype if self.dtype is not None else torch.get_default_dtype()

    def names(self, order: int) -> list[str]:
        """Channel names for one order, in output column order."""
        check_order(order)
        if order not in self.basis:
            raise ValueError(f"order {order} is not among this transform's orders {self.orders}")
        return [p.name for p in self.basis[order]]

    def _graphs(self, data: Data) -> tuple[GraphBatch, bool]:
        if not isinstance(data, Data):
            raise TypeError(
                f"data must be a torch_geometric Data or Batch, got {type(data).__name__}"
            )
        edge_index = data.edge_index
        if edge_index is None:
            # A graph stored without edges (PyG omits the attribute).
            device = data.x.device if isinstance(data.get("x"), Tensor) else None
            edge_index = torch.zeros(2, 0, dtype=torch.long, device=device)
        if data.num_nodes is None:
            raise ValueError("data has neither nodes it can count (x, num_nodes) nor edges")
        weight = None
        if self.edge_weight is not None:
            weight = getattr(data, self.edge_weight, None)
            if weight is None:
                raise ValueError(f"data has no attribute {self.edge_weight!r} (edge_weight)")
        batch = getattr(data, "batch", None)
        num_graphs = data.num_graphs if isinstance(data, Batch) else None
        graphs = GraphBatch(
            edge_index, int(data.num_nodes), weight, batch, num_graphs, self._exact_dtype
        )
        return graphs, batch is None

    def forward(self, data: Data) -> Data:
        """Compute the features and attach them to (a shallow copy of) ``data``."""
        graphs, _ = self._graphs(data)
        for order in self.orders:
            polynomials = self.basis[order]
            if polynomials:
                values = evaluate_on(
                    polynomials,
                    graphs,
                    order,
                    backend=self.backend,
                    dense_pairs=False,
                    single=False,
                )
                values = self._normalize(values, polynomials, graphs, order)
            else:
                rows = (graphs.num_graphs, graphs.num_nodes, graphs.edge_index.shape[1])[order]
                values = torch.zeros(rows, 0, device=graphs.device)
            data[ATTRIBUTES[order]] = values.to(self.output_dtype)
        if isinstance(data, Batch) and hasattr(data, "_slice_dict"):
            _register_batch_attributes(data, self.orders)
        return data

    def dense(self, data: Data) -> Tensor:
        """Edge-level features for all node pairs: ``[N, N, C2]`` or ``[B, n_max, n_max, C2]``."""
        if 2 not in self.basis:
            raise ValueError(f"dense() needs order 2 among the transform's orders {self.orders}")
        graphs, single = self._graphs(data)
        polynomials = self.basis[2]
        n_max = int(graphs.sizes.max()) if graphs.num_graphs else 0
        if not polynomials:
            shape = (graphs.num_nodes,) * 2 if single else (graphs.num_graphs, n_max, n_max)
            return torch.zeros(*shape, 0, dtype=self.output_dtype, device=graphs.device)
        values = evaluate_on(
            polynomials, graphs, 2, backend="dense", dense_pairs=True, single=single
        )
        if self.normalize == "density":
            sizes = graphs.sizes.to(values.dtype).clamp(min=1)
            exponents = _free_nodes(polynomials, values.dtype, graphs.device)
            scale = sizes[:, None] ** exponents[None, :]
            values = values / (scale[0] if single else scale[:, None, None, :])
        elif self.normalize == "log1p":
            values = torch.sign(values) * torch.log1p(values.abs())
        return values.to(self.output_dtype)

    def _normalize(
        self, values: Tensor, polynomials: list[Polynomial], graphs: GraphBatch, order: int
    ) -> Tensor:
        if self.normalize == "density":
            graph_of_row = (
                torch.arange(graphs.num_graphs, device=graphs.device),
                graphs.batch,
                graphs.batch[graphs.edge_index[0]],
            )[order]
            sizes = graphs.sizes.to(values.dtype).clamp(min=1)[graph_of_row]
            exponents = _free_nodes(polynomials, values.dtype, graphs.device)
            return values / sizes[:, None] ** exponents[None, :]
        if self.normalize == "log1p":
            return torch.sign(values) * torch.log1p(values.abs())
        return values

    def __repr__(self) -> str:
        # PyG compares repr(pre_transform) with the one saved beside processed data to decide
        # whether that data is stale, so everything that changes the output is in it, down to a
        # fingerprint of the polynomials themselves (``from_polynomials`` lists of one size).
        channels = ", ".join(f"{o}: {len(self.basis[o])}" for o in self.orders)
        names = "|".join(p.name for o in self.orders for p in self.basis[o])
        fingerprint = hashlib.sha1(names.encode()).hexdigest()[:12]
        return (
            f"{self.__class__.__name__}(max_degree={self.max_degree}, orders={self.orders}, "
            f"subset={self.subset!r}, connected={self.connected}, simple={self.simple}, "
            f"edge_weight={self.edge_weight!r}, backend={self.backend!r}, "
            f"normalize={self.normalize!r}, dtype={self.output_dtype}, channels={{{channels}}}, "
            f"basis={fingerprint})"
        )


def _check_orders(orders: Sequence[int]) -> tuple[int, ...]:
    if isinstance(orders, int):
        raise TypeError("orders must be a sequence of ints such as (0, 1, 2), not an int")
    orders = tuple(orders)
    if not orders:
        raise ValueError("orders must not be empty")
    for order in orders:
        check_order(order, "orders")
    if len(set(orders)) != len(orders):
        raise ValueError(f"orders must not repeat, got {orders}")
    return tuple(sorted(orders))


def _free_nodes(polynomials: list[Polynomial], dtype: torch.dtype, device) -> Tensor:
    return torch.tensor([p.num_nodes - p.order for p in polynomials], dtype=dtype, device=device)


def _register_batch_attributes(batch: Batch, orders: tuple[int, ...]) -> None:
    """Extend a Batch's slice bookkeeping so ``get_example``/``to_data_list`` see the features."""
    num_graphs = batch.num_graphs
    device = batch.ptr.device if batch.ptr is not None else None
    slices = dict(batch._slice_dict)
    increments = dict(batch._inc_dict)
    zeros = torch.zeros(num_graphs, dtype=torch.long, device=device)
    for order in orders:
        name = ATTRIBUTES[order]
        if order == 0:
            slices[name] = torch.arange(num_graphs + 1, device=device)
        elif order == 1:
            slices[name] = batch.ptr
        else:
            slices[name] = slices["edge_index"]
        increments[name] = zeros
    # New dicts: the shallow copy made by BaseTransform must not change the caller's batch.
    batch._slice_dict = slices
    batch._inc_dict = increments
