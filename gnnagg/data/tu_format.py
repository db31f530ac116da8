"""MUTAG in TU format, read through PyG's own :class:`~torch_geometric.datasets.TUDataset`.

The TU files (``MUTAG_A.txt``, ``MUTAG_graph_indicator.txt``, ``MUTAG_graph_labels.txt``,
``MUTAG_node_labels.txt``, ``MUTAG_edge_labels.txt``) come from GraKeL's wheel. They are copied
to ``<out>/MUTAG/raw/``, where ``TUDataset(root=out, name="MUTAG")`` finds them and never tries
to download. 188 graphs, 7 node labels (one-hot ``x``), 4 edge labels (one-hot ``edge_attr``),
2 classes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

__all__ = ["MUTAG_FILES", "build_mutag", "load_mutag"]

MUTAG_FILES = (
    "MUTAG_A.txt",
    "MUTAG_graph_indicator.txt",
    "MUTAG_graph_labels.txt",
    "MUTAG_node_labels.txt",
    "MUTAG_edge_labels.txt",
)


def build_mutag(raw: dict[str, Path], out: Path) -> None:
    """Copy the TU files into ``out/MUTAG/raw`` and let ``TUDataset`` process them once."""
    missing = [f for f in MUTAG_FILES if f not in raw]
    if missing:
        raise ValueError(f"raw: MUTAG needs the TU files {missing}")
    raw_dir = out / "MUTAG" / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name in MUTAG_FILES:
        shutil.copyfile(raw[name], raw_dir / name)
    load_mutag(out)


def load_mutag(out: Path, transform: Any = None) -> Any:
    """Load the MUTAG folder built by :func:`build_mutag` as a ``TUDataset``."""
    from torch_geometric.datasets import TUDataset

    return TUDataset(root=str(out), name="MUTAG", transform=transform)
