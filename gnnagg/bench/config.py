"""Suite configurations as dataclasses: what each part of ``gnnagg-bench run`` does.

A :class:`SuiteConfig` holds one config per section (size generalisation, speed, real data,
polynomial features).
The whole config is written into ``results.json`` (``dataclasses.asdict``), and a run is
reproduced by feeding the same config and seeds back in (:func:`suite_from_dict`).

Two suites are predefined:

* ``quick`` (the default, ``make bench``): budgeted to finish in under 15 minutes on a 2-core CPU
  with no network: the 11 core aggregators on ``second_minimum`` with 2 seeds, the speed
  benchmarks in quick mode, and one small real task from the committed fixtures.
* ``full``: every synthetic task, more data, epochs and seeds, test size 256, the complete speed
  benchmarks, the real data sets (downloaded when possible, else their fixtures), and the
  polynomial-feature experiment on the molecule regression sets (GINE with and without
  :class:`gnnagg.poly.AddEquivariantPolynomials` features).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..data import TASKS, TRAIN_SIZES
from .registry import AGGREGATORS, check_aggregators

__all__ = [
    "POLY_DATASETS",
    "POLY_NORMALIZATIONS",
    "POLY_SUBSETS",
    "QUICK_AGGREGATORS",
    "REAL_DATASETS",
    "SPEED_PARTS",
    "SUITES",
    "PolyConfig",
    "RealConfig",
    "SizeGenConfig",
    "SpeedConfig",
    "SuiteConfig",
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
SUITES: tuple[str, ...] = ("quick", "full")


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

    def __post_init__(self) -> None:
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


@dataclass
class SuiteConfig:
    """One benchmark run: its sections (``None`` skips one), device and thread count.

    ``threads`` is the number of torch threads for everything: training in this process and
    the speed benchmarks, in this process and in their worker processes (``OMP_NUM_THREADS``);
    ``None`` means every usable core. The quick suite uses 1: on a shared machine, OpenMP
    threads that wait for a busy core made training 10 to 100 times slower and PyG's sum
    aggregation 6 times slower in our measurements (2 cores, load average 5: 225 ms with 2
    threads, 35 ms with 1), while on an idle machine a second thread gains little for these
    sizes. The full suite uses every core; ``--threads`` overrides either.
    """

    name: str = "quick"
    sizegen: SizeGenConfig | None = field(default_factory=SizeGenConfig)
    speed: SpeedConfig | None = field(default_factory=SpeedConfig)
    real: RealConfig | None = field(default_factory=RealConfig)
    # Off by default: the quick suite's 15-minute budget is spent on the other sections.
    poly: PolyConfig | None = None
    device: str = "cpu"
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {self.device!r}")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise ValueError(f"threads: expected a positive int or None, got {self.threads!r}")

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready data (tuples become lists)."""
        return dataclasses.asdict(self)


def _check_seeds(seeds: tuple[int, ...]) -> None:
    if not seeds:
        raise ValueError("seeds: needs at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"seeds: expected non-negative ints, got {s!r}")


def suite_config(name: str, seeds: int | None = None, device: str = "cpu") -> SuiteConfig:
    """The predefined suite ``name`` (``"quick"`` or ``"full"``), optionally with ``seeds``
    seeds (``0 .. seeds-1``) instead of the suite's own number."""
    if name not in SUITES:
        raise ValueError(f"suite: unknown suite {name!r}; valid suites are {list(SUITES)}")
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds: expected a positive int, got {seeds!r}")
    if name == "quick":
        seed_list = tuple(range(seeds or 2))
        return SuiteConfig(
            name="quick",
            sizegen=SizeGenConfig(seeds=seed_list),
            speed=SpeedConfig(),
            real=RealConfig(seeds=seed_list),
            device=device,
        )
    seed_list = tuple(range(seeds or 3))
    return SuiteConfig(
        name="full",
        sizegen=SizeGenConfig(
            tasks=tuple(sorted(TASKS)),
            aggregators=tuple(AGGREGATORS),
            seeds=seed_list,
            hidden=128,
            num_train=16384,
            num_val=512,
            num_test=512,
            test_sizes=(16, 32, 64, 128, 256),
            epochs=100,
            batch_size=512,
            lr=5e-3,
        ),
        speed=SpeedConfig(
            parts=SPEED_PARTS,
            quick=False,
            aggr_methods=None,
            aggr_cases=("uniform", "hub200", "hub5000"),
            aggr_unpadded_cases=(),
            timeout_s=900.0,
            cap_gb=16.0,
        ),
        real=RealConfig(
            datasets=REAL_DATASETS,
            aggregators=("sum", "mean", "max", "pna", "lcm_gru", "lcm_conjugated_sum", "gru"),
            seeds=seed_list,
            hidden=128,
            layers=4,
            epochs=100,
            fixture=False,
        ),
        poly=PolyConfig(
            datasets=POLY_DATASETS,
            seeds=seed_list,
            hidden=128,
            layers=4,
            epochs=100,
            fixture=False,
        ),
        device=device,
        threads=None,
    )


def suite_from_dict(data: dict[str, Any]) -> SuiteConfig:
    """Rebuild a :class:`SuiteConfig` from :meth:`SuiteConfig.to_dict` (e.g. ``results.json``)."""
    if not isinstance(data, dict):
        raise TypeError(f"data: expected a dict, got {type(data).__name__}")
    sections = {
        "sizegen": SizeGenConfig,
        "speed": SpeedConfig,
        "real": RealConfig,
        "poly": PolyConfig,
    }
    kwargs: dict[str, Any] = {k: v for k, v in data.items() if k not in sections}
    for key, cls in sections.items():
        value = data.get(key)
        kwargs[key] = None if value is None else cls(**value)
    return SuiteConfig(**kwargs)
