"""Run the parts of a speed config one by one: a part that fails is recorded with its error,
without stopping the others. A part's entry in the results is::

    {"status": "ok", "title": <the part's TITLE>, "result": <what its run_part returned>,
     "table": <markdown>, "wall_s": ..., "notes": [...]}
    {"status": "error", "reason": ...}
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from .config import SpeedConfig
from .parts import load_part

__all__ = ["run_speed"]


def run_speed(config: SpeedConfig, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Run every part of ``config``; returns ``{part: entry}`` (see the module docstring)."""
    from tqdm.auto import tqdm

    if not isinstance(config, SpeedConfig):
        raise TypeError(f"config: expected a SpeedConfig, got {type(config).__name__}")
    out: dict[str, Any] = {}
    for part in config.parts:
        start = time.perf_counter()
        try:
            module = load_part(part)
            # Parts whose row count is only known after the run have no expected_rows.
            expected_rows = getattr(module, "expected_rows", None)
            total = expected_rows(config) if expected_rows is not None else None
            with tqdm(total=total, desc=f"speed: {part}", unit="row", disable=not progress) as bar:

                def tick(row: dict[str, Any]) -> None:
                    bar.update(1)
                    bar.set_postfix_str(f"{row.get('method', '')} {row.get('case', '')}".strip())

                result, notes = module.run_part(config, device, tick)
            table = module.format_table(result)
        except Exception as error:  # a part that fails must not stop the other parts
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            out[part] = {"status": "error", "reason": last[:300]}
            continue
        out[part] = {
            "status": "ok",
            "title": getattr(module, "TITLE", part),
            "result": result,
            "table": table,
            "wall_s": round(time.perf_counter() - start, 1),
            "notes": notes,
        }
    return out
