"""Suite configurations as dataclasses: what each part of ``gnnagg-bench run`` does.

A :class:`SuiteConfig` holds one config per section (size generalisation, speed, real data,
polynomial features).
The whole config is written into ``results.json`` (``dataclasses.asdict``), and a run is
reproduced by feeding the same config and seeds back in (:func:`suite_from_dict`).

The predefined suites are :data:`gnnagg.bench.sections.SUITES`; each section gives its own
config for each of them (``Section.suite_config``):

* ``quick`` (the default, ``make bench``): budgeted to finish in under 15 minutes on a 2-core CPU
  with no network: the 11 core aggregators on ``second_minimum`` with 2 seeds, the speed
  benchmarks in quick mode, and one small real task from the committed fixtures.
* ``full``: every synthetic task, more data, epochs and seeds, test size 256, the complete speed
  benchmarks, the real data sets (downloaded when possible, else their fixtures), and the
  polynomial-feature experiment on the molecule regression sets (GINE with and without
  :class:`gnnagg.poly.AddEquivariantPolynomials` features).
* ``smoke``: every section at toy sizes, in seconds (CI runs it from an installed wheel).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

from ..data import TASKS, TRAIN_SIZES
from .registry import check_aggregators

__all__ = [
    "POLY_DATASETS",
    "POLY_NORMALIZATIONS",
    "POLY_SUBSETS",
    "QUICK_AGGREGATORS",
    "REAL_DATASETS",
    "SPEED_PARTS",
    "PolyConfig",
    "RealConfig",
    "SizeGenConfig",
    "SpeedConfig",
    "SuiteConfig",
    "check_run_name",
    "suite_config",
    "suite_from_dict",
]

# The size-generalisation line-up of the issue: PyG's fixed and learnable aggregators next to
# every gnnagg aggregator.
QUICK_AGGREGATORS: tuple[str, ...] = (
    "sum",
    "mean",
    "max",
    "pna",
    "pyg_lcm",
    "pyg_gru",
    "lcm_gru",
    "lcm_conjugated_sum",
    "lcm_softmax",
    "gru",
    "lstm",
)
REAL_DATASETS: tuple[str, ...] = ("zinc-plogp", "freesolv", "mutag")
# The polynomial-feature experiment regresses molecular properties with OGB atom/bond features.
POLY_DATASETS: tuple[str, ...] = ("zinc-plogp", "freesolv")
# Raw counts are left out: homomorphism counts grow with graph size by orders of magnitude.
POLY_NORMALIZATIONS: tuple[str, ...] = ("log1p", "density")
POLY_SUBSETS: tuple[str, ...] = ("beyond-2fwl", "within-2fwl", "all")
SPEED_PARTS: tuple[str, ...] = ("aggr", "segment", "recurrent", "poly")
# Each size-generalisation job is a process holding its own copy of the data and the torch
# runtime (a few hundred MB): more than this many at once is a typo, not a machine.
MAX_JOBS = 256


def _check_subset(values: tuple[str, ...], valid: tuple[str, ...] | list[str], arg: str) -> None:
    if not values:
        raise ValueError(f"{arg}: needs at least one entry; valid entries are {list(valid)}")
    unknown = [v for v in values if v not in valid]
    if unknown:
        raise ValueError(f"{arg}: unknown {unknown}; valid entries are {list(valid)}")


def _check_positive(config: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")


def _check_lr(lr: float) -> None:
    if not lr > 0:
        raise ValueError(f"lr: expected a positive float, got {lr!r}")


@dataclass
class SizeGenConfig:
    """Size generalisation: train on multisets of ``train_sizes``, test on ``test_sizes``.

    The model is an encoder ``Linear(8, hidden) + ReLU`` over each element's bits, the
    aggregator over the star edges into the readout node, and a decoder MLP; cross-entropy.
    With ``regularise``, gnnagg's approximately associative LCM (``lcm_gru``) adds
    ``reg_weight * associativity_loss()`` and gnnagg's GRU/LSTM add
    ``reg_weight * permutation_loss()`` to the loss. The model kept is the one with the best
    validation accuracy (validation multisets have training sizes).

    Long runs (the ``paper`` suite):

    * ``shuffle_elements``: every epoch, reorder the elements inside each training multiset
      (seeded by seed and epoch) for the order-sensitive aggregators (recurrent ones and
      non-associative LCM trees), as the LCM paper suggests; invariant aggregators see the
      same data either way and skip it.
    * ``val_at_size``: also measure validation accuracy on ``num_val`` multisets of this size
      after every epoch (PyG's ``lcm_aggr_2nd_min`` example reports it at size 32); it does
      not select the model.
    * ``checkpoints``: write ``checkpoints/<task>-<aggregator>-seed<k>.pt`` in the run's
      output folder after every epoch; a run given the same output folder continues every
      job from its checkpoint (also with more ``epochs``).
    * ``jobs``: train up to this many (task, aggregator, seed) jobs at once, each in its own
      process with ``max(1, threads // jobs)`` torch threads (1: in this process).
    * ``time_budget_s``: stop each job after the epoch in which its training time in this
      run passes this many seconds (``None``: no limit); the report gives the epochs done.
    """

    tasks: tuple[str, ...] = ("second_minimum",)
    aggregators: tuple[str, ...] = QUICK_AGGREGATORS
    seeds: tuple[int, ...] = (0, 1)
    hidden: int = 64
    num_train: int = 8192
    num_val: int = 256
    num_test: int = 256
    train_sizes: tuple[int, ...] = TRAIN_SIZES
    test_sizes: tuple[int, ...] = (16, 32, 64, 128)
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-2
    regularise: bool = True
    reg_weight: float = 0.1
    reg_samples: int = 256
    shuffle_elements: bool = False
    val_at_size: int | None = None
    checkpoints: bool = False
    jobs: int = 1
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        from .validation import check_bool, check_finite, check_int

        self.tasks, self.aggregators = tuple(self.tasks), tuple(self.aggregators)
        self.seeds = tuple(self.seeds)
        self.train_sizes, self.test_sizes = tuple(self.train_sizes), tuple(self.test_sizes)
        _check_subset(self.tasks, sorted(TASKS), "tasks")
        check_aggregators(self.aggregators)
        _check_seeds(self.seeds)
        _check_positive(
            self, ("hidden", "num_train", "num_val", "num_test", "epochs", "batch_size")
        )
        _check_positive(self, ("reg_samples",))
        if not self.train_sizes or not self.test_sizes:
            raise ValueError("train_sizes, test_sizes: need at least one size each")
        for arg in ("train_sizes", "test_sizes"):
            sizes = getattr(self, arg)
            if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
                raise ValueError(f"{arg}: expected positive ints, got {sizes!r}")
        # Ascending and distinct: reports and plots read the last size as the largest.
        self.test_sizes = tuple(sorted(set(self.test_sizes)))
        _check_lr(self.lr)
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight: expected a float >= 0, got {self.reg_weight!r}")
        check_bool(self.shuffle_elements, "shuffle_elements")
        check_bool(self.checkpoints, "checkpoints")
        check_int(self.jobs, "jobs", 1, MAX_JOBS)
        if self.val_at_size is not None:
            check_int(self.val_at_size, "val_at_size")
        if self.time_budget_s is not None:
            self.time_budget_s = check_finite(self.time_budget_s, "time_budget_s", positive=True)


@dataclass
class SpeedConfig:
    """Speed and memory: the scripts in ``experiments/`` (``bench_<part>.py``).

    ``aggr_methods`` are the ``bench_aggr`` methods to run (``None``: all of them; the quick
    suite keeps PyG's sum and LCM and three gnnagg aggregators, because every measurement is a
    fresh process). ``aggr_cases`` run for every method; ``aggr_unpadded_cases`` run only for
    methods that do not pad every node to the largest degree (PyG's LCM, GRU and LSTM allocate
    ``[N, max degree, F]``: 12.8 GB at hub5000), which are reported as skipped there.
    ``parts`` that have no script in this checkout are reported as missing.
    """

    parts: tuple[str, ...] = ("aggr", "segment", "poly")
    quick: bool = True
    # Toy sizes for the smoke suite: every part runs in seconds; the numbers mean nothing.
    smoke: bool = False
    aggr_methods: tuple[str, ...] | None = (
        "pyg Sum",
        "pyg LCM",
        "gnnagg LCM[gru]",
        "gnnagg LCM[conjugated_sum]",
        "gnnagg GRU",
    )
    aggr_cases: tuple[str, ...] = ("uniform", "hub200")
    aggr_unpadded_cases: tuple[str, ...] = ("hub5000",)
    recurrent_cases: tuple[str, ...] = ("uniform", "hub200", "hub5000")
    cap_gb: float = 12.0
    timeout_s: float = 180.0

    def __post_init__(self) -> None:
        self.parts = tuple(self.parts)
        if self.aggr_methods is not None:
            self.aggr_methods = tuple(self.aggr_methods)
            if not self.aggr_methods:
                raise ValueError("aggr_methods: needs at least one method, or None for all")
        self.aggr_cases, self.aggr_unpadded_cases = (
            tuple(self.aggr_cases),
            tuple(self.aggr_unpadded_cases),
        )
        self.recurrent_cases = tuple(self.recurrent_cases)
        _check_subset(self.parts, SPEED_PARTS, "parts")
        if self.cap_gb <= 0 or self.timeout_s <= 0:
            raise ValueError("cap_gb, timeout_s: must be positive")


@dataclass
class RealConfig:
    """Real data: a small GNN (``layers`` aggregation layers of width ``hidden``) per data set
    and aggregator; regression targets report MAE (and RMSE), MUTAG accuracy.

    ``fixture=True`` uses the committed fixtures (no network); ``fixture=False`` fetches the
    real data set and falls back to its fixture, with a note, when it cannot be obtained.
    ``data_root`` is the cache folder passed to :func:`gnnagg.data.fetch` (``None``: its
    default).
    """

    datasets: tuple[str, ...] = ("zinc-plogp",)
    aggregators: tuple[str, ...] = ("sum", "pna", "lcm_conjugated_sum")
    seeds: tuple[int, ...] = (0, 1)
    hidden: int = 64
    layers: int = 3
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    fixture: bool = True
    regularise: bool = True
    reg_weight: float = 0.1
    data_root: str | None = None

    def __post_init__(self) -> None:
        self.datasets, self.aggregators = tuple(self.datasets), tuple(self.aggregators)
        self.seeds = tuple(self.seeds)
        _check_subset(self.datasets, REAL_DATASETS, "datasets")
        check_aggregators(self.aggregators)
        _check_seeds(self.seeds)
        _check_positive(self, ("hidden", "layers", "epochs", "batch_size"))
        _check_lr(self.lr)


@dataclass
class PolyConfig:
    """Polynomial features: a GINE regression model (``layers`` layers of width ``hidden``)
    trained per seed without and with :class:`gnnagg.poly.AddEquivariantPolynomials` features
    (``max_degree``, ``subset``, ``normalize``) on each of ``datasets``; test MAE (and RMSE) and
    the time spent computing the features (:mod:`gnnagg.bench.polyexp`).

    ``fixture`` and ``data_root`` as in :class:`RealConfig`.
    """

    datasets: tuple[str, ...] = ("zinc-plogp",)
    seeds: tuple[int, ...] = (0, 1)
    hidden: int = 64
    layers: int = 3
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    max_degree: int = 6
    subset: str = "beyond-2fwl"
    normalize: str = "log1p"
    fixture: bool = True
    data_root: str | None = None

    def __post_init__(self) -> None:
        self.datasets, self.seeds = tuple(self.datasets), tuple(self.seeds)
        _check_subset(self.datasets, POLY_DATASETS, "datasets")
        _check_seeds(self.seeds)
        _check_positive(self, ("hidden", "layers", "epochs", "batch_size", "max_degree"))
        _check_lr(self.lr)
        if self.subset not in POLY_SUBSETS:
            raise ValueError(f"subset: expected one of {list(POLY_SUBSETS)}, got {self.subset!r}")
        if self.normalize not in POLY_NORMALIZATIONS:
            raise ValueError(
                f"normalize: expected one of {list(POLY_NORMALIZATIONS)}, got {self.normalize!r}"
            )


class SuiteConfig:
    """One benchmark run: a config per section it runs, the device and the thread count.

    ``SuiteConfig(name, sizegen=..., speed=None, ...)``: keyword arguments named after the
    registered sections (:data:`gnnagg.bench.sections.SECTIONS`) give their configs; a section
    that is left out or ``None`` does not run. A section's config is read as an attribute
    (``config.sizegen``: ``None`` when the run has none) or from :attr:`sections`.

    ``name`` names the run and its output folder (``<name>-<timestamp>``), so it is a plain
    file name: letters, digits, ``.``, ``_`` and ``-``, not starting with ``.``.

    ``threads`` is the number of torch threads for everything: training in this process and
    the speed benchmarks, in this process and in their worker processes (``OMP_NUM_THREADS``);
    ``None`` means every usable core. The quick suite uses 1: on a shared machine, OpenMP
    threads that wait for a busy core made training 10 to 100 times slower and PyG's sum
    aggregation 6 times slower in our measurements (2 cores, load average 5: 225 ms with 2
    threads, 35 ms with 1), while on an idle machine a second thread gains little for these
    sizes. The full suite uses every core; ``--threads`` overrides either.
    """

    def __init__(
        self,
        name: str = "custom",
        *,
        device: str = "cpu",
        threads: int | None = 1,
        **sections: Any,
    ) -> None:
        from .sections import SECTIONS

        check_run_name(name, "name")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads: expected a positive int or None, got {threads!r}")
        unknown = sorted(set(sections) - set(SECTIONS))
        if unknown:
            raise ValueError(f"sections: unknown {unknown}; sections are {list(SECTIONS)}")
        self.name, self.device, self.threads = name, device, threads
        # Registry order: the order in which sections run and are reported.
        self.sections: dict[str, Any] = {}
        for key, section in SECTIONS.items():
            config = sections.get(key)
            if config is None:
                continue
            if not isinstance(config, section.config_type):
                raise TypeError(
                    f"{key}: expected a {section.config_type.__name__}, got {type(config).__name__}"
                )
            self.sections[key] = config

    def __getattr__(self, key: str) -> Any:
        from .sections import SECTIONS

        if key in SECTIONS:
            return self.__dict__.get("sections", {}).get(key)
        raise AttributeError(f"{type(self).__name__!r} has no attribute {key!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SuiteConfig):
            return NotImplemented
        return (self.name, self.device, self.threads, self.sections) == (
            other.name,
            other.device,
            other.threads,
            other.sections,
        )

    def __repr__(self) -> str:
        sections = ", ".join(f"{k}={v!r}" for k, v in self.sections.items())
        return f"SuiteConfig({self.name!r}, device={self.device!r}, threads={self.threads!r}" + (
            f", {sections})" if sections else ")"
        )

    def replace(self, **changes: Any) -> SuiteConfig:
        """A copy with ``changes`` (``name``, ``device``, ``threads`` or section configs;
        a section set to ``None`` is dropped)."""
        kwargs: dict[str, Any] = {
            "name": self.name,
            "device": self.device,
            "threads": self.threads,
            **self.sections,
        }
        kwargs.update(changes)
        return SuiteConfig(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready data (tuples become lists): ``name``, ``device``,
        ``threads`` and one key per registered section (``None`` for those it does not run)."""
        from .sections import SECTIONS

        data: dict[str, Any] = {"name": self.name}
        for key in SECTIONS:
            config = self.sections.get(key)
            data[key] = None if config is None else dataclasses.asdict(config)
        data["device"], data["threads"] = self.device, self.threads
        return json.loads(json.dumps(data))


_RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def check_run_name(name: Any, arg: str = "name") -> str:
    """``name`` if it is a plain file name (letters, digits, ``.``, ``_``, ``-``; at most 64
    characters; not starting with ``.``), else a ``ValueError`` naming ``arg``: run names become
    folder names, and ``../x`` or ``/tmp/x`` would put results outside the results folder."""
    if not isinstance(name, str) or not _RUN_NAME.fullmatch(name):
        raise ValueError(
            f"{arg}: expected a plain name (letters, digits, '.', '_', '-'; at most 64 "
            f"characters; not starting with '.'), got {name!r}"
        )
    return name


def _check_seeds(seeds: tuple[int, ...]) -> None:
    if not seeds:
        raise ValueError("seeds: needs at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"seeds: expected non-negative ints, got {s!r}")


def suite_config(name: str, seeds: int | None = None, device: str = "cpu") -> SuiteConfig:
    """The predefined suite ``name`` (see :data:`gnnagg.bench.sections.SUITES`), optionally
    with ``seeds`` seeds (``0 .. seeds-1``) instead of the suite's own number: every
    registered section contributes its config for that suite."""
    from .sections import SECTIONS, SUITES

    if name not in SUITES:
        raise ValueError(f"suite: unknown suite {name!r}; valid suites are {list(SUITES)}")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds: expected a positive int, got {seeds!r}")
    suite = SUITES[name]
    seed_list = tuple(range(seeds or suite.seeds))
    configs = {key: section.suite_config(name, seed_list) for key, section in SECTIONS.items()}
    return SuiteConfig(name, device=device, threads=suite.threads, **configs)


def suite_from_dict(data: dict[str, Any]) -> SuiteConfig:
    """Rebuild a :class:`SuiteConfig` from :meth:`SuiteConfig.to_dict` (e.g. ``results.json``).

    ``TypeError`` when ``data`` is not a dict; ``ValueError`` naming the key for anything
    else that is not a valid config (unknown keys, wrong types, out-of-range values).
    """
    from .sections import SECTIONS

    if not isinstance(data, dict):
        raise TypeError(f"data: expected a dict, got {type(data).__name__}")
    known = {"name", "device", "threads", *SECTIONS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"config: unknown keys {unknown}; keys are {sorted(known)}")
    kwargs: dict[str, Any] = {k: data[k] for k in ("name", "device", "threads") if k in data}
    for key, section in SECTIONS.items():
        value = data.get(key)
        if value is not None:
            kwargs[key] = section.config_from_dict(value)
    try:
        return SuiteConfig(**kwargs)
    except TypeError as error:
        raise ValueError(f"config: {error}") from None
