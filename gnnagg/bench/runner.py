"""Run a :class:`~gnnagg.bench.config.SuiteConfig` end to end: every study, ``results.json``
(:mod:`~gnnagg.bench.results`), ``report.md``."""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from .config import SuiteConfig, check_run_name
from .machine import machine_info
from .report import write_report
from .results import SCHEMA, write_results
from .section import RunContext
from .studies import SECTIONS

__all__ = [
    "RESULTS_VARIABLE",
    "default_out_dir",
    "run_conditions",
    "run_suite",
    "write_study_run",
]

# Where runs go when no --out is given: this folder, or ./gnnagg-bench-results.
RESULTS_VARIABLE = "GNNAGG_BENCH_RESULTS"


def default_out_dir(name: str, now: _dt.datetime | None = None) -> Path:
    """``<results>/<name>-<YYYYmmdd-HHMMSS>/``, where ``<results>`` is the folder named by the
    environment variable ``GNNAGG_BENCH_RESULTS``, else ``gnnagg-bench-results`` under the
    current directory (never inside the installed package or the source tree's folders)."""
    check_run_name(name, "name")
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = os.environ.get(RESULTS_VARIABLE) or "gnnagg-bench-results"
    return Path(base) / f"{name}-{stamp}"


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
    data_root: str | Path | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run every study of ``config``, write ``results.json``, ``report.md`` and the plots.

    Args:
        config: the suite (its studies run in registry order).
        out_dir: output folder (default :func:`default_out_dir`); created if needed.
        progress: tqdm progress bars (with ETA) on stderr.
        command: the command line to record.
        data_root: the data cache folder the studies read and build data sets in (``None``:
            :func:`gnnagg.data.cache_root`'s default). It is never read from a config file:
            whoever runs the harness chooses where it writes.

    Returns:
        ``(results, out_dir)``.
    """
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
    context = RunContext(
        device=config.device, progress=progress, out_dir=out, threads=threads,
        data_root=None if data_root is None else Path(data_root),
    )
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


def write_study_run(
    config: SuiteConfig,
    result: dict[str, Any],
    out_dir: str | Path,
    *,
    created: str,
    command: str | None,
    conditions: dict[str, Any],
    wall_time_s: float,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Write ``results.json``, ``report.md`` and the plots of a run of ``config``'s one study
    that ran outside :func:`run_suite` (``gnnagg-bench train-mesh``, whose ranks train under
    ``torchrun``): ``result`` is the study's entry, ``conditions`` the
    :func:`run_conditions` taken at its start, ``notes`` what the reader should know of how
    it ran. Returns the results as written."""
    if len(config.sections) != 1:
        raise ValueError(f"config: expected one study, got {list(config.sections)}")
    (key,) = config.sections
    conditions["load_average"]["end"] = _load()
    machine = machine_info(config.device)
    machine["load_average"] = dict(conditions["load_average"])
    results: dict[str, Any] = {
        "schema": SCHEMA,
        "suite": config.name,
        "created": created,
        "command": command,
        "config": config.to_dict(),
        "machine": machine,
        "wall_time_s": {key: round(wall_time_s, 1), "total": round(wall_time_s, 1)},
        "conditions": {key: conditions},
        key: result,
        "plots": [],
        "notes": list(notes or []),
    }
    files = write_report(results, out_dir)
    results["plots"] = sorted(p.name for p in files.values() if p.suffix == ".png")
    write_results(results, Path(out_dir))
    return results
