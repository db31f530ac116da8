"""The configuration of one ``gnnagg-bench`` run: :class:`SuiteConfig` and the predefined suites.

A :class:`SuiteConfig` holds one config per study it runs (each study's dataclass lives in its
folder of :mod:`gnnagg.bench.studies`: ``SizeGenConfig``, ``SpeedConfig``, ``RealConfig``,
``PolyConfig``, ...). The whole config is written into ``results.json``
(:meth:`SuiteConfig.to_dict`), and a run is reproduced by feeding the same config and seeds back
in (:func:`suite_from_dict`, ``gnnagg-bench run --config results.json``), which validates every
field as the dataclasses do.

The predefined suites are :data:`gnnagg.bench.studies.SUITES`; each section gives its own
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
from typing import Any

from .studies import SECTIONS, SUITES
from .validation import MAX_SEEDS, check_int

__all__ = ["SuiteConfig", "check_run_name", "suite_config", "suite_from_dict"]


class SuiteConfig:
    """One benchmark run: a config per section it runs, the device and the thread count.

    ``SuiteConfig(name, sizegen=..., speed=None, ...)``: keyword arguments named after the
    registered sections (:data:`gnnagg.bench.studies.SECTIONS`) give their configs; a section
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
        check_run_name(name, "name")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
        if threads is not None:
            threads = check_int(threads, "threads", minimum=1, maximum=4096)
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


# Far more seeds than any study could train; a larger number is a typing error.
_MAX_SEEDS = 10_000


def suite_config(name: str, seeds: int | None = None, device: str = "cpu") -> SuiteConfig:
    """The predefined suite ``name`` (see :data:`gnnagg.bench.studies.SUITES`), optionally
    with ``seeds`` seeds (``0 .. seeds-1``) instead of the suite's own number: every
    registered section contributes its config for that suite."""
    if name not in SUITES:
        raise ValueError(f"suite: unknown suite {name!r}; valid suites are {list(SUITES)}")
    if seeds is not None:
        seeds = check_int(seeds, "seeds", minimum=1, maximum=MAX_SEEDS)
    suite = SUITES[name]
    if seeds is not None and seeds > _MAX_SEEDS:
        raise ValueError(f"seeds: at most {_MAX_SEEDS} (each seed trains every model), got {seeds}")
    seed_list = tuple(range(seeds or suite.seeds))
    configs = {key: section.suite_config(name, seed_list) for key, section in SECTIONS.items()}
    return SuiteConfig(name, device=device, threads=suite.threads, **configs)


def suite_from_dict(data: dict[str, Any]) -> SuiteConfig:
    """Rebuild a :class:`SuiteConfig` from :meth:`SuiteConfig.to_dict` (e.g. ``results.json``).

    ``TypeError`` when ``data`` is not a dict; ``ValueError`` naming the key for anything
    else that is not a valid config (unknown keys, wrong types, out-of-range values).
    """
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
