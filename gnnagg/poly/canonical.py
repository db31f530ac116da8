"""Canonical labelling of small multigraphs with designated output nodes.

The basis is enumerated up to isomorphism, and two pattern graphs must compare equal exactly when
they define the same polynomial. Pattern graphs have at most a dozen nodes, so a small
individualisation-refinement search (the idea behind nauty, without its automorphism machinery)
is fast enough and keeps :mod:`gnnagg.poly` free of compiled dependencies.

A pattern is described by its number of nodes, a multiset of edges given as
``{(u, v): multiplicity}`` with ``u <= v`` (``u == v`` is a self-loop), and ``roles``: for each node
its output position (0 or 1) or ``None``. Isomorphisms must map the i-th output to the i-th output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

EdgeCounts = Mapping[tuple[int, int], int]
Certificate = tuple


def _adjacency(num_nodes: int, edges: EdgeCounts) -> tuple[list[dict[int, int]], list[int]]:
    neighbours: list[dict[int, int]] = [{} for _ in range(num_nodes)]
    loops = [0] * num_nodes
    for (u, v), mult in edges.items():
        if u == v:
            loops[u] += mult
        else:
            neighbours[u][v] = neighbours[u].get(v, 0) + mult
            neighbours[v][u] = neighbours[v].get(u, 0) + mult
    return neighbours, loops


def _refine(colours: list, neighbours: list[dict[int, int]]) -> list[int]:
    """Colour refinement to the coarsest stable partition; colours become ranks 0, 1, ...

    The signature starts with the old colour, so the new ranks refine the old order, and the ranks
    depend only on label-invariant information.
    """
    ranks = {c: i for i, c in enumerate(sorted(set(colours)))}
    current = [ranks[c] for c in colours]
    num_cells = len(ranks)
    while True:
        signatures = [
            (current[v], tuple(sorted((current[u], m) for u, m in neighbours[v].items())))
            for v in range(len(current))
        ]
        ranks = {s: i for i, s in enumerate(sorted(set(signatures)))}
        current = [ranks[s] for s in signatures]
        if len(ranks) == num_cells:
            return current
        num_cells = len(ranks)


def _twin_classes(
    num_nodes: int, neighbours: list[dict[int, int]], loops: list[int], roles: Sequence[int | None]
) -> list[int]:
    """Representative of each node's twin class (same role, loops and neighbourhood).

    Swapping two twins is an automorphism, so the search only needs to individualise one node of
    each twin class: this keeps stars and cliques from exploding factorially.
    """
    representative = list(range(num_nodes))
    for u in range(num_nodes):
        if representative[u] != u:
            continue
        for w in range(u + 1, num_nodes):
            if representative[w] != w or roles[u] != roles[w] or loops[u] != loops[w]:
                continue
            nu = {x: m for x, m in neighbours[u].items() if x != w}
            nw = {x: m for x, m in neighbours[w].items() if x != u}
            if nu == nw:
                representative[w] = u
    return representative


def canonical_form(
    num_nodes: int, edges: EdgeCounts, roles: Sequence[int | None]
) -> tuple[list[int], Certificate]:
    """Return ``(new_label, certificate)`` for a pattern graph.

    ``new_label[v]`` is the canonical label of node ``v``; output nodes come first, in output
    order. The certificate is a hashable value that is equal for two patterns exactly when they
    are isomorphic (with outputs mapped in order).
    """
    neighbours, loops = _adjacency(num_nodes, edges)
    # Outputs sort before every other node, in output order, so they get labels 0 and 1.
    initial = [(role if role is not None else 2, loops[v]) for v, role in enumerate(roles)]
    twins = _twin_classes(num_nodes, neighbours, loops, roles)
    best: tuple[Certificate, list[int]] | None = None

    def certificate_of(labels: list[int]) -> Certificate:
        relabelled = sorted(
            (min(labels[u], labels[v]), max(labels[u], labels[v]), m) for (u, v), m in edges.items()
        )
        out_roles = [None] * num_nodes
        for v, role in enumerate(roles):
            out_roles[labels[v]] = role
        return (num_nodes, tuple(relabelled), tuple(-1 if r is None else r for r in out_roles))

    def search(colours: list[int]) -> None:
        nonlocal best
        cells: dict[int, list[int]] = {}
        for v, c in enumerate(colours):
            cells.setdefault(c, []).append(v)
        target = next((c for c in sorted(cells) if len(cells[c]) > 1), None)
        if target is None:
            cert = certificate_of(colours)
            if best is None or cert < best[0]:
                best = (cert, list(colours))
            return
        tried: set[int] = set()
        for v in cells[target]:
            if twins[v] in tried:
                continue
            tried.add(twins[v])
            individualised = [2 * c + (0 if u == v else 1) for u, c in enumerate(colours)]
            search(_refine(individualised, neighbours))

    if num_nodes == 0:
        return [], (0, (), ())
    search(_refine(initial, neighbours))
    assert best is not None
    return best[1], best[0]
