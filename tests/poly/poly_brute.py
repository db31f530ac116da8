"""Reference values for the poly tests: sums over all maps of the pattern into the graph."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import torch


class BruteForce:
    """P_H(A) by enumerating every map V(H) -> nodes (vectorised over the maps, no planning).

    The product over a pattern's edges is formed from per-node-pair arrays ``A[phi(u), phi(v)]``
    that are shared between patterns with the same number of nodes.
    """

    def __init__(self, adjacency: np.ndarray) -> None:
        self.adjacency = np.asarray(adjacency, dtype=np.float64)
        self.n = self.adjacency.shape[0]
        self._maps: dict[int, np.ndarray] = {}
        self._pairs: dict[tuple[int, int, int], np.ndarray] = {}

    def _all_maps(self, k: int) -> np.ndarray:
        if k not in self._maps:
            self._maps[k] = np.array(
                list(itertools.product(range(self.n), repeat=k)), dtype=np.int64
            ).reshape(-1, k)
        return self._maps[k]

    def _pair(self, k: int, u: int, v: int) -> np.ndarray:
        if (k, u, v) not in self._pairs:
            maps = self._all_maps(k)
            self._pairs[(k, u, v)] = self.adjacency[maps[:, u], maps[:, v]]
        return self._pairs[(k, u, v)]

    def __call__(self, poly) -> np.ndarray:
        k = poly.num_nodes
        if k == 0:
            return np.float64(1.0)
        maps = self._all_maps(k)
        values = np.ones(len(maps))
        for u, v in poly.edges:
            values = values * self._pair(k, u, v)
        if poly.order == 0:
            return values.sum()
        if poly.order == 1:
            return np.bincount(maps[:, 0], weights=values, minlength=self.n)
        flat = maps[:, 0] * self.n + maps[:, 1]
        return np.bincount(flat, weights=values, minlength=self.n * self.n).reshape(self.n, self.n)


def dense_adjacency(edge_index: torch.Tensor, num_nodes: int, weight=None) -> np.ndarray:
    """A[i, j] = sum of the weights of edges i -> j (PyG convention, duplicates add up)."""
    adjacency = np.zeros((num_nodes, num_nodes))
    weights = np.ones(edge_index.shape[1]) if weight is None else weight.double().numpy()
    np.add.at(adjacency, (edge_index[0].numpy(), edge_index[1].numpy()), weights)
    return adjacency


def undirected_edge_index(graph: nx.Graph) -> torch.Tensor:
    """Both directions of every edge of a networkx graph on nodes 0..n-1."""
    edges = list(graph.edges())
    if not edges:
        return torch.zeros(2, 0, dtype=torch.long)
    forward = torch.tensor(edges, dtype=torch.long).T
    return torch.cat([forward, forward.flip(0)], dim=1)
