"""The benchmark harness, ``gnnagg-bench`` (the top layer: it imports all of gnnagg, and nothing
in gnnagg imports it).

* :mod:`~gnnagg.bench.cli` -- the command line (``run``, one subcommand per section that has
  one, ``train``, ``list``, ``report``);
* :mod:`~gnnagg.bench.sections` -- the registry of benchmark sections and suites;
  :mod:`~gnnagg.bench.sections.base` is the section interface and the checklist for adding
  one; ``sections/<name>.py`` is each section (config, suites, options, run, report);
* :mod:`~gnnagg.bench.config` -- :class:`SuiteConfig`, the config of a run (written into
  ``results.json``), and the predefined suites;
* :mod:`~gnnagg.bench.speed` -- the speed benchmarks (one module per part, each also a command);
* :mod:`~gnnagg.bench.registry` -- aggregator names -> modules (PyG's and gnnagg's);
* :mod:`~gnnagg.bench.models` -- the small models trained around each aggregator;
* :mod:`~gnnagg.bench.train` -- multiset training, one process or DDP under ``torchrun``;
* :mod:`~gnnagg.bench.real` -- loading, training and scoring on real graph data sets;
* :mod:`~gnnagg.bench.runner` -- runs a suite, writes ``results.json`` (keys documented there);
* :mod:`~gnnagg.bench.report` -- ``report.md``; :mod:`~gnnagg.bench.validation` -- the checks
  of configs and ``results.json`` files; :mod:`~gnnagg.bench.machine` -- what a run ran on.
"""

from .config import SuiteConfig, suite_config
from .registry import AGGREGATORS, build_aggregator
from .runner import run_suite
from .sections import SECTIONS, SUITES, Section
from .sections.polynomial_features import PolyConfig
from .sections.real import RealConfig
from .sections.sizegen import SizeGenConfig
from .sections.speed import SpeedConfig

__all__ = [
    "AGGREGATORS",
    "SECTIONS",
    "SUITES",
    "PolyConfig",
    "RealConfig",
    "Section",
    "SizeGenConfig",
    "SpeedConfig",
    "SuiteConfig",
    "build_aggregator",
    "run_suite",
    "suite_config",
]
