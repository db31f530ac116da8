"""A stand-in for PyG's ``NeighborLoader`` where it cannot run, for the examples in this folder.

PyG's ``NeighborLoader`` samples with ``pyg-lib`` or ``torch-sparse``, and neither installs
from PyPI for the torch this project uses. This module samples the same way in plain torch:
seed nodes first, then for each hop up to ``num_neighbors[hop]`` in-edges of every node of the
previous hop drawn uniformly without replacement (``-1``: all of them), for ``Data`` and
``HeteroData``. Batches carry what the examples read: the sampled nodes' attributes, their
global ids ``n_id``, the sampled edges in local ids and ``batch_size`` (the seeds).
:func:`neighbor_loader` returns PyG's own loader wherever it can run.
"""

from __future__ import annotations

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric.data import Data, HeteroData


def neighbor_loader(data, num_neighbors, **kwargs):
    """PyG's ``NeighborLoader`` when pyg-lib or torch-sparse is installed, else the stand-in."""
    if torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE:
        from torch_geometric.loader import NeighborLoader as PyGNeighborLoader

        return PyGNeighborLoader(data, num_neighbors, **kwargs)
    return NeighborLoader(data, num_neighbors, **kwargs)


class NeighborLoader:
    """What the examples use of PyG's ``NeighborLoader``: ``data``, ``dataset`` (the seeds),
    and iteration over sampled batches. ``num_workers`` and similar options are accepted and
    ignored (sampling runs in the calling process)."""

    def __init__(self, data, num_neighbors, input_nodes=None, batch_size=1, shuffle=False,
                 **ignored) -> None:
        self.data, self.num_neighbors = data, list(num_neighbors)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.hetero = isinstance(data, HeteroData)
        self.input_type, nodes = input_nodes if isinstance(input_nodes, tuple) else (
            None, input_nodes)
        count = data[self.input_type].num_nodes if self.hetero else data.num_nodes
        if nodes is None:
            nodes = torch.arange(count)
        elif nodes.dtype == torch.bool:
            nodes = nodes.nonzero().view(-1)
        self.dataset = nodes

    def __len__(self) -> int:
        return -(-self.dataset.numel() // self.batch_size)

    def __iter__(self):
        seeds = self.dataset
        if self.shuffle:
            seeds = seeds[torch.randperm(seeds.numel())]
        for chunk in seeds.split(self.batch_size):
            yield self._batch(chunk)

    def _stores(self):
        if self.hetero:
            node_types, edge_types = self.data.metadata()
            counts = {t: self.data[t].num_nodes for t in node_types}
            edges = {e: self.data[e].edge_index for e in edge_types}
            return counts, edges, self.input_type
        return ({"_": self.data.num_nodes}, {("_", "to", "_"): self.data.edge_index}, "_")

    def _batch(self, seeds: Tensor):
        counts, edges, input_type = self._stores()
        n_id = {t: seeds if t == input_type else seeds.new_empty(0) for t in counts}
        local = {t: torch.full((n,), -1, dtype=torch.long) for t, n in counts.items()}
        local[input_type][seeds] = torch.arange(seeds.numel())
        frontier = {input_type: seeds}
        sampled = {e: [] for e in edges}
        for k in self.num_neighbors:
            found = {}
            for edge_type, edge_index in edges.items():
                src_type, _, dst_type = edge_type
                if dst_type not in frontier:
                    continue
                chosen = _sample_in_edges(edge_index, counts[dst_type], frontier[dst_type], k)
                sampled[edge_type].append(chosen)
                sources = edge_index[0, chosen]
                fresh = torch.unique(sources[local[src_type][sources] < 0])
                local[src_type][fresh] = len(n_id[src_type]) + torch.arange(fresh.numel())
                n_id[src_type] = torch.cat([n_id[src_type], fresh])
                found[src_type] = torch.cat([found.get(src_type, fresh[:0]), fresh])
            frontier = found
        batch = HeteroData()
        for node_type, ids in n_id.items():
            store = self.data[node_type] if self.hetero else self.data
            for key in ("x", "y"):
                if isinstance(store.get(key), Tensor):
                    batch[node_type][key] = store[key][ids]
            batch[node_type].n_id = ids
            batch[node_type].num_nodes = ids.numel()
        for edge_type, parts in sampled.items():
            chosen = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
            src_type, _, dst_type = edge_type
            pairs = edges[edge_type][:, chosen]
            batch[edge_type].edge_index = torch.stack(
                [local[src_type][pairs[0]], local[dst_type][pairs[1]]])
        batch[input_type].batch_size = seeds.numel()
        if self.hetero:
            return batch
        out = Data(**batch["_"].to_dict(), edge_index=batch["_", "to", "_"].edge_index)
        return out


def _sample_in_edges(edge_index: Tensor, num_dst: int, nodes: Tensor, k: int) -> Tensor:
    """Positions in ``edge_index`` of up to ``k`` uniformly drawn in-edges of each of ``nodes``
    (all of them for ``k < 0``)."""
    order = torch.sort(edge_index[1], stable=True).indices
    ptr = torch.zeros(num_dst + 1, dtype=torch.long)
    ptr[1:] = torch.bincount(edge_index[1], minlength=num_dst).cumsum(0)
    starts, counts = ptr[nodes], ptr[nodes + 1] - ptr[nodes]
    owner = torch.repeat_interleave(torch.arange(nodes.numel()), counts)
    first = torch.repeat_interleave(counts.cumsum(0) - counts, counts)
    positions = order[starts[owner] + torch.arange(owner.numel()) - first]
    if k < 0:
        return positions
    shuffled = torch.randperm(owner.numel())
    grouped = shuffled[torch.sort(owner[shuffled], stable=True).indices]
    rank = torch.arange(owner.numel()) - first
    return positions[grouped[rank < k]]
