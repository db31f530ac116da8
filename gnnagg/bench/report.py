"""``report.md`` and the PNG plots from a run's ``results.json`` (or the same dict in memory).

The report has a header (machine, load, date, command, wall time), then one block per section
that ran, in registry order (:data:`gnnagg.bench.sections.SECTIONS`: each section writes its
own tables and plots, :meth:`~gnnagg.bench.sections.Section.report`), each with the thread
settings and load it ran under, then the run's notes and the list of files. Plots use
matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .machine import describe_machine
from .registry import AGGREGATORS
from .validation import NUMBER, check_shape

__all__ = [
    "aggregator_label",
    "check_results",
    "describe_conditions",
    "mean_std",
    "percent",
    "write_report",
]

_OPTIONAL_NUMBER = (NUMBER, None)
_LOAD = ({"start?": _OPTIONAL_NUMBER, "end?": _OPTIONAL_NUMBER}, None)
# What the report reads outside the sections' own entries.
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


def mean_std(values: Sequence[float]) -> dict[str, float | int]:
    """``{"mean", "std", "n"}``: the sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("values: needs at least one value")
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def percent(stats: dict[str, float]) -> str:
    """``"mean ± std"`` of a fraction's statistics, in percent with one decimal."""
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def aggregator_label(name: str) -> str:
    """``"name (library)"`` for a registry aggregator, else ``name``."""
    spec = AGGREGATORS.get(name)
    return f"{name} ({spec.library})" if spec else name


def describe_conditions(conditions: dict[str, Any]) -> str:
    """One line: the thread settings and the load a section ran under."""
    load = conditions.get("load_average") or {}
    variables = ", ".join(
        f"{name}={conditions.get(name) if conditions.get(name) is not None else 'unset'}"
        for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")
    )
    line = (
        f"Ran with {conditions.get('torch_threads')} torch thread(s) ({variables}) on "
        f"{conditions.get('usable_cores')} usable core(s); load average (1 min) "
        f"{load.get('start')} at the start, {load.get('end')} at the end"
    )
    if conditions.get("overloaded"):
        line += " -- busier than the free cores: timings are slower than on an idle machine"
    return line + "."


def _section_error(results: dict[str, Any], key: str) -> str | None:
    section = results.get(key)
    if isinstance(section, dict) and section.get("status") == "error":
        return section.get("reason", "unknown error")
    return None


def check_results(results: Any) -> dict[str, Any]:
    """Validate ``results`` (a parsed ``results.json``) against what the report reads: the
    schema version, a valid config (:func:`~gnnagg.bench.config.suite_from_dict`), the shapes
    of the machine, timing, condition and note entries, and each section's entry
    (:meth:`~gnnagg.bench.sections.Section.check_result`). Returns the config as
    :meth:`~gnnagg.bench.config.SuiteConfig.to_dict` writes it (every field present);
    ``ValueError`` names the first bad key."""
    from .config import suite_from_dict
    from .runner import SCHEMA
    from .sections import SECTIONS

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


def write_report(results: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and the plots for ``results`` into ``out_dir``; returns their paths
    by name (``"report"`` and each section's, e.g. ``"sizegen_<task>"``, ``"speed_aggr"``).
    ``ValueError`` (from :func:`check_results`) when ``results`` is malformed."""
    from .sections import SECTIONS

    config = check_results(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    machine = results.get("machine", {})
    lines = [f"# gnnagg benchmark: `{config.get('name')}` suite", ""]
    lines.append(f"* Machine: {describe_machine(machine)}")
    load = machine.get("load_average")
    if load:
        lines.append(
            f"* Load average (1 min) at start / end: {load.get('start')} / {load.get('end')} "
            "(other processes on the machine slow every timing down)"
        )
    lines.append(f"* Date: {results.get('created')}; command: `{results.get('command')}`")
    wall = results.get("wall_time_s", {})
    if wall:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in wall.items() if k != "total")
        lines.append(f"* Wall time: {wall.get('total', 0):.0f} s ({parts})")
    lines.append("")

    for key, section in SECTIONS.items():
        result = results.get(key)
        if not result:
            continue
        lines += [f"## {section.title}", ""]
        conditions = (results.get("conditions") or {}).get(key)
        if conditions:
            lines += [f"*{describe_conditions(conditions)}*", ""]
        error = _section_error(results, key)
        if error:
            lines += [f"Failed: `{error}`", ""]
            continue
        block = section.report(result, config[key], out)
        lines += block.lines
        files.update(block.files)

    notes = results.get("notes", [])
    if notes:
        lines += ["## Notes", ""] + [f"* {n}" for n in notes] + [""]
    keys = ", ".join(section.result_keys for section in SECTIONS.values() if section.result_keys)
    lines += [
        "## Files",
        "",
        "`results.json` in this folder has every number with its config, seed and machine "
        "(keys: `schema`, `suite`, `created`, `command`, `config`, `machine`, `wall_time_s`, "
        f"`conditions`, {keys}, `plots`, `notes`). Rerun the same configuration with "
        "`gnnagg-bench run --config results.json`.",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    files["report"] = report
    return files
