"""Polynomial features of a list of graphs, computed once and cached on disk.

:func:`polynomial_features` evaluates :class:`gnnagg.poly.AddEquivariantPolynomials` on a list
of graphs (in chunks of :data:`CHUNK` graphs: the sparse evaluator works on the block-diagonal
graph of a chunk, hundreds of times faster than one call per molecule, while the chunk bounds
the memory) and returns three float32 matrices with a row per graph, node and edge, in the
order of the list. With a ``cache_dir`` the result is kept in that folder as

* ``<key>.pt``: the three matrices (``torch.save`` of a dict of tensors, read back with
  ``torch.load(weights_only=True)``: no pickled code can run);
* ``<key>.json``: the settings, the sha256 of ``<key>.pt`` and the time the computation took.

``key`` is the sha256 of the settings and of the graphs' structure (node counts and
``edge_index`` bytes, in order), so a different data set, split order or setting never reads
another's file, and the file names are hex digests: nothing outside ``cache_dir`` is read,
written or deleted. A file whose sha256 does not match its record, that is a symbolic link, or
whose matrices do not have the expected shapes is ignored and recomputed (and overwritten).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...._files import atomic_write, write_bytes

__all__ = [
    "CACHE_FORMAT",
    "CHUNK",
    "FEATURE_ORDERS",
    "feature_key",
    "polynomial_features",
    "structure_digest",
]

# Bump when what is stored changes, so that older files are recomputed.
CACHE_FORMAT = 1
CHUNK = 1024
# order -> (short name, attribute of the transform's output)
FEATURE_ORDERS: dict[int, tuple[str, str]] = {
    0: ("graph", "poly_graph"),
    1: ("node", "poly_x"),
    2: ("edge", "poly_edge_attr"),
}
# The sidecar records are a few hundred bytes; anything far larger is not one.
_MAX_RECORD_BYTES = 1 << 20


def structure_digest(graphs: Sequence[Any]) -> str:
    """sha256 over every graph's node count and ``edge_index`` (int64 bytes), in order: what
    the polynomial features depend on."""
    h = hashlib.sha256()
    for data in graphs:
        h.update(int(data.num_nodes).to_bytes(8, "little"))
        edge_index = data.edge_index.to(torch.int64).contiguous()
        h.update(int(edge_index.shape[1]).to_bytes(8, "little"))
        h.update(edge_index.cpu().numpy().tobytes())
    return h.hexdigest()


def _settings(max_degree: int, subset: str, normalize: str | None) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "max_degree": max_degree,
        "subset": subset,
        "normalize": normalize,
        "orders": sorted(FEATURE_ORDERS),
        "dtype": "float32",
    }


def feature_key(graphs: Sequence[Any], max_degree: int, subset: str, normalize: str | None) -> str:
    """The cache key (hex sha256) of these graphs' features with these settings."""
    text = json.dumps(_settings(max_degree, subset, normalize), sort_keys=True)
    return hashlib.sha256((text + structure_digest(graphs)).encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sizes(graphs: Sequence[Any]) -> dict[str, int]:
    return {
        "graph": len(graphs),
        "node": sum(int(d.num_nodes) for d in graphs),
        "edge": sum(int(d.edge_index.shape[1]) for d in graphs),
    }


def _compute(
    graphs: Sequence[Any], max_degree: int, subset: str, normalize: str | None, progress: bool
) -> tuple[dict[str, Tensor], dict[str, list[str]]]:
    from torch_geometric.data import Batch
    from tqdm.auto import tqdm

    from ....poly import AddEquivariantPolynomials

    transform = AddEquivariantPolynomials(
        max_degree=max_degree, orders=sorted(FEATURE_ORDERS), subset=subset, normalize=normalize
    )
    parts: dict[str, list[Tensor]] = {short: [] for short, _ in FEATURE_ORDERS.values()}
    chunks = range(0, len(graphs), CHUNK)
    for start in tqdm(chunks, desc=f"features {subset}", unit="chunk", disable=not progress):
        batch = transform(Batch.from_data_list(list(graphs[start : start + CHUNK])))
        for short, attr in FEATURE_ORDERS.values():
            # float64 counts are exact; float32 is what the models consume.
            parts[short].append(batch[attr].to(torch.float32))
    tensors = {}
    for order, (short, _) in FEATURE_ORDERS.items():
        width = len(transform.basis[order])
        tensors[short] = torch.cat(parts[short]) if parts[short] else torch.zeros(0, width)
    names = {short: transform.names(order) for order, (short, _) in FEATURE_ORDERS.items()}
    return tensors, names


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        # A link, a FIFO (a read would block) or a huge file is never read.
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_RECORD_BYTES:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _load_cached(
    folder: Path, key: str, sizes: dict[str, int]
) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """The cached matrices and record of ``key``, or ``None`` when absent or not trustworthy."""
    data_path, record_path = folder / f"{key}.pt", folder / f"{key}.json"
    record = _read_record(record_path)
    if record is None or record.get("key") != key or data_path.is_symlink():
        return None
    try:
        if not data_path.is_file() or _sha256(data_path) != record.get("sha256"):
            return None
        tensors = torch.load(data_path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 (any unreadable or refused file is recomputed)
        return None
    if not isinstance(tensors, dict):
        return None
    for short, rows in sizes.items():
        value = tensors.get(short)
        if not isinstance(value, Tensor) or value.dim() != 2 or value.shape[0] != rows:
            return None
        if value.dtype != torch.float32:
            return None
    return tensors, record


def polynomial_features(
    graphs: Sequence[Any],
    *,
    max_degree: int,
    subset: str,
    normalize: str | None = "log1p",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``({"graph": [G, C0], "node": [N, C1], "edge": [E, C2]}, info)`` for ``graphs``.

    Rows follow the graphs of the list, then their nodes, then their edges in ``edge_index``
    order (``N``, ``E``: totals over the list). ``info`` holds ``key``, ``channels`` (widths),
    ``names`` (the basis element of each channel), ``time_s`` and ``cpu_s`` (the wall and CPU
    time of the computation, basis enumeration included: when the result comes from the cache,
    the times it took when it was computed), ``cached`` and ``load_s`` (seconds spent reading
    the cache).

    Args:
        graphs: PyG ``Data`` objects.
        max_degree, subset, normalize: as :class:`gnnagg.poly.AddEquivariantPolynomials`.
        cache_dir: folder for the cache (created if missing); ``None``: no cache.
        progress: a progress bar over chunks while computing.
    """
    sizes = _sizes(graphs)
    key = feature_key(graphs, max_degree, subset, normalize)
    folder = None
    if cache_dir is not None:
        folder = Path(cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        hit = _load_cached(folder, key, sizes)
        if hit is not None:
            tensors, record = hit
            info = {
                "key": key,
                "channels": {k: int(v.shape[1]) for k, v in tensors.items()},
                "names": record.get("names", {}),
                "time_s": record.get("time_s"),
                "cpu_s": record.get("cpu_s"),
                "cached": True,
                "load_s": round(time.perf_counter() - start, 3),
            }
            return tensors, info
    start, cpu_start = time.perf_counter(), time.process_time()
    tensors, names = _compute(graphs, max_degree, subset, normalize, progress)
    elapsed = round(time.perf_counter() - start, 3)
    cpu = round(time.process_time() - cpu_start, 3)
    info = {
        "key": key,
        "channels": {k: int(v.shape[1]) for k, v in tensors.items()},
        "names": names,
        "time_s": elapsed,
        "cpu_s": cpu,
        "cached": False,
        "load_s": 0.0,
    }
    if folder is not None:
        atomic_write(folder / f"{key}.pt", lambda f: torch.save(tensors, f))
        record = {
            "key": key,
            "settings": _settings(max_degree, subset, normalize),
            "sizes": sizes,
            "sha256": _sha256(folder / f"{key}.pt"),
            "time_s": elapsed,
            "cpu_s": cpu,
            "names": names,
        }
        write_bytes(folder / f"{key}.json", json.dumps(record).encode())
    return tensors, info
