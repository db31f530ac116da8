"""The polynomial-feature config: every field declared once (check, option, override)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ...fields import (
    StudyConfig,
    batch_size_setting,
    bool_check,
    download_setting,
    epochs_setting,
    hidden_channels_setting,
    integer,
    jobs_setting,
    lr_setting,
    names,
    num_layers_setting,
    positive_int,
    seeds_setting,
    setting,
)
from ...training import SCHEDULES
from .model import POLY_MODELS

__all__ = [
    "FEATURE_MODES",
    "MAX_POLY_DEGREE",
    "POLY_DATASETS",
    "POLY_NORMALIZATIONS",
    "PolyConfig",
]

# Molecule regression data sets built from PyPI wheels (OGB molecule sets are named as such).
POLY_DATASETS: tuple[str, ...] = ("zinc-plogp", "freesolv")
# OGB molecule property sets by name: ogb's master list decides at load time which exist.
_OGB_MOLECULES = re.compile(r"ogbg-mol[a-z0-9]+")
# Raw counts are left out: homomorphism counts grow with graph size by orders of magnitude.
POLY_NORMALIZATIONS: tuple[str, ...] = ("log1p", "density")
FEATURE_MODES: tuple[str, ...] = ("none", "beyond-2fwl", "within-2fwl", "all")
# The basis grows about 7 times per degree (degree 6: hundreds of elements, minutes to plan);
# the papers this reproduces stop at 6.
MAX_POLY_DEGREE = 8


def _dataset_names(values: Any, name: str) -> tuple[str, ...]:
    from ....data import OGB_ALIASES

    if isinstance(values, str) or not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name}: expected a non-empty list of names, got {values!r}")
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected names, got {value!r}")
        if value in POLY_DATASETS or value in OGB_ALIASES or _OGB_MOLECULES.fullmatch(value):
            continue
        raise ValueError(
            f"{name}: unknown {value!r}; valid names are {list(POLY_DATASETS)}, "
            f"{sorted(OGB_ALIASES)} or an OGB molecule set 'ogbg-mol<name>'"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: names repeat: {list(values)}")
    return tuple(values)


def _distinct(valid: tuple[str, ...]) -> Any:
    def check(values: Any, name: str) -> tuple[str, ...]:
        values = names(valid)(values, name)
        if len(set(values)) != len(values):
            raise ValueError(f"{name}: names repeat: {list(values)}")
        return values

    return check


def _one_of(valid: tuple[str, ...]) -> Any:
    def check(value: Any, name: str) -> str:
        if value not in valid:
            raise ValueError(f"{name}: expected one of {list(valid)}, got {value!r}")
        return value

    return check


@dataclass
class PolyConfig(StudyConfig):
    """Polynomial features: each model of ``models`` (``num_layers`` layers of width
    ``hidden_channels``) trained per seed with each feature mode of ``features`` on each of
    ``datasets``; test MAE and RMSE, the baselines, the learning curves and the time spent
    computing the features.

    ``features``: ``"none"`` or a subset of the basis up to ``max_degree`` (at most
    :data:`MAX_POLY_DEGREE`) given to :class:`gnnagg.poly.AddEquivariantPolynomials` with
    ``normalize``. ``schedule``: the learning-rate schedule
    (:func:`~gnnagg.bench.training.train_best_on_val`). ``cache_features`` keeps computed features
    under ``<data root>/poly-features/`` (hash-checked). ``download`` as in
    :class:`~gnnagg.bench.studies.real.config.RealConfig`; OGB names other than
    ``ogbg-molfreesolv`` have no fixture and need ``download=True``. ``jobs``: train up to
    this many (data set, features, model, seed) jobs at once, each in its own process with
    ``max(1, threads // jobs)`` torch threads and its own copy of the data (1: one after
    another in this process); the features are computed once, before the jobs start, and the
    jobs read them from the cache (without ``cache_features`` every job computes its own).
    """

    datasets: tuple[str, ...] = setting(
        ("zinc-plogp",), _dataset_names,
        f"{', '.join(POLY_DATASETS)}, ogbg-molfreesolv, or any OGB molecule regression set by "
        "name (ogbg-molesol, ogbg-mollipo: downloaded from OGB's servers, needs --download)",
        metavar="NAME",
    )  # fmt: skip
    models: tuple[str, ...] = setting(
        ("gine",), _distinct(POLY_MODELS), "models", choices=lambda: POLY_MODELS
    )
    features: tuple[str, ...] = setting(
        ("none", "beyond-2fwl"), _distinct(FEATURE_MODES), "feature modes",
        choices=lambda: FEATURE_MODES,
    )  # fmt: skip
    seeds: tuple[int, ...] = seeds_setting((0, 1))
    hidden_channels: int = hidden_channels_setting(64)
    num_layers: int = num_layers_setting(3)
    epochs: int = epochs_setting(30)
    batch_size: int = batch_size_setting(32)
    lr: float = lr_setting(3e-3)
    schedule: str = setting(
        "constant", _one_of(SCHEDULES), "learning-rate schedule", choices=lambda: SCHEDULES
    )
    max_degree: int = setting(
        6, integer(maximum=MAX_POLY_DEGREE), "largest polynomial degree", cli_type=positive_int
    )
    normalize: str = setting(
        "log1p", _one_of(POLY_NORMALIZATIONS), "normalisation of the features",
        choices=lambda: POLY_NORMALIZATIONS,
    )  # fmt: skip
    download: bool = download_setting()
    cache_features: bool = setting(
        True, bool_check, "read and write computed features in the hash-checked cache"
    )
    jobs: int = jobs_setting()

    def validate(self) -> None:
        from ....data import OGB_ALIASES

        for name in self.datasets:
            if not self.download and name not in POLY_DATASETS and name not in OGB_ALIASES:
                raise ValueError(
                    f"datasets: {name!r} has no committed fixture; set download=True "
                    "(downloads from OGB's servers)"
                )
