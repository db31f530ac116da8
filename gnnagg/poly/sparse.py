"""Sparse evaluation: variable elimination over sparse tables on a block-diagonal batch.

All graphs of a batch are one block-diagonal graph with N nodes, so a single sparse pass serves
every graph and nothing crosses between graphs; per-graph numbers come from segment sums over the
``batch`` vector. Factors are

* per-graph scalars ``[B]`` (a component without outputs, fully summed out),
* dense vectors ``[N]`` over one pattern node,
* sparse tables over two or more pattern nodes: ``idx [k, nnz]`` (graph node ids) and ``vals``.

Summing out a pattern node v joins every factor that mentions v, plus every factor whose nodes
all lie in v's neighbourhood (a "guard": multiplying it in early costs nothing extra and restricts
the join to its support; this is what turns a matrix product into a product sampled on existing
edges). The join grows one table at a time by gathers over sorted keys (hash-join by binary
search), so its size stays near the number of partial homomorphisms, which for sparse graphs is
about N * degree^(nodes - 1). Tables over two nodes are what 2-FWL-computable patterns need; wider
tables (treewidth 3 patterns such as K4) work the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .plan import ComponentPlan, ContractionPlan

_KEY_LIMIT = 1 << 62


class Table:
    """Sparse table over ``k >= 2`` columns with unique rows, and cached sorted orders."""

    def __init__(self, idx: Tensor, vals: Tensor, num_nodes: int) -> None:
        self.idx = idx
        self.vals = vals
        self.num_nodes = num_nodes
        self._sorted: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}

    @property
    def nnz(self) -> int:
        return self.vals.numel()

    def key(self, columns: tuple[int, ...]) -> Tensor:
        return _composite_key([self.idx[c] for c in columns], self.num_nodes)

    def sorted_by(self, columns: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Keys over ``columns`` in ascending order and the row permutation that sorts them."""
        cached = self._sorted.get(columns)
        if cached is None:
            keys, perm = torch.sort(self.key(columns), stable=True)
            cached = (keys, perm)
            self._sorted[columns] = cached
        return cached

    def with_values(self, vals: Tensor) -> Table:
        """Same support, new values; shares the sort cache (sorting depends only on idx)."""
        other = Table(self.idx, vals, self.num_nodes)
        other._sorted = self._sorted
        return other


def _composite_key(columns: list[Tensor], num_nodes: int) -> Tensor:
    if num_nodes ** len(columns) >= _KEY_LIMIT:
        raise ValueError(
            f"a sparse table over {len(columns)} pattern nodes needs num_nodes ** "
            f"{len(columns)} < 2**62, but num_nodes={num_nodes}; evaluate fewer graphs at once"
        )
    key = columns[0].clone()
    for column in columns[1:]:
        key.mul_(num_nodes).add_(column)
    return key


class _Join:
    """Rows of a partial join: one column of graph nodes per pattern node, and values."""

    def __init__(self, variables: list[int], columns: list[Tensor], vals: Tensor) -> None:
        self.variables = variables
        self.columns = columns
        self.vals = vals

    def column(self, var: int) -> Tensor:
        return self.columns[self.variables.index(var)]

    def keep(self, mask: Tensor) -> None:
        self.columns = [c[mask] for c in self.columns]
        self.vals = self.vals[mask]

    def multiply_vector(self, var: int, vector: Tensor) -> None:
        self.vals = self.vals * vector[self.column(var)]

    def lookup(self, scope: tuple[int, ...], table: Table) -> None:
        """Multiply by a table whose pattern nodes are all present (rows it lacks drop out)."""
        keys, perm = table.sorted_by(tuple(range(len(scope))))
        query = _composite_key([self.column(v) for v in scope], table.num_nodes)
        pos = torch.searchsorted(keys, query).clamp_(max=max(keys.numel() - 1, 0))
        if keys.numel() == 0:
            self.keep(torch.zeros_like(query, dtype=torch.bool))
            return
        hit = keys[pos] == query
        self.keep(hit)
        self.vals = self.vals * table.vals[perm[pos[hit]]]

    def expand(self, scope: tuple[int, ...], table: Table) -> None:
        """Join with a table sharing some pattern nodes: each row fans out to its matches."""
        shared = tuple(k for k, v in enumerate(scope) if v in self.variables)
        fresh = [k for k, v in enumerate(scope) if v not in self.variables]
        keys, perm = table.sorted_by(shared)
        query = _composite_key([self.column(scope[k]) for k in shared], table.num_nodes)
        lo = torch.searchsorted(keys, query)
        hi = torch.searchsorted(keys, query, right=True)
        counts = hi - lo
        device = query.device
        rows = torch.repeat_interleave(torch.arange(query.numel(), device=device), counts)
        starts = torch.cumsum(counts, 0) - counts
        offsets = torch.arange(rows.numel(), device=device) - starts[rows]
        matches = perm[lo[rows] + offsets]
        self.columns = [c[rows] for c in self.columns] + [table.idx[k][matches] for k in fresh]
        self.variables = self.variables + [scope[k] for k in fresh]
        self.vals = self.vals[rows] * table.vals[matches]


