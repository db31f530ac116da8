"""Reading built ``.pt`` files without ever running pickled code.

A ``.pt`` file is a pickle. ``torch.load`` without the weights-only restriction, and PyG's
``fs.torch_load`` which falls back to it when the safe load fails, runs whatever callable the
file names, so a cache file replaced by someone else would run their code. Every file gnnagg
reads back goes through :func:`load_weights_only` instead: ``torch.load(weights_only=True)``
with only PyG's data classes allowed on top of tensors and plain containers, and no fallback. A
file that needs anything else is refused with :class:`UnsafeFileError`.

The data sets that PyG and ogb would load themselves are read through
:func:`safe_graph_prop_pred_dataset` (an ogb ``PygGraphPropPredDataset`` subclass) and
:class:`~gnnagg.data.tu_format.TUFormatDataset` (in place of ``TUDataset``), which take the same
files through this module.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .download import FetchError

__all__ = ["UnsafeFileError", "load_collated", "load_weights_only", "pyg_safe_globals"]


class UnsafeFileError(FetchError):
    """A file would need more than tensors and PyG data classes to load, so it was not written
    by gnnagg (or PyG) and is refused rather than unpickled."""


def pyg_safe_globals() -> list[Any]:
    """The classes a PyG ``InMemoryDataset`` file refers to: its data and storage classes.

    Unpickling them only sets attributes; none runs code named by the file.
    """
    from torch_geometric.data import Batch, Data, HeteroData
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import (
        BaseStorage,
        EdgeStorage,
        GlobalStorage,
        NodeStorage,
    )

    return [
        Data,
        HeteroData,
        Batch,
        DataEdgeAttr,
        DataTensorAttr,
        BaseStorage,
        EdgeStorage,
        GlobalStorage,
        NodeStorage,
    ]


@contextlib.contextmanager
def _allowed(globals_: list[Any]) -> Iterator[None]:
    scoped = getattr(torch.serialization, "safe_globals", None)
    if scoped is not None:
        with scoped(globals_):
            yield
        return
    # torch 2.4 has only the process-wide allow list; the classes are the same either way.
    torch.serialization.add_safe_globals(globals_)
    yield


def load_weights_only(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU, allowing PyG's data classes.

    Raises:
        UnsafeFileError: the file names any other global (a tampered or foreign file); nothing
            from it has been run.
        FetchError: the file is missing or not a torch file at all.
    """
    path = Path(path)
    try:
        with _allowed(pyg_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UnsafeFileError(
            f"refused to load {path}: it needs more than tensors and PyG data classes "
            f"({first}). gnnagg never unpickles arbitrary objects; the file was not written by "
            "gnnagg. Delete it (fetch() then rebuilds it) if you did not put it there."
        ) from None
    except FileNotFoundError:
        raise FetchError(f"{path} is missing") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise FetchError(f"{path} is not a readable torch file ({err})") from None


def load_collated(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Tensor] | None, tuple]:
    """Read an ``InMemoryDataset`` file safely: ``(data, slices, extra)``.

    Accepts the layouts PyG writes: ``(data, slices)`` (older files and ogb),
    ``(data_dict, slices, data_cls)`` (``InMemoryDataset.save``) and
    ``(data_dict, slices, sizes, data_cls)`` (``TUDataset``); ``extra`` holds what lies between
    ``slices`` and ``data_cls`` (``(sizes,)`` for TU files).
    """
    from torch_geometric.data import Data, HeteroData

    out = load_weights_only(path)
    if not isinstance(out, tuple) or not 2 <= len(out) <= 4:
        raise FetchError(f"{path} does not hold an InMemoryDataset (data, slices, ...) tuple")
    data, slices = out[0], out[1]
    extra: tuple = ()
    data_cls: type = Data
    if len(out) >= 3:
        data_cls = out[-1]
        extra = tuple(out[2:-1])
        if data_cls not in (Data, HeteroData):
            raise FetchError(f"{path} names data class {data_cls!r}, expected Data or HeteroData")
    if isinstance(data, dict):
        data = data_cls.from_dict(data)
    if not isinstance(data, (Data, HeteroData)):
        raise FetchError(f"{path} holds {type(data).__name__}, not a PyG Data object")
    if slices is not None and not isinstance(slices, dict):
        raise FetchError(f"{path} has slices of type {type(slices).__name__}, expected a dict")
    return data, slices, extra


