"""The 2-FWL reduction test that defines the ``"beyond-2fwl"`` subset.

A 2-FWL / PPGN model computes a polynomial P_H itself when H reduces to its output nodes by
repeatedly eliminating a non-output node with at most two distinct neighbours and joining those
two neighbours (each such step is one matrix product or one Hadamard product, which is what a
2-FWL layer does). Parallel edges and self-loops add no neighbours. This is the same condition
under which :mod:`gnnagg.poly.evaluation` needs at most pairwise intermediate factors.

Eliminating a node with at most two neighbours takes a minor of H and the reducible graphs are
closed under minors (they are the graphs of treewidth at most two once the outputs are joined), so
the greedy order below decides reducibility regardless of which eligible node it picks first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def reduces_to_outputs(
    num_nodes: int, edges: Iterable[tuple[int, int]], outputs: Sequence[int]
) -> bool:
    """Whether the pattern on nodes ``0..num_nodes-1`` reduces to ``outputs``.

    ``edges`` may repeat pairs and contain self-loops; only distinct neighbours matter.
    """
    neighbours: list[set[int]] = [set() for _ in range(num_nodes)]
    for u, v in edges:
        if u != v:
            neighbours[u].add(v)
            neighbours[v].add(u)
    remaining = set(range(num_nodes)) - set(outputs)
    progress = True
    while remaining and progress:
        progress = False
        for v in sorted(remaining):
            if len(neighbours[v]) <= 2:
                others = list(neighbours[v])
                for u in others:
                    neighbours[u].discard(v)
                if len(others) == 2:
                    a, b = others
                    neighbours[a].add(b)
                    neighbours[b].add(a)
                neighbours[v].clear()
                remaining.discard(v)
                progress = True
    return not remaining


def elimination_width(
    num_nodes: int, edges: Iterable[tuple[int, int]], outputs: Sequence[int]
) -> int:
    """Smallest possible largest neighbour count over elimination orders of the non-outputs.

    This is the treewidth of H with its outputs joined into a clique (and at least the number of
    outputs minus one). It decides how wide the evaluation's intermediate factors must be.
    Computed exactly by dynamic programming over eliminated sets, fine for the <= 16 non-output
    nodes that basis elements have.
    """
    neighbours: list[set[int]] = [set() for _ in range(num_nodes)]
    for u, v in edges:
        if u != v:
            neighbours[u].add(v)
            neighbours[v].add(u)
    inner = [v for v in range(num_nodes) if v not in set(outputs)]
    if len(inner) > 16:
        raise ValueError(f"elimination_width: too many non-output nodes ({len(inner)} > 16)")
    position = {v: i for i, v in enumerate(inner)}

    def neighbours_after(eliminated: int, v: int) -> set[int]:
        # Nodes outside the eliminated set reachable from v through eliminated nodes only.
        seen = {v}
        stack = [v]
        found: set[int] = set()
        while stack:
            x = stack.pop()
            for y in neighbours[x]:
                if y in seen:
                    continue
                seen.add(y)
                if y in position and eliminated >> position[y] & 1:
                    stack.append(y)
                else:
                    found.add(y)
        return found

    full = (1 << len(inner)) - 1
    best = [num_nodes + 1] * (full + 1)
    best[0] = 0
    for state in range(full + 1):
        if best[state] > num_nodes:
            continue
        for v in inner:
            bit = 1 << position[v]
            if state & bit:
                continue
            width = max(best[state], len(neighbours_after(state, v)))
            if width < best[state | bit]:
                best[state | bit] = width
    return max(best[full], len(outputs) - 1)
