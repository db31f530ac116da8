"""Synthetic multiset tasks for testing aggregators on neighbourhoods larger than in training.

Every task maps a multiset of 8-bit integers (values ``0..255``, drawn i.i.d. uniformly) to a
class label. The point, following the LCM paper (Ong & Veličković, 2022), is size
generalisation: models are trained on multisets of sizes 2–16 and tested on sizes 32–256.

Each task comes in two forms, both as PyG :class:`~torch_geometric.data.InMemoryDataset`:

``form="graph"``
    One multiset per graph. Graph ``g`` with ``n`` elements has ``n + 1`` nodes: nodes
    ``0..n-1`` carry the elements, node ``n`` is a readout node whose features are all zero and
    which has no outgoing edges. Edges run from every element node to the readout node, so one
    round of message passing aggregates the whole multiset at the readout node. Per graph:
    ``x`` ``[n+1, 8]`` float bits, ``edge_index`` ``[2, n]``, ``y`` ``[1]`` long label,
    ``set_size`` ``[1]`` (``n``), ``readout_index`` ``[1]`` (``n``; PyG's batching shifts it like
    ``edge_index``, so ``batch.readout_index`` indexes the readout rows of a mini-batch).

``form="node"``
    Random graphs with ``num_nodes`` nodes; every node draws its in-degree uniformly from the
    allowed sizes and then that many distinct in-neighbours (never itself) uniformly. The target
    of a node is the task applied to the values of its in-neighbours (its own value excluded), so
    degrees vary inside one graph. Per graph: ``x`` ``[N, 8]``, ``edge_index`` (source = the
    neighbour, target = the node, sorted by target), ``y`` ``[N]``, ``set_size`` ``[N]`` (the
    in-degree).

Bits are most-significant first (``x[:, 0]`` is the 128s bit), as in PyG's LCM example. Sizes are
given as the *allowed* multiset sizes and drawn uniformly: ``TRAIN_SIZES = (2, 3, ..., 16)``.

Generation is vectorised over graphs with a seeded :class:`torch.Generator`; the same arguments
always give the same dataset, and every split (``"train"``, ``"val"``, ``"test_<n>"``) draws
from its own stream derived from ``seed``, the task, the form and the split name.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from .._checks import check_int, check_positive, format_bytes

__all__ = [
    "GENERATION_MEMORY_LIMIT",
    "NUM_BITS",
    "NUM_VALUES",
    "TASKS",
    "TEST_SIZES",
    "TRAIN_SIZES",
    "CountParity",
    "DistinctCount",
    "MultisetRange",
    "MultisetTask",
    "MultisetTaskDataset",
    "SecondMinimum",
    "bits_to_int",
    "int_to_bits",
    "make_splits",
    "make_task",
    "split_names",
]

NUM_BITS = 8
NUM_VALUES = 2**NUM_BITS
TRAIN_SIZES: tuple[int, ...] = tuple(range(2, 17))
TEST_SIZES: tuple[int, ...] = (32, 64, 128, 256)
FORMS = ("graph", "node")

# Padding sentinel one past the largest value: sorts after every real element.
_PAD = NUM_VALUES
# Cap on random keys materialised at once when drawing neighbourhoods (floats, ~64 MB).
_KEY_BUDGET = 1 << 24
# Most bytes one dataset may take to generate; larger requests are refused before allocating.
GENERATION_MEMORY_LIMIT = 8 << 30
# Seeds are reduced modulo this when deriving a split's stream; larger seeds are refused.
_SEED_LIMIT = 2**63 - 1


def int_to_bits(values: Tensor) -> Tensor:
    """Encode integers in ``0..255`` as float bit vectors ``[..., 8]``, most significant first.

    Raises:
        TypeError: ``values`` is not an integer tensor.
        ValueError: an entry lies outside ``0..255`` (8 bits would silently keep only its low
            byte: 300 would read as 44, -1 as 255).
    """
    if not isinstance(values, Tensor):
        raise TypeError(f"values: expected an integer tensor, got {type(values).__name__}")
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise TypeError(f"values: expected an integer tensor, got dtype {values.dtype}")
    if values.numel():
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= NUM_VALUES:
            raise ValueError(
                f"values: entries must lie in 0..{NUM_VALUES - 1} to fit {NUM_BITS} bits, "
                f"found {low}..{high}"
            )
    shifts = torch.arange(NUM_BITS - 1, -1, -1, device=values.device)
    return ((values.long().unsqueeze(-1) >> shifts) & 1).to(torch.float32)


def bits_to_int(bits: Tensor) -> Tensor:
    """Decode bit vectors ``[..., 8]`` (most significant first) back to long integers.

    Raises:
        TypeError: ``bits`` is not a real tensor.
        ValueError: the last dimension is not 8, or an entry is not exactly 0 or 1.
    """
    if not isinstance(bits, Tensor) or bits.is_complex():
        raise TypeError(f"bits: expected a real tensor, got {getattr(bits, 'dtype', type(bits))}")
    if bits.dim() == 0 or bits.shape[-1] != NUM_BITS:
        raise ValueError(f"bits: expected shape [..., {NUM_BITS}], got {list(bits.shape)}")
    if not bool(((bits == 0) | (bits == 1)).all()):
        raise ValueError("bits: entries must be exactly 0 or 1")
    weights = 2 ** torch.arange(NUM_BITS - 1, -1, -1, device=bits.device)
    return (bits.long() * weights).sum(-1)


def _second_minimum(values: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, values, _PAD).sort(dim=1).values[:, 1]


def _maximum(values: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, values, -1).amax(dim=1)


def _range(values: Tensor, mask: Tensor) -> Tensor:
    return _maximum(values, mask) - torch.where(mask, values, _PAD).amin(dim=1)


def _count_parity(values: Tensor, mask: Tensor) -> Tensor:
    return ((values >= NUM_VALUES // 2) & mask).sum(dim=1) % 2


def _distinct_count(values: Tensor, mask: Tensor) -> Tensor:
    s = torch.where(mask, values, _PAD).sort(dim=1).values
    first = (s[:, 0] < _PAD).long()
    new = (s[:, 1:] != s[:, :-1]) & (s[:, 1:] < _PAD)
    return first + new.sum(dim=1)


@dataclass(frozen=True)
class MultisetTask:
    """A multiset task: its exact target, number of classes and smallest meaningful size.

    ``label`` maps padded values ``[B, L]`` (long) and a validity mask ``[B, L]`` (bool) to one
    long label per row; padded entries are ignored.
    """

    name: str
    target: str
    num_classes: int
    min_size: int
    label: Callable[[Tensor, Tensor], Tensor]


TASKS: dict[str, MultisetTask] = {
    t.name: t
    for t in (
        MultisetTask(
            "second_minimum",
            "sorted(multiset)[1]: the second-smallest element counting multiplicity (equals the "
            "minimum when the minimum occurs twice); classes 0..255. The LCM paper's first task.",
            NUM_VALUES,
            2,
            _second_minimum,
        ),
        MultisetTask(
            "range",
            "max(multiset) - min(multiset); classes 0..255 (0 when all elements are equal).",
            NUM_VALUES,
            1,
            _range,
        ),
        MultisetTask(
            "count_parity",
            "(number of elements >= 128, i.e. with the most significant bit set) mod 2; "
            "classes 0..1. The marked value is the top bit, present in half of all elements.",
            2,
            1,
            _count_parity,
        ),
        MultisetTask(
            "distinct_count",
            "len(set(multiset)): the number of distinct values; classes 0..256 (0 never occurs "
            "because multisets are non-empty).",
            NUM_VALUES + 1,
            1,
            _distinct_count,
        ),
        MultisetTask(
            "maximum",
            "max(multiset); classes 0..255. A control: a max aggregator solves it exactly at "
            "every size.",
            NUM_VALUES,
            1,
            _maximum,
        ),
    )
}


def _get_task(name: str) -> MultisetTask:
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"task: unknown task {name!r}; valid tasks are {sorted(TASKS)}")
    return TASKS[name]


def _check_sizes(sizes: int | Iterable[int], task: MultisetTask, arg: str = "sizes") -> Tensor:
    if isinstance(sizes, bool):
        raise TypeError(f"{arg} must be an int or a sequence of ints, got a bool")
    if isinstance(sizes, int):
        sizes = (sizes,)
    try:
        items = list(sizes)
    except TypeError:
        raise TypeError(
            f"{arg} must be an int or a sequence of ints, got {type(sizes).__name__}"
        ) from None
    if not items:
        raise ValueError(f"{arg}: needs at least one multiset size")
    items = [check_int(s, f"{arg}[{i}]") for i, s in enumerate(items)]
    for s in items:
        if s < task.min_size:
            raise ValueError(
                f"{arg}: size {s} is below {task.min_size}, the smallest size for which "
                f"{task.name!r} is defined"
            )
    return torch.tensor(sorted(set(items)), dtype=torch.long)


def _check_generation_memory(
    form: str, num_graphs: int, max_size: int, num_nodes: int | None
) -> None:
    # Rough peak per element slot: graph form, a node's 8 float bits, its edge, the padded
    # value/mask row and the label work (~80 B); node form, a neighbour slot's id, mask, value
    # and edge (~40 B) over num_nodes * max_size slots per graph.
    if form == "graph":
        needed = num_graphs * (max_size + 1) * 80
    else:
        needed = num_graphs * num_nodes * max_size * 40
    if needed > GENERATION_MEMORY_LIMIT:
        raise ValueError(
            f"num_graphs: {num_graphs:,} graphs of up to {max_size} elements ({form} form) need "
            f"about {format_bytes(needed)} to generate, over the "
            f"{format_bytes(GENERATION_MEMORY_LIMIT)} limit (GENERATION_MEMORY_LIMIT); "
            "generate fewer graphs at a time"
        )


def _derive_seed(seed: int, *parts: str) -> int:
    # crc32 is stable across runs and platforms, unlike hash(); it keeps splits independent.
    tag = zlib.crc32("/".join(parts).encode())
    return (seed * 0x9E3779B1 + tag) % _SEED_LIMIT


def _cumsum0(counts: Tensor) -> Tensor:
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def _graph_level(
    task: MultisetTask, sizes: Tensor, num_graphs: int, gen: torch.Generator
) -> tuple[Data, dict[str, Tensor]]:
    n = sizes[torch.randint(len(sizes), (num_graphs,), generator=gen)]
    total = int(n.sum())
    values = torch.randint(0, NUM_VALUES, (total,), generator=gen)
    width = int(n.max())
    mask = torch.arange(width) < n.unsqueeze(1)
    padded = torch.zeros(num_graphs, width, dtype=torch.long)
    padded[mask] = values
    y = task.label(padded, mask)

    node_ptr = _cumsum0(n + 1)
    elem_ptr = _cumsum0(n)
    is_elem = torch.ones(int(node_ptr[-1]), dtype=torch.bool)
    is_elem[node_ptr[1:] - 1] = False
    x = torch.zeros(int(node_ptr[-1]), NUM_BITS)
    x[is_elem] = int_to_bits(values)
    # InMemoryDataset stores edge_index per graph with local node ids (collate increment=False).
    src = torch.arange(total) - torch.repeat_interleave(elem_ptr[:-1], n)
    dst = torch.repeat_interleave(n, n)
    data = Data(
        x=x,
        edge_index=torch.stack([src, dst]),
        y=y,
        set_size=n,
        readout_index=n.clone(),
    )
    graph_ptr = torch.arange(num_graphs + 1)
    slices = {
        "x": node_ptr,
        "edge_index": elem_ptr,
        "y": graph_ptr,
        "set_size": graph_ptr,
        "readout_index": graph_ptr,
    }
    return data, slices


def _node_level(
    task: MultisetTask, sizes: Tensor, num_graphs: int, num_nodes: int, gen: torch.Generator
) -> tuple[Data, dict[str, Tensor]]:
    width = int(sizes.max())
    values = torch.randint(0, NUM_VALUES, (num_graphs, num_nodes), generator=gen)
    degree = sizes[torch.randint(len(sizes), (num_graphs, num_nodes), generator=gen)]
    # Distinct in-neighbours: the `width` smallest of N-1 random keys per node (a uniform random
    # subset, in random order), then ids >= own id shift by one to skip the node itself.
    chunk = max(1, _KEY_BUDGET // (num_nodes * (num_nodes - 1)))
    parts = []
    for start in range(0, num_graphs, chunk):
        count = min(chunk, num_graphs - start)
        keys = torch.rand(count, num_nodes, num_nodes - 1, generator=gen)
        parts.append(keys.topk(width, dim=2, largest=False).indices)
    nbr = torch.cat(parts)
    own = torch.arange(num_nodes).view(1, -1, 1)
    nbr = nbr + (nbr >= own).long()
    mask = torch.arange(width) < degree.unsqueeze(-1)

    nbr_values = values.gather(1, nbr.view(num_graphs, -1)).view(num_graphs, num_nodes, width)
    y = task.label(nbr_values.view(-1, width), mask.view(-1, width))

    src = nbr[mask]
    dst = own.expand_as(nbr)[mask]
    data = Data(
        x=int_to_bits(values.view(-1)),
        edge_index=torch.stack([src, dst]),
        y=y,
        set_size=degree.view(-1),
    )
    node_ptr = torch.arange(num_graphs + 1) * num_nodes
    slices = {
        "x": node_ptr,
        "edge_index": _cumsum0(degree.sum(dim=1)),
        "y": node_ptr,
        "set_size": node_ptr,
    }
    return data, slices


def split_names(test_sizes: Iterable[int] = TEST_SIZES) -> list[str]:
    """The split names for the given test sizes: ``["train", "val", "test_32", ...]``."""
    if isinstance(test_sizes, (str, bytes)):
        raise TypeError(f"test_sizes must be an iterable of sizes, got {test_sizes!r}")
    return ["train", "val"] + [f"test_{check_positive(s, 'test_sizes')}" for s in test_sizes]


def _split_sizes(
    split: str, train_sizes: Iterable[int], test_sizes: Iterable[int]
) -> Iterable[int]:
    if split in ("train", "val"):
        return train_sizes
    test_sizes = list(test_sizes)
    if isinstance(split, str) and split.startswith("test_"):
        suffix = split[len("test_") :]
        if suffix.isdigit() and int(suffix) in test_sizes:
            return (int(suffix),)
    raise ValueError(f"split: unknown split {split!r}; valid splits are {split_names(test_sizes)}")


class MultisetTaskDataset(InMemoryDataset):
    r"""A synthetic multiset task as an in-memory PyG dataset (generated, never downloaded).

    Args:
        task: a key of :data:`TASKS`.
        split: ``"train"`` and ``"val"`` draw sizes from ``train_sizes`` (independent streams);
            ``"test_<n>"`` uses size ``n``, which must be in ``test_sizes``. With explicit
            ``sizes``, ``split`` is only a label that selects the random stream.
        form: ``"graph"`` (one multiset per graph, star into a readout node) or ``"node"``
            (random graphs, one multiset per node over its in-neighbours).
        num_graphs: number of graphs generated.
        seed: base seed; the split's stream is derived from it.
        train_sizes: allowed multiset sizes for ``"train"``/``"val"``.
        test_sizes: sizes that get a ``"test_<n>"`` split.
        sizes: explicit allowed sizes, overriding the split's.
        num_nodes: nodes per graph for ``form="node"`` (default ``max(2 * max size, 32)``);
            must exceed the largest size. A node-level graph has about
            ``num_nodes * mean size`` edges (131,072 at ``test_256``), so large test sizes
            want far fewer graphs than the graph-level form.
        transform: optional PyG transform applied on access.
    """

    def __init__(
        self,
        task: str,
        split: str = "train",
        form: str = "graph",
        num_graphs: int = 1024,
        seed: int = 0,
        train_sizes: Iterable[int] = TRAIN_SIZES,
        test_sizes: Iterable[int] = TEST_SIZES,
        sizes: int | Iterable[int] | None = None,
        num_nodes: int | None = None,
        transform: Callable[[Data], Data] | None = None,
    ) -> None:
        spec = _get_task(task)
        if form not in FORMS:
            raise ValueError(f"form: unknown form {form!r}; valid forms are {list(FORMS)}")
        if not isinstance(split, str):
            raise TypeError(f"split: expected a str, got {type(split).__name__}")
        num_graphs = check_positive(num_graphs, "num_graphs")
        # Larger seeds would wrap in the stream derivation onto the streams of small ones.
        seed = check_int(seed, "seed", minimum=0, maximum=_SEED_LIMIT - 1)
        train_t = _check_sizes(train_sizes, spec, "train_sizes")
        test_t = _check_sizes(test_sizes, spec, "test_sizes")
        if sizes is None:
            size_t = _check_sizes(_split_sizes(split, train_t.tolist(), test_t.tolist()), spec)
        else:
            size_t = _check_sizes(sizes, spec)

        max_size = int(size_t.max())
        if form == "node":
            if num_nodes is None:
                num_nodes = max(2 * max_size, 32)
            num_nodes = check_positive(num_nodes, "num_nodes")
            if num_nodes <= max_size:
                raise ValueError(
                    f"num_nodes: {num_nodes} nodes cannot give a node {max_size} distinct "
                    f"in-neighbours; use num_nodes > {max_size}"
                )
        elif num_nodes is not None:
            raise ValueError("num_nodes: only meaningful for form='node'")
        _check_generation_memory(form, num_graphs, max_size, num_nodes)

        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        super().__init__(root=None, transform=transform)
        self.task = spec
        self.split = split
        self.form = form
        self.sizes: tuple[int, ...] = tuple(size_t.tolist())
        self.seed = seed
        self.num_nodes_per_graph = num_nodes

        gen = torch.Generator().manual_seed(_derive_seed(seed, spec.name, form, split))
        if form == "graph":
            self._data, self.slices = _graph_level(spec, size_t, num_graphs, gen)
        else:
            self._data, self.slices = _node_level(spec, size_t, num_graphs, num_nodes, gen)

    @property
    def num_classes(self) -> int:
        """Number of classes of the task (not just those that occur in this split)."""
        return self.task.num_classes

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(task={self.task.name!r}, split={self.split!r}, "
            f"form={self.form!r}, sizes={self.sizes[0]}..{self.sizes[-1]}, "
            f"num_graphs={len(self)})"
        )


class _NamedTask(MultisetTaskDataset):
    TASK = ""

    def __init__(self, split: str = "train", **kwargs: Any) -> None:
        super().__init__(self.TASK, split, **kwargs)


class SecondMinimum(_NamedTask):
    """The LCM paper's task: label is the second-smallest element. See :class:`MultisetTaskDataset`
    for the arguments (all but ``task``)."""

    TASK = "second_minimum"


class MultisetRange(_NamedTask):
    """Label is ``max - min`` of the multiset. Arguments as :class:`MultisetTaskDataset`."""

    TASK = "range"


class CountParity(_NamedTask):
    """Label is the parity of the number of elements ``>= 128``. Arguments as
    :class:`MultisetTaskDataset`."""

    TASK = "count_parity"


class DistinctCount(_NamedTask):
    """Label is the number of distinct values. Arguments as :class:`MultisetTaskDataset`."""

    TASK = "distinct_count"


def make_task(
    name: str,
    form: str = "graph",
    sizes: int | Sequence[int] = TRAIN_SIZES,
    num_graphs: int = 1024,
    seed: int = 0,
    num_nodes: int | None = None,
    transform: Callable[[Data], Data] | None = None,
) -> MultisetTaskDataset:
    """Generate ``num_graphs`` graphs of task ``name`` with multiset sizes drawn from ``sizes``.

    ``sizes`` lists the allowed sizes (an int means one fixed size); ``range(2, 17)`` is the
    training range. The random stream depends only on ``(seed, name, form, sizes)``.
    """
    spec = _get_task(name)
    size_t = _check_sizes(sizes, spec)
    label = "sizes=" + ",".join(str(s) for s in size_t.tolist())
    return MultisetTaskDataset(
        name,
        split=label,
        form=form,
        num_graphs=num_graphs,
        seed=seed,
        sizes=size_t.tolist(),
        num_nodes=num_nodes,
        transform=transform,
    )


def make_splits(
    name: str,
    form: str = "graph",
    num_train: int = 4096,
    num_val: int = 512,
    num_test: int = 512,
    seed: int = 0,
    train_sizes: Iterable[int] = TRAIN_SIZES,
    test_sizes: Iterable[int] = TEST_SIZES,
    num_nodes: int | None = None,
) -> dict[str, MultisetTaskDataset]:
    """All splits of a task: ``{"train": ..., "val": ..., "test_32": ..., ...}``.

    ``num_nodes`` (node form only) applies to every split; by default each split picks
    ``max(2 * its largest size, 32)``.
    """
    train_sizes, test_sizes = list(train_sizes), list(test_sizes)
    for arg, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        check_positive(value, arg)  # named here: the datasets only know num_graphs
    counts = {"train": num_train, "val": num_val}
    out = {}
    for split in split_names(test_sizes):
        out[split] = MultisetTaskDataset(
            name,
            split=split,
            form=form,
            num_graphs=counts.get(split, num_test),
            seed=seed,
            train_sizes=train_sizes,
            test_sizes=test_sizes,
            num_nodes=num_nodes,
        )
    return out
