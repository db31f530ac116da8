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

import functools
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import format_bytes
from .canonical import canonical_form
from .plan import ContractionPlan

_KEY_LIMIT = 1 << 62
# Position maps (a dense array over the whole key space) replace binary search when the key space
# is at most this large and not much larger than the table itself.
_MAP_LIMIT = 1 << 24
_MAP_RATIO = 64


class KeySpace:
    """Compact integer keys for tuples of nodes of the same graph.

    A k-tuple of nodes of graph g gets key ``offset_k[g] + mixed-radix(local ids, base n_g)``, so
    keys of a batch of small graphs fill ``sum_g n_g^k`` values: small enough for dense position
    maps on molecule batches, and free of overflow for any batch whose graphs are not huge.
    Key order equals lexicographic order of the global node ids.
    """

    def __init__(self, batch: Tensor, ptr: Tensor, sizes: Tensor) -> None:
        self.batch = batch
        self.ptr = ptr
        self.sizes = sizes
        self.num_nodes = batch.numel()
        self._local = torch.arange(self.num_nodes, device=batch.device) - ptr[batch]
        self._node_size = sizes[batch]
        self._offsets: dict[int, tuple[Tensor, int]] = {}
        self._scaled: dict[int, Tensor] = {0: self._local}
        self._row_base: dict[int, Tensor] = {}

    def offsets(self, arity: int) -> tuple[Tensor, int]:
        """Per-graph key offsets for ``arity``-tuples and the size of the key space."""
        if arity not in self._offsets:
            powers = [int(n) ** arity for n in self.sizes.tolist()]
            total = sum(powers)
            if total >= _KEY_LIMIT:
                raise ValueError(
                    f"a sparse table over {arity} pattern nodes needs sum of n_g ** {arity} < "
                    f"2**62 over the graphs, got {total}; evaluate fewer or smaller graphs at once"
                )
            offsets = torch.zeros(len(powers), dtype=torch.long, device=self.batch.device)
            if len(powers) > 1:
                offsets[1:] = (
                    torch.tensor(powers[:-1], dtype=torch.long).cumsum(0).to(self.batch.device)
                )
            self._offsets[arity] = (offsets, total)
        return self._offsets[arity]

    def _scaled_local(self, power: int) -> Tensor:
        # local id times (graph size ** power): a node's contribution at one key position.
        if power not in self._scaled:
            self._scaled[power] = self._local * self._node_size**power
        return self._scaled[power]

    def key(self, columns: list[Tensor]) -> Tensor:
        """Keys of node tuples given column-wise (all nodes of a row in one graph)."""
        arity = len(columns)
        if arity not in self._row_base:
            offsets, _ = self.offsets(arity)
            self._row_base[arity] = offsets[self.batch] + self._scaled_local(arity - 1)
        key = self._row_base[arity][columns[0]]
        for position, column in enumerate(columns[1:], start=1):
            key = key + self._scaled_local(arity - 1 - position)[column]
        return key


