"""QM9 with 3-D coordinates and its 12 standard targets, from the qm9pack wheel's CSVs.

qm9pack ships QM9 (Ramakrishnan et al. 2014; 130,831 molecules) as three CSV parts with one
molecule per row: element list, Cartesian coordinates in Ångström (``XYZ_Ang``) and the
properties. Each molecule becomes a ``Data`` with ``z`` (atomic numbers, hydrogens included),
``pos`` ``[num_atoms, 3]`` in Å, ``y`` ``[1, 12]`` in the units of the source (below), ``idx``
(the GDB-9 index) and ``smiles``. No edges are stored: 3-D models build them from ``pos`` (e.g.
``torch_geometric.transforms.RadiusGraph``).

Targets, in order (:data:`QM9_TARGETS`): mu (D), alpha (bohr³), homo, lumo, gap (Hartree),
r2 (bohr²), zpve, U0, U, H, G (Hartree), Cv (cal/(mol K)). PyG's ``QM9`` converts energies to eV;
here they stay as published.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

from .._checks import check_positive
from .molecules import stable_rank
from .safe_load import load_collated

__all__ = ["QM9_TARGETS", "QM9Dataset", "build_qm9", "load_qm9"]

# (name, source column, unit) for the 12 standard targets.
QM9_TARGETS: tuple[tuple[str, str, str], ...] = (
    ("mu", "Dipole_debye", "D"),
    ("alpha", "Polarizability_bohr3", "bohr^3"),
    ("homo", "HOMO_au", "Hartree"),
    ("lumo", "LUMO_au", "Hartree"),
    ("gap", "HOMO_LUMO_gap_au", "Hartree"),
    ("r2", "R2_bohr2", "bohr^2"),
    ("zpve", "ZPVE_au", "Hartree"),
    ("U0", "InternalEnergy_0K_au", "Hartree"),
    ("U", "InternalEnergy_298K_au", "Hartree"),
    ("H", "Enthalphy_298K_au", "Hartree"),
    ("G", "GibbsFreeEnergy_298K_au", "Hartree"),
    ("Cv", "Heatcapacity_Cv_cal_mol_K", "cal/(mol K)"),
)
_ATOMIC_NUMBER = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
_COLUMNS = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang"] + [c for _, c, _ in QM9_TARGETS]
_FILE = "qm9.pt"
QM9_SALT = "gnnagg-qm9:"


class QM9Dataset(InMemoryDataset):
    """An in-memory QM9 built by :func:`build_qm9`; ``target_names`` lists the 12 targets."""

    target_names = tuple(name for name, _, _ in QM9_TARGETS)

    def __init__(self, path: str | Path, transform: Any = None) -> None:
        super().__init__(root=None, transform=transform)
        # Not InMemoryDataset.load: PyG's fs.torch_load retries as a full (unsafe) unpickle.
        self.data, self.slices, _ = load_collated(path)


def _parse_elements(text: str) -> list[int]:
    names = [t.strip().strip("'\"") for t in text.strip()[1:-1].split(",")]
    try:
        return [_ATOMIC_NUMBER[n] for n in names]
    except KeyError as err:
        raise ValueError(f"QM9 row has an unexpected element {err.args[0]!r}") from None


def _parse_coordinates(text: str) -> np.ndarray:
    # Not JSON: the source writes numbers such as "0." and "1.", which float() accepts.
    flat = text.replace("[", "").replace("]", "").split(",")
    return np.array(flat, dtype=np.float64).reshape(-1, 3)


def build_qm9(raw: dict[str, Path], out: Path, subset: int | None = None) -> None:
    """Parse the qm9pack CSV part(s) in ``raw`` (in name order) into ``out/qm9.pt``.

    ``subset``: keep this many molecules, chosen by ``sha256("gnnagg-qm9:" + index)`` rank and
    stored in index order; ``None`` keeps all.
    """
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError("the qm9 data set needs pandas: pip install 'gnnagg[data]'") from err
    frames = [pd.read_csv(raw[name], usecols=_COLUMNS) for name in sorted(raw)]
    df = pd.concat(frames, ignore_index=True).sort_values("Index", kind="stable")
    if subset is not None:
        subset = check_positive(subset, "subset")
        if subset > len(df):
            raise ValueError(f"subset: {subset} requested, the source has {len(df)} molecules")
        keep = stable_rank([str(i) for i in df["Index"]], QM9_SALT)[:subset]
        df = df.iloc[sorted(keep.tolist())]

    targets = torch.tensor(df[[c for _, c, _ in QM9_TARGETS]].to_numpy(), dtype=torch.float64)
    data_list = []
    for row, (index, smiles, n_atoms, elements, xyz) in enumerate(
        zip(df["Index"], df["SMILES"], df["N_atoms"], df["Elements"], df["XYZ_Ang"])
    ):
        z = torch.tensor(_parse_elements(elements), dtype=torch.long)
        pos = torch.from_numpy(_parse_coordinates(xyz)).to(torch.float32)
        if pos.shape != (int(n_atoms), 3) or z.numel() != int(n_atoms):
            raise ValueError(f"QM9 molecule {index}: atom count does not match its coordinates")
        data_list.append(
            Data(
                z=z,
                pos=pos,
                y=targets[row].to(torch.float32).view(1, -1),
                idx=torch.tensor([int(index)]),
                smiles=str(smiles),
                num_nodes=int(n_atoms),
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    InMemoryDataset.save(data_list, str(out / _FILE))


def load_qm9(out: Path, transform: Any = None) -> QM9Dataset:
    """Load the QM9 built by :func:`build_qm9`."""
    return QM9Dataset(out / _FILE, transform=transform)