def _files_exist(paths: list[str]) -> bool:
    return len(paths) > 0 and all(os.path.exists(p) for p in paths)


class _SafeOGBMixin:
    """Processing without PyG's check of ``pre_transform.pt`` / ``pre_filter.pt``."""

    def _process(self) -> None:
        # PyG's Dataset._process first unpickles processed/pre_transform.pt and pre_filter.pt
        # without the weights-only restriction to compare them; gnnagg passes neither, so it
        # only processes when the output is missing and writes no such files.
        if _files_exist(self.processed_paths):
            return
        os.makedirs(self.processed_dir, exist_ok=True)
        self.process()


def safe_graph_prop_pred_dataset(
    name: str,
    root: str | os.PathLike[str] = "dataset",
    transform: Any = None,
    meta_dict: dict[str, Any] | None = None,
) -> Any:
    """An ogb ``PygGraphPropPredDataset`` whose files are read with :func:`load_weights_only`.

    ogb's constructor unpickles ``processed/geometric_data_processed.pt`` with torch's default
    ``weights_only`` (``False`` before torch 2.6 or under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) and
    PyG's processing step unpickles ``pre_transform.pt`` without that restriction. The returned
    object is an instance of a subclass (``SafeGraphPropPredDataset``) that sets up the same
    attributes as ogb 1.3's constructor and loads through this module instead.
    """
    return _safe_ogb_class()(name, root=root, transform=transform, meta_dict=meta_dict)


@functools.cache
def _safe_ogb_class() -> type:
    # Built on first use: ogb is an optional dependency.
    import ogb.graphproppred
    import pandas as pd
    from torch_geometric.data import InMemoryDataset

    base = ogb.graphproppred.PygGraphPropPredDataset
    master_csv = os.path.join(os.path.dirname(ogb.graphproppred.__file__), "master.csv")

    class SafeGraphPropPredDataset(_SafeOGBMixin, base):
        """ogb's ``PygGraphPropPredDataset``, loaded with ``weights_only=True`` only."""

        def __init__(
            self,
            name: str,
            root: str = "dataset",
            transform: Any = None,
            meta_dict: dict[str, Any] | None = None,
        ) -> None:
            self.name = name
            if meta_dict is None:
                self.dir_name = "_".join(name.split("-"))
                if os.path.exists(os.path.join(root, self.dir_name + "_pyg")):
                    self.dir_name = self.dir_name + "_pyg"
                self.original_root = root
                self.root = os.path.join(root, self.dir_name)
                master = pd.read_csv(master_csv, index_col=0, keep_default_na=False)
                if name not in master:
                    raise ValueError(f"name: {name!r} is not an OGB graph-property data set")
                self.meta_info = master[name]
            else:
                self.dir_name = meta_dict["dir_path"]
                self.original_root = ""
                self.root = meta_dict["dir_path"]
                self.meta_info = meta_dict
            self.download_name = self.meta_info["download_name"]
            self.num_tasks = int(self.meta_info["num tasks"])
            self.eval_metric = self.meta_info["eval metric"]
            self.task_type = self.meta_info["task type"]
            self.__num_classes__ = int(self.meta_info["num classes"])
            self.binary = self.meta_info["binary"] == "True"
            InMemoryDataset.__init__(self, self.root, transform, None)
            data, slices, _ = load_collated(self.processed_paths[0])
            self.data, self.slices = data, slices

        def get_idx_split(self, split_type: str | None = None) -> dict[str, Tensor]:
            if split_type is None:
                split_type = self.meta_info["split"]
            cached = os.path.join(self.root, "split", split_type, "split_dict.pt")
            if os.path.isfile(cached):
                split = load_weights_only(cached)
                if not isinstance(split, dict) or not all(
                    isinstance(v, Tensor) for v in split.values()
                ):
                    raise FetchError(f"{cached} does not hold a dict of index tensors")
                return split
            return super().get_idx_split(split_type)

    SafeGraphPropPredDataset.__qualname__ = "SafeGraphPropPredDataset"
    SafeGraphPropPredDataset.__module__ = __name__
    return SafeGraphPropPredDataset
