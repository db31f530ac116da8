"""``report.md`` and the PNG plots from a run's ``results.json`` (or the same dict in memory).

The report has a header (machine, load, date, command, wall time), then one block per study
that ran, in registry order (:data:`gnnagg.bench.studies.SECTIONS`: each study writes its own
tables and plots, :meth:`~gnnagg.bench.section.Section.report`), each with the thread settings
and load it ran under, then the run's notes and the list of files. Plots use matplotlib's Agg
backend (no display needed) and every file is written with :mod:`gnnagg._files` (atomically,
never through a link).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._files import write_text
from .machine import describe_machine
from .results import check_results
from .studies import SECTIONS

__all__ = ["describe_conditions", "write_report"]


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


def write_report(results: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and the plots for ``results`` into ``out_dir``; returns their paths
    by name (``"report"`` and each section's, e.g. ``"sizegen_<task>"``, ``"speed_aggr"``).
    ``ValueError`` (from :func:`check_results`) when ``results`` is malformed."""
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
    report = write_text(out / "report.md", "\n".join(lines))
    files["report"] = report
    return files
