"""Dense evaluation on zero-padded per-graph blocks ``[b, n, n]``.

Used for all-pairs edge-level features (``AddEquivariantPolynomials.dense``) and as the
``backend="dense"`` alternative. Each elimination step of the plan is one einsum over the factors
that mention the summed-out node, so the largest intermediate is ``b * n^(width + 1)`` rather than
what a left-to-right einsum over all of H's edges would build. Padding nodes have no edges, so they
contribute nothing to any pattern component that has an edge; single-node components (the node
count, or an isolated output) use the node mask instead.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .plan import ContractionPlan

_LETTERS = "abcdefghijklmnopqrstuvwxy"  # "z" is the graph axis


def _einsum(factors: list[tuple[tuple[int, ...], Tensor]], keep: tuple[int, ...]) -> Tensor:
    names: dict[int, str] = {}
    for scope, _ in factors:
        for v in scope:
            names.setdefault(v, _LETTERS[len(names)])
    for v in keep:
        names.setdefault(v, _LETTERS[len(names)])
    # Vectors first: torch contracts left to right, and folding the cheap operands in early
    # keeps the intermediate no larger than the step's output times n.
    ordered = sorted(factors, key=lambda f: len(f[0]))
    spec = ",".join("z" + "".join(names[v] for v in scope) for scope, _ in ordered)
    spec += "->z" + "".join(names[v] for v in keep)
    return torch.einsum(spec, *[t for _, t in ordered])


class DenseEvaluator:
    """Evaluates contraction plans on padded dense adjacency blocks of one chunk of graphs."""

    def __init__(self, adjacency: Tensor, node_mask: Tensor) -> None:
        self.adjacency = adjacency
        self.node_mask = node_mask.to(adjacency.dtype)
        self.diagonal = adjacency.diagonal(dim1=1, dim2=2)
        self._powers: dict[int, Tensor] = {1: adjacency}

    def _power(self, multiplicity: int) -> Tensor:
        if multiplicity not in self._powers:
            self._powers[multiplicity] = self.adjacency**multiplicity
        return self._powers[multiplicity]

    def evaluate(self, plan: ContractionPlan) -> Tensor:
        """``[b]``, ``[b, n]`` or ``[b, n, n]`` (outputs in order) for one polynomial."""
        poly = plan.polynomial
        batch = self.adjacency.shape[0]
        final: list[tuple[tuple[int, ...], Tensor]] = []
        scalars = torch.ones(batch, dtype=self.adjacency.dtype, device=self.adjacency.device)
        for component in plan.components:
            if not component.edges and not component.loops:
                if not component.outputs:
                    scalars = scalars * self.node_mask.sum(1)
                continue  # an isolated output contributes the node mask, added below
            factors = [((u, v), self._power(m)) for u, v, m in component.edges]
            factors += [((u,), self.diagonal**m) for u, m in component.loops]
            for v in component.order:
                involved = [f for f in factors if v in f[0]]
                factors = [f for f in factors if v not in f[0]]
                keep = tuple(sorted({u for scope, _ in involved for u in scope} - {v}))
                if keep:
                    factors.append((keep, _einsum(involved, keep)))
                else:
                    scalars = scalars * _einsum(involved, ())
            final.extend(factors)
        final.append(((), scalars))
        for output in poly.outputs:
            final.append(((output,), self.node_mask))
        return _einsum(final, poly.outputs)
