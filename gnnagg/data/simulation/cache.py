"""Mesh simulations on disk: atomic ``.npz`` files without pickles, a hash-stamped cache, and
the small committed fixture.

:func:`mesh_simulation` is the entry point: it generates a data set
(:func:`~gnnagg.data.simulation.generate.generate_simulation`) or loads it from the cache. The
card is ``datasets/mesh_simulation.md``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._files import atomic_write, write_text
from ..download import cache_root, datasets_dir, sha256_file
from ..meshes import ChannelMesh
from .generate import RECIPE_VERSION, MeshSimulation, MeshSimulationConfig, generate_simulation

__all__ = ["load_mesh_simulation", "mesh_simulation", "save_mesh_simulation", "write_fixture"]

# The committed fixture (datasets/mesh_simulation.md): its configuration, path and sha256.
_FIXTURE_OPTIONS: dict[str, Any] = {
    "dim": 2,
    "num_nodes": 300,
    "num_trajectories": 4,
    "num_steps": 10,
    "splits": (0.5, 0.25, 0.25),
}
_FIXTURE_PATH = "fixtures/mesh_simulation/advection_diffusion_2d_300.npz"
_FIXTURE_SHA256 = "542ceced86b89603bbe77e830c06523fed1df3ee89f82b6aaa6e25ea528655c6"


def save_mesh_simulation(sim: MeshSimulation, path: str | os.PathLike[str]) -> str:
    """Write ``sim`` to ``path`` (an ``.npz`` of plain arrays, no pickled objects) atomically
    with :func:`gnnagg._files.atomic_write` (a temporary file in the same folder, renamed into
    place when complete; a link at ``path`` is replaced, not followed). Returns its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meshes = sim.meshes
    dim = sim.config.dim
    arrays = {
        "config": np.array(json.dumps(sim.config.to_dict(), sort_keys=True)),
        "recipe": np.array(RECIPE_VERSION),
        # One row per mesh; the cells of every mesh one after another, cell_counts of each.
        "pos": np.stack([m.pos for m in meshes]),
        "cells": np.concatenate([m.cells for m in meshes]),
        "cell_counts": np.array([len(m.cells) for m in meshes], dtype=np.int64),
        "node_type": np.stack([m.node_type for m in meshes]),
        "spacing": np.array([m.spacing for m in meshes]),
        "centre": np.array([m.centre if m.centre is not None else [np.nan] * dim for m in meshes]),
        "radius": np.array([m.radius if m.radius is not None else np.nan for m in meshes]),
        "mesh_ids": sim.mesh_ids.numpy(),
        "u": sim.u.numpy(),
        "kappa": sim.kappa.numpy(),
        "drift": sim.drift.numpy(),
        "ell": sim.ell.numpy(),
    }
    atomic_write(path, lambda handle: np.savez(handle, **arrays))
    return sha256_file(path)


_ARRAYS = (
    "config", "recipe", "pos", "cells", "cell_counts", "node_type", "spacing", "centre", "radius",
    "mesh_ids", "u", "kappa", "drift", "ell",
)  # fmt: skip


