"""The parts of the speed study, one module each in this folder:

* ``aggr`` -- aggregators, forward + backward, next to PyG's, on several degree profiles (one
  fresh process per measurement);
* ``segment`` -- segment reductions per backend, time and bandwidth;
* ``recurrent`` -- gnnagg's GRU/LSTM aggregators (no padding) next to PyG's (padded);
* ``compile`` -- every aggregator eager and under ``torch.compile``, next to PyG's, one thread;
* ``poly`` -- equivariant polynomial features against a naive einsum;

with ``messages`` (the synthetic message sets) and ``output`` (tables, JSON). Each part is also
a command with its own options, e.g. ``python -m gnnagg.bench.studies.speed.aggr --device cuda``.

Every part module has ``TITLE`` (its heading in ``report.md``) and these functions, which the
study calls:

* ``run_part(config, device, progress) -> (result, notes)``: run what
  :class:`~gnnagg.bench.studies.speed.config.SpeedConfig` asks (``progress(row)`` after each
  measured row);
* ``expected_rows(config) -> int`` (optional): how many rows that will be, for the progress
  bar (a part whose count depends on the machine leaves it out);
* ``format_table(result) -> str``: the part's table (markdown, or plain text).

A new part is a module here with those and its name in
:data:`~gnnagg.bench.studies.speed.config.SPEED_PARTS`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .config import SPEED_PARTS

__all__ = ["load_part"]


def load_part(name: str) -> ModuleType:
    """The module of part ``name`` (imported when the part runs: each pulls in PyG or the poly
    planner); ``ValueError`` for an unknown one."""
    if name not in SPEED_PARTS:
        raise ValueError(f"part: unknown {name!r}; parts are {list(SPEED_PARTS)}")
    return importlib.import_module(f"{__package__}.{name}")
