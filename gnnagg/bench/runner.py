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
                   ``{"start", "end"}`` of the whole run (1-minute load: timings on a busy
                   machine are slower)
``wall_time_s``    seconds per section and ``total``
``conditions``     per section that ran: the thread settings and the load it ran under
                   (:func:`run_conditions`: ``torch_threads``, ``OMP_NUM_THREADS``,
                   ``OMP_WAIT_POLICY``, ``MKL_NUM_THREADS``, ``usable_cores``,
                   ``load_average`` {``start``, ``end``}, ``overloaded``)
``<section>``      one key per section the suite runs (:data:`gnnagg.bench.sections.SECTIONS`:
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

import datetime as _dt
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from .config import SuiteConfig, check_run_name
from .machine import machine_info, repo_root

__all__ = ["SCHEMA", "default_out_dir", "run_conditions", "run_suite", "write_results"]

SCHEMA = "gnnagg-bench/1"


def default_out_dir(name: str, now: _dt.datetime | None = None) -> Path:
    """``experiments/results/<name>-<YYYYmmdd-HHMMSS>/`` in the checkout, or under the current
    directory (``gnnagg-bench-results/``) when gnnagg is not installed from a checkout."""
    check_run_name(name, "name")
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


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")


def run_conditions() -> dict[str, Any]:
    """The thread settings and load of this moment: ``torch_threads``, the environment
    variables of :data:`THREAD_VARIABLES` (``None`` when unset), ``usable_cores`` and the
    1-minute ``load_average`` at ``start`` (``end`` is filled in later)."""
    conditions: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    conditions.update({name: os.environ.get(name) for name in THREAD_VARIABLES})
    conditions["usable_cores"] = _usable_cores()
    conditions["load_average"] = {"start": _load(), "end": None}
    return conditions


def _overload(conditions: dict[str, Any], section: str) -> str | None:
    """A warning when the machine was busier than its free cores around ``section``.

    At the start the load is other processes' (free cores: usable cores minus this run's
    threads); at the end it includes this run's own threads (free cores: all usable ones).
    """
    cores, threads = conditions["usable_cores"], conditions["torch_threads"]
    load = conditions["load_average"]
    free = max(cores - threads, 0)
    if load["start"] is not None and load["start"] > free + 0.5:
        busy = f"load average {load['start']} at its start, with {free} free core(s)"
    elif load["end"] is not None and load["end"] > cores + 0.5:
        busy = f"load average {load['end']} at its end, on {cores} usable core(s)"
    else:
        return None
    return (
        f"section {section} ran on a busy machine ({busy}; {threads} torch thread(s)): its "
        "timings are slower than on an idle machine"
    )


def run_suite(
    config: SuiteConfig,
    out_dir: str | Path | None = None,
    progress: bool = True,
    command: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run every section of ``config``, write ``results.json``, ``report.md`` and the plots.

    Args:
        config: the suite (its sections run in registry order).
        out_dir: output folder (default :func:`default_out_dir`); created if needed.
        progress: tqdm progress bars (with ETA) on stderr.
        command: the command line to record.

    Returns:
        ``(results, out_dir)``.
    """
    from .report import write_report
    from .sections import SECTIONS, RunContext

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
        "conditions": {},
        **{key: None for key in config.sections},
        "plots": [],
        "notes": [],
    }
    write_results(results, out)
    context = RunContext(device=config.device, progress=progress, out_dir=out, threads=threads)
    # Worker processes of the speed benchmarks read it when their torch starts.
    previous_omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    try:
        for key, section_config in config.sections.items():
            conditions = run_conditions()
            results["conditions"][key] = conditions
            t0 = time.perf_counter()
            try:
                results[key] = SECTIONS[key].run(section_config, context)
            except Exception as error:  # one failed section must not lose the others
                reason = traceback.format_exception_only(type(error), error)[-1].strip()
                results[key] = {
                    "status": "error",
                    "reason": reason,
                    "traceback": traceback.format_exc(),
                }
                results["notes"].append(f"section {key} failed: {reason}")
            results["wall_time_s"][key] = round(time.perf_counter() - t0, 1)
            conditions["load_average"]["end"] = _load()
            warning = _overload(conditions, key)
            conditions["overloaded"] = warning is not None
            if warning is not None:
                results["notes"].append(warning)
                if progress:
                    print(f"warning: {warning}", file=sys.stderr)
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
