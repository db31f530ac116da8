"""Speed and memory: runs the benchmark scripts of the repository's ``experiments/`` folder.

``experiments/`` is not a package (its scripts are also run as files), so each
``bench_<part>.py`` is imported by path. Every part is optional: a script that is not in the
checkout is reported as ``missing``, and one that fails is reported with its error, without
stopping the other parts. A part's entry in the results is::

    {"status": "ok", "result": <what the script's run() returned>, "table": <markdown>,
     "wall_s": ..., "notes": [...]}
    {"status": "missing" | "error", "reason": ...}

For ``aggr``, :class:`~gnnagg.bench.config.SpeedConfig` decides which cases the padded PyG
methods (LCM, GRU, LSTM: an ``[N, max degree, F]`` buffer) run; the cases they skip get a row
with status ``skipped`` and the buffer size, instead of a measurement.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from .config import SpeedConfig
from .machine import repo_root

__all__ = ["PADDED_METHODS", "experiments_dir", "load_experiment", "run_speed"]

# bench_aggr's methods that pad every node to the largest degree.
PADDED_METHODS = ("pyg LCM", "pyg GRU", "pyg LSTM")


def experiments_dir() -> Path:
    """The repository's ``experiments/`` folder; ``FileNotFoundError`` if gnnagg is not
    installed from a checkout."""
    root = repo_root()
    if root is None:
        raise FileNotFoundError(
            "the speed benchmarks are the scripts in the gnnagg repository's experiments/ "
            "folder, which this installation does not have: clone the repository and install "
            "it in place (pip install -e .), then rerun"
        )
    return root / "experiments"


def load_experiment(name: str, folder: Path | None = None) -> ModuleType | None:
    """Import ``<folder>/<name>.py`` (default: :func:`experiments_dir`), or ``None`` if the
    file does not exist. The module is imported under a private name, so that repeated loads
    and same-named modules elsewhere do not collide."""
    folder = Path(folder) if folder is not None else experiments_dir()
    path = folder / f"{name}.py"
    if not path.is_file():
        return None
    module_name = f"_gnnagg_experiments_{name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _call_run(module: ModuleType, **candidates: Any) -> Any:
    """``module.run`` with those of ``candidates`` that its signature takes."""
    parameters = inspect.signature(module.run).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs = {k: v for k, v in candidates.items() if accepts_any or k in parameters}
    return module.run(**kwargs)


def _table(module: ModuleType, result: Any) -> str:
    if not hasattr(module, "format_table"):
        return ""
    try:
        return module.format_table(result)
    except (KeyError, TypeError, AttributeError):
        rows = result.get("rows") if isinstance(result, dict) else None
        return module.format_table(rows) if rows is not None else ""


def _aggr_part(
    module: ModuleType, config: SpeedConfig, device: str, bar: Any
) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    all_methods = list(module._methods()) if hasattr(module, "_methods") else None
    if config.aggr_methods is not None:
        unknown = sorted(set(config.aggr_methods) - set(all_methods or config.aggr_methods))
        if unknown:
            raise ValueError(
                f"aggr_methods: unknown {unknown}; bench_aggr has {sorted(all_methods or [])}"
            )
        all_methods = list(config.aggr_methods)
    padded = [m for m in (all_methods or []) if m in PADDED_METHODS]
    unpadded = [m for m in (all_methods or []) if m not in PADDED_METHODS]

    def progress(row: dict[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{row.get('method')} {row.get('case')}")

    kwargs = dict(device=device, cap_gb=config.cap_gb, timeout_s=config.timeout_s)
    result = module.run(
        config.quick, cases=config.aggr_cases, methods=all_methods, progress=progress, **kwargs
    )
    rows = list(result["rows"])
    if config.aggr_unpadded_cases and all_methods is not None:
        extra = module.run(
            config.quick,
            cases=config.aggr_unpadded_cases,
            methods=unpadded,
            progress=progress,
            **kwargs,
        )
        rows += extra["rows"]
        channels = result.get("channels", 64)
        for case in config.aggr_unpadded_cases:
            degree = _max_degree(case, rows)
            for method in padded:
                gigabytes = 10_000 * degree * channels * 4 / 1e9
                rows.append(
                    {
                        "case": case,
                        "method": method,
                        "status": "skipped",
                        "reason": f"padded buffer [N, {degree}, {channels}] = {gigabytes:.1f} GB",
                    }
                )
        notes.append(
            f"PyG's padded methods ({', '.join(padded)}) were not run on "
            f"{', '.join(config.aggr_unpadded_cases)} in this suite: each would allocate a "
            "[N, max degree, F] buffer (see the rows marked skipped); the full suite runs "
            "them and reports what happens."
        )
    order = {c: i for i, c in enumerate((*config.aggr_cases, *config.aggr_unpadded_cases))}
    method_order = {m: i for i, m in enumerate(all_methods or [])}
    rows.sort(key=lambda r: (order.get(r["case"], 99), method_order.get(r["method"], 99)))
    result["rows"] = rows
    return result, notes


def _max_degree(case: str, rows: list[dict[str, Any]]) -> int:
    for row in rows:
        if row.get("case") == case and "max_degree" in row:
            return int(row["max_degree"])
    digits = "".join(ch for ch in case if ch.isdigit())
    return int(digits) if digits else 0


def _expected_rows(part: str, config: SpeedConfig, module: ModuleType) -> int | None:
    if part == "aggr" and hasattr(module, "_methods"):
        methods = config.aggr_methods or list(module._methods())
        unpadded = [m for m in methods if m not in PADDED_METHODS]
        return len(methods) * len(config.aggr_cases) + len(unpadded) * len(
            config.aggr_unpadded_cases
        )
    if part == "recurrent" and hasattr(module, "METHODS"):
        return len(module.METHODS) * len(config.recurrent_cases)
    return None


def run_speed(
    config: SpeedConfig,
    device: str = "cpu",
    progress: bool = True,
    folder: Path | None = None,
) -> dict[str, Any]:
    """Run every part of ``config`` from ``folder`` (default: the checkout's ``experiments/``).

    Returns ``{part: entry}`` (see the module docstring). Raises ``FileNotFoundError`` when
    there is no ``experiments/`` folder at all.
    """
    from tqdm.auto import tqdm

    if not isinstance(config, SpeedConfig):
        raise TypeError(f"config: expected a SpeedConfig, got {type(config).__name__}")
    folder = Path(folder) if folder is not None else experiments_dir()
    if not folder.is_dir():
        raise FileNotFoundError(f"folder: {folder} does not exist")
    out: dict[str, Any] = {}
    for part in config.parts:
        script = f"bench_{part}"
        try:
            module = load_experiment(script, folder)
        except Exception as error:  # a broken script must not stop the other parts
            out[part] = {"status": "error", "reason": f"importing {script}.py: {error!r}"}
            continue
        if module is None or not hasattr(module, "run"):
            what = "does not exist" if module is None else "has no run()"
            out[part] = {"status": "missing", "reason": f"experiments/{script}.py {what}"}
            continue
        start = time.perf_counter()
        notes: list[str] = []
        total = _expected_rows(part, config, module)
        with tqdm(total=total, desc=f"speed: {part}", unit="row", disable=not progress) as bar:
            try:
                if part == "aggr":
                    result, notes = _aggr_part(module, config, device, bar)
                else:

                    def tick(row: Any) -> None:
                        bar.update(1)

                    result = _call_run(
                        module,
                        quick=config.quick,
                        device=device,
                        cases=config.recurrent_cases,
                        repeats=1 if config.quick else 3,
                        cap_gb=config.cap_gb,
                        timeout_s=config.timeout_s,
                        progress=tick,
                    )
            except Exception as error:
                last = traceback.format_exception_only(type(error), error)[-1].strip()
                out[part] = {"status": "error", "reason": last[:300]}
                continue
        if isinstance(result, list):
            result = {"benchmark": part, "rows": result}
        out[part] = {
            "status": "ok",
            "result": result,
            "table": _table(module, result),
            "wall_s": round(time.perf_counter() - start, 1),
            "notes": notes,
        }
    return out
