"""The benchmark harness, ``gnnagg-bench`` (the top layer: it imports all of gnnagg, and nothing
in gnnagg imports it).

Bottom to top (a module imports only those above it in this list):

* :mod:`~gnnagg.bench.validation` (checks of configs and ``results.json`` files),
  :mod:`~gnnagg.bench.machine` (what a run ran on), :mod:`~gnnagg.bench.measure` (the one
  timer and the one peak-memory probe), :mod:`~gnnagg.bench.stats`,
  :mod:`~gnnagg.bench.jobs` (worker processes), :mod:`~gnnagg.bench.checkpoints`,
  :mod:`~gnnagg.bench.training` (seeding, DDP context, the keep-the-best training loop),
  :mod:`~gnnagg.bench.registry` (aggregator names -> modules, PyG's and gnnagg's);
* :mod:`~gnnagg.bench.fields` (config fields declared once) and
  :mod:`~gnnagg.bench.section` (the interface of a study);
* :mod:`~gnnagg.bench.studies` -- one folder per study (``sizegen``, ``speed``, ``real``,
  ``poly``, ``attention``, ``mesh``: config, run or train, report, section) and the registry
  :data:`~gnnagg.bench.studies.SECTIONS` and suites;
* :mod:`~gnnagg.bench.config` (:class:`SuiteConfig`, the config of a run),
  :mod:`~gnnagg.bench.results` (``results.json``), :mod:`~gnnagg.bench.report`
  (``report.md``), :mod:`~gnnagg.bench.runner` (runs a suite) and :mod:`~gnnagg.bench.cli`.
"""

from .config import SuiteConfig, suite_config
from .registry import AGGREGATORS, build_aggregator
from .runner import run_suite
from .section import Section
from .studies import SECTIONS, SUITES
from .studies.poly import PolyConfig
from .studies.real import RealConfig
from .studies.sizegen import SizeGenConfig
from .studies.speed import SpeedConfig

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