class Table:
    """Sparse table over ``k >= 2`` columns with unique rows, plus cached indexes."""

    def __init__(
        self,
        idx: Tensor,
        vals: Tensor,
        keys: KeySpace,
        sorted_rows: bool = False,
        allow_map: bool = False,
    ) -> None:
        self.idx = idx
        self.vals = vals
        self.keys = keys
        # Rows in key order (hence grouped by column 0): the CSR over column 0 needs no permutation.
        self.sorted_rows = sorted_rows
        # Position maps pay off for the adjacency tables that every polynomial looks up; derived
        # tables (often kept in the memo) use binary search rather than hold a map each.
        self.allow_map = allow_map
        self._indexes: dict[object, object] = {}

    @property
    def nnz(self) -> int:
        return self.vals.numel()

    @property
    def arity(self) -> int:
        return self.idx.shape[0]

    def sorted_by(self, columns: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Keys over ``columns`` in ascending order and the row permutation that sorts them."""
        cached = self._indexes.get(columns)
        if cached is None:
            keys, perm = torch.sort(self.keys.key([self.idx[c] for c in columns]), stable=True)
            cached = (keys, perm)
            self._indexes[columns] = cached
        return cached

    def csr(self, column: int) -> tuple[Tensor, Tensor | None]:
        """Row pointer over graph nodes for one column and the permutation grouping rows
        (``None`` when the rows are already grouped)."""
        name = ("csr", column)
        cached = self._indexes.get(name)
        if cached is None:
            if column == 0 and self.sorted_rows:
                perm = None
            else:
                perm = torch.argsort(self.idx[column], stable=True)
            counts = torch.bincount(self.idx[column], minlength=self.keys.num_nodes)
            rowptr = torch.zeros(counts.numel() + 1, dtype=torch.long, device=counts.device)
            rowptr[1:] = torch.cumsum(counts, 0)
            cached = (rowptr, perm)
            self._indexes[name] = cached
        return cached

    def position_map(self) -> Tensor | None:
        """Dense key -> row map (-1 where absent), or None when the key space is too large."""
        name = "map"
        if name not in self._indexes:
            _, total = self.keys.offsets(self.arity)
            if not self.allow_map or total > _MAP_LIMIT or total > _MAP_RATIO * max(self.nnz, 1024):
                self._indexes[name] = None
            else:
                positions = torch.full((total,), -1, dtype=torch.long, device=self.vals.device)
                row_keys = self.keys.key([self.idx[c] for c in range(self.arity)])
                positions[row_keys] = torch.arange(self.nnz, device=self.vals.device)
                self._indexes[name] = positions
        return self._indexes[name]

    def with_values(self, vals: Tensor) -> Table:
        """Same support, new values; shares the indexes (they depend only on idx)."""
        other = Table(self.idx, vals, self.keys, self.sorted_rows, self.allow_map)
        other._indexes = self._indexes
        return other

    def rows_at(self, columns: list[Tensor]) -> Tensor:
        """Row of the table holding each queried node tuple, or -1."""
        query = self.keys.key(columns)
        positions = self.position_map()
        if positions is not None:
            return positions[query]
        keys, perm = self.sorted_by(tuple(range(self.arity)))
        if keys.numel() == 0:
            return torch.full_like(query, -1)
        pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
        return torch.where(keys[pos] == query, perm[pos], torch.full_like(pos, -1))


class _Join:
    """Rows of a partial join: one column of graph nodes per pattern node, and values.

    ``origin`` remembers the row of the starting table each row descends from, so a join whose
    result lives on the starting table's support can be summed without sorting.
    """

    def __init__(
        self,
        variables: list[int],
        columns: list[Tensor],
        vals: Tensor,
        budget: int | None = None,
        label: str = "",
    ) -> None:
        self.variables = variables
        self.columns = columns
        self.vals = vals
        self.origin = torch.arange(vals.numel(), device=vals.device)
        self.budget = budget
        self.label = label

    def column(self, var: int) -> Tensor:
        return self.columns[self.variables.index(var)]

    def prune(self, needed: set[int]) -> None:
        """Drop the columns of pattern nodes that nothing later reads."""
        kept = [k for k, v in enumerate(self.variables) if v in needed]
        if len(kept) < len(self.variables):
            self.variables = [self.variables[k] for k in kept]
            self.columns = [self.columns[k] for k in kept]

    def _check_budget(self, num_rows: int, num_columns: int) -> None:
        """Refuse a join that would allocate more than ``budget`` bytes, before allocating it."""
        if self.budget is None:
            return
        # Per row: its node columns and origin, three index temporaries of the fan-out, a value.
        needed = num_rows * ((num_columns + 4) * 8 + self.vals.element_size())
        if needed > self.budget:
            raise ValueError(
                f"sparse evaluation of {self.label or 'a polynomial'} needs a join of "
                f"{num_rows:,} rows (about {format_bytes(needed)}) at one elimination step, "
                f"over sparse_budget={self.budget:,} bytes: the graph has nodes of high degree "
                "(the join grows like degree ** pattern nodes). Raise sparse_budget in "
                "gnnagg.poly.evaluate, use backend='dense' for small graphs, or drop this pattern."
            )

    def keep(self, mask: Tensor) -> None:
        self.columns = [c[mask] for c in self.columns]
        self.vals = self.vals[mask]
        self.origin = self.origin[mask]

    def multiply_vector(self, var: int, vector: Tensor) -> None:
        self.vals = self.vals * vector[self.column(var)]

    def lookup(self, scope: tuple[int, ...], table: Table) -> None:
        """Multiply by a table whose pattern nodes are all present (rows it lacks drop out)."""
        rows = table.rows_at([self.column(v) for v in scope])
        hit = rows >= 0
        self.keep(hit)
        self.vals = self.vals * table.vals[rows[hit]]

    def expand(self, scope: tuple[int, ...], table: Table) -> None:
        """Join with a table sharing some pattern nodes: each row fans out to its matches."""
        shared = tuple(k for k, v in enumerate(scope) if v in self.variables)
        fresh = [k for k, v in enumerate(scope) if v not in self.variables]
        if len(shared) == 1:
            rowptr, perm = table.csr(shared[0])
            query = self.column(scope[shared[0]])
            lo = rowptr[query]
            counts = rowptr[query + 1] - lo
        else:
            keys, perm = table.sorted_by(shared)
            query = table.keys.key([self.column(scope[k]) for k in shared])
            lo = torch.searchsorted(keys, query)
            counts = torch.searchsorted(keys, query, right=True) - lo
        device = query.device
        self._check_budget(int(counts.sum()), len(self.columns) + len(fresh))
        rows = torch.repeat_interleave(torch.arange(query.numel(), device=device), counts)
        # Row r's matches are lo[r], lo[r] + 1, ...: a running index shifted per source row.
        shift = torch.repeat_interleave(lo - (torch.cumsum(counts, 0) - counts), counts)
        matches = torch.arange(rows.numel(), device=device) + shift
        if perm is not None:
            matches = perm[matches]
        self.columns = [c[rows] for c in self.columns] + [table.idx[k][matches] for k in fresh]
        self.variables = self.variables + [scope[k] for k in fresh]
        self.vals = self.vals[rows] * table.vals[matches]
        self.origin = self.origin[rows]


Value = Tensor | Table  # a vector [N], a per-graph scalar [B], or a sparse table
_MASK_CODE = 1000  # marks the "outputs are an edge" factor in memo keys; A-edges use 1..999


@dataclass(frozen=True)
class _Step:
    """Sum out pattern node ``eliminate`` from the factors ``inputs``, making factor ``output``.

    ``scope`` is the new factor's pattern nodes (empty: a per-graph scalar). ``start`` is a guard
    over exactly ``scope`` to start the join from, so the result lives on its support. ``memo``
    identifies the value: the sub-pattern the new factor sums over, with ``scope`` as outputs.
    """

    eliminate: int
    inputs: tuple[int, ...]
    output: int
    scope: tuple[int, ...]
    start: int | None
    memo: tuple


@dataclass(frozen=True)
class _Program:
    """A contraction plan unrolled into factor ids (the data-independent part of evaluation)."""

    sources: tuple[tuple[int, tuple[int, ...], tuple], ...]
    steps: tuple[_Step, ...]
    results: tuple[int, ...]
    scopes: tuple[tuple[int, ...], ...]


@functools.cache
def compile_program(plan: ContractionPlan) -> _Program:
    """Unroll ``plan``: which factors each elimination joins, and guards to sample on."""
    scopes: list[tuple[int, ...]] = []
    patterns: list[tuple[frozenset, dict]] = []  # (pattern nodes, {(a, b): code})
    sources: list[tuple[int, tuple[int, ...], tuple]] = []
    steps: list[_Step] = []
    results: list[int] = []

    def new_factor(scope, nodes, edges) -> int:
        scopes.append(tuple(scope))
        patterns.append((frozenset(nodes), edges))
        return len(scopes) - 1

    for component in plan.components:
        live: list[int] = []
        for u, v, mult in component.edges:
            fid = new_factor((u, v), (u, v), {(u, v): mult})
            sources.append((fid, (u, v), ("edge", mult)))
            live.append(fid)
        for u, mult in component.loops:
            fid = new_factor((u,), (u,), {(u, u): mult})
            sources.append((fid, (u,), ("loop", mult)))
            live.append(fid)
        if plan.masked_outputs and len(component.outputs) == 2:
            a, b = sorted(component.outputs)
            fid = new_factor(component.outputs, component.outputs, {(a, b): _MASK_CODE})
            sources.append((fid, component.outputs, ("mask",)))
            live.append(fid)
        for v in component.order:
            mentioning = [f for f in live if v in scopes[f]]
            around = {u for f in mentioning for u in scopes[f]} - {v}
            guards = [f for f in live if v not in scopes[f] and set(scopes[f]) <= around]
            inputs = mentioning + guards
            exact = [f for f in guards if len(scopes[f]) >= 2 and set(scopes[f]) == around]
            start = exact[0] if exact else None
            scope = scopes[start] if start is not None else tuple(sorted(around))
            nodes: set[int] = set()
            edges: dict[tuple[int, int], int] = {}
            for f in inputs:
                nodes |= patterns[f][0]
                for pair, code in patterns[f][1].items():
                    edges[pair] = edges.get(pair, 0) + code
            output = new_factor(scope, nodes, edges)
            steps.append(
                _Step(v, tuple(inputs), output, scope, start, _memo_key(nodes, edges, scope))
            )
            live = [f for f in live if f not in inputs] + [output]
        results.extend(live)
    return _Program(tuple(sources), tuple(steps), tuple(results), tuple(scopes))


def _memo_key(nodes: set[int], edges: dict[tuple[int, int], int], scope: tuple[int, ...]):
    ordered = sorted(nodes)
    local = {v: k for k, v in enumerate(ordered)}
    roles: list[int | None] = [None] * len(ordered)
    for position, v in enumerate(scope):
        roles[local[v]] = position
    counts = {}
    for (a, b), code in edges.items():
        x, y = sorted((local[a], local[b]))
        counts[(x, y)] = code
    return canonical_form(len(ordered), counts, roles)[1]


class SparseEvaluator:
    """Evaluates contraction plans on one block-diagonal graph, sharing work between them.

    Factors that sum over the same sub-pattern are computed once per evaluator (a memo bounded by
    ``memo_bytes``, least recently used first out). Sub-patterns are compared as undirected
    graphs, so the memo is only used when A is symmetric.
    """

    def __init__(
        self,
        edge_index: Tensor,
        edge_weight: Tensor,
        batch: Tensor,
        ptr: Tensor,
        sizes: Tensor,
        memo_bytes: int = 1 << 28,
        join_budget: int | None = None,
    ) -> None:
        self.num_nodes = batch.numel()
        self.num_graphs = sizes.numel()
        self.batch = batch
        self.dtype = edge_weight.dtype
        self.device = edge_weight.device
        self.keys = KeySpace(batch, ptr, sizes)
        key = self.keys.key([edge_index[0], edge_index[1]])
        unique_keys, inverse = torch.unique(key, sorted=True, return_inverse=True)
        first = torch.empty(unique_keys.numel(), dtype=torch.long, device=self.device)
        first[inverse] = torch.arange(inverse.numel(), device=self.device)
        idx = edge_index[:, first]
        weights = torch.zeros(unique_keys.numel(), dtype=self.dtype, device=self.device)
        weights.index_add_(0, inverse, edge_weight)
        self.edge_to_unique = inverse
        self.adjacency = Table(idx, weights, self.keys, sorted_rows=True, allow_map=True)
        self.adjacency._indexes[(0, 1)] = (
            unique_keys,
            torch.arange(unique_keys.numel(), device=self.device),
        )
        self.mask = self.adjacency.with_values(torch.ones_like(weights))
        diagonal = torch.zeros(self.num_nodes, dtype=self.dtype, device=self.device)
        on_diagonal = idx[0] == idx[1]
        diagonal.index_add_(0, idx[0][on_diagonal], weights[on_diagonal])
        self.diagonal = diagonal
        self._powers: dict[int, Table] = {1: self.adjacency}
        self.symmetric = self._is_symmetric()
        self.memo_bytes = memo_bytes
        # Most bytes one join may allocate (None: unbounded); see _Join._check_budget.
        self.join_budget = join_budget
        self._label = ""
        self._memo: OrderedDict[tuple, Value] = OrderedDict()
        self._memo_used = 0

    def _is_symmetric(self) -> bool:
        rows = self.adjacency.rows_at([self.adjacency.idx[1], self.adjacency.idx[0]])
        if bool(torch.any(rows < 0)):
            return False
        return bool(torch.equal(self.adjacency.vals[rows], self.adjacency.vals))

    def _power(self, multiplicity: int) -> Table:
        # Parallel pattern edges read the same entry several times: an elementwise power.
        if multiplicity not in self._powers:
            self._powers[multiplicity] = self.adjacency.with_values(
                self.adjacency.vals**multiplicity
            )
        return self._powers[multiplicity]

    def _source(self, source: tuple) -> Value:
        if source[0] == "edge":
            return self._power(source[1])
        if source[0] == "loop":
            return self.diagonal ** source[1]
        return self.mask

    def _segment_sum(self, vector: Tensor) -> Tensor:
        out = torch.zeros(self.num_graphs, dtype=vector.dtype, device=self.device)
        return out.index_add_(0, self.batch, vector)

    def _remember(self, key: tuple, value: Value) -> None:
        if isinstance(value, Table):
            size = value.idx.numel() * value.idx.element_size() + value.vals.numel() * 8
        else:
            size = value.numel() * value.element_size()
        if size > self.memo_bytes:
            return
        self._memo[key] = value
        self._memo_used += size
        while self._memo_used > self.memo_bytes:
            _, dropped = self._memo.popitem(last=False)
            if isinstance(dropped, Table):
                self._memo_used -= dropped.idx.numel() * dropped.idx.element_size()
                self._memo_used -= dropped.vals.numel() * 8
            else:
                self._memo_used -= dropped.numel() * dropped.element_size()

    def _run_step(self, step: _Step, scopes, values: dict[int, Value]) -> Value:
        if self.symmetric and step.memo in self._memo:
            self._memo.move_to_end(step.memo)
            return self._memo[step.memo]
        vectors = [(scopes[f], values[f]) for f in step.inputs if len(scopes[f]) == 1]
        tables = [(scopes[f], values[f]) for f in step.inputs if len(scopes[f]) >= 2]
        if not step.scope:
            product = torch.ones(self.num_nodes, dtype=self.dtype, device=self.device)
            for _, vector in vectors:
                product = product * vector
            result: Value = self._segment_sum(product)
        else:
            if step.start is not None:
                table_ids = [f for f in step.inputs if len(scopes[f]) >= 2]
                position = table_ids.index(step.start)
            else:
                position = min(range(len(tables)), key=lambda k: tables[k][1].nnz)
            first_scope, first = tables.pop(position)
            join = _Join(
                list(first_scope),
                [first.idx[k] for k in range(len(first_scope))],
                first.vals,
                self.join_budget,
                self._label,
            )
            wanted = set() if step.start is not None else set(step.scope)
            while True:
                present = set(join.variables)
                for scope, vector in [f for f in vectors if f[0][0] in present]:
                    join.multiply_vector(scope[0], vector)
                vectors = [f for f in vectors if f[0][0] not in present]
                for scope, table in [f for f in tables if set(f[0]) <= present]:
                    join.lookup(scope, table)
                tables = [f for f in tables if not set(f[0]) <= present]
                if not tables:
                    break
                join.prune(wanted.union(*(f[0] for f in tables), *(f[0] for f in vectors)))
                present = set(join.variables)
                linked = [k for k, f in enumerate(tables) if set(f[0]) & present]
                scope, table = tables.pop(min(linked, key=lambda k: tables[k][1].nnz))
                join.expand(scope, table)
            result = self._marginal(join, step, first)
        if self.symmetric:
            self._remember(step.memo, result)
        return result

    def _marginal(self, join: _Join, step: _Step, first: Table) -> Value:
        """Sum the join over the eliminated node onto the new factor's scope."""
        if len(step.scope) == 1:
            out = torch.zeros(self.num_nodes, dtype=self.dtype, device=self.device)
            return out.index_add_(0, join.column(step.scope[0]), join.vals)
        if step.start is not None:
            vals = torch.zeros(first.nnz, dtype=self.dtype, device=self.device)
            return first.with_values(vals.index_add_(0, join.origin, join.vals))
        columns = [join.column(u) for u in step.scope]
        key = self.keys.key(columns)
        _, total = self.keys.offsets(len(columns))
        if total <= _MAP_LIMIT and total <= _MAP_RATIO * max(key.numel(), 1024):
            # Small key space: accumulate densely and read the support off, no sort needed.
            touched = torch.zeros(total, dtype=torch.bool, device=self.device)
            touched[key] = True
            support = touched.nonzero().view(-1)
            compact = torch.full((total,), -1, dtype=torch.long, device=self.device)
            compact[support] = torch.arange(support.numel(), device=self.device)
            inverse = compact[key]
            unique_keys = support
        else:
            unique_keys, inverse = torch.unique(key, sorted=True, return_inverse=True)
        vals = torch.zeros(unique_keys.numel(), dtype=self.dtype, device=self.device)
        vals.index_add_(0, inverse, join.vals)
        representative = torch.empty(unique_keys.numel(), dtype=torch.long, device=self.device)
        representative[inverse] = torch.arange(inverse.numel(), device=self.device)
        table = Table(
            torch.stack([c[representative] for c in columns]), vals, self.keys, sorted_rows=True
        )
        table._indexes[tuple(range(len(columns)))] = (
            unique_keys,
            torch.arange(unique_keys.numel(), device=self.device),
        )
        return table

    def evaluate(self, plan: ContractionPlan) -> Tensor:
        """Values of one polynomial: ``[B]``, ``[N]`` or ``[E_unique]`` by its order.

        Edge-level values are on the unique (sorted) edges; :attr:`edge_to_unique` maps the
        original edge list onto them.
        """
        poly = plan.polynomial
        self._label = repr(poly.name)
        program = compile_program(plan)
        scopes = program.scopes
        values: dict[int, Value] = {fid: self._source(src) for fid, _, src in program.sources}
        for step in program.steps:
            values[step.output] = self._run_step(step, scopes, values)
            for f in step.inputs:
                del values[f]
        scalars = torch.ones(self.num_graphs, dtype=self.dtype, device=self.device)
        final = []
        for fid in program.results:
            if scopes[fid]:
                final.append((scopes[fid], values[fid]))
            else:
                scalars = scalars * values[fid]
        if poly.order == 0:
            return scalars
        if poly.order == 1:
            result = scalars[self.batch]
            for _, vector in final:
                result = result * vector
            return result
        if not plan.masked_outputs:
            raise ValueError("the sparse evaluator computes edge-level values on edges only")
        first, second = poly.outputs
        src, dst = self.mask.idx[0], self.mask.idx[1]
        result = scalars[self.batch[src]]
        ends = {first: src, second: dst}
        for scope, factor in final:
            if len(scope) == 1:
                result = result * factor[ends[scope[0]]]
            elif factor.idx is self.mask.idx and scope == (first, second):
                result = result * factor.vals  # sampled on the edges: rows already aligned
            else:
                rows = factor.rows_at([ends[u] for u in scope])
                # Row -1 (absent) reads the appended zero.
                padded = torch.cat([factor.vals, factor.vals.new_zeros(1)])
                result = result * padded[torch.where(rows >= 0, rows, factor.nnz)]
        return result
