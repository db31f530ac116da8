"""MUTAG from its TU-format text files, read by PyG's own TU reader.

The TU files (``MUTAG_A.txt``, ``MUTAG_graph_indicator.txt``, ``MUTAG_graph_labels.txt``,
``MUTAG_node_labels.txt``, ``MUTAG_edge_labels.txt``) come from GraKeL's wheel. The build copies
them to ``<out>/MUTAG/raw/`` and parses them with ``torch_geometric.io.read_tu_data``, the reader
behind PyG's :class:`~torch_geometric.datasets.TUDataset`, so graphs and features are exactly
``TUDataset``'s: 188 graphs, 7 node labels (one-hot ``x``), 4 edge labels (one-hot
``edge_attr``), 2 classes. The result is stored in ``<out>/MUTAG/processed/data.pt`` in
``TUDataset``'s own file layout and loaded as a :class:`TUFormatDataset` through
:func:`~gnnagg.data.safe_load.load_collated` (``weights_only=True``): ``TUDataset`` itself reads
that file with PyG's ``fs.torch_load``, which retries as a full (unsafe) unpickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import InMemoryDataset

from .._files import atomic_write, write_bytes
from .download import FetchError
from .safe_load import load_collated

__all__ = ["MUTAG_FILES", "TUFormatDataset", "build_mutag", "load_mutag"]

MUTAG_FILES = (
    "MUTAG_A.txt",
    "MUTAG_graph_indicator.txt",
    "MUTAG_graph_labels.txt",
    "MUTAG_node_labels.txt",
    "MUTAG_edge_labels.txt",
)
_SIZE_KEYS = ("num_node_labels", "num_node_attributes", "num_edge_labels", "num_edge_attributes")


class TUFormatDataset(InMemoryDataset):
    """A TU-format data set as ``TUDataset(name, use_node_attr=False, use_edge_attr=False)``
    gives it: the same graphs, features, ``sizes`` and ``num_*`` properties.

    Args:
        path: the ``data.pt`` written by :func:`build_mutag` (``TUDataset``'s layout).
        name: the data set's TU name, e.g. ``"MUTAG"``.
        transform: a PyG transform applied on access.
    """

    def __init__(self, path: str | Path, name: str, transform: Any = None) -> None:
        super().__init__(root=None, transform=transform)
        self.name = name
        data, slices, extra = load_collated(path)
        sizes = extra[0] if len(extra) == 1 else None
        if not isinstance(sizes, dict) or not all(
            isinstance(sizes.get(k), int) and sizes[k] >= 0 for k in _SIZE_KEYS
        ):
            raise FetchError(f"{path} lacks TUDataset's sizes record {list(_SIZE_KEYS)}")
        self.sizes = sizes
        self.data, self.slices = data, slices
        # As TUDataset with use_node_attr=False / use_edge_attr=False: labels only.
        if self._data.x is not None:
            self._data.x = self._data.x[:, sizes["num_node_attributes"] :]
        if self._data.edge_attr is not None:
            self._data.edge_attr = self._data.edge_attr[:, sizes["num_edge_attributes"] :]

    @property
    def num_node_labels(self) -> int:
        return self.sizes["num_node_labels"]

    @property
    def num_node_attributes(self) -> int:
        return self.sizes["num_node_attributes"]

    @property
    def num_edge_labels(self) -> int:
        return self.sizes["num_edge_labels"]

    @property
    def num_edge_attributes(self) -> int:
        return self.sizes["num_edge_attributes"]

    def __repr__(self) -> str:
        return f"{self.name}({len(self)})"


def build_mutag(raw: dict[str, Path], out: Path) -> None:
    """Copy the TU files into ``out/MUTAG/raw`` and parse them into ``out/MUTAG/processed``."""
    from torch_geometric.io import read_tu_data

    missing = [f for f in MUTAG_FILES if f not in raw]
    if missing:
        raise ValueError(f"raw: MUTAG needs the TU files {missing}")
    raw_dir = out / "MUTAG" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in MUTAG_FILES:
        write_bytes(raw_dir / name, Path(raw[name]).read_bytes())
    data, slices, sizes = read_tu_data(str(raw_dir), "MUTAG")
    processed = out / "MUTAG" / "processed"
    processed.mkdir(parents=True, exist_ok=True)
    collated = (data.to_dict(), slices, sizes, data.__class__)
    atomic_write(processed / "data.pt", lambda handle: torch.save(collated, handle))


def load_mutag(out: Path, transform: Any = None) -> TUFormatDataset:
    """Load the MUTAG folder built by :func:`build_mutag`."""
    return TUFormatDataset(out / "MUTAG" / "processed" / "data.pt", "MUTAG", transform)
