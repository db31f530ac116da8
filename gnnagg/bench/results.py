"""``results.json``: its schema, how it is written, and the check of one read back.

``results.json`` (schema ``gnnagg-bench/1``) has these keys:

=================  ============================================================================
``schema``         ``"gnnagg-bench/1"``
``suite``          the suite's name (``quick``, ``full``, or the subcommand that ran)
``created``        start time, ISO 8601 with time zone
``command``        the command line
``config``         the whole :class:`~gnnagg.bench.config.SuiteConfig` (rerun it with
                   ``gnnagg-bench run --config results.json``)
``machine``        :func:`~gnnagg.bench.machine.machine_info` plus ``load_average``
                   ``{"start", "end"}`` of the whole run (1-minute load: timings on a busy
                   machine are slower)
``wall_time_s``    seconds per section and ``total``
``conditions``     per section that ran: the thread settings and the load it ran under
                   (:func:`run_conditions`: ``torch_threads``, ``OMP_NUM_THREADS``,
                   ``OMP_WAIT_POLICY``, ``MKL_NUM_THREADS``, ``usable_cores``,
                   ``load_average`` {``start``, ``end``}, ``overloaded``)
``<section>``      one key per section the suite runs (:data:`gnnagg.bench.studies.SECTIONS`:
                   ``sizegen``, ``speed``, ``real``, ``poly``, ...), what its ``run``
                   returned; see each section's module for its keys
``plots``          file names of the PNGs next to ``results.json``
``notes``          anything the reader should know (sections that failed, fallbacks, a
                   machine busier than its free cores)
=================  ============================================================================

A section that raises is recorded as ``{"status": "error", "reason", "traceback"}`` and the
other sections still run; ``results.json`` is rewritten after every section, so an interrupted
run keeps what it finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._files import write_text
from .config import suite_from_dict
from .studies import SECTIONS
from .validation import NUMBER, check_shape

__all__ = ["SCHEMA", "check_results", "write_results"]

SCHEMA = "gnnagg-bench/1"

_OPTIONAL_NUMBER = (NUMBER, None)
_LOAD = ({"start?": _OPTIONAL_NUMBER, "end?": _OPTIONAL_NUMBER}, None)
# What the report reads outside the studies' own entries.
_FRAME_SHAPE = {
    "schema": str,
    "config": dict,
    "command?": (str, None),
    "machine?": {"memory_gb?": _OPTIONAL_NUMBER, "load_average?": _LOAD},
    "wall_time_s?": {str: NUMBER},
    "conditions?": {str: {"load_average?": _LOAD}},
    "notes?": [str],
    "plots?": [str],
}
_ERROR_SHAPE = {"status": str, "reason?": str}


def write_results(results: dict[str, Any], out_dir: Path) -> Path:
    """Write ``results.json`` into ``out_dir`` atomically (a reader never sees half a file;
    a link planted there is replaced, not followed)."""
    text = json.dumps(results, indent=1, default=str) + "\n"
    return write_text(Path(out_dir) / "results.json", text)


def check_results(results: Any) -> dict[str, Any]:
    """Validate ``results`` (a parsed ``results.json``) against what the report reads: the
    schema version, a valid config (:func:`~gnnagg.bench.config.suite_from_dict`), the shapes
    of the machine, timing, condition and note entries, and each section's entry
    (:meth:`~gnnagg.bench.section.Section.check_result`). Returns the config as
    :meth:`~gnnagg.bench.config.SuiteConfig.to_dict` writes it (every field present);
    ``ValueError`` names the first bad key."""
    check_shape(results, _FRAME_SHAPE, "results")
    if results["schema"] != SCHEMA:
        raise ValueError(f"results.schema: expected {SCHEMA!r}, got {results['schema']!r}")
    try:
        config = suite_from_dict(results["config"]).to_dict()
    except (TypeError, ValueError) as error:
        raise ValueError(f"results.config: {error}") from None
    for key, section in SECTIONS.items():
        entry = results.get(key)
        if not entry:
            continue
        if config[key] is None:
            raise ValueError(f"results.{key}: a result without its config (config.{key})")
        if isinstance(entry, dict) and entry.get("status") == "error":
            check_shape(entry, _ERROR_SHAPE, f"results.{key}")
            continue
        try:
            section.check_result(entry)
        except ValueError as error:
            raise ValueError(f"results.{error}") from None
    return config