Factor = tuple[tuple[int, ...], object]


class SparseEvaluator:
    """Evaluates contraction plans on one (block-diagonal) graph with shared adjacency tables."""

    def __init__(
        self,
        edge_index: Tensor,
        edge_weight: Tensor,
        num_nodes: int,
        batch: Tensor,
        num_graphs: int,
    ) -> None:
        self.num_nodes = num_nodes
        self.batch = batch
        self.num_graphs = num_graphs
        self.dtype = edge_weight.dtype
        self.device = edge_weight.device
        key = edge_index[0] * num_nodes + edge_index[1]
        unique_keys, inverse = torch.unique(key, sorted=True, return_inverse=True)
        weights = torch.zeros(unique_keys.numel(), dtype=self.dtype, device=self.device)
        weights.index_add_(0, inverse, edge_weight)
        idx = torch.stack([unique_keys // num_nodes, unique_keys % num_nodes])
        self.edge_to_unique = inverse
        self.adjacency = Table(idx, weights, num_nodes)
        self.adjacency._sorted[(0, 1)] = (
            unique_keys, torch.arange(unique_keys.numel(), device=self.device)
        )
        self.mask = self.adjacency.with_values(torch.ones_like(weights))
        diagonal = torch.zeros(num_nodes, dtype=self.dtype, device=self.device)
        on_diagonal = idx[0] == idx[1]
        diagonal.index_add_(0, idx[0][on_diagonal], weights[on_diagonal])
        self.diagonal = diagonal
        self._powers: dict[int, Table] = {1: self.adjacency}

    def _power(self, multiplicity: int) -> Table:
        # Parallel pattern edges read the same entry several times: an elementwise power.
        if multiplicity not in self._powers:
            self._powers[multiplicity] = self.adjacency.with_values(
                self.adjacency.vals**multiplicity
            )
        return self._powers[multiplicity]

    def _initial_factors(self, component: ComponentPlan, masked: bool) -> list[Factor]:
        factors: list[Factor] = []
        for u, v, mult in component.edges:
            factors.append(((u, v), self._power(mult)))
        for u, mult in component.loops:
            factors.append(((u,), self.diagonal**mult))
        if masked and len(component.outputs) == 2:
            factors.append((component.outputs, self.mask))
        return factors

    def _segment_sum(self, vector: Tensor) -> Tensor:
        out = torch.zeros(self.num_graphs, dtype=vector.dtype, device=self.device)
        return out.index_add_(0, self.batch, vector)

    def _eliminate(self, factors: list[Factor], v: int) -> tuple[list[Factor], Tensor | None]:
        """Sum out pattern node v; returns the new factor list and a scalar if one was made."""
        mentioning = [f for f in factors if v in f[0]]
        neighbourhood = {u for scope, _ in mentioning for u in scope} - {v}
        guards = [f for f in factors if v not in f[0] and set(f[0]) <= neighbourhood]
        rest = [f for f in factors if v not in f[0] and not set(f[0]) <= neighbourhood]
        involved = mentioning + guards
        vectors = [f for f in involved if len(f[0]) == 1]
        tables = [f for f in involved if len(f[0]) >= 2]
        if not neighbourhood:
            product = torch.ones(self.num_nodes, dtype=self.dtype, device=self.device)
            for _, vector in vectors:
                product = product * vector
            return rest, self._segment_sum(product)
        tables.sort(key=lambda f: f[1].nnz)
        first_scope, first = tables.pop(0)
        join = _Join(list(first_scope), [first.idx[k] for k in range(len(first_scope))],
                     first.vals)
        while True:
            for f in [f for f in vectors if f[0][0] in join.variables]:
                join.multiply_vector(f[0][0], f[1])
                vectors.remove(f)
            for f in [f for f in tables if set(f[0]) <= set(join.variables)]:
                join.lookup(f[0], f[1])
                tables.remove(f)
            if not tables:
                break
            linked = [f for f in tables if set(f[0]) & set(join.variables)]
            scope, table = min(linked, key=lambda f: f[1].nnz)
            join.expand(scope, table)
            tables.remove((scope, table))
        keep = tuple(sorted(neighbourhood))
        if len(keep) == 1:
            out = torch.zeros(self.num_nodes, dtype=self.dtype, device=self.device)
            out.index_add_(0, join.column(keep[0]), join.vals)
            return [*rest, (keep, out)], None
        key = _composite_key([join.column(u) for u in keep], self.num_nodes)
        unique_keys, inverse = torch.unique(key, sorted=True, return_inverse=True)
        vals = torch.zeros(unique_keys.numel(), dtype=self.dtype, device=self.device)
        vals.index_add_(0, inverse, join.vals)
        columns = []
        remainder = unique_keys
        for _ in keep:
            columns.append(remainder % self.num_nodes)
            remainder = remainder // self.num_nodes
        table = Table(torch.stack(columns[::-1]), vals, self.num_nodes)
        table._sorted[tuple(range(len(keep)))] = (
            unique_keys, torch.arange(unique_keys.numel(), device=self.device)
        )
        return [*rest, (keep, table)], None

    def _run_component(
        self, component: ComponentPlan, masked: bool
    ) -> tuple[list[Factor], Tensor | None]:
        factors = self._initial_factors(component, masked)
        scalar = None
        for v in component.order:
            factors, made = self._eliminate(factors, v)
            if made is not None:
                scalar = made
        return factors, scalar

    def evaluate(self, plan: ContractionPlan) -> Tensor:
        """Values of one polynomial: ``[B]``, ``[N]`` or ``[E_unique]`` by its order.

        Edge-level values are on the unique (sorted) edges; :attr:`edge_to_unique` maps the
        original edge list onto them.
        """
        poly = plan.polynomial
        scalars = torch.ones(self.num_graphs, dtype=self.dtype, device=self.device)
        final: list[Factor] = []
        for component in plan.components:
            if not component.order and not component.edges and not component.loops:
                continue  # an isolated output node: the constant 1
            factors, scalar = self._run_component(component, plan.masked_outputs)
            if scalar is not None:
                scalars = scalars * scalar
            final.extend(factors)
        if poly.order == 0:
            return scalars
        if poly.order == 1:
            values = scalars[self.batch]
            for _, vector in final:
                values = values * vector
            return values
        if not plan.masked_outputs:
            raise ValueError("the sparse evaluator computes edge-level values on edges only")
        first, second = poly.outputs
        src, dst = self.mask.idx[0], self.mask.idx[1]
        join = _Join([first, second], [src, dst], scalars[self.batch[src]])
        for scope, factor in final:
            if len(scope) == 1:
                join.multiply_vector(scope[0], factor)
        values = join.vals
        for scope, factor in final:
            if len(scope) == 2:
                values = values * _values_on(factor, join.column(scope[0]),
                                             join.column(scope[1]))
        return values


def _values_on(table: Table, rows: Tensor, cols: Tensor) -> Tensor:
    """Table values at the given node pairs (zero where the table has no entry)."""
    keys, perm = table.sorted_by((0, 1))
    query = rows * table.num_nodes + cols
    out = torch.zeros(query.numel(), dtype=table.vals.dtype, device=query.device)
    if keys.numel() == 0:
        return out
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    hit = keys[pos] == query
    out[hit] = table.vals[perm[pos[hit]]]
    return out
