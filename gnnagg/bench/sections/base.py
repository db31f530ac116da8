"""The section interface of ``gnnagg-bench``: one benchmark = one :class:`Section`.

A section is everything the harness knows about one benchmark: its config dataclass (with
its defaults per suite), its subcommand and options, how to run it, how to validate what it
wrote into ``results.json``, and the block of ``report.md`` (and the plots) it contributes.
The harness -- :func:`~gnnagg.bench.runner.run_suite`, :func:`~gnnagg.bench.report.
write_report`, :func:`~gnnagg.bench.cli.build_parser` and the suites of :mod:`~gnnagg.bench.
config` -- loops over the registry :data:`gnnagg.bench.sections.SECTIONS` and never names a
section.

How to add a benchmark section
==============================

1. **The section module** ``gnnagg/bench/sections/<name>.py`` holds:

   * the config: a dataclass whose ``__post_init__`` validates every field with an error that
     names it (use :mod:`gnnagg.bench.validation`: ``check_finite`` for learning rates and
     weights, ``check_int``/``check_memory`` for sizes, ``check_bool``, ``check_names``,
     ``check_seeds``, ...). Its fields are written into ``results.json``
     (``dataclasses.asdict``) and read back by ``gnnagg-bench run --config``, so they must be
     JSON values (tuples come back as lists: convert them in ``__post_init__``). A section that
     trains over seeds calls its field ``seeds``, so that ``gnnagg-bench run --seeds N`` applies
     to it;
   * a subclass of :class:`Section` with ``name`` (the key in ``results.json``, in
     ``--only`` and in :class:`~gnnagg.bench.config.SuiteConfig`), ``title``, ``config_type``,
     and the methods below. Import heavy dependencies (PyG, matplotlib, data sets) inside
     ``run``/``report``: the registry is imported whenever ``gnnagg-bench`` starts.

     ========================  =============================================================
     ``suite_config``          the section's config in suite ``quick``, ``full``, ``smoke``
                               (``None``: not part of that suite). ``smoke`` must exist and
                               take seconds: CI runs it from an installed wheel.
     ``command``,              optional: a subcommand of its own (``gnnagg-bench <command>``)
     ``add_arguments``,        with its options, turned into configs by
     ``configs_from_args``     ``configs_from_args`` (``ValueError`` -> a usage error)
     ``run``                   ``run(config, context) -> dict`` (JSON-ready); ``context`` is
                               a :class:`RunContext` (device, progress, output folder)
     ``check_result``          ``ValueError`` naming the key when a result read from a
                               ``results.json`` is not what ``report`` reads (describe it
                               with :func:`gnnagg.bench.validation.check_shape`)
     ``report``                ``report(result, config, out_dir) -> ReportBlock``: markdown
                               lines under the section's ``## title`` and the files it wrote
     ========================  =============================================================

2. **One registration line** in :mod:`gnnagg.bench.sections` (``SECTIONS``): the order there is
   the order in which suites run sections and ``report.md`` shows them.

3. **Its test** ``tests/bench/test_bench_<name>.py``: a tiny run through
   :func:`~gnnagg.bench.runner.run_suite` (``SuiteConfig("x", <name>=config)``), its report
   block, its config errors and a malformed result. Already covered for every registered
   section: ``tests/bench/test_bench_sections.py`` (interface complete, a ``smoke`` config)
   and ``tests/bench/test_bench_install.py`` (the ``smoke`` suite from an installed wheel).

Nothing else changes: ``gnnagg-bench run --only <name>``, ``--config``, ``--seeds``,
``report``, ``list``, the ``## title`` block of ``report.md`` with the thread settings and load
it ran under, and the key list of ``results.json`` come from the registry. If the section needs
a package that is not a dependency, add it to the ``bench`` extra in ``pyproject.toml`` and
import it inside ``run``/``report``.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["ReportBlock", "RunContext", "Section", "Suite"]


@dataclass(frozen=True)
class Suite:
    """A predefined suite: its name, what it is for, its default number of seeds and its torch
    thread count (``None``: every usable core). Each section decides its own config for it
    (:meth:`Section.suite_config`)."""

    name: str
    description: str
    seeds: int
    threads: int | None


@dataclass
class RunContext:
    """What a section's :meth:`Section.run` gets besides its config.

    Attributes:
        device: ``"cpu"`` or ``"cuda"``.
        progress: show progress bars (tqdm, on stderr).
        out_dir: the run's output folder (a section may write files there, by plain names).
        threads: the torch thread count of the run (also ``OMP_NUM_THREADS`` of any worker
            process a section starts).
    """

    device: str = "cpu"
    progress: bool = True
    out_dir: Path | None = None
    threads: int = 1


@dataclass
class ReportBlock:
    """A section's part of ``report.md``: markdown ``lines`` (under the section's ``## title``)
    and the ``files`` it wrote into the output folder, by key (PNG plots are listed in
    ``results.json``'s ``plots``)."""

    lines: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


class Section:
    """One benchmark of ``gnnagg-bench`` (see the module docstring for the checklist).

    Class attributes:
        name: key in ``results.json``, ``SuiteConfig`` and ``--only`` (lowercase identifier).
        title: heading of its block in ``report.md``.
        config_type: its config dataclass.
        command: its own subcommand (``None``: only part of suites).
        command_help: one line for ``gnnagg-bench --help``.
        result_keys: what its entry in ``results.json`` holds, for the report's file list.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    config_type: ClassVar[type]
    command: ClassVar[str | None] = None
    command_help: ClassVar[str] = ""
    command_description: ClassVar[str] = ""
    result_keys: ClassVar[str] = ""

    # -- configuration ---------------------------------------------------------------------
    def suite_config(self, suite: str, seeds: tuple[int, ...]) -> Any | None:
        """The section's config in the predefined ``suite`` with ``seeds``; ``None`` leaves the
        section out of that suite."""
        return None

    def with_seeds(self, config: Any, seeds: tuple[int, ...]) -> Any:
        """``config`` with ``seeds`` (sections whose config has no ``seeds`` keep it)."""
        if any(f.name == "seeds" for f in dataclasses.fields(config)):
            return dataclasses.replace(config, seeds=tuple(seeds))
        return config

    def config_from_dict(self, data: Any) -> Any:
        """Rebuild the config from its ``dataclasses.asdict`` form (``results.json``);
        ``ValueError`` names an unknown or missing field."""
        if not isinstance(data, dict):
            raise ValueError(f"{self.name}: expected an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(self.config_type)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{self.name}: unknown fields {unknown}; fields are {sorted(known)}")
        try:
            return self.config_type(**data)
        except TypeError as error:
            raise ValueError(f"{self.name}: {error}") from None

    # -- command line ----------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Options of the section's subcommand (the harness adds ``--out``, ``--quiet``,
        ``--device`` and ``--threads``)."""

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        """The section configs the subcommand runs, by section name (usually just this one);
        ``ValueError`` for a bad combination of options."""
        raise NotImplementedError(f"the {self.name} section has no subcommand")

    def choices(self) -> dict[str, list[str]]:
        """Names ``gnnagg-bench list`` shows for this section (e.g. its data sets)."""
        return {}

    # -- running and reporting -------------------------------------------------------------
    def run(self, config: Any, context: RunContext) -> dict[str, Any]:
        """Run the section; the returned dict (JSON-ready) is its entry in ``results.json``."""
        raise NotImplementedError

    def check_result(self, result: Any) -> None:
        """``ValueError`` naming what is wrong when ``result`` (read from a ``results.json``)
        is not what :meth:`report` reads."""
        if not isinstance(result, dict):
            raise ValueError(f"{self.name}: expected an object, got {type(result).__name__}")

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        """The section's block of ``report.md`` for ``result``, run with ``config`` (its
        ``asdict`` form); plots go to ``out_dir``."""
        raise NotImplementedError
