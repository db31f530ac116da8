"""The interface of a ``gnnagg-bench`` study: one benchmark = one :class:`Section`.

A study lives in its own folder ``gnnagg/bench/studies/<name>/``:

* ``config.py`` -- its config, a dataclass deriving from
  :class:`~gnnagg.bench.fields.StudyConfig` whose fields are declared once with
  :func:`~gnnagg.bench.fields.setting` (check, help, command-line option, whether
  ``gnnagg-bench run`` may override it). Fields are JSON values: the config is written into
  ``results.json`` and read back by ``gnnagg-bench run --config``. A study that trains over
  seeds calls its field ``seeds``, so ``gnnagg-bench run --seeds N`` applies to it.
* ``run.py`` (or ``train.py``) -- the work: ``run(config, context) -> dict`` (JSON-ready).
* ``report.py`` -- its block of ``report.md`` and its plots, and the shape of its result
  (what ``report`` reads, checked when a ``results.json`` is read back).
* ``section.py`` -- the :class:`Section` subclass tying them together: ``name``, ``title``,
  ``config_type``, its configs per predefined suite (:meth:`Section.suite_config`), its
  subcommand (``command``: the options come from the config's fields).

and one registration line in :mod:`gnnagg.bench.studies` (``SECTIONS``: its order is the
order in which suites run studies and ``report.md`` shows them). Nothing else changes:
``gnnagg-bench run --only <name>``, ``--config``, ``--seeds``, ``report``, ``list``, the
thread settings and load in its report block, the key list of ``results.json`` come from the
registry. Its test is ``tests/bench/studies/test_<name>.py``; ``tests/bench/test_section.py``
checks every registered study's interface and a smoke config. Import heavy dependencies
(PyG, matplotlib, data sets) inside ``run``/``report``: the registry is imported whenever
``gnnagg-bench`` starts. See ``docs/howto/add_section.rst`` for a worked example.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .fields import add_options, config_from_args

__all__ = ["ReportBlock", "RunContext", "Section", "Suite"]


@dataclass(frozen=True)
class Suite:
    """A predefined suite: its name, what it is for, its default number of seeds and its torch
    thread count (``None``: every usable core). Each study decides its own config for it
    (:meth:`Section.suite_config`)."""

    name: str
    description: str
    seeds: int
    threads: int | None


@dataclass
class RunContext:
    """What a study's :meth:`Section.run` gets besides its config.

    Attributes:
        device: ``"cpu"`` or ``"cuda"``.
        progress: show progress bars (tqdm, on stderr).
        out_dir: the run's output folder (a study may write files there, by plain names).
        threads: the torch thread count of the run (also ``OMP_NUM_THREADS`` of any worker
            process a study starts).
        data_root: the data cache folder (``None``: :func:`gnnagg.data.cache_root`'s default);
            chosen by whoever runs the harness (``--data-root`` or ``GNNAGG_DATA``), never by a
            config file.
    """

    device: str = "cpu"
    progress: bool = True
    out_dir: Path | None = None
    threads: int = 1
    data_root: Path | None = None


@dataclass
class ReportBlock:
    """A study's part of ``report.md``: markdown ``lines`` (under its ``## title``) and the
    ``files`` it wrote into the output folder, by key (PNG plots are listed in
    ``results.json``'s ``plots``)."""

    lines: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


class Section:
    """One study of ``gnnagg-bench`` (see the module docstring for the checklist).

    Class attributes:
        name: key in ``results.json``, ``SuiteConfig`` and ``--only`` (lowercase identifier).
        title: heading of its block in ``report.md``.
        config_type: its config dataclass (a :class:`~gnnagg.bench.fields.StudyConfig`).
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
        """The study's config in the predefined ``suite`` with ``seeds``; ``None`` leaves the
        study out of that suite."""
        return None

    def command_defaults(self) -> Any:
        """The config the subcommand starts from (its options change fields of it)."""
        return self.config_type()

    def with_seeds(self, config: Any, seeds: tuple[int, ...]) -> Any:
        """``config`` with ``seeds`` (studies whose config has no ``seeds`` keep it)."""
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
        """Options of the study's subcommand: one per config field that has a flag (the
        harness adds ``--out``, ``--quiet``, ``--device``, ``--threads``, ``--data-root``)."""
        add_options(parser, self.config_type)

    def configs_from_args(self, args: argparse.Namespace) -> dict[str, Any]:
        """The study configs the subcommand runs, by study name: :meth:`command_defaults`
        with the options given; ``ValueError`` (naming the option) for a bad value."""
        return {self.name: config_from_args(args, self.command_defaults())}

    def choices(self) -> dict[str, list[str]]:
        """Names ``gnnagg-bench list`` shows for this study (e.g. its data sets)."""
        return {}

    # -- running and reporting -------------------------------------------------------------
    def run(self, config: Any, context: RunContext) -> dict[str, Any]:
        """Run the study; the returned dict (JSON-ready) is its entry in ``results.json``."""
        raise NotImplementedError

    def check_result(self, result: Any) -> None:
        """``ValueError`` naming what is wrong when ``result`` (read from a ``results.json``)
        is not what :meth:`report` reads."""
        if not isinstance(result, dict):
            raise ValueError(f"{self.name}: expected an object, got {type(result).__name__}")

    def report(self, result: dict[str, Any], config: dict[str, Any], out_dir: Path) -> ReportBlock:
        """The study's block of ``report.md`` for ``result``, run with ``config`` (its
        ``asdict`` form); plots go to ``out_dir``."""
        raise NotImplementedError
