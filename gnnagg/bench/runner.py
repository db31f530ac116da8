"""Run a :class:`~gnnagg.bench.config.SuiteConfig` end to end: sections, results.json, report.

``results.json`` (schema ``gnnagg-bench/1``) has these keys:

=================  ============================================================================
``schema``         ``"gnnagg-bench/1"``
``suite``          the suite's name (``quick``, ``full``, or the subcommand that ran)
``created``        start time, ISO 8601 with time zone
``command``        the command line
``config``         the whole :class:`~gnnagg.bench.config.SuiteConfig` (rerun it with
                   ``gnnagg-bench run --config results.json``)
``machine``        :func:`~gnnagg.bench.machine.machine_info` plus ``load_average``
                   ``{"start", "end"}`` (1-minute load: timings on a busy machine are slower)
``wall_time_s``    seconds per section and ``total``
``sizegen``        ``{"runs": [...], "summary": [...]}`` (:mod:`gnnagg.bench.sizegen`): one run
                   per task, aggregator and seed with its config-derived fields, ``val_acc``,
                   ``test_acc`` per size, ``best_epoch``, ``train_time_s``, ``param_digest``
``speed``          ``{part: {"status", "result", "table", "wall_s", "notes"}}``
                   (:mod:`gnnagg.bench.speed`; ``result`` is the script's own output, with its
                   ``machine``)
``real``           ``{"runs", "summary", "baselines", "notes"}`` (:mod:`gnnagg.bench.real`)
``poly``           ``{"runs", "summary", "features", "baselines", "notes"}``
                   (:mod:`gnnagg.bench.polyexp`): GINE without (``plain``) and with
                   (``poly``) equivariant polynomial features, one run per data set, variant
                   and seed with ``val_mae``, ``test`` {``mae``, ``rmse``}, ``input_widths``;
                   ``features`` per data set: channels, non-zero channels, ``time_s``
                   (the key is present only when the suite has a ``poly`` section: the
                   quick suite and results.json files written before it have none)
``plots``          file names of the PNGs next to ``results.json``
``notes``          anything the reader should know (sections that failed, fallbacks)
=================  ============================================================================

A section that raises is recorded as ``{"status": "error", "reason", "traceback"}`` and the
other sections still run; ``results.json`` is rewritten after every section, so an interrupted
run keeps what it finished.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from .config import SuiteConfig
from .machine import machine_info, repo_root

__all__ = ["SCHEMA", "default_out_dir", "run_suite", "write_results"]

SCHEMA = "gnnagg-bench/1"


def default_out_dir(name: str, now: _dt.datetime | None = None) -> Path:
    """``experiments/results/<name>-<YYYYmmdd-HHMMSS>/`` in the checkout, or under the current
    directory (``gnnagg-bench-results/``) when gnnagg is not installed from a checkout."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    root = repo_root()
    base = root / "experiments" / "results" if root is not None else Path("gnnagg-bench-results")
    return base / f"{name}-{stamp}"


def write_results(results: dict[str, Any], out_dir: Path) -> Path:
    """Write ``results.json`` atomically (a reader never sees half a file)."""
    path = out_dir / "results.json"
    tmp = out_dir / ".results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_suite(
    config: SuiteConfig,
    out_dir: str | Path | None = None,
    progress: bool = True,
    command: str | None = None,
    speed_folder: str | Path | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run every section of ``config``, write ``results.json``, ``report.md`` and the plots.

    Args:
        config: the suite (sections set to ``None`` are skipped).
        out_dir: output folder (default :func:`default_out_dir`); created if needed.
        progress: tqdm progress bars (with ETA) on stderr.
        command: the command line to record.
        speed_folder: where the ``bench_*.py`` scripts are (default: the checkout's
            ``experiments/``).

    Returns:
        ``(results, out_dir)``.
    """
    from .polyexp import run_poly
    from .real import run_real
    from .report import write_report
    from .sizegen import run_sizegen
    from .speed import run_speed

    if not isinstance(config, SuiteConfig):
        raise TypeError(f"config: expected a SuiteConfig, got {type(config).__name__}")
    out = Path(out_dir) if out_dir is not None else default_out_dir(config.name)
    out.mkdir(parents=True, exist_ok=True)
    threads = config.threads or _usable_cores()
    torch.set_num_threads(threads)
    machine = machine_info(config.device)
    machine["load_average"] = {"start": _load(), "end": None}
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "suite": config.name,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "config": config.to_dict(),
        "machine": machine,
        "wall_time_s": {},
        "sizegen": None,
        "speed": None,
        "real": None,
        "plots": [],
        "notes": [],
    }
    if config.poly is not None:
        results["poly"] = None
    write_results(results, out)
    sections = (
        ("sizegen", config.sizegen, lambda c: run_sizegen(c, config.device, progress)),
        ("speed", config.speed, lambda c: run_speed(c, config.device, progress, speed_folder)),
        ("real", config.real, lambda c: run_real(c, config.device, progress)),
        ("poly", config.poly, lambda c: run_poly(c, config.device, progress)),
    )
    # Worker processes of the speed benchmarks read it when their torch starts.
    previous_omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    try:
        for key, section, run in sections:
            if section is None:
                continue
            t0 = time.perf_counter()
            try:
                results[key] = run(section)
            except Exception as error:  # one failed section must not lose the others
                reason = traceback.format_exception_only(type(error), error)[-1].strip()
                results[key] = {
                    "status": "error",
                    "reason": reason,
                    "traceback": traceback.format_exc(),
                }
                results["notes"].append(f"section {key} failed: {reason}")
            results["wall_time_s"][key] = round(time.perf_counter() - t0, 1)
            write_results(results, out)
    finally:
        if previous_omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous_omp
    results["wall_time_s"]["total"] = round(time.perf_counter() - start, 1)
    machine["load_average"]["end"] = _load()
    files = write_report(results, out)
    results["plots"] = sorted(p.name for k, p in files.items() if p.suffix == ".png")
    write_results(results, out)
    return results, out
