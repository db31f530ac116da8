"""The size-generalisation data as flat tensors: every split of a task generated once per seed
(:func:`build_splits`) and shared by all aggregators, and accuracy over a split."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ....data import MultisetTaskDataset, make_splits
from ...registry import degree_histogram
from ...training import DistContext
from .config import SizeGenConfig

__all__ = ["MultisetTensors", "accuracy", "build_splits"]


class MultisetTensors:
    """A graph-form multiset data set as flat tensors: elements, set offsets and labels.

    ``x[ptr[g]:ptr[g+1]]`` are the elements (8 bits each) of multiset ``g`` (the leaves of its
    star graph), ``y[g]`` its label. :meth:`batch` gathers any subset of multisets with their
    elements in set order, so the index passed to aggregators is sorted.
    """

    def __init__(self, dataset: MultisetTaskDataset) -> None:
        if not isinstance(dataset, MultisetTaskDataset) or dataset.form != "graph":
            raise TypeError("dataset: expected a graph-form MultisetTaskDataset")
        if dataset.transform is None:
            # The dataset's own storage: every graph's nodes in a row, its readout node last.
            # Collating 65,536 Data objects one by one takes most of a minute.
            store, slices = dataset._data, dataset.slices
            node_ptr = slices["x"]
            is_element = torch.ones(store.x.shape[0], dtype=torch.bool)
            is_element[node_ptr[1:] - 1] = False
            self.x = store.x[is_element]
            sizes = node_ptr.diff() - 1
            self.y = store.y.view(-1)
        else:
            from torch_geometric.data import Batch

            collated = Batch.from_data_list(list(dataset))
            src = collated.edge_index[0]
            # Edges run leaf -> readout, grouped by graph: their sources are the elements.
            self.x = collated.x.index_select(0, src)
            sizes = torch.bincount(collated.batch[src], minlength=len(dataset))
            self.y = collated.y.view(-1)
        self.ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
        self.sizes = sizes

    def shuffled(self, generator: torch.Generator) -> MultisetTensors:
        """A copy whose elements are reordered inside every multiset (uniformly, from
        ``generator``); sets, sizes and labels are unchanged."""
        owner = torch.repeat_interleave(torch.arange(len(self)), self.sizes)
        keys = torch.rand(owner.numel(), generator=generator, dtype=torch.float64)
        order = torch.argsort(owner.to(torch.float64) + keys)
        out = copy.copy(self)
        out.x = self.x[order]
        return out

    def __len__(self) -> int:
        return self.y.numel()

    def batch(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        """``(x, index, y, num_sets)`` for the multisets ``ids``; ``index`` is sorted."""
        counts = self.sizes[ids]
        index = torch.repeat_interleave(torch.arange(ids.numel()), counts)
        offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        rows = self.ptr[ids][index] + torch.arange(index.numel()) - offsets[index]
        return self.x[rows], index, self.y[ids], int(ids.numel())

    def size_histogram(self) -> Tensor:
        """``hist[d]``: number of multisets with ``d`` elements: the in-degree histogram of
        their readout nodes (PNA's ``deg``)."""
        index = torch.repeat_interleave(torch.arange(self.sizes.numel()), self.sizes)
        return degree_histogram(index, self.sizes.numel())


def accuracy(
    model: nn.Module, data: MultisetTensors, batch_size: int, ctx: DistContext | None = None
) -> float:
    """Accuracy of ``model`` (``model(x, index, num_sets)`` -> ``(logits, ...)``) over all of
    ``data``, each rank of ``ctx`` (default: one process on the CPU) taking every
    ``world_size``-th multiset; the model's mode is restored."""
    ctx = ctx or DistContext()
    was_training = model.training
    model.eval()
    correct = total = 0
    ids = torch.arange(ctx.rank, len(data), ctx.world_size)
    with torch.no_grad():
        for chunk in ids.split(batch_size):
            x, index, y, n = data.batch(chunk)
            logits, _ = model(x.to(ctx.device), index.to(ctx.device), n)
            correct += int((logits.argmax(-1).cpu() == y).sum())
            total += n
    model.train(was_training)
    correct, total = ctx.all_sum([correct, total])
    return correct / max(total, 1)


def build_splits(task: str, seed: int, config: SizeGenConfig) -> dict[str, MultisetTensors]:
    """Generate every split of ``task`` for ``seed`` as :class:`MultisetTensors`."""
    raw = make_splits(
        task,
        form="graph",
        num_train=config.num_train,
        num_val=config.num_val,
        num_test=config.num_test,
        seed=seed,
        train_sizes=config.train_sizes,
        test_sizes=config.test_sizes,
    )
    splits = {name: MultisetTensors(ds) for name, ds in raw.items()}
    if config.val_at_size is not None:
        # Its own random stream (named after the split), apart from the test set of that size.
        wide = MultisetTaskDataset(
            task,
            split=f"val_at_{config.val_at_size}",
            num_graphs=config.num_val,
            seed=seed,
            sizes=config.val_at_size,
        )
        splits[f"val_at_{config.val_at_size}"] = MultisetTensors(wide)
    return splits