def load_mesh_simulation(path: str | os.PathLike[str], sha256: str | None = None) -> MeshSimulation:
    """Load a file written by :func:`save_mesh_simulation` (``allow_pickle=False``); with
    ``sha256``, the file's hash must match. A file that is not such a data set, or whose arrays
    disagree with its configuration, raises ``ValueError`` naming the file."""
    path = Path(path)
    if sha256 is not None and sha256_file(path) != sha256:
        raise ValueError(f"{path}: sha256 does not match the expected {sha256}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        missing = [k for k in _ARRAYS if k not in arrays]
        if missing:
            raise ValueError(f"arrays {missing} are missing")
        config_dict = json.loads(str(arrays["config"]))
        config_dict["splits"] = tuple(config_dict["splits"])
        config_dict["blob_widths"] = tuple(config_dict["blob_widths"])
        config = MeshSimulationConfig(**config_dict)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{path}: not a mesh simulation file ({err})") from err
    n, dim, num = config.num_nodes, config.dim, config.num_trajectories
    meshes = arrays["pos"].shape[0] if arrays["pos"].ndim == 3 else 0
    expected = {
        "pos": (meshes, n, dim),
        "node_type": (meshes, n),
        "cell_counts": (meshes,),
        "spacing": (meshes,),
        "centre": (meshes, dim),
        "radius": (meshes,),
        "mesh_ids": (num,),
        "u": (num, config.num_steps + 1, n),
        "kappa": (num,),
        "drift": (num, dim),
        "ell": (num,),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ValueError(f"{path}: {name} has shape {arrays[name].shape}, expected {shape}")
        kind = "iu" if name in ("node_type", "cell_counts", "mesh_ids") else "f"
        if arrays[name].dtype.kind not in kind:
            raise ValueError(f"{path}: {name} has dtype {arrays[name].dtype}")
    if arrays["u"].dtype != np.dtype(config.dtype):
        raise ValueError(f"{path}: u has dtype {arrays['u'].dtype}, its configuration says "
                         f"{config.dtype}")
    cells, counts, ids = arrays["cells"], arrays["cell_counts"], arrays["mesh_ids"]
    if cells.dtype.kind not in "iu":
        raise ValueError(f"{path}: cells must hold integer node ids, got dtype {cells.dtype}")
    if meshes == 0 or ids.min() < 0 or ids.max() >= meshes:
        raise ValueError(f"{path}: mesh_ids do not index its {meshes} meshes")
    if cells.ndim != 2 or cells.shape[1] != dim + 1 or (
        cells.size and (cells.min() < 0 or cells.max() >= n)
    ):
        raise ValueError(f"{path}: cells do not index the {n} nodes with {dim + 1} corners")
    if counts.min() < 1 or counts.sum() != len(cells):
        raise ValueError(f"{path}: cell_counts do not add up to its {len(cells)} cells")
    if not np.isfinite(arrays["spacing"]).all() or (arrays["spacing"] <= 0).any():
        raise ValueError(f"{path}: spacing must hold finite positive floats")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    meshes_loaded = tuple(
        ChannelMesh(
            pos=arrays["pos"][k],
            cells=cells[bounds[k] : bounds[k + 1]].astype(np.int64),
            node_type=arrays["node_type"][k],
            spacing=float(arrays["spacing"][k]),
            obstacle=config.obstacle,
            centre=None if np.isnan(arrays["radius"][k]) else tuple(arrays["centre"][k].tolist()),
            radius=None if np.isnan(arrays["radius"][k]) else float(arrays["radius"][k]),
        )
        for k in range(meshes)
    )
    return MeshSimulation(
        config=config,
        meshes=meshes_loaded,
        mesh_ids=torch.from_numpy(ids),
        u=torch.from_numpy(arrays["u"]),
        kappa=torch.from_numpy(arrays["kappa"]),
        drift=torch.from_numpy(arrays["drift"]),
        ell=torch.from_numpy(arrays["ell"]),
        splits={k: torch.from_numpy(v) for k, v in config.split_ids().items()},
    )


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    write_text(path, json.dumps(payload, indent=1, sort_keys=True))


def _cached(config: MeshSimulationConfig, root: Path) -> MeshSimulation | None:
    folder = root / "mesh_simulation"
    data, stamp = folder / f"{config.key()}.npz", folder / f"{config.key()}.json"
    if not stamp.is_file():  # missing, or a FIFO or device planted there (a read would block)
        return None
    try:
        with open(stamp, encoding="utf-8") as f:
            expected = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(expected, dict):
        warnings.warn(f"{stamp}: not a stamp of this cache; rebuilding", stacklevel=3)
        return None
    if expected.get("config") != config.to_dict() or expected.get("recipe") != RECIPE_VERSION:
        return None
    if not data.is_file() or sha256_file(data) != expected.get("sha256"):
        warnings.warn(
            f"{data}: missing or its sha256 does not match {stamp}; rebuilding", stacklevel=3
        )
        return None
    try:
        loaded = load_mesh_simulation(data)
    except ValueError as err:
        warnings.warn(f"{err}; rebuilding", stacklevel=3)
        return None
    if loaded.config != config:
        warnings.warn(f"{data}: holds another configuration than {stamp}; rebuilding", stacklevel=3)
        return None
    return loaded


def mesh_simulation(
    dim: int = 2,
    num_nodes: int = 10_000,
    num_trajectories: int = 50,
    num_steps: int = 100,
    *,
    ell: float = 2.0,
    ell_spread: float = 0.25,
    max_drift: float = 0.25,
    dt: float = 0.01,
    obstacle: bool = True,
    seed: int = 0,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    dtype: str = "float32",
    geometry: str = "fixed",
    blob_widths: tuple[float, float] = (2.0, 4.0),
    root: str | os.PathLike[str] | None = None,
    cache: bool = True,
    fixture: bool = False,
) -> MeshSimulation:
    """Generate (or load from the cache) an advection–diffusion data set.

    The arguments are those of :class:`MeshSimulationConfig`. With ``cache=True`` the result is
    stored in ``<root>/mesh_simulation/<key>.npz`` beside a ``<key>.json`` stamp holding the
    configuration and the file's sha256; both are written atomically (temporary file, then
    ``os.replace``) and a file whose hash no longer matches is rebuilt. ``root`` defaults to
    ``$GNNAGG_DATA`` or ``~/.cache/gnnagg``. ``fixture=True`` returns the small committed data
    set instead (2-D, 300 nodes, 4 trajectories of 10 steps, hash-checked; the other arguments
    must be left at their defaults), as generated by :func:`write_fixture`.

    The generation cost of the default sizes is measured in ``datasets/mesh_simulation.md``.
    """
    if fixture:
        given = {
            "dim": dim,
            "num_nodes": num_nodes,
            "num_trajectories": num_trajectories,
            "num_steps": num_steps,
            "ell": ell,
            "ell_spread": ell_spread,
            "max_drift": max_drift,
            "dt": dt,
            "obstacle": obstacle,
            "seed": seed,
            "splits": tuple(splits),
            "dtype": dtype,
            "geometry": geometry,
            "blob_widths": tuple(blob_widths),
        }
        defaults = MeshSimulationConfig().to_dict() | {
            "splits": MeshSimulationConfig().splits,
            "blob_widths": MeshSimulationConfig().blob_widths,
        }
        changed = sorted(k for k, v in given.items() if v != defaults[k])
        if changed:
            raise ValueError(f"fixture=True loads a fixed data set; do not pass {changed}")
        return load_mesh_simulation(datasets_dir() / _FIXTURE_PATH, sha256=_FIXTURE_SHA256)
    config = MeshSimulationConfig(
        dim=dim,
        num_nodes=num_nodes,
        num_trajectories=num_trajectories,
        num_steps=num_steps,
        ell=ell,
        ell_spread=ell_spread,
        max_drift=max_drift,
        dt=dt,
        obstacle=obstacle,
        seed=seed,
        splits=splits,
        dtype=dtype,
        geometry=geometry,
        blob_widths=blob_widths,
    )
    if not cache:
        return generate_simulation(config)
    folder = cache_root(root) / "mesh_simulation"
    found = _cached(config, folder.parent)
    if found is not None:
        return found
    sim = generate_simulation(config)
    folder.mkdir(parents=True, exist_ok=True)
    digest = save_mesh_simulation(sim, folder / f"{config.key()}.npz")
    _write_json(
        folder / f"{config.key()}.json",
        {"config": config.to_dict(), "recipe": RECIPE_VERSION, "sha256": digest},
    )
    return sim


def write_fixture(folder: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Regenerate the committed fixture into ``folder`` (default: the ``datasets/`` folder);
    returns its path and sha256 (to be written into ``_FIXTURE_SHA256``)."""
    base = Path(folder) if folder is not None else datasets_dir()
    sim = mesh_simulation(**_FIXTURE_OPTIONS, cache=False)
    path = base / _FIXTURE_PATH
    return path, save_mesh_simulation(sim, path)
