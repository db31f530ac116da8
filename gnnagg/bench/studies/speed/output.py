"""What the speed parts share for their output: the per-case table and the JSON file a part
writes when run as a command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ...._files import write_text

__all__ = ["case_table", "write_result"]


def write_result(result: object, path: Path) -> None:
    """Write a benchmark's result as indented JSON, creating the folder, and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


def case_table(rows: list[dict], ms_cell: Callable[[dict], str]) -> str:
    """Markdown table with one row per method and, per case, time and extra memory.

    ``rows`` carry ``case``, ``method``, ``status`` and, when ``status == "ok"``, ``extra_mb``
    and whatever ``ms_cell`` formats as the time.
    """
    cases = list(dict.fromkeys(r["case"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by_key = {(r["case"], r["method"]): r for r in rows}
    header = "| method | " + " | ".join(f"{c} ms | {c} extra MB" for c in cases) + " |"
    lines = [header, "|---|" + "---:|---:|" * len(cases)]
    for method in methods:
        cells = []
        for case in cases:
            r = by_key.get((case, method), {})
            if r.get("status") == "ok":
                cells += [ms_cell(r), f"{r['extra_mb']:.0f}"]
            else:
                cells += [r.get("status", "-"), "-"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
