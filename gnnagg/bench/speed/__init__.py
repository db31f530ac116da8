"""The speed-and-memory benchmarks of ``gnnagg-bench speed`` (the ``speed`` section), one
module per part:

* :mod:`~gnnagg.bench.speed.aggr` -- aggregators, forward + backward, next to PyG's, on three
  degree profiles (one fresh process per measurement);
* :mod:`~gnnagg.bench.speed.segment` -- segment reductions per backend, time and bandwidth;
* :mod:`~gnnagg.bench.speed.recurrent` -- gnnagg's GRU/LSTM aggregators (no padding) next to
  PyG's (padded);
* :mod:`~gnnagg.bench.speed.poly` -- equivariant polynomial features against a naive einsum;

with :mod:`~gnnagg.bench.speed.messages` (the synthetic message sets) and
:mod:`~gnnagg.bench.speed.timing` (timing, memory, tables). Each part is also a command with
its own options, e.g. ``python -m gnnagg.bench.speed.aggr --device cuda``.

Every part module has ``TITLE`` (its heading in ``report.md``) and these functions, which the
section calls:

* ``run_part(config, device, progress) -> (result, notes)``: run what
  :class:`~gnnagg.bench.config.SpeedConfig` asks (``progress(row)`` after each measured row);
* ``expected_rows(config) -> int`` (optional): how many rows that will be, for the progress
  bar (a part whose count depends on the machine leaves it out);
* ``format_table(result) -> str``: the part's table (markdown, or plain text).

A new part is a module here with those and one line in :data:`PARTS`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["PARTS", "load_part"]

# Part name -> module (imported when the part runs: each pulls in PyG or the poly planner).
PARTS: dict[str, str] = {
    "aggr": "gnnagg.bench.speed.aggr",
    "segment": "gnnagg.bench.speed.segment",
    "recurrent": "gnnagg.bench.speed.recurrent",
    "poly": "gnnagg.bench.speed.poly",
}


def load_part(name: str) -> ModuleType:
    """The module of part ``name`` (``ValueError`` for an unknown one)."""
    if name not in PARTS:
        raise ValueError(f"part: unknown {name!r}; parts are {list(PARTS)}")
    return importlib.import_module(PARTS[name])
