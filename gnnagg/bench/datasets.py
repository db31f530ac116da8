"""The real graph data sets the studies train on, with how each is learnt and scored, loaded
from :func:`gnnagg.data.fetch`: the committed fixture, or the full set with a fallback to the
fixture (and a note saying so) when it cannot be fetched."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..data import FetchError, fetch

__all__ = ["DATASET_TASKS", "DatasetTask", "load_real"]


@dataclass(frozen=True)
class DatasetTask:
    """How a real data set is learnt and scored."""

    kind: str  # "regression" or "classification"
    metric: str  # the primary metric: "mae", "rmse" or "accuracy"
    node_features: int | None  # None: OGB atom features
    edge_features: int | None  # None: OGB bond features
    num_classes: int = 1

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"


DATASET_TASKS: dict[str, DatasetTask] = {
    "zinc-plogp": DatasetTask("regression", "mae", None, None),
    "freesolv": DatasetTask("regression", "rmse", None, None),
    "mutag": DatasetTask("classification", "accuracy", 7, 4, num_classes=2),
}


def _split(name: str, dataset: Any) -> dict[str, Tensor]:
    if hasattr(dataset, "get_idx_split"):
        split = dataset.get_idx_split()
        return {"train": split["train"], "val": split["valid"], "test": split["test"]}
    # TU data sets have no official split: a fixed permutation, the same for every seed.
    n = len(dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_val = n_test = max(1, n // 10)
    return {
        "train": order[: n - n_val - n_test],
        "val": order[n - n_val - n_test : n - n_test],
        "test": order[n - n_test :],
    }


def load_real(
    name: str, download: bool = False, root: str | os.PathLike[str] | None = None
) -> tuple[Any, dict[str, Tensor], str, str | None]:
    """``(dataset, split, source, note)`` for data set ``name``: the committed fixture, or with
    ``download`` the full set (the fixture when it cannot be fetched). ``root`` is the data
    cache folder (:func:`gnnagg.data.cache_root`).

    ``source`` is ``"fixture"`` or ``"full"``; ``note`` explains a fallback to the fixture.
    """
    if name not in DATASET_TASKS:
        raise ValueError(f"name: unknown data set {name!r}; valid names are {list(DATASET_TASKS)}")
    note = None
    if not download:
        dataset, source = fetch(name, root, fixture=True), "fixture"
    else:
        try:
            dataset, source = fetch(name, root), "full"
        except FetchError as error:
            first = (str(error).strip().splitlines() or ["FetchError"])[0][:200]
            note = f"the full data set could not be fetched ({first}); used the fixture"
            dataset, source = fetch(name, root, fixture=True), "fixture"
    return dataset, _split(name, dataset), source, note
