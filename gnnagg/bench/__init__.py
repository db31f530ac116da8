"""The benchmark harness, ``gnnagg-bench`` (the top layer: it imports all of gnnagg, and nothing
in gnnagg imports it).

* :mod:`~gnnagg.bench.cli` -- the command line (``run``, ``sizegen``, ``speed``, ``real``,
  ``train``, ``list``, ``report``);
* :mod:`~gnnagg.bench.config` -- the suites as dataclasses (written into ``results.json``);
* :mod:`~gnnagg.bench.registry` -- aggregator names -> modules (PyG's and gnnagg's);
* :mod:`~gnnagg.bench.models` -- the small models trained around each aggregator;
* :mod:`~gnnagg.bench.train` -- multiset training, one process or DDP under ``torchrun``;
* :mod:`~gnnagg.bench.sizegen`, :mod:`~gnnagg.bench.real`, :mod:`~gnnagg.bench.speed` -- the
  three sections of a suite;
* :mod:`~gnnagg.bench.runner` -- runs a suite, writes ``results.json`` (keys documented there);
* :mod:`~gnnagg.bench.report` -- ``report.md`` and the PNG plots.
"""

from .config import RealConfig, SizeGenConfig, SpeedConfig, SuiteConfig, suite_config
from .registry import AGGREGATORS, build_aggregator
from .runner import run_suite

__all__ = [
    "AGGREGATORS",
    "RealConfig",
    "SizeGenConfig",
    "SpeedConfig",
    "SuiteConfig",
    "build_aggregator",
    "run_suite",
    "suite_config",
]
